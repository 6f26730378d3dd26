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
    sts: Value<String>,
}

/// `assume_role` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AssumeRoleBlock {
    role_arn: Value<String>,
    session_name: Value<String>,
    external_id: Value<String>,
    duration: Value<String>,
    policy: Value<String>,
    policy_arns: Value<Vec<String>>,
    tags: Value<BTreeMap<String, String>>,
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
    retry_mode: Value<String>,
    #[serde(with = "one_block")]
    assume_role: Value<AssumeRoleBlock>,
    allowed_account_ids: Value<Vec<String>>,
    forbidden_account_ids: Value<Vec<String>>,
    shared_config_files: Value<Vec<String>>,
    shared_credentials_files: Value<Vec<String>>,
    custom_ca_bundle: Value<String>,
    http_proxy: Value<String>,
    https_proxy: Value<String>,
    no_proxy: Value<String>,
}

/// Errors of the provider block's arguments: (attribute path, what is allowed).
fn provider_errors(config: &ProviderConfig) -> Vec<(AttributePath, String)> {
    let mut out = Vec::new();
    if let Value::Value(m) = &config.retry_mode {
        if !matches!(m.as_str(), "standard" | "adaptive") {
            out.push((
                AttributePath::new("retry_mode"),
                format!("retry_mode must be \"standard\" or \"adaptive\"; got {m:?}"),
            ));
        }
    }
    if let Value::Value(r) = &config.assume_role {
        let at = |a: &'static str| AttributePath::new("assume_role").attribute(a);
        if let Value::Value(arn) = &r.role_arn {
            if let Err(e) = crate::spec::check_role_arn(arn) {
                out.push((at("role_arn"), e));
            }
        }
        if let Value::Value(n) = &r.session_name {
            let ok = (2..=64).contains(&n.len())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
            if !ok {
                out.push((at("session_name"), format!("assume_role.session_name must be 2–64 letters, digits or any of _+=,.@-; got {n:?}")));
            }
        }
        if let Value::Value(x) = &r.external_id {
            if !(2..=1224).contains(&x.len()) {
                out.push((
                    at("external_id"),
                    "assume_role.external_id must be 2–1224 characters".to_string(),
                ));
            }
        }
        if let Value::Value(d) = &r.duration {
            match crate::duration::parse(d) {
                Ok(d) if (900..=43_200).contains(&d.as_secs()) => {}
                Ok(_) => out.push((
                    at("duration"),
                    format!("assume_role.duration must be from 15m to 12h; got {d:?}"),
                )),
                Err(e) => out.push((at("duration"), format!("assume_role.duration: {e}"))),
            }
        }
        if let Value::Value(p) = &r.policy {
            if serde_json::from_str::<serde_json::Value>(p).map_or(true, |v| !v.is_object()) {
                out.push((
                    at("policy"),
                    "assume_role.policy must be an IAM policy document, a JSON object (jsonencode or aws_iam_policy_document)".into(),
                ));
            }
        }
        for arn in r.policy_arns.as_ref_option().into_iter().flatten() {
            if !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":policy/")) {
                out.push((
                    at("policy_arns"),
                    format!("assume_role.policy_arns must hold IAM policy ARNs, arn:aws:iam::<account or aws>:policy/<name>; got {arn:?}"),
                ));
            }
        }
        if r.policy_arns.as_ref_option().is_some_and(|a| a.len() > 10) {
            out.push((
                at("policy_arns"),
                "assume_role.policy_arns may name at most 10 policies (STS's limit)".into(),
            ));
        }
        if let Some(tags) = r.tags.as_ref_option() {
            if tags.len() > 50 {
                out.push((
                    at("tags"),
                    "assume_role.tags may hold at most 50 session tags (STS's limit)".into(),
                ));
            }
            for (k, v) in tags {
                if k.is_empty() || k.len() > 128 || v.len() > 256 {
                    out.push((
                        at("tags"),
                        format!("assume_role.tags: a session tag's key is 1–128 characters and its value at most 256; got {k:?}"),
                    ));
                }
            }
        }
    }
    for (attr, url) in [
        ("http_proxy", &config.http_proxy),
        ("https_proxy", &config.https_proxy),
    ] {
        if let Value::Value(url) = url {
            if let Err(e) = crate::cloud::aws::network::check_proxy_url(attr, url) {
                out.push((AttributePath::new(attr), e));
            }
        }
    }
    if let Value::Value(path) = &config.custom_ca_bundle {
        if let Err(e) =
            crate::cloud::aws::network::read_ca_bundle("custom_ca_bundle", &expand_home(path))
        {
            out.push((AttributePath::new("custom_ca_bundle"), e));
        }
    }
    let both = matches!(&config.allowed_account_ids, Value::Value(a) if !a.is_empty())
        && matches!(&config.forbidden_account_ids, Value::Value(f) if !f.is_empty());
    if both {
        out.push((
            AttributePath::new("forbidden_account_ids"),
            "allowed_account_ids and forbidden_account_ids cannot both be given: choose one".into(),
        ));
    }
    for (attr, ids) in [
        ("allowed_account_ids", &config.allowed_account_ids),
        ("forbidden_account_ids", &config.forbidden_account_ids),
    ] {
        for id in ids.as_ref_option().into_iter().flatten() {
            if id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit()) {
                out.push((
                    AttributePath::new(attr),
                    format!("{attr} must hold AWS account IDs, 12 digits; got {id:?}"),
                ));
            }
        }
    }
    out
}

