//! The AWS implementation of the cloud traits: the only code that names AWS SDK types.
//!
//! One room per AWS service, each with the calls of every trait that belong to it:
//! `autoscaling.rs` (groups, policies, activities), `templates.rs` (EC2 launch templates,
//! images, key pairs), `target_groups.rs` and `routes.rs` (ELB v2: target groups and their
//! health; listeners' and rules' actions), `cloudwatch.rs` (alarms), `sns.rs` (the
//! notifications), `ledger_store.rs` (the ledger and the lease, in launch templates of
//! their own). `fleets.rs` hands each call of
//! the `Fleets` trait to its room. What every room shares is in one place each: error
//! mapping (`errors.rs`), pages (`pages.rs`), the shared reads (`Batch`), and here the
//! clients, with their retries and time limits; `network.rs` the HTTPS client under them
//! (proxies, CA bundle, stop).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_sdk_autoscaling as asg;
use aws_sdk_cloudwatch as cw;
use aws_sdk_ec2 as ec2;
use aws_sdk_elasticloadbalancingv2 as elb;

mod autoscaling;
mod base;
mod cloudwatch;
mod errors;
mod fleets;
mod ledger_store;
pub mod network;
mod pages;
mod routes;
mod sns;
mod target_groups;
mod templates;

pub use autoscaling::ROLLBACK_WINDOW_ACTION;
pub use ledger_store::ledger_template_name;
use ledger_store::LedgerSeen;
use templates::ec2_tags;

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
    /// Per-service endpoints: `ec2`, `autoscaling`, `elbv2`, `cloudwatch`, `sts`, `sns`.
    pub endpoints: BTreeMap<String, String>,
    /// Attempts for throttled or transient errors.
    pub max_retries: u32,
    /// `standard` or `adaptive`; None: `AWS_RETRY_MODE`, else standard.
    pub retry_mode: Option<String>,
    /// A role assumed on top of the chain's credentials.
    pub assume_role: Option<AssumeRole>,
    /// Shared config files (none: `AWS_CONFIG_FILE` or the default).
    pub shared_config_files: Vec<String>,
    /// Shared credentials files (none: `AWS_SHARED_CREDENTIALS_FILE` or the default).
    pub shared_credentials_files: Vec<String>,
    /// Proxies and the CA bundle.
    pub network: network::NetworkSettings,
}

/// `assume_role` of the provider block.
#[derive(Debug, Clone, Default)]
pub struct AssumeRole {
    /// The role.
    pub role_arn: String,
    /// Session name; None: `immutable-<unix time>`.
    pub session_name: Option<String>,
    /// External ID.
    pub external_id: Option<String>,
    /// Session length; None: an hour.
    pub duration: Option<Duration>,
    /// An inline session policy (JSON).
    pub policy: Option<String>,
    /// Managed session policies.
    pub policy_arns: Vec<String>,
    /// Session tags.
    pub tags: BTreeMap<String, String>,
}

