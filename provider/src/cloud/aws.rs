//! The AWS implementation of the cloud traits: the only code that names AWS SDK types.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_sdk_autoscaling as asg;
use aws_sdk_cloudwatch as cw;
use aws_sdk_ec2 as ec2;
use aws_sdk_elasticloadbalancingv2 as elb;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use base64::Engine;

mod base;

use super::batch::Batch;
use super::{
    Alarms, BaseVersion, CloudError, CloudResult, Fleets, GroupRequest, GroupStatus, Images,
    InstanceStatus, LeaseRecord, LedgerStore, ListenerAction, Owned, Route, RouteState,
    ScalingPolicy, Snapshot, TargetGroupInfo, TargetHealth, Traffic,
};
use crate::ledger::Ledger;
use crate::spec::{Capacity, FleetSpec, TargetGroupSpec};

/// How to reach AWS: the provider block's settings.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Region; else the standard chain.
    pub region: Option<String>,
    /// Shared config profile.
    pub profile: Option<String>,
    /// One endpoint for every service.
    pub endpoint_url: Option<String>,
    /// Per-service endpoints: `ec2`, `autoscaling`, `elbv2`, `cloudwatch`.
    pub endpoints: BTreeMap<String, String>,
    /// Attempts for throttled or transient errors.
    pub max_retries: u32,
}

/// Clients for the four services.
#[derive(Clone)]
pub struct AwsCloud {
    ec2: ec2::Client,
    asg: asg::Client,
    elb: elb::Client,
    cw: cw::Client,
    /// Group descriptions asked for at about the same time share one call.
    groups: Arc<Batch<GroupStatus>>,
    /// Concurrent reads of one target group's health share one call.
    health: Arc<Mutex<HealthBatches>>,
    /// Alarm states asked for at about the same time share one call (per 100 alarms).
    alarms: Arc<Batch<bool>>,
    /// The actions in front of each route's final action, as last read: every write puts
    /// them back in front (one read per route per process, not one per weight change; each
    /// write's read-back refreshes them).
    fronts: Arc<Mutex<BTreeMap<String, Vec<elb::types::Action>>>>,
    /// Per ledger name: the version this process last read or wrote, and whether a write of
    /// another came between (then no write until the next read).
    ledger_versions: Arc<Mutex<BTreeMap<String, LedgerSeen>>>,
}

/// What this process knows of a ledger's versions.
#[derive(Debug, Clone, Default)]
struct LedgerSeen {
    version: i64,
    conflict: Option<String>,
}

/// A ledger template keeps the versions of the last this many saves (and version 1, its
/// default, which AWS never deletes); older ones are pruned every 10 saves, far below AWS's
/// 10,000 versions per template.
const LEDGER_VERSIONS_KEPT: i64 = 10;

type HealthBatches = BTreeMap<String, Arc<Batch<Vec<TargetHealth>>>>;

/// How long a shared observation waits for company.
const SHARE_WINDOW: Duration = Duration::from_millis(5);

/// The name of the scheduled action that ends a retained fleet's rollback window.
pub const ROLLBACK_WINDOW_ACTION: &str = "immutable-rollback-window-end";

/// The launch template that holds a release's lease: `<name>-lease`.
fn lease_template_name(release_name: &str) -> String {
    format!("{release_name}-lease")
}

/// The ledger's launch template name: `<name>-ledger`. Fleets are `<name>-r<N>`, so the two
/// never collide, whatever the names.
pub fn ledger_template_name(release_name: &str) -> String {
    format!("{release_name}-ledger")
}

impl AwsCloud {
    /// The launch template data of version `version` of template `id` (a fleet's, or the
    /// user's base template).
    async fn template_data(
        &self,
        id: &str,
        version: i64,
    ) -> CloudResult<ec2::types::ResponseLaunchTemplateData> {
        let what = format!("reading version {version} of launch template ({id})");
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions(version.to_string())
            .send()
            .await
            .map_err(err(what.clone()))?;
        out.launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .cloned()
            .ok_or_else(|| CloudError::Api {
                action: what,
                code: "InvalidLaunchTemplateId.VersionNotFound".into(),
                message: format!("launch template {id} has no version {version}"),
            })
    }

    /// A ledger write that found another between this process's read (version `read`) and
    /// its write (`written`) is taken back, the other stays the latest, and nothing more is
    /// written until the ledger is read again: the error says so.
    async fn take_back(&self, name: &str, read: i64, written: i64) -> CloudError {
        let name = name.to_string();
        let other = self.ledger_writer(&name, written - 1).await;
        let why = format!(
            "the release ledger ({name}) was written by another apply between this apply's read (version {read}) and its write (version {written}){other}; this apply's write was taken back and it changes nothing more: run it again"
        );
        let _ = self
            .ec2
            .delete_launch_template_versions()
            .launch_template_name(&name)
            .versions(written.to_string())
            .send()
            .await;
        self.ledger_versions.lock().unwrap().insert(
            name.clone(),
            LedgerSeen {
                version: read,
                conflict: Some(why.clone()),
            },
        );
        CloudError::Api {
            action: format!("writing release ledger ({name})"),
            code: "LedgerConflict".into(),
            message: why,
        }
    }

    /// Prunes the ledger template's old versions every `LEDGER_VERSIONS_KEPT` writes (AWS
    /// holds at most 10,000); best effort: a prune that fails is done by a later one.
    async fn prune_ledger(&self, name: &str, written: i64) {
        if written > 2 * LEDGER_VERSIONS_KEPT && written % LEDGER_VERSIONS_KEPT == 0 {
            let from = (written - LEDGER_VERSIONS_KEPT - 199).max(2);
            let versions: Vec<String> = (from..=written - LEDGER_VERSIONS_KEPT)
                .map(|v| v.to_string())
                .collect();
            let _ = self
                .ec2
                .delete_launch_template_versions()
                .launch_template_name(name)
                .set_versions(Some(versions))
                .send()
                .await;
        }
    }
}

impl AwsCloud {
    /// The actions of a health-check rule forwarding to `target_group_arn`: the route's
    /// authentication goes in front too, so that a request that knows the header's value is
    /// still authenticated first — all of it that a new rule can carry: AWS never returns an
    /// OIDC client secret, and a rule being created must give one, so an
    /// `authenticate-oidc` action is left out (the rule is then guarded by its random header
    /// alone, as every health-check rule was).
    async fn health_rule_actions(
        &self,
        route: &Route,
        target_group_arn: &str,
    ) -> CloudResult<Vec<elb::types::Action>> {
        let mut actions = self
            .with_front(
                route,
                elb::types::Action::builder()
                    .r#type(elb::types::ActionTypeEnum::Forward)
                    .target_group_arn(target_group_arn)
                    .build(),
            )
            .await?;
        actions.retain(|a| {
            a.authenticate_oidc_config
                .as_ref()
                .is_none_or(|c| c.client_secret.is_some())
        });
        if actions.len() == 1 {
            actions[0].order = None;
        }
        Ok(actions)
    }
}

/// The rule among `rules` whose header condition carries `token` (a health-check rule of
/// this attempt).
fn rule_with_token(rules: &[elb::types::Rule], token: &str) -> Option<String> {
    rules
        .iter()
        .find(|r| {
            r.conditions().iter().any(|c| {
                c.http_header_config()
                    .is_some_and(|h| h.values().iter().any(|v| v == token))
            })
        })
        .and_then(|r| r.rule_arn())
        .map(String::from)
}