use crate::cloud::aws::expand_home;

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
        for (at, e) in provider_errors(&config) {
            diags.error("Invalid provider argument", e, at);
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
                ("sts", &e.sts),
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
            retry_mode: config.retry_mode.as_ref_option().cloned(),
            assume_role: config.assume_role.as_ref_option().and_then(|r| {
                Some(crate::cloud::aws::AssumeRole {
                    role_arn: r.role_arn.as_ref_option()?.clone(),
                    session_name: r.session_name.as_ref_option().cloned(),
                    external_id: r.external_id.as_ref_option().cloned(),
                    duration: r
                        .duration
                        .as_ref_option()
                        .and_then(|d| crate::duration::parse(d).ok()),
                    policy: r.policy.as_ref_option().cloned(),
                    policy_arns: r.policy_arns.as_ref_option().cloned().unwrap_or_default(),
                    tags: r.tags.as_ref_option().cloned().unwrap_or_default(),
                })
            }),
            shared_config_files: config
                .shared_config_files
                .as_ref_option()
                .into_iter()
                .flatten()
                .map(|p| expand_home(p))
                .collect(),
            shared_credentials_files: config
                .shared_credentials_files
                .as_ref_option()
                .into_iter()
                .flatten()
                .map(|p| expand_home(p))
                .collect(),
            network: crate::cloud::aws::network::NetworkSettings {
                http_proxy: config.http_proxy.as_ref_option().cloned(),
                https_proxy: config.https_proxy.as_ref_option().cloned(),
                no_proxy: config.no_proxy.as_ref_option().cloned(),
                custom_ca_bundle: config
                    .custom_ca_bundle
                    .as_ref_option()
                    .map(|p| expand_home(p)),
            },
        };
        if !provider_errors(&config).is_empty() {
            // Said by validate; nothing is called with settings that are wrong.
            return None;
        }
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
        // The account guard, once per process, before anything else is called.
        let allowed = config
            .allowed_account_ids
            .as_ref_option()
            .cloned()
            .unwrap_or_default();
        let forbidden = config
            .forbidden_account_ids
            .as_ref_option()
            .cloned()
            .unwrap_or_default();
        if !allowed.is_empty() || !forbidden.is_empty() {
            match aws.account_id().await {
                Ok(account) => {
                    if !allowed.is_empty() && !allowed.contains(&account) {
                        diags.error(
                            "AWS account not allowed",
                            format!("the credentials are those of AWS account {account}, which is not in allowed_account_ids ({}): nothing was called in it", allowed.join(", ")),
                            AttributePath::new("allowed_account_ids"),
                        );
                        return None;
                    }
                    if forbidden.contains(&account) {
                        diags.error(
                            "AWS account forbidden",
                            format!("the credentials are those of AWS account {account}, which forbidden_account_ids names: nothing was called in it"),
                            AttributePath::new("forbidden_account_ids"),
                        );
                        return None;
                    }
                }
                Err(e) => {
                    diags.root_error(
                        "Cannot configure the immutable provider",
                        format!("reading the account of the credentials (sts:GetCallerIdentity) for allowed_account_ids / forbidden_account_ids: {e}"),
                    );
                    return None;
                }
            }
        }
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