/// Clients for the four services.
#[derive(Clone)]
pub struct AwsCloud {
    /// STS: the account of the credentials (the account guard).
    sts: aws_sdk_sts::Client,
    /// SNS: the releases' notifications.
    sns: aws_sdk_sns::Client,
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

type HealthBatches = BTreeMap<String, Arc<Batch<Vec<TargetHealth>>>>;

/// How long a shared observation waits for company.
const SHARE_WINDOW: Duration = Duration::from_millis(5);

/// How long one attempt of an AWS call may take before it is abandoned (and retried like
/// any transient error): AWS answers in well under a second; a hung connection must not
/// hold a release.
pub const CALL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one AWS call may take, all its attempts and back-offs included: no call blocks
/// an apply past it, whatever `max_retries` says.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);

impl AwsCloud {
    /// Loads the AWS configuration (standard credential chain) and builds the clients.
    /// Fails when no region can be found.
    pub async fn connect(settings: &AwsSettings) -> Result<Self, String> {
        let network = network::Network {
            proxies: network::Proxies::resolve(&settings.network, &|k| std::env::var(k).ok()),
            trust: ca_bundle(settings).await?,
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(
            network::https_client(&network, Some(crate::stop::global().clone())),
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
        if let Some(files) = profile_files(settings) {
            loader = loader.profile_files(files);
        }
        // The provider block's retry mode, else AWS_RETRY_MODE (the explicit retry
        // configuration below would otherwise hide it), else standard.
        let mode = settings
            .retry_mode
            .clone()
            .or_else(|| std::env::var("AWS_RETRY_MODE").ok())
            .unwrap_or_else(|| "standard".into());
        let retry = if mode == "adaptive" {
            RetryConfig::adaptive()
        } else {
            RetryConfig::standard()
        };
        loader = loader.retry_config(
            retry
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
        let mut sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err("no AWS region is configured: set region in the provider block, or AWS_REGION, or a region in the shared config profile".into());
        }
        // The role, assumed with whichever credentials the chain found; its credentials
        // sign every call from here on, renewed before they expire.
        if let Some(role) = &settings.assume_role {
            let mut p = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
                .session_name(role.session_name.clone().unwrap_or_else(|| {
                    format!(
                        "immutable-{}",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or_default()
                    )
                }))
                .session_length(role.duration.unwrap_or(Duration::from_secs(3600)));
            if let Some(x) = &role.external_id {
                p = p.external_id(x);
            }
            if let Some(x) = &role.policy {
                p = p.policy(x);
            }
            if !role.policy_arns.is_empty() {
                p = p.policy_arns(role.policy_arns.clone());
            }
            if !role.tags.is_empty() {
                p = p.tags(role.tags.clone());
            }
            // STS at `endpoints.sts` when given (else as every other call).
            let sts_sdk = match settings.endpoints.get("sts") {
                Some(u) => sdk.to_builder().endpoint_url(u).build(),
                None => sdk.clone(),
            };
            let provider = p.configure(&sts_sdk).build().await;
            sdk = sdk
                .into_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
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
        let mut snsb = aws_sdk_sns::config::Builder::from(&sdk);
        if let Some(u) = endpoint("sns") {
            snsb = snsb.endpoint_url(u);
        }
        let mut stsb = aws_sdk_sts::config::Builder::from(&sdk);
        if let Some(u) = endpoint("sts") {
            stsb = stsb.endpoint_url(u);
        }
        Ok(Self {
            sts: aws_sdk_sts::Client::from_conf(stsb.build()),
            sns: aws_sdk_sns::Client::from_conf(snsb.build()),
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

/// The shared config and credentials files the provider block names, if it names any; a
/// kind it leaves out keeps its default (or its environment variable). The loader takes
/// these deprecated aliases of aws-runtime's env-config files.
#[allow(deprecated)]
fn profile_files(
    settings: &AwsSettings,
) -> Option<aws_config::profile::profile_file::ProfileFiles> {
    use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
    if settings.shared_config_files.is_empty() && settings.shared_credentials_files.is_empty() {
        return None;
    }
    let mut files = ProfileFiles::builder();
    if settings.shared_config_files.is_empty() {
        files = files.include_default_config_file(true);
    }
    if settings.shared_credentials_files.is_empty() {
        files = files.include_default_credentials_file(true);
    }
    for f in &settings.shared_config_files {
        files = files.with_file(ProfileFileKind::Config, f);
    }
    for f in &settings.shared_credentials_files {
        files = files.with_file(ProfileFileKind::Credentials, f);
    }
    Some(files.build())
}

/// The certificates trusted instead of the system's authorities: `custom_ca_bundle`, else
/// `AWS_CA_BUNDLE`, else the selected profile's `ca_bundle` (as AWS's SDKs and CLI read
/// them); None: the system's.
async fn ca_bundle(settings: &AwsSettings) -> Result<Option<Vec<u8>>, String> {
    if let Some(path) = &settings.network.custom_ca_bundle {
        return network::read_ca_bundle("custom_ca_bundle", path).map(Some);
    }
    if let Some(path) = std::env::var("AWS_CA_BUNDLE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return network::read_ca_bundle("AWS_CA_BUNDLE", &path).map(Some);
    }
    let files = profile_files(settings).unwrap_or_default();
    let selected = settings
        .profile
        .clone()
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()));
    let Ok(profiles) = aws_config::profile::load(
        &aws_types::os_shim_internal::Fs::real(),
        &aws_types::os_shim_internal::Env::real(),
        &files,
        selected.map(std::borrow::Cow::Owned),
    )
    .await
    else {
        // The credential chain says what is wrong with the files, when it reads them.
        return Ok(None);
    };
    match profiles.get("ca_bundle").filter(|p| !p.is_empty()) {
        Some(path) => network::read_ca_bundle(
            &format!("ca_bundle of profile {:?}", profiles.selected_profile()),
            &expand_home(path),
        )
        .map(Some),
        None => Ok(None),
    }
}

/// `~/…` as the home directory's.
pub fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => path.to_string(),
    }
}

impl AwsCloud {
    /// The AWS account the calls are made in (`sts:GetCallerIdentity`).
    pub async fn account_id(&self) -> Result<String, String> {
        self.sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())?
            .account()
            .map(String::from)
            .ok_or_else(|| "GetCallerIdentity answered no account".into())
    }
}
