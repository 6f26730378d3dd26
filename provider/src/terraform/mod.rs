//! The Terraform layer: the only code that names tf-provider types. It turns schema values
//! into the domain spec and engine errors into diagnostics with attribute paths.

mod data_source;
mod resource;
pub mod schema;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};

use crate::cloud::aws::{AwsCloud, AwsSettings};
use crate::cloud::Cloud;
use crate::engine::Engine;

/// What `configure` sets up, shared with the resources (which exist before it runs).
pub struct Context {
    /// The engine over the configured AWS clients.
    pub engine: Engine,
    /// `default_tags` of the provider block.
    pub default_tags: BTreeMap<String, String>,
}

impl Context {
    /// The same context whose engine stops with `lease`'s release (its lease lost) as well
    /// as with the process: one release's lost lease stops that release only.
    pub fn under(&self, lease: &crate::lease::Lease) -> Self {
        Self {
            engine: self.engine.under(lease),
            default_tags: self.default_tags.clone(),
        }
    }
}

/// Set once at configure time.
pub type SharedContext = Arc<OnceLock<Context>>;

fn context<'a>(shared: &'a SharedContext, diags: &mut Diagnostics) -> Option<&'a Context> {
    let c = shared.get();
    if c.is_none() {
        diags.root_error_short("the immutable provider is not configured yet");
    }
    c
}

/// `endpoints` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointsBlock {
    ec2: Value<String>,
    autoscaling: Value<String>,
    elbv2: Value<String>,
    cloudwatch: Value<String>,
}

/// The provider block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    region: Value<String>,
    profile: Value<String>,
    endpoint_url: Value<String>,
    #[serde(with = "one_block")]
    endpoints: Value<EndpointsBlock>,
    poll_interval: Value<String>,
    max_retries: Value<i64>,
    default_tags: Value<BTreeMap<String, String>>,
}

/// The `immutable` provider.
#[derive(Default)]
pub struct ImmutableProvider {
    shared: SharedContext,
}

impl ImmutableProvider {
    /// A provider with the AWS cloud, configured by `configure`.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Provider for ImmutableProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema::provider_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        if let Value::Value(p) = &config.poll_interval {
            if let Err(e) =
                crate::spec::check_duration("poll_interval", p, Some(Duration::from_millis(10)))
            {
                diags.error(
                    "Invalid provider argument",
                    e,
                    AttributePath::new("poll_interval"),
                );
            }
        }
        if let Value::Value(n) = config.max_retries {
            if let Err(e) = crate::spec::check_range("max_retries", n, 1, 100) {
                diags.error(
                    "Invalid provider argument",
                    e,
                    AttributePath::new("max_retries"),
                );
            }
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        let mut endpoints = BTreeMap::new();
        if let Value::Value(e) = &config.endpoints {
            for (k, v) in [
                ("ec2", &e.ec2),
                ("autoscaling", &e.autoscaling),
                ("elbv2", &e.elbv2),
                ("cloudwatch", &e.cloudwatch),
            ] {
                if let Value::Value(url) = v {
                    endpoints.insert(k.to_string(), url.clone());
                }
            }
        }
        let settings = AwsSettings {
            region: config.region.as_ref_option().cloned(),
            profile: config.profile.as_ref_option().cloned(),
            endpoint_url: config.endpoint_url.as_ref_option().cloned(),
            endpoints,
            max_retries: config
                .max_retries
                .as_ref_option()
                .copied()
                .unwrap_or(10)
                .clamp(1, 100) as u32,
        };
        let poll = match &config.poll_interval {
            Value::Value(p) => crate::duration::parse(p).unwrap_or(Duration::from_secs(5)),
            _ => Duration::from_secs(5),
        };
        let aws = match AwsCloud::connect(&settings).await {
            Ok(a) => a,
            Err(e) => {
                diags.root_error("Cannot configure the immutable provider", e);
                return None;
            }
        };
        let ctx = Context {
            engine: Engine::new(Cloud::from_one(Arc::new(aws)), poll)
                .with_stop(crate::stop::global().clone()),
            default_tags: config
                .default_tags
                .as_ref_option()
                .cloned()
                .unwrap_or_default(),
        };
        // Terraform configures each provider process once; a second call keeps the first.
        let _ = self.shared.set(ctx);
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(HashMap::from([(
            "release".to_string(),
            Box::new(resource::ReleaseResource::new(self.shared.clone()))
                as Box<dyn DynamicResource>,
        )]))
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(HashMap::from([(
            "release".to_string(),
            Box::new(data_source::ReleaseDataSource::new(self.shared.clone()))
                as Box<dyn DynamicDataSource>,
        )]))
    }
}

/// A block of at most one (`NestedBlock::Optional`), which Terraform sends as a list: as
/// `tf_provider::value::serde_as_vec`, and a wholly unknown list (a `dynamic` block whose
/// `for_each` is not known yet, as a module's inputs at `validate`) is read as unknown
/// instead of refused.
pub(crate) mod one_block {
    use serde::{de::Error, Deserialize, Serialize};
    use tf_provider::value::Value;

    /// `[value]`, `[]` for null, unknown for unknown.
    pub fn serialize<T, S>(value: &Value<T>, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: serde::Serializer,
        T: Serialize + Clone,
    {
        let list: Value<Vec<T>> = match value {
            Value::Value(v) => Value::Value(vec![v.clone()]),
            Value::Null => Value::Value(Vec::new()),
            Value::Unknown => Value::Unknown,
        };
        list.serialize(serializer)
    }

    /// The list's one element, null for an empty or null list, unknown for an unknown one.
    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Value<T>, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: Deserialize<'de>,
    {
        match Value::<Vec<Value<T>>>::deserialize(deserializer)? {
            Value::Unknown => Ok(Value::Unknown),
            Value::Null => Ok(Value::Null),
            Value::Value(list) => {
                let mut items = list.into_iter();
                match (items.next(), items.next()) {
                    (None, _) => Ok(Value::Null),
                    (Some(v), None) => Ok(v),
                    (Some(_), Some(_)) => Err(D::Error::custom(
                        "a block allowed once is given more than once",
                    )),
                }
            }
        }
    }
}