/// The one HTTPS client: hyper 1, rustls with ring, the system's trusted roots (the SDKs'
/// default clients are left out of the build).
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// How long one attempt of an AWS call may take before it is abandoned (and retried like
/// any transient error): AWS answers in well under a second; a hung connection must not
/// hold a release.
pub const CALL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one AWS call may take, all its attempts and back-offs included: no call blocks
/// an apply past it, whatever `max_retries` says.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// An HTTP client whose calls in flight when a stop is requested (Ctrl-C, SIGTERM,
/// `StopProvider`) end at once, as a user error the SDK does not retry; a call started
/// after the stop runs as usual (putting traffic back after a stop is such a call).
#[derive(Debug, Clone)]
struct StoppableClient {
    inner: aws_smithy_runtime_api::client::http::SharedHttpClient,
    stop: crate::stop::Stop,
}

impl aws_smithy_runtime_api::client::http::HttpClient for StoppableClient {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(StoppableConnector {
            inner: self.inner.http_connector(settings, components),
            stop: self.stop.clone(),
        })
    }
}

#[derive(Debug)]
struct StoppableConnector {
    inner: aws_smithy_runtime_api::client::http::SharedHttpConnector,
    stop: crate::stop::Stop,
}

impl aws_smithy_runtime_api::client::http::HttpConnector for StoppableConnector {
    fn call(
        &self,
        request: aws_smithy_runtime_api::client::orchestrator::HttpRequest,
    ) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
        let call = self.inner.call(request);
        if self.stop.requested().is_some() {
            return call;
        }
        let stop = self.stop.clone();
        HttpConnectorFuture::new(async move {
            tokio::select! {
                answer = call => answer,
                why = stop.wait() => Err(aws_smithy_runtime_api::client::result::ConnectorError::user(
                    format!("the call was interrupted: {why}").into(),
                )),
            }
        })
    }
}

impl AwsCloud {
    /// Loads the AWS configuration (standard credential chain) and builds the clients.
    /// Fails when no region can be found.
    pub async fn connect(settings: &AwsSettings) -> Result<Self, String> {
        let client = StoppableClient {
            inner: https_client(),
            stop: crate::stop::global().clone(),
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(
            aws_smithy_runtime_api::client::http::SharedHttpClient::new(client),
        );
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader = loader.retry_config(
            RetryConfig::standard()
                .with_max_attempts(settings.max_retries.max(1))
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(20)),
        );
        // An attempt that hangs is abandoned and retried like any transient error, and a
        // call never takes longer than CALL_TIMEOUT: no wait is ever stuck on one dead
        // connection.
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(CALL_ATTEMPT_TIMEOUT)
                .operation_attempt_timeout(CALL_ATTEMPT_TIMEOUT)
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        );
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err("no AWS region is configured: set region in the provider block, or AWS_REGION, or a region in the shared config profile".into());
        }
        let endpoint = |service: &str| settings.endpoints.get(service).cloned();
        let mut ec2b = ec2::config::Builder::from(&sdk);
        if let Some(u) = endpoint("ec2") {
            ec2b = ec2b.endpoint_url(u);
        }
        let mut asgb = asg::config::Builder::from(&sdk);
        if let Some(u) = endpoint("autoscaling") {
            asgb = asgb.endpoint_url(u);
        }
        let mut elbb = elb::config::Builder::from(&sdk);
        if let Some(u) = endpoint("elbv2") {
            elbb = elbb.endpoint_url(u);
        }
        let mut cwb = cw::config::Builder::from(&sdk);
        if let Some(u) = endpoint("cloudwatch") {
            cwb = cwb.endpoint_url(u);
        }
        Ok(Self {
            ec2: ec2::Client::from_conf(ec2b.build()),
            asg: asg::Client::from_conf(asgb.build()),
            elb: elb::Client::from_conf(elbb.build()),
            cw: cw::Client::from_conf(cwb.build()),
            groups: Arc::new(Batch::new(SHARE_WINDOW)),
            health: Arc::new(Mutex::new(BTreeMap::new())),
            alarms: Arc::new(Batch::new(SHARE_WINDOW)),
            fronts: Arc::new(Mutex::new(BTreeMap::new())),
            ledger_versions: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }
}

/// Turns an SDK error into a [`CloudError`] that keeps AWS's code and message.
/// A delete's answer: done, or the object was not there — AWS's error code and message
/// say so as `absent` recognises them ("absent is fine" for every delete).
fn deleted<O, E>(
    result: Result<O, E>,
    absent: impl Fn(&str, &str) -> bool,
    action: impl Into<String>,
) -> CloudResult<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if absent(
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default(),
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(err(action)(e)),
    }
}

fn err<E>(action: impl Into<String>) -> impl FnOnce(E) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e: E| {
        let action = action.into();
        match e.code() {
            Some(code) => CloudError::Api {
                action,
                code: code.to_string(),
                message: e.message().unwrap_or_default().to_string(),
            },
            None => CloudError::Transport {
                action,
                message: DisplayErrorContext(&e).to_string(),
            },
        }
    }
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<ec2::types::Tag> {
    tags.iter()
        .map(|(k, v)| ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn elb_tags(tags: &BTreeMap<String, String>) -> Vec<elb::types::Tag> {
    tags.iter()
        .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build())
        .collect()
}

fn asg_tags(name: &str, tags: &BTreeMap<String, String>) -> Vec<asg::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            asg::types::Tag::builder()
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                // The phase changes as the fleet moves on; on an instance it would stay
                // what it was at launch (`launching`) for ever.
                .propagate_at_launch(k != crate::naming::TAG_PHASE)
                .build()
        })
        .collect()
}

fn group_status(g: &asg::types::AutoScalingGroup) -> GroupStatus {
    GroupStatus {
        name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
        capacity: Capacity {
            min: i64::from(g.min_size().unwrap_or(0)),
            max: i64::from(g.max_size().unwrap_or(0)),
            desired: i64::from(g.desired_capacity().unwrap_or(0)),
        },
        instances: g
            .instances()
            .iter()
            .map(|i| InstanceStatus {
                id: i.instance_id().unwrap_or_default().to_string(),
                lifecycle_state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                health_status: i.health_status().unwrap_or_default().to_string(),
                launch_template: i.launch_template().map(|lt| {
                    (
                        lt.launch_template_id().unwrap_or_default().to_string(),
                        lt.version().unwrap_or_default().to_string(),
                    )
                }),
            })
            .collect(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        target_group_arns: g.target_group_arns().to_vec(),
        // A group with fallback types names its template in its mixed instances policy.
        launch_template: g
            .launch_template()
            .or_else(|| {
                g.mixed_instances_policy()?
                    .launch_template()?
                    .launch_template_specification()
            })
            .map(|lt| {
                (
                    lt.launch_template_id().unwrap_or_default().to_string(),
                    lt.version().unwrap_or_default().to_string(),
                )
            }),
        deleting: g.status().is_some_and(|s| s.contains("Delete")),
    }
}

#[async_trait]
impl Fleets for AwsCloud {
    async fn create_launch_template(
        &self,
        name: &str,
        spec: &FleetSpec,
        tags: &BTreeMap<String, String>,
        instance_tags: &BTreeMap<String, String>,
    ) -> CloudResult<(String, i64)> {
        let mut data = ec2::types::RequestLaunchTemplateData::builder()
            .image_id(&spec.image_id)
            .instance_type(ec2::types::InstanceType::from(spec.instance_type.as_str()))
            .set_security_group_ids(if spec.security_group_ids.is_empty() {
                None
            } else {
                Some(spec.security_group_ids.iter().cloned().collect())
            });
        if let Some(profile) = &spec.iam_instance_profile {
            let p = ec2::types::LaunchTemplateIamInstanceProfileSpecificationRequest::builder();
            let p = if profile.starts_with("arn:") {
                p.arn(profile)
            } else {
                p.name(profile)
            };
            data = data.iam_instance_profile(p.build());
        }
        if let Some(ud) = &spec.user_data {
            data = data.user_data(base64::engine::general_purpose::STANDARD.encode(ud));
        }
        data = launch_settings(data, spec);
        if !instance_tags.is_empty() {
            for rt in [
                ec2::types::ResourceType::Instance,
                ec2::types::ResourceType::Volume,
            ] {
                data = data.tag_specifications(
                    ec2::types::LaunchTemplateTagSpecificationRequest::builder()
                        .resource_type(rt)
                        .set_tags(Some(ec2_tags(instance_tags)))
                        .build(),
                );
            }
        }
        if let Some(b) = &spec.base {
            data = base::merge(data, &self.template_data(&b.id, b.version).await?);
        }
        let out = self
            .ec2
            .create_launch_template()
            .launch_template_name(name)
            .version_description("immutable_release fleet")
            .launch_template_data(data.build())
            .tag_specifications(
                ec2::types::TagSpecification::builder()
                    .resource_type(ec2::types::ResourceType::LaunchTemplate)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if e.code().is_some_and(|c| c.contains("AlreadyExists")) => {
                if let Some((id, found)) = self.find_launch_template(name).await? {
                    if made_by_this_call(&found, tags) {
                        // A fleet's template is created with one version and never changed.
                        return Ok((id, 1));
                    }
                }
                return Err(err(format!("creating launch template ({name})"))(e));
            }
            Err(e) => return Err(err(format!("creating launch template ({name})"))(e)),
        };
        let lt = out.launch_template();
        Ok((
            lt.and_then(|l| l.launch_template_id())
                .unwrap_or_default()
                .to_string(),
            lt.and_then(|l| l.latest_version_number()).unwrap_or(1),
        ))
    }

    async fn resolve_launch_template(&self, id: &str, version: &str) -> CloudResult<BaseVersion> {
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions(version)
            .send()
            .await;
        match out {
            Ok(o) => Ok(o
                .launch_template_versions()
                .first()
                .and_then(|v| v.version_number())
                .map_or(BaseVersion::NoVersion, BaseVersion::Number)),
            Err(e) => match e.code() {
                Some("InvalidLaunchTemplateId.NotFound" | "InvalidLaunchTemplateId.Malformed") => {
                    Ok(BaseVersion::NoTemplate)
                }
                Some("InvalidLaunchTemplateId.VersionNotFound") => Ok(BaseVersion::NoVersion),
                _ => Err(err(format!(
                    "reading version {version} of launch template ({id})"
                ))(e)),
            },
        }
    }

    async fn find_launch_template(
        &self,
        name: &str,
    ) -> CloudResult<Option<(String, BTreeMap<String, String>)>> {
        let out = self
            .ec2
            .describe_launch_templates()
            .filters(
                ec2::types::Filter::builder()
                    .name("launch-template-name")
                    .values(name)
                    .build(),
            )
            .send()
            .await
            .map_err(err(format!("reading launch template ({name})")))?;
        Ok(out
            .launch_templates()
            .iter()
            .find(|t| t.launch_template_name() == Some(name))
            .map(|t| {
                (
                    t.launch_template_id().unwrap_or_default().to_string(),
                    t.tags()
                        .iter()
                        .filter_map(|t| {
                            Some((
                                t.key()?.to_string(),
                                t.value().unwrap_or_default().to_string(),
                            ))
                        })
                        .collect(),
                )
            }))
    }

    async fn launch_template_user_data(
        &self,
        id: &str,
        version: i64,
    ) -> CloudResult<Option<String>> {
        let data = self.template_data(id, version).await?;
        Ok(data
            .user_data()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    async fn delete_launch_template(&self, name: &str) -> CloudResult<()> {
        // By name, in one call; absent is fine. (moto answers MissingParameter for an
        // unknown name where AWS answers InvalidLaunchTemplateName.NotFoundException.)
        let out = self
            .ec2
            .delete_launch_template()
            .launch_template_name(name)
            .send()
            .await;
        deleted(
            out,
            |c, _| c.contains("NotFound") || c == "MissingParameter",
            format!("deleting launch template ({name})"),
        )
    }

    async fn create_target_group(
        &self,
        name: &str,
        vpc_id: &str,
        spec: &TargetGroupSpec,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<String> {
        let hc = &spec.health_check;
        let out = self
            .elb
            .create_target_group()
            .name(name)
            .protocol(elb::types::ProtocolEnum::from(spec.protocol.as_str()))
            .port(spec.port as i32)
            .vpc_id(vpc_id)
            .target_type(elb::types::TargetTypeEnum::Instance)
            .health_check_enabled(true)
            .health_check_path(&hc.path)
            .health_check_port(&hc.port)
            .health_check_protocol(elb::types::ProtocolEnum::from(hc.protocol.as_str()))
            .health_check_interval_seconds(hc.interval as i32)
            .health_check_timeout_seconds(hc.timeout as i32)
            .healthy_threshold_count(hc.healthy_threshold as i32)
            .unhealthy_threshold_count(hc.unhealthy_threshold as i32)
            .matcher(
                elb::types::Matcher::builder()
                    .http_code(&hc.matcher)
                    .build(),
            )
            .set_tags(Some(elb_tags(tags)))
            .send()
            .await;
        let arn = match out {
            Ok(out) => out
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .unwrap_or_default()
                .to_string(),
            Err(e) if e.code() == Some("DuplicateTargetGroupName") => {
                match self.find_target_group(name).await? {
                    Some(tg) if made_by_this_call(&tg.tags, tags) => tg.arn,
                    _ => return Err(err(format!("creating target group ({name})"))(e)),
                }
            }
            Err(e) => return Err(err(format!("creating target group ({name})"))(e)),
        };
        self.elb
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(
                elb::types::TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(spec.deregistration_delay.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(err(format!(
                "setting deregistration delay of target group ({name})"
            )))?;
        Ok(arn)
    }

    async fn find_target_group(&self, name: &str) -> CloudResult<Option<TargetGroupInfo>> {
        let out = match self.elb.describe_target_groups().names(name).send().await {
            Ok(o) => o,
            Err(e) if e.code() == Some("TargetGroupNotFound") => return Ok(None),
            Err(e) => return Err(err(format!("reading target group ({name})"))(e)),
        };
        let Some(arn) = out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
        else {
            return Ok(None);
        };
        let tags = self
            .elb
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .map_err(err(format!("reading tags of target group ({name})")))?;
        Ok(Some(TargetGroupInfo {
            arn: arn.to_string(),
            name: name.to_string(),
            tags: tags
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
        }))
    }

    async fn delete_target_group(&self, arn: &str) -> CloudResult<()> {
        let out = self
            .elb
            .delete_target_group()
            .target_group_arn(arn)
            .send()
            .await;
        deleted(
            out,
            |c, _| c == "TargetGroupNotFound",
            format!("deleting target group ({arn})"),
        )
    }

    async fn create_group(&self, r: &GroupRequest) -> CloudResult<()> {
        let template = asg::types::LaunchTemplateSpecification::builder()
            .launch_template_id(&r.launch_template.0)
            .version(r.launch_template.1.to_string())
            .build();
        let call = self
            .asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(&r.name);
        // Fallback types: a mixed instances policy over the same template, every instance
        // on-demand, the types tried in the order given.
        let call = if r.instance_types.len() > 1 {
            call.mixed_instances_policy(
                asg::types::MixedInstancesPolicy::builder()
                    .launch_template(
                        asg::types::LaunchTemplate::builder()
                            .launch_template_specification(template)
                            .set_overrides(Some(
                                r.instance_types
                                    .iter()
                                    .map(|t| {
                                        asg::types::LaunchTemplateOverrides::builder()
                                            .instance_type(t)
                                            .build()
                                    })
                                    .collect(),
                            ))
                            .build(),
                    )
                    .instances_distribution(
                        asg::types::InstancesDistribution::builder()
                            .on_demand_allocation_strategy("prioritized")
                            .on_demand_base_capacity(0)
                            .on_demand_percentage_above_base_capacity(100)
                            .build(),
                    )
                    .build(),
            )
        } else {
            call.launch_template(template)
        };
        let out = call
            .min_size(r.capacity.min as i32)
            .max_size(r.capacity.max as i32)
            .desired_capacity(r.capacity.desired as i32)
            .vpc_zone_identifier(r.subnet_ids.join(","))
            .target_group_arns(&r.target_group_arn)
            .health_check_type("ELB")
            .health_check_grace_period(r.grace_period.as_secs() as i32)
            .set_tags(Some(asg_tags(&r.name, &r.tags)))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("AlreadyExists") => {
                let found = self
                    .describe_groups_now(std::slice::from_ref(&r.name))
                    .await?;
                match found.first() {
                    Some(g) if made_by_this_call(&g.tags, &r.tags) => Ok(()),
                    _ => Err(err(format!("creating Auto Scaling group ({})", r.name))(e)),
                }
            }
            Err(e) => Err(err(format!("creating Auto Scaling group ({})", r.name))(e)),
        }
    }

    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<GroupStatus>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .groups
            .get(names, |all| async move {
                let mut out = BTreeMap::new();
                for chunk in all.chunks(100) {
                    for g in self.describe_groups_now(chunk).await? {
                        out.insert(g.name.clone(), g);
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(names.iter().filter_map(|n| found.get(n).cloned()).collect())
    }

    async fn groups_of_release(&self, release_name: &str) -> CloudResult<Vec<GroupStatus>> {
        let mut out = Vec::new();
        let mut pages = self
            .asg
            .describe_auto_scaling_groups()
            .filters(
                asg::types::Filter::builder()
                    .name(format!("tag:{}", crate::naming::TAG_RELEASE_NAME))
                    .values(release_name)
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(err(format!(
                "listing Auto Scaling groups of release ({release_name})"
            )))?;
            out.extend(page.auto_scaling_groups().iter().map(group_status));
        }
        Ok(out)
    }

    async fn set_capacity(&self, name: &str, c: Capacity) -> CloudResult<()> {
        self.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(c.min as i32)
            .max_size(c.max as i32)
            .desired_capacity(c.desired as i32)
            .send()
            .await
            .map_err(err(format!("scaling Auto Scaling group ({name})")))?;
        Ok(())
    }

    async fn tag_group(&self, name: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        self.asg
            .create_or_update_tags()
            .set_tags(Some(asg_tags(name, tags)))
            .send()
            .await
            .map_err(err(format!("tagging Auto Scaling group ({name})")))?;
        Ok(())
    }

    async fn retag(
        &self,
        object: &Owned,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> CloudResult<()> {
        let what = format!("tagging {object:?}");
        match object {
            Owned::Group(name) => {
                if !set.is_empty() {
                    self.tag_group(name, set).await?;
                }
                if !remove.is_empty() {
                    let gone = remove.iter().map(|k| {
                        asg::types::Tag::builder()
                            .resource_id(name)
                            .resource_type("auto-scaling-group")
                            .key(k)
                            .build()
                    });
                    self.asg
                        .delete_tags()
                        .set_tags(Some(gone.collect()))
                        .send()
                        .await
                        .map_err(err(what))?;
                }
            }
            Owned::TargetGroup(arn) => {
                if !set.is_empty() {
                    let tags = set
                        .iter()
                        .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build());
                    self.elb
                        .add_tags()
                        .resource_arns(arn)
                        .set_tags(Some(tags.collect()))
                        .send()
                        .await
                        .map_err(err(what.clone()))?;
                }
                if !remove.is_empty() {
                    self.elb
                        .remove_tags()
                        .resource_arns(arn)
                        .set_tag_keys(Some(remove.to_vec()))
                        .send()
                        .await
                        .map_err(err(what))?;
                }
            }
            Owned::LaunchTemplate(id) => {
                if !set.is_empty() {
                    self.ec2
                        .create_tags()
                        .resources(id)
                        .set_tags(Some(ec2_tags(set)))
                        .send()
                        .await
                        .map_err(err(what.clone()))?;
                }
                if !remove.is_empty() {
                    let gone = remove
                        .iter()
                        .map(|k| ec2::types::Tag::builder().key(k).build());
                    self.ec2
                        .delete_tags()
                        .resources(id)
                        .set_tags(Some(gone.collect()))
                        .send()
                        .await
                        .map_err(err(what))?;
                }
            }
        }
        Ok(())
    }

    async fn schedule_scale_to_zero(
        &self,
        name: &str,
        at: std::time::SystemTime,
    ) -> CloudResult<()> {
        self.asg
            .put_scheduled_update_group_action()
            .auto_scaling_group_name(name)
            .scheduled_action_name(ROLLBACK_WINDOW_ACTION)
            .start_time(aws_smithy_types::DateTime::from(at))
            .min_size(0)
            .max_size(0)
            .desired_capacity(0)
            .send()
            .await
            .map_err(err(format!(
                "scheduling the end of the rollback window of Auto Scaling group ({name})"
            )))?;
        Ok(())
    }

    async fn cancel_scale_to_zero(&self, name: &str) -> CloudResult<()> {
        let out = self
            .asg
            .delete_scheduled_action()
            .auto_scaling_group_name(name)
            .scheduled_action_name(ROLLBACK_WINDOW_ACTION)
            .send()
            .await;
        deleted(
            out,
            |c, _| c == "ValidationError",
            format!("cancelling the end of the rollback window of Auto Scaling group ({name})"),
        )
    }

    async fn delete_group(&self, name: &str) -> CloudResult<()> {
        let out = self
            .asg
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(true)
            .send()
            .await;
        deleted(
            out,
            |_, message| message.contains("not found"),
            format!("deleting Auto Scaling group ({name})"),
        )
    }

    async fn put_scaling_policy(&self, group: &str, policy: &ScalingPolicy) -> CloudResult<()> {
        let what = format!(
            "putting scaling policy {} on Auto Scaling group ({group})",
            policy.name
        );
        let metric = asg::types::PredefinedMetricSpecification::builder()
            .predefined_metric_type(asg::types::MetricType::from(policy.metric.as_str()))
            .set_resource_label(policy.resource_label.clone())
            .build();
        let config = asg::types::TargetTrackingConfiguration::builder()
            .predefined_metric_specification(metric)
            .target_value(policy.target_value)
            .disable_scale_in(policy.disable_scale_in)
            .build();
        self.asg
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name(&policy.name)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(config)
            .send()
            .await
            .map_err(err(what))?;
        Ok(())
    }

    async fn scaling_policies(&self, group: &str) -> CloudResult<Vec<ScalingPolicy>> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .asg
                .describe_policies()
                .auto_scaling_group_name(group)
                .policy_types("TargetTrackingScaling")
                .set_next_token(token)
                .send()
                .await
                .map_err(err(format!(
                    "reading scaling policies of Auto Scaling group ({group})"
                )))?;
            for p in page.scaling_policies() {
                // AWS filters by group; the emulator keeps a deleted group's policies.
                if p.auto_scaling_group_name() != Some(group) {
                    continue;
                }
                let Some(c) = p.target_tracking_configuration() else {
                    continue;
                };
                let metric = c.predefined_metric_specification();
                out.push(ScalingPolicy {
                    name: p.policy_name().unwrap_or_default().to_string(),
                    metric: metric
                        .and_then(|m| m.predefined_metric_type())
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    target_value: c.target_value().unwrap_or_default(),
                    disable_scale_in: c.disable_scale_in().unwrap_or(false),
                    resource_label: metric.and_then(|m| m.resource_label()).map(String::from),
                });
            }
            token = page.next_token().map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn delete_scaling_policy(&self, group: &str, name: &str) -> CloudResult<()> {
        let out = self
            .asg
            .delete_policy()
            .auto_scaling_group_name(group)
            .policy_name(name)
            .send()
            .await;
        deleted(
            out,
            |c, _| c == "ValidationError",
            format!("deleting scaling policy {name} of Auto Scaling group ({group})"),
        )
    }

    async fn failed_activities(
        &self,
        name: &str,
        since: std::time::SystemTime,
    ) -> CloudResult<Vec<String>> {
        let out = self
            .asg
            .describe_scaling_activities()
            .auto_scaling_group_name(name)
            .max_records(20)
            .send()
            .await
            .map_err(err(format!(
                "reading scaling activities of Auto Scaling group ({name})"
            )))?;
        let since = aws_smithy_types::DateTime::from(since);
        Ok(out
            .activities()
            .iter()
            .filter(|a| a.status_code() == Some(&asg::types::ScalingActivityStatusCode::Failed))
            .filter(|a| a.start_time().is_some_and(|t| t.secs() >= since.secs()))
            .map(|a| {
                format!(
                    "{} ({})",
                    a.status_message().unwrap_or("no message"),
                    a.description().unwrap_or("scaling activity")
                )
            })
            .collect())
    }

    async fn target_health(&self, arn: &str) -> CloudResult<Vec<TargetHealth>> {
        let batch = self
            .health
            .lock()
            .unwrap()
            .entry(arn.to_string())
            .or_insert_with(|| Arc::new(Batch::new(SHARE_WINDOW)))
            .clone();
        let key = [arn.to_string()];
        let found = batch
            .get(&key, |_| async {
                let health = self.target_health_now(arn).await?;
                Ok(BTreeMap::from([(arn.to_string(), health)]))
            })
            .await?;
        Ok(found.into_values().next().unwrap_or_default())
    }
}

/// Whether an object found by name (its tags) is the one this call was creating: same
/// release, same fleet fingerprint. A create whose answer was lost (a timeout, a reset after
/// AWS acted) is retried by the SDK and meets its own object: it is adopted, never a
/// stranger's.
fn made_by_this_call(found: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    [
        crate::naming::TAG_RELEASE_NAME,
        crate::naming::TAG_FINGERPRINT,
    ]
    .iter()
    .all(|k| wanted.get(*k).is_some() && found.get(*k) == wanted.get(*k))
}

type CreateTemplateError = aws_sdk_ec2::error::SdkError<
    ec2::operation::create_launch_template::CreateLaunchTemplateError,
    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
>;

impl AwsCloud {
    /// Creates a launch template that records something (the ledger, the lease) and never
    /// launches anything, with the release's tags.
    async fn create_record_template(
        &self,
        name: &str,
        what: &str,
        data: ec2::types::RequestLaunchTemplateData,
        tags: &BTreeMap<String, String>,
    ) -> Result<(String, i64), CreateTemplateError> {
        self.ec2
            .create_launch_template()
            .launch_template_name(name)
            .version_description(format!("immutable_release {what}: not for launching"))
            .launch_template_data(data)
            .tag_specifications(
                ec2::types::TagSpecification::builder()
                    .resource_type(ec2::types::ResourceType::LaunchTemplate)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await
            .map(|o| {
                let t = o.launch_template();
                (
                    t.and_then(|t| t.launch_template_id())
                        .unwrap_or_default()
                        .to_string(),
                    t.and_then(|t| t.latest_version_number()).unwrap_or(1),
                )
            })
    }

    async fn describe_groups_now(&self, names: &[String]) -> CloudResult<Vec<GroupStatus>> {
        let mut out = Vec::new();
        let mut pages = self
            .asg
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(names.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(err(format!(
                "reading Auto Scaling groups ({})",
                names.join(", ")
            )))?;
            out.extend(page.auto_scaling_groups().iter().map(group_status));
        }
        Ok(out)
    }

    /// One version of a ledger template (`$Latest` or a number), None when the template
    /// does not exist.
    async fn ledger_template_version(
        &self,
        name: &str,
        version: &str,
    ) -> CloudResult<Option<ec2::types::LaunchTemplateVersion>> {
        match self
            .ec2
            .describe_launch_template_versions()
            .launch_template_name(name)
            .versions(version)
            .send()
            .await
        {
            Ok(o) => Ok(o.launch_template_versions().first().cloned()),
            Err(e)
                if e.code()
                    .is_some_and(|c| c.starts_with("InvalidLaunchTemplateName")) =>
            {
                Ok(None)
            }
            Err(e) => Err(err(format!("reading release ledger ({name})"))(e)),
        }
    }

    /// A ledger version's number and user data, None when the template does not exist.
    async fn ledger_version(
        &self,
        name: &str,
        version: &str,
    ) -> CloudResult<Option<(i64, Option<String>)>> {
        Ok(self.ledger_template_version(name, version).await?.map(|v| {
            (
                v.version_number().unwrap_or_default(),
                v.launch_template_data()
                    .and_then(|d| d.user_data())
                    .map(String::from),
            )
        }))
    }

    /// ` (by ARN at TIME)`: who wrote a ledger version, as far as AWS says.
    async fn ledger_writer(&self, name: &str, version: i64) -> String {
        match self
            .ledger_template_version(name, &version.to_string())
            .await
        {
            Ok(Some(v)) => format!(
                " (version {version}, by {} at {})",
                v.created_by().unwrap_or("an unknown principal"),
                v.create_time()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "an unknown time".into())
            ),
            _ => String::new(),
        }
    }

    /// Every rule of a listener, every page of them (`NextMarker`).
    async fn listener_rules(&self, listener_arn: &str) -> CloudResult<Vec<elb::types::Rule>> {
        let mut rules = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .elb
                .describe_rules()
                .listener_arn(listener_arn)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(err(format!("reading rules of listener ({listener_arn})")))?;
            rules.extend(out.rules().iter().cloned());
            match out.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(rules),
            }
        }
    }

    async fn target_health_now(&self, arn: &str) -> CloudResult<Vec<TargetHealth>> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(err(format!("reading target health ({arn})")))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .map(|d| TargetHealth {
                id: d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string(),
                state: d
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: d
                    .target_health()
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
                description: d
                    .target_health()
                    .and_then(|h| h.description())
                    .map(String::from),
            })
            .collect())
    }
}

/// Looks again at a ledger this process wrote that a read did not find (AWS's reads lag
/// its writes): this many times, [`LAGGING_READ_WAIT`] apart.
const LAGGING_READ_RETRIES: u32 = 5;
/// See [`LAGGING_READ_RETRIES`].
const LAGGING_READ_WAIT: std::time::Duration = std::time::Duration::from_millis(400);

/// The final action in domain terms.
fn domain_action(action: &elb::types::Action) -> ListenerAction {
    match action.r#type() {
        Some(elb::types::ActionTypeEnum::Forward) => {
            let tuples: Vec<(String, i64)> = action
                .forward_config()
                .map(|f| {
                    f.target_groups()
                        .iter()
                        .map(|t| {
                            (
                                t.target_group_arn().unwrap_or_default().to_string(),
                                i64::from(t.weight().unwrap_or(1)),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if tuples.is_empty() {
                ListenerAction::Forward(vec![(
                    action.target_group_arn().unwrap_or_default().to_string(),
                    100,
                )])
            } else {
                ListenerAction::Forward(tuples)
            }
        }
        Some(elb::types::ActionTypeEnum::FixedResponse) => ListenerAction::Fixed(
            action
                .fixed_response_config()
                .and_then(|f| f.status_code().map(String::from))
                .unwrap_or_default(),
        ),
        other => ListenerAction::Other(other.map(|t| t.as_str().to_string()).unwrap_or_default()),
    }
}

/// An action read from AWS, made fit to be written back: AWS never returns an OIDC client
/// secret, so the write says to keep the one it has.
fn writable(action: &elb::types::Action) -> elb::types::Action {
    let mut a = action.clone();
    if let Some(oidc) = a.authenticate_oidc_config.as_mut() {
        if oidc.client_secret.is_none() {
            oidc.use_existing_client_secret = Some(true);
        }
    }
    a
}

impl AwsCloud {
    /// A route's actions in order; None when the listener or rule does not exist.
    async fn route_actions(&self, route: &Route) -> CloudResult<Option<Vec<elb::types::Action>>> {
        let mut actions = match &route.rule_arn {
            Some(rule) => match self.elb.describe_rules().rule_arns(rule).send().await {
                Ok(o) => match o.rules().first() {
                    Some(r) => r.actions().to_vec(),
                    None => return Ok(None),
                },
                Err(e) if e.code() == Some("RuleNotFound") => return Ok(None),
                Err(e) => return Err(err(format!("reading {}", route.what()))(e)),
            },
            None => match self
                .elb
                .describe_listeners()
                .listener_arns(&route.listener_arn)
                .send()
                .await
            {
                Ok(o) => match o.listeners().first() {
                    Some(l) => l.default_actions().to_vec(),
                    None => return Ok(None),
                },
                Err(e) if e.code() == Some("ListenerNotFound") => return Ok(None),
                Err(e) => return Err(err(format!("reading {}", route.what()))(e)),
            },
        };
        actions.sort_by_key(|a| a.order().unwrap_or(0));
        let front = actions[..actions.len().saturating_sub(1)].to_vec();
        self.fronts
            .lock()
            .unwrap()
            .insert(route.key().to_string(), front);
        Ok(Some(actions))
    }

    /// The actions in front of the route's final action, as last read (read now if never).
    async fn front_actions(&self, route: &Route) -> CloudResult<Vec<elb::types::Action>> {
        let known = self.fronts.lock().unwrap().get(route.key()).cloned();
        match known {
            Some(f) => Ok(f),
            None => {
                self.route_actions(route).await?;
                Ok(self
                    .fronts
                    .lock()
                    .unwrap()
                    .get(route.key())
                    .cloned()
                    .unwrap_or_default())
            }
        }
    }

    /// The route's front actions followed by `last` (ordered after them when they are).
    async fn with_front(
        &self,
        route: &Route,
        mut last: elb::types::Action,
    ) -> CloudResult<Vec<elb::types::Action>> {
        let mut actions: Vec<elb::types::Action> = self
            .front_actions(route)
            .await?
            .iter()
            .map(writable)
            .collect();
        if !actions.is_empty() {
            let order = actions.iter().filter_map(|a| a.order()).max().unwrap_or(0);
            last.order = Some(order + 1);
        }
        actions.push(last);
        Ok(actions)
    }

    /// Writes a route's whole action list; returns the actions AWS answers the change with
    /// (ordered), if it says.
    async fn write_route(
        &self,
        route: &Route,
        actions: Vec<elb::types::Action>,
        what: String,
    ) -> CloudResult<Option<Vec<elb::types::Action>>> {
        let mut answered = match &route.rule_arn {
            Some(rule) => self
                .elb
                .modify_rule()
                .rule_arn(rule)
                .set_actions(Some(actions))
                .send()
                .await
                .map_err(err(what))?
                .rules()
                .first()
                .map(|r| r.actions().to_vec()),
            None => self
                .elb
                .modify_listener()
                .listener_arn(&route.listener_arn)
                .set_default_actions(Some(actions))
                .send()
                .await
                .map_err(err(what))?
                .listeners()
                .first()
                .map(|l| l.default_actions().to_vec()),
        };
        if let Some(a) = answered.as_mut() {
            a.sort_by_key(|a| a.order().unwrap_or(0));
        }
        Ok(answered.filter(|a| !a.is_empty()))
    }
}

/// A fleet's launch settings in its template: key pair, monitoring, the metadata service
/// (IMDSv2 required unless said otherwise) and EBS volumes.
fn launch_settings(
    mut data: ec2::types::builders::RequestLaunchTemplateDataBuilder,
    spec: &FleetSpec,
) -> ec2::types::builders::RequestLaunchTemplateDataBuilder {
    if let Some(key) = &spec.key_name {
        data = data.key_name(key);
    }
    if spec.monitoring {
        data = data.monitoring(
            ec2::types::LaunchTemplatesMonitoringRequest::builder()
                .enabled(true)
                .build(),
        );
    }
    let m = &spec.metadata;
    data = data.metadata_options(
        ec2::types::LaunchTemplateInstanceMetadataOptionsRequest::builder()
            .http_tokens(ec2::types::LaunchTemplateHttpTokensState::from(
                m.http_tokens.as_str(),
            ))
            .http_put_response_hop_limit(m.http_put_response_hop_limit as i32)
            .http_endpoint(
                ec2::types::LaunchTemplateInstanceMetadataEndpointState::from(
                    m.http_endpoint.as_str(),
                ),
            )
            .instance_metadata_tags(ec2::types::LaunchTemplateInstanceMetadataTagsState::from(
                m.instance_metadata_tags.as_str(),
            ))
            .build(),
    );
    for d in &spec.block_devices {
        let ebs = ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder()
            .set_volume_size(d.volume_size.map(|n| n as i32))
            .volume_type(ec2::types::VolumeType::from(d.volume_type.as_str()))
            .set_iops(d.iops.map(|n| n as i32))
            .set_throughput(d.throughput.map(|n| n as i32))
            .encrypted(d.encrypted)
            .set_kms_key_id(d.kms_key_id.clone())
            .delete_on_termination(d.delete_on_termination)
            .build();
        data = data.block_device_mappings(
            ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(&d.device_name)
                .ebs(ebs)
                .build(),
        );
    }
    data
}

/// A forward action's group stickiness in seconds, None when off.
fn sticky_of(action: &elb::types::Action) -> Option<u64> {
    let c = action.forward_config()?.target_group_stickiness_config()?;
    if c.enabled() != Some(true) {
        return None;
    }
    Some(c.duration_seconds().unwrap_or(0).max(0) as u64)
}

fn forward_action(weights: &[(String, i64)], sticky: Option<u64>) -> elb::types::Action {
    let tuples = weights
        .iter()
        .map(|(arn, w)| {
            elb::types::TargetGroupTuple::builder()
                .target_group_arn(arn)
                .weight(*w as i32)
                .build()
        })
        .collect();
    elb::types::Action::builder()
        .r#type(elb::types::ActionTypeEnum::Forward)
        .forward_config(
            elb::types::ForwardActionConfig::builder()
                .set_target_groups(Some(tuples))
                .set_target_group_stickiness_config(sticky.map(|secs| {
                    elb::types::TargetGroupStickinessConfig::builder()
                        .enabled(true)
                        .duration_seconds(secs as i32)
                        .build()
                }))
                .build(),
        )
        .build()
}

#[async_trait]
impl Traffic for AwsCloud {
    async fn read(&self, route: &Route) -> CloudResult<Option<RouteState>> {
        let Some(actions) = self.route_actions(route).await? else {
            return Ok(None);
        };
        let Some((last, front)) = actions.split_last() else {
            return Ok(Some(RouteState {
                front: Vec::new(),
                last: ListenerAction::Other("none".into()),
                sticky: None,
                snapshot: Snapshot {
                    key: "[]".into(),
                    raw: Arc::new(actions),
                },
            }));
        };
        Ok(Some(RouteState {
            front: front
                .iter()
                .map(|a| {
                    a.r#type()
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default()
                })
                .collect(),
            last: domain_action(last),
            sticky: sticky_of(last),
            snapshot: Snapshot {
                key: format!("{actions:?}"),
                raw: Arc::new(actions),
            },
        }))
    }

    async fn forward(
        &self,
        route: &Route,
        weights: &[(String, i64)],
        sticky: Option<u64>,
    ) -> CloudResult<Option<(ListenerAction, Option<u64>)>> {
        let actions = self
            .with_front(route, forward_action(weights, sticky))
            .await?;
        let answered = self
            .write_route(route, actions, format!("setting {} weights", route.what()))
            .await?;
        Ok(answered.and_then(|a| a.last().map(|l| (domain_action(l), sticky_of(l)))))
    }

    async fn fixed_response(&self, route: &Route, status: u16) -> CloudResult<()> {
        let action = elb::types::Action::builder()
            .r#type(elb::types::ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                elb::types::FixedResponseActionConfig::builder()
                    .status_code(status.to_string())
                    .content_type("text/plain")
                    .message_body("no release is serving")
                    .build(),
            )
            .build();
        let actions = self.with_front(route, action).await?;
        self.write_route(
            route,
            actions,
            format!("setting {} to a fixed {status}", route.what()),
        )
        .await
        .map(|_| ())
    }

    async fn put_back(&self, route: &Route, state: &RouteState) -> CloudResult<()> {
        let Some(actions) = state.snapshot.raw.downcast_ref::<Vec<elb::types::Action>>() else {
            return Err(CloudError::Transport {
                action: format!("putting {} back", route.what()),
                message: "the route was read by another adapter".into(),
            });
        };
        self.write_route(
            route,
            actions.iter().map(writable).collect(),
            format!("putting {} back as it was", route.what()),
        )
        .await
        .map(|_| ())
    }

    async fn rule_of_listener(&self, listener_arn: &str, rule_arn: &str) -> CloudResult<bool> {
        Ok(self
            .listener_rules(listener_arn)
            .await?
            .iter()
            .any(|r| r.rule_arn() == Some(rule_arn) && r.is_default() != Some(true)))
    }

    async fn health_rules(&self, listener_arn: &str) -> CloudResult<Vec<(String, String)>> {
        let rules = self.listener_rules(listener_arn).await?;
        let mut out = Vec::new();
        for r in &rules {
            for c in r.conditions() {
                if let Some(h) = c.http_header_config() {
                    if h.http_header_name() == Some(crate::naming::HEALTH_RULE_HEADER) {
                        for v in h.values() {
                            if let Some(arn) = r.rule_arn() {
                                out.push((arn.to_string(), v.clone()));
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    async fn attach_for_health_checks(
        &self,
        route: &Route,
        target_group_arn: &str,
        token: &str,
    ) -> CloudResult<String> {
        let listener_arn = &route.listener_arn;
        let actions = self.health_rule_actions(route, target_group_arn).await?;
        let what = || {
            format!("attaching target group ({target_group_arn}) to listener ({listener_arn}) for health checks")
        };
        let mut rules = self.listener_rules(listener_arn).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let used: Vec<i64> = rules
                .iter()
                .filter_map(|r| r.priority()?.parse().ok())
                .collect();
            // The highest free priority, so that the user's own rules always come first.
            let priority = (1..=50_000)
                .rev()
                .find(|p| !used.contains(p))
                .unwrap_or(50_000);
            let out = self
                .elb
                .create_rule()
                .listener_arn(listener_arn)
                .priority(priority as i32)
                .conditions(
                    elb::types::RuleCondition::builder()
                        .field("http-header")
                        .http_header_config(
                            elb::types::HttpHeaderConditionConfig::builder()
                                .http_header_name(crate::naming::HEALTH_RULE_HEADER)
                                .values(token)
                                .build(),
                        )
                        .build(),
                )
                .set_actions(Some(actions.clone()))
                .send()
                .await;
            match out {
                Ok(out) => {
                    return Ok(out
                        .rules()
                        .first()
                        .and_then(|r| r.rule_arn())
                        .unwrap_or_default()
                        .to_string())
                }
                // Either a retry of a create whose answer was lost (the rule with this token
                // is ours), or another release on this listener took the priority between
                // the read and the create: read again and take the next free one.
                Err(e) if e.code() == Some("PriorityInUse") => {
                    rules = self.listener_rules(listener_arn).await?;
                    if let Some(arn) = rule_with_token(&rules, token) {
                        return Ok(arn);
                    }
                    if attempt >= 5 {
                        return Err(err(what())(e));
                    }
                }
                Err(e) => return Err(err(what())(e)),
            }
        }
    }

    async fn delete_rule(&self, rule_arn: &str) -> CloudResult<()> {
        let out = self.elb.delete_rule().rule_arn(rule_arn).send().await;
        deleted(
            out,
            |c, _| c == "RuleNotFound",
            format!("deleting listener rule ({rule_arn})"),
        )
    }
}

#[async_trait]
impl Images for AwsCloud {
    async fn image_state(&self, image_id: &str) -> CloudResult<Option<String>> {
        match self.ec2.describe_images().image_ids(image_id).send().await {
            Ok(out) => Ok(out.images().first().map(|i| {
                i.state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default()
            })),
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidAMIID")) => Ok(None),
            Err(e) => Err(err(format!("reading image ({image_id})"))(e)),
        }
    }

    async fn key_pair_exists(&self, name: &str) -> CloudResult<bool> {
        match self.ec2.describe_key_pairs().key_names(name).send().await {
            Ok(out) => Ok(!out.key_pairs().is_empty()),
            Err(e) if e.code() == Some("InvalidKeyPair.NotFound") => Ok(false),
            Err(e) => Err(err(format!("reading key pair ({name})"))(e)),
        }
    }
}

#[async_trait]
impl Alarms for AwsCloud {
    async fn in_alarm(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let states = self
            .alarms
            .get(names, |all| async move {
                let firing = self.in_alarm_now(&all).await?;
                Ok(all
                    .into_iter()
                    .map(|n| {
                        let f = firing.contains(&n);
                        (n, f)
                    })
                    .collect())
            })
            .await?;
        Ok(states
            .into_iter()
            .filter(|(_, firing)| *firing)
            .map(|(n, _)| n)
            .collect())
    }

    async fn missing(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let found: std::collections::BTreeSet<String> = self
            .alarm_states(names, None)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        Ok(names
            .iter()
            .filter(|n| !found.contains(*n))
            .cloned()
            .collect())
    }
}

impl AwsCloud {
    async fn in_alarm_now(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let alarm = cw::types::StateValue::Alarm;
        let mut firing: Vec<String> = self
            .alarm_states(names, Some(alarm.clone()))
            .await?
            .into_iter()
            // The state is checked here too: the filter is a hint that not every endpoint
            // (emulators among them) applies.
            .filter(|(_, state)| state.as_ref() == Some(&alarm))
            .map(|(name, _)| name)
            .collect();
        firing.sort();
        firing.dedup();
        Ok(firing)
    }

    /// The named alarms that exist, metric and composite, with their states (optionally
    /// only those in `state`). `DescribeAlarms` without `AlarmTypes` answers metric alarms
    /// only, even where composite alarms of those names exist, so both types are asked for
    /// by name; AWS takes 100 names a call and answers in pages (`NextToken`), all read.
    async fn alarm_states(
        &self,
        names: &[String],
        state: Option<cw::types::StateValue>,
    ) -> CloudResult<Vec<(String, Option<cw::types::StateValue>)>> {
        let mut out = Vec::new();
        for chunk in names.chunks(100) {
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .cw
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(cw::types::AlarmType::MetricAlarm)
                    .alarm_types(cw::types::AlarmType::CompositeAlarm)
                    .set_state_value(state.clone())
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(err("reading CloudWatch alarms"))?;
                out.extend(page.metric_alarms().iter().filter_map(|a| {
                    a.alarm_name()
                        .map(|n| (n.to_string(), a.state_value().cloned()))
                }));
                out.extend(page.composite_alarms().iter().filter_map(|a| {
                    a.alarm_name()
                        .map(|n| (n.to_string(), a.state_value().cloned()))
                }));
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl LedgerStore for AwsCloud {
    async fn load(&self, release_name: &str) -> CloudResult<Option<Ledger>> {
        let name = ledger_template_name(release_name);
        // One call: a missing ledger is the NotFound answer, not a prior look-up.
        let mut found = self.ledger_version(&name, "$Latest").await?;
        // A ledger this process wrote moments ago may not be seen yet (AWS's reads lag its
        // writes): look again for a little while before calling it gone.
        let wrote = self.ledger_versions.lock().unwrap().contains_key(&name);
        for _ in 0..LAGGING_READ_RETRIES {
            if found.is_some() || !wrote {
                break;
            }
            tokio::time::sleep(LAGGING_READ_WAIT).await;
            found = self.ledger_version(&name, "$Latest").await?;
        }
        let Some((mut version, mut data)) = found else {
            self.ledger_versions.lock().unwrap().remove(&name);
            return Ok(None);
        };
        // `$Latest` can lag a write: when this process wrote a newer version, read that one.
        let known = self
            .ledger_versions
            .lock()
            .unwrap()
            .get(&name)
            .map(|s| s.version);
        if let Some(k) = known.filter(|k| *k > version) {
            if let Some((v, d)) = self.ledger_version(&name, &k.to_string()).await? {
                (version, data) = (v, d);
            }
        }
        self.ledger_versions.lock().unwrap().insert(
            name.clone(),
            LedgerSeen {
                version,
                conflict: None,
            },
        );
        let Some(data) = data else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| CloudError::Api {
                action: format!("reading release ledger ({name})"),
                code: crate::ledger::UNREADABLE.into(),
                message: e.to_string(),
            })?;
        let text = String::from_utf8_lossy(&bytes);
        Ledger::from_json(&text)
            .map(Some)
            .map_err(|message| CloudError::Api {
                action: format!("reading release ledger ({name})"),
                code: crate::ledger::UNREADABLE.into(),
                message,
            })
    }

    async fn save(&self, ledger: &Ledger, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        let name = ledger_template_name(&ledger.name);
        let seen = self.ledger_versions.lock().unwrap().get(&name).cloned();
        if let Some(why) = seen.as_ref().and_then(|s| s.conflict.clone()) {
            return Err(CloudError::Api {
                action: format!("writing release ledger ({name})"),
                code: "LedgerConflict".into(),
                message: why,
            });
        }
        let (text, trimmed) = ledger.to_stored_json();
        if trimmed > 0 {
            crate::log::notice(
                &ledger.name,
                format!("the oldest {trimmed} history entries were left out of the ledger ({name}), which AWS caps at 16 KB; the newest {} are kept", ledger.history.len() - trimmed),
            );
        }
        let data = ec2::types::RequestLaunchTemplateData::builder()
            .user_data(base64::engine::general_purpose::STANDARD.encode(text))
            .build();
        // Most saves append a version to an existing ledger; the first one creates it.
        let appended = self
            .ec2
            .create_launch_template_version()
            .launch_template_name(&name)
            .version_description("immutable_release ledger: not for launching")
            .launch_template_data(data.clone())
            .send()
            .await;
        let written = match appended {
            Ok(out) => out
                .launch_template_version()
                .and_then(|v| v.version_number())
                .unwrap_or_default(),
            Err(e)
                if !e
                    .code()
                    .is_some_and(|c| c.starts_with("InvalidLaunchTemplateName")) =>
            {
                return Err(err(format!("writing release ledger ({name})"))(e));
            }
            Err(_) => {
                self.create_record_template(&name, "ledger", data, tags)
                    .await
                    .map_err(err(format!("creating release ledger ({name})")))?
                    .1
            }
        };
        // Versions are numbered one after another: a gap means another write came between
        // this process's read and this write. Then this write is taken back (the other
        // stays the latest) and nothing more is written until the ledger is read again.
        if let Some(seen) = seen.filter(|s| s.version > 0 && written != s.version + 1) {
            return Err(self.take_back(&name, seen.version, written).await);
        }
        self.ledger_versions.lock().unwrap().insert(
            name.clone(),
            LedgerSeen {
                version: written,
                conflict: None,
            },
        );
        self.prune_ledger(&name, written).await;
        Ok(())
    }

    async fn delete(&self, release_name: &str) -> CloudResult<()> {
        let name = ledger_template_name(release_name);
        self.ledger_versions.lock().unwrap().remove(&name);
        self.delete_launch_template(&name).await
    }

    async fn create_lease(
        &self,
        release_name: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<Option<String>> {
        let name = lease_template_name(release_name);
        let data = ec2::types::RequestLaunchTemplateData::builder()
            .user_data(base64::engine::general_purpose::STANDARD.encode("lease"))
            .build();
        // Launch template names are unique in a region: creating one is an atomic test-and-set.
        match self
            .create_record_template(&name, "lease", data, tags)
            .await
        {
            Ok((id, _)) => Ok(Some(id)),
            Err(e) if e.code().is_some_and(|c| c.contains("AlreadyExists")) => Ok(None),
            Err(e) => Err(err(format!("taking the release lease ({name})"))(e)),
        }
    }

    async fn read_lease(&self, release_name: &str) -> CloudResult<Option<LeaseRecord>> {
        Ok(self
            .find_launch_template(&lease_template_name(release_name))
            .await?
            .map(|(id, tags)| LeaseRecord { id, tags }))
    }

    async fn renew_lease(&self, id: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        self.ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(ec2_tags(tags)))
            .send()
            .await
            .map_err(err(format!("renewing the release lease ({id})")))?;
        Ok(())
    }

    async fn delete_lease(&self, id: &str) -> CloudResult<()> {
        match self
            .ec2
            .delete_launch_template()
            .launch_template_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.code()
                    .is_some_and(|c| c.starts_with("InvalidLaunchTemplateId")) =>
            {
                Ok(())
            }
            Err(e) => Err(err(format!("giving back the release lease ({id})"))(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;
    use tokio_rustls::rustls;

    /// The provider's HTTPS client speaks TLS with ring, and refuses a certificate no trusted
    /// authority signed: a local TLS server with a self-signed certificate is reached, the
    /// handshake gets as far as the certificate, and the call fails there.
    #[tokio::test]
    async fn the_https_client_does_tls_and_refuses_an_untrusted_certificate() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut handshakes = Vec::new();
            // The SDK retries a failed call: answer every attempt.
            while let Ok(Ok((tcp, _))) =
                tokio::time::timeout(std::time::Duration::from_secs(2), listener.accept()).await
            {
                handshakes.push(match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        let _ = tls.shutdown().await;
                        "accepted".to_string()
                    }
                    Err(e) => e.to_string(),
                });
            }
            handshakes
        });
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .http_client(super::https_client())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(format!("https://localhost:{port}"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        let err = aws_sdk_ec2::Client::from_conf(conf)
            .describe_images()
            .send()
            .await
            .unwrap_err();
        let said = format!("{err:?}");
        assert!(
            said.contains("UnknownIssuer") || said.contains("certificate"),
            "the call fails on the certificate: {said}"
        );
        let handshakes = server.await.unwrap();
        assert!(!handshakes.is_empty(), "the client reached the server");
        assert!(
            handshakes.iter().all(|h| h != "accepted"),
            "no handshake completed: {handshakes:?}"
        );
    }
}
