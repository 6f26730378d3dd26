//! The fault proxy: an HTTP proxy between the provider and the local AWS. It forwards
//! every call, counts calls by action, keeps a log of what it saw, and by configuration
//! makes AWS misbehave the ways real AWS does:
//!
//! - throttles a share of calls (`Throttling` / EC2's `RequestLimitExceeded`, HTTP 400),
//! - fails a share with HTTP 500 (`InternalFailure` / EC2's `InternalError`),
//! - resets a share of connections (the connection closes with no answer),
//! - adds latency,
//! - reports targets of chosen target groups (or all) as unhealthy, for a while or for good,
//! - reports targets of chosen target groups as in an Availability Zone the load balancer
//!   does not serve (`unused`, `Target.NotInUse`, routed or not),
//! - and, with `alb_health`, reports target health as an Application Load Balancer does
//!   (moto reports every registered target `healthy`, routed or not): a target group that no
//!   listener default action or rule forwards to has its targets `unused`
//!   (`Target.NotInUse`); once a route uses it they are `initial`
//!   (`Elb.RegistrationInProgress`) for `interval × healthy_threshold` (scaled), then
//!   what the emulator says;
//! - and, with `aws_rules`, refuses for a while what AWS refuses for a while: a
//!   `CreateAutoScalingGroup` soon after a `CreateInstanceProfile` (IAM has not propagated
//!   it: `ValidationError`, "Invalid IAM Instance Profile name"), a
//!   `DeleteAutoScalingGroup` soon after the group was created or resized
//!   (`ScalingActivityInProgress`); for a moment after a create, describes that do not see
//!   the new group, target group or launch template yet (AWS is eventually consistent); a
//!   deleted group that stays `Delete in progress` for a while before it is gone (its
//!   name still taken, as a live group's: `AlreadyExists`, where the emulator overwrites);
//!   and AWS's hard limits: at most 5 target groups in a forward
//!   action, weights 0–999, launch template user data at most 16 KB; and AWS's pages:
//!   `DescribeRules`, `DescribeAutoScalingGroups` and `DescribeAlarms` answer `page_size`
//!   items a page (tests: 2), the rest behind a marker or token;
//! - CloudWatch alarms as AWS has them (the emulator has no composite alarms): the proxy
//!   holds composite alarms (`PutCompositeAlarm`, `SetAlarmState`, `DeleteAlarms`), their
//!   state their rule over the metric alarms' states, and answers `DescribeAlarms` as AWS
//!   does — composite alarms only when `AlarmTypes` asks for them, metric alarms only when
//!   it is absent or asks for them, the `StateValue` filter applied (see `proxy/alarms.rs`).
//!
//! Faults can apply to every action or only to listed ones. A faulted call never reaches
//! the emulator, as with real AWS (a throttled call did nothing). Used by the acceptance
//! tests as a library and by contributors as the `fault-proxy` binary (see
//! `contributing/fault-proxy.md`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

mod alarms;
mod capacity;
mod metrics;
mod pages;

pub use capacity::NoCapacity;

/// What the proxy does to the traffic it forwards. The default is no fault but AWS's own
/// behaviour ([`Faults::default`]); [`Faults::plain`] forwards the emulator's answers as
/// they are.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Report every target of every target group as unhealthy.
    pub unhealthy_targets: bool,
    /// Report the targets of these target groups (by name) as unhealthy, until the instant
    /// given (None: for good).
    pub unhealthy_target_groups: Vec<(String, Option<Instant>)>,
    /// Report the targets of these target groups as `initial` (registered, health checks
    /// in progress) until the instant given (None: for good).
    pub pending_target_groups: Vec<(String, Option<Instant>)>,
    /// Share of calls answered with a throttling error, 0.0–1.0.
    pub throttle: f64,
    /// Share of calls answered with HTTP 500.
    pub error_5xx: f64,
    /// Share of connections reset with no answer.
    pub reset: f64,
    /// Added to every call before it is forwarded.
    pub latency: Duration,
    /// Actions the shares and latency apply to; empty: every action.
    pub actions: Vec<String>,
    /// Seed of the random choices (0: from the clock).
    pub seed: u64,
    /// (action, text in the body): the first such call reaches the emulator (it acts) but
    /// its answer is lost — the caller gets HTTP 500 instead, as after a timeout or a reset
    /// once AWS had acted.
    pub lose_first_answer: Vec<(String, String)>,
    /// (action, how long): the first such call is held that long before it is forwarded,
    /// as a connection that hangs (a caller that gives up earlier never sees it act).
    pub hold_first: Vec<(String, Duration)>,
    /// Report target health as an ALB does (see the module's documentation); None: as the
    /// emulator says.
    pub alb_health: Option<AlbHealth>,
    /// Target groups (by name) whose targets are in an Availability Zone the load balancer
    /// does not serve: `unused` (`Target.NotInUse`) even when a route forwards to them, as
    /// an ALB reports them.
    pub zone_not_served: Vec<String>,
    /// Refuse for a while what AWS refuses for a while (see the module's documentation);
    /// None: never.
    pub aws_rules: Option<AwsRules>,
    /// Groups whose launches fail in one zone for lack of capacity, as AWS reports them
    /// (see [`NoCapacity`]).
    pub no_capacity: Vec<NoCapacity>,
}

/// How long AWS refuses what it refuses for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwsRules {
    /// After any `CreateInstanceProfile` the proxy saw, `CreateAutoScalingGroup` answers
    /// `ValidationError` for this long (AWS: seconds, up to about a minute).
    pub profile_propagation: Duration,
    /// After a group is created or resized, `DeleteAutoScalingGroup` of it answers
    /// `ScalingActivityInProgress` for this long.
    pub activity: Duration,
    /// Versions a launch template may hold (AWS: 10,000); one more is refused. The proxy
    /// answers `DeleteLaunchTemplateVersions` itself (the emulator has no such call) and
    /// counts the versions it deleted.
    pub max_template_versions: usize,
    /// After a group, target group or launch template is created, describes of it (by name,
    /// ARN or ID) do not find it for this long (AWS: eventually consistent reads).
    pub visibility: Duration,
    /// A deleted group stays `Delete in progress` this long (AWS: until its instances are
    /// terminated) before the emulator deletes it; its name stays taken meanwhile.
    pub group_deletion: Duration,
    /// Paged describes answer at most this many items a page (below AWS's own maximum), the
    /// rest behind a token, so that every reader meets pages (`DescribeAlarms`).
    pub page_size: usize,
}

/// The acceptance tests' refusals: short, so that a test waits a few seconds at most.
pub const TEST_AWS_RULES: AwsRules = AwsRules {
    profile_propagation: Duration::from_secs(3),
    activity: Duration::from_millis(1500),
    max_template_versions: 40,
    visibility: Duration::from_millis(500),
    group_deletion: Duration::from_secs(1),
    page_size: 2,
};

/// How the proxy models an ALB's target health.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlbHealth {
    /// Multiplies `interval × healthy_threshold`, the time a newly routed target group's
    /// targets stay `initial` (AWS: 1.0; tests: less, so that a default 30 s × 3 does not
    /// cost 90 s).
    pub time_scale: f64,
}

/// The time scale of the acceptance tests' ALB: a default health check's
/// `30 s × 3` takes 0.9 s.
pub const TEST_ALB_TIME_SCALE: f64 = 1.0 / 100.0;

impl Default for Faults {
    /// No fault, and what AWS does that the emulator does not: target health as an ALB
    /// reports it, with checks taking `interval × threshold` × [`TEST_ALB_TIME_SCALE`].
    fn default() -> Self {
        Self {
            alb_health: Some(AlbHealth {
                time_scale: TEST_ALB_TIME_SCALE,
            }),
            aws_rules: Some(TEST_AWS_RULES),
            ..Self::plain()
        }
    }
}

impl Faults {
    /// No fault and the emulator's answers as they are (targets healthy at once, routed or
    /// not): for measurements comparable with earlier runs, and tests that need moto's
    /// plain answers.
    pub fn plain() -> Self {
        Self {
            unhealthy_targets: false,
            unhealthy_target_groups: Vec::new(),
            pending_target_groups: Vec::new(),
            throttle: 0.0,
            error_5xx: 0.0,
            reset: 0.0,
            latency: Duration::ZERO,
            actions: Vec::new(),
            seed: 0,
            lose_first_answer: Vec::new(),
            hold_first: Vec::new(),
            alb_health: None,
            zone_not_served: Vec::new(),
            aws_rules: None,
            no_capacity: Vec::new(),
        }
    }
}

/// What the proxy knows of the routes: when each routed target group was first seen
/// routed (since it was last unrouted).
#[derive(Debug, Default)]
struct Routes {
    routed_since: BTreeMap<String, Instant>,
    /// When the routes were last read from the emulator.
    refreshed: Option<Instant>,
    /// Per target group: its health check's `interval × healthy threshold`, in seconds
    /// (a target group's health check does not change under a release: a new one is made).
    checks: BTreeMap<String, f64>,
}

/// A health read refreshes the routes at most this often (a route change the proxy sees
/// refreshes them at once; one made behind its back, straight at the emulator, is seen
/// within this): tests' watchers read health many times a second, and each refresh costs
/// the emulator several calls.
const ROUTES_FRESH_FOR: Duration = Duration::from_millis(250);

/// What happened to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Forwarded to the emulator.
    Forwarded,
    /// Answered with a throttling error.
    Throttled,
    /// Answered with HTTP 500.
    Failed,
    /// Connection reset.
    Reset,
    /// Forwarded (the emulator acted), the answer replaced by HTTP 500.
    AnswerLost,
    /// Refused as AWS refuses for a while or for good (see [`AwsRules`]).
    Refused,
    /// A describe answered as if a just-made object did not exist yet (see
    /// [`AwsRules::visibility`]).
    NotYetVisible,
    /// A `DeleteAutoScalingGroup` accepted and held back: the group is `Delete in
    /// progress` until the emulator gets the call (see [`AwsRules::group_deletion`]).
    DeleteHeld,
}

/// One call the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When.
    pub at: Instant,
    /// AWS action.
    pub action: String,
    /// The request body (form-encoded for the query protocols).
    pub body: String,
    /// The access key that signed it (SigV4's `Credential=`), if signed.
    pub access_key: Option<String>,
    /// What the proxy did.
    pub outcome: Outcome,
    /// The `host:port` of an absolute request target (`POST http://host:port/`): the call
    /// came to the proxy as a forward proxy's, addressed to that host.
    pub forwarded_for: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    faults: Faults,
    rng: u64,
    calls: BTreeMap<String, u64>,
    outcomes: BTreeMap<Outcome, u64>,
    log: Vec<Seen>,
    answers_lost: std::collections::BTreeSet<usize>,
    /// Indexes of `hold_first` already used.
    held: std::collections::BTreeSet<usize>,
    routes: Routes,
    /// When the last `CreateInstanceProfile` was seen.
    profile_made: Option<Instant>,
    /// Group name → when it was last created or resized.
    group_activity: BTreeMap<String, Instant>,
    /// Launch template name → (versions made, versions deleted).
    template_versions: BTreeMap<String, (usize, std::collections::BTreeSet<String>)>,
    /// Name, ARN or ID of a just-made group, target group or launch template → when made.
    made: BTreeMap<String, Instant>,
    /// Groups `Delete in progress` → when the emulator gets the deletion.
    deleting_groups: BTreeMap<String, Instant>,
    /// The composite alarms (the emulator has none).
    composites: alarms::Composites,
    /// Groups out of capacity in a zone (`no_capacity`) → when each was made.
    short_groups: BTreeMap<String, Instant>,
    /// CloudWatch metrics (the emulator has no percentiles): every point put.
    metrics: metrics::Metrics,
}

/// A form-encoded value, decoded (`+` is a space, `%XX` a byte).
fn form_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&v[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A form field of a query-protocol body, decoded.
pub fn form_field(body: &str, key: &str) -> Option<String> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map(form_decode)
}

/// Every decoded value of a query-protocol body whose key starts with `prefix` and, after
/// it, ends with `suffix` (a list: `Names.member.1`, `Names.member.2`, ...).
fn form_list(body: &str, prefix: &str, suffix: &str) -> Vec<String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| {
            k.strip_prefix(prefix)
                .is_some_and(|rest| rest.ends_with(suffix))
        })
        .map(|(_, v)| form_decode(v))
        .collect()
}

/// `DeleteLaunchTemplateVersions`, which the emulator lacks, answered by the proxy: the
/// versions are counted as deleted (reads of them still find them in the emulator).
fn delete_template_versions(shared: &Arc<Mutex<Shared>>, body: &str) -> Response<Full<Bytes>> {
    let name = form_field(body, "LaunchTemplateName").unwrap_or_default();
    let versions: Vec<String> = body
        .split('&')
        .filter(|kv| kv.starts_with("LaunchTemplateVersion."))
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.to_string()))
        .collect();
    let mut s = shared.lock().unwrap();
    let entry = s.template_versions.entry(name.clone()).or_default();
    let mut items = String::new();
    for v in versions.iter().filter(|v| v.as_str() != "1") {
        entry.1.insert(v.clone());
        items.push_str(&format!(
            "<item><launchTemplateName>{name}</launchTemplateName><versionNumber>{v}</versionNumber></item>"
        ));
    }
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DeleteLaunchTemplateVersionsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>fault-proxy</requestId><successfullyDeletedLaunchTemplateVersionSet>{items}</successfullyDeletedLaunchTemplateVersionSet><unsuccessfullyDeletedLaunchTemplateVersionSet/></DeleteLaunchTemplateVersionsResponse>"
    );
    Response::builder()
        .status(200)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(xml)))
        .unwrap()
}

/// AWS's hard limits on what a call may ask (the emulator enforces none of them): a forward
/// action holds at most 5 target groups, each weighted 0–999; a launch template's user data
/// is at most 16 KB (before base64).
fn limit_refusal(action: &str, body: &str) -> Option<(&'static str, String)> {
    match action {
        "CreateRule" | "ModifyRule" | "ModifyListener" | "CreateListener" => {
            let mut per_action: BTreeMap<String, usize> = BTreeMap::new();
            for (k, v) in body.split('&').filter_map(|kv| kv.split_once('=')) {
                let Some((action_key, rest)) = k.split_once(".ForwardConfig.TargetGroups.member.")
                else {
                    continue;
                };
                if rest.ends_with(".TargetGroupArn") {
                    *per_action.entry(action_key.to_string()).or_default() += 1;
                }
                if rest.ends_with(".Weight") {
                    let w: i64 = v.parse().unwrap_or(-1);
                    if !(0..=999).contains(&w) {
                        return Some((
                            "ValidationError",
                            format!(
                                "Target group weight '{v}' must be between 0 and 999 (fault proxy)"
                            ),
                        ));
                    }
                }
            }
            per_action.values().find(|n| **n > 5).map(|n| {
                (
                    "ValidationError",
                    format!("A forward action can have at most 5 target groups; {n} given (fault proxy)"),
                )
            })
        }
        "CreateLaunchTemplate" | "CreateLaunchTemplateVersion" => {
            let data = form_field(body, "LaunchTemplateData.UserData")?;
            let padding = data.bytes().rev().take_while(|b| *b == b'=').count();
            let raw = data.trim().len() / 4 * 3 - padding;
            (raw > 16384).then(|| {
                (
                    "InvalidParameterValue",
                    format!("User data is limited to 16384 bytes; {raw} given (fault proxy)"),
                )
            })
        }
        _ => None,
    }
}

/// When a describe asks for a just-made object that AWS's eventually consistent reads may
/// not see yet (see [`AwsRules::visibility`]): the answer AWS gives for an object that does
/// not exist.
fn not_yet_visible(
    s: &Shared,
    rules: AwsRules,
    action: &str,
    body: &str,
) -> Option<Response<Full<Bytes>>> {
    let fresh = |key: &String| {
        s.made
            .get(key)
            .is_some_and(|t| t.elapsed() < rules.visibility)
    };
    match action {
        "DescribeAutoScalingGroups" => {
            let names = form_list(body, "AutoScalingGroupNames.member.", "");
            (!names.is_empty() && names.iter().all(fresh)).then(|| {
                xml_ok("<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><DescribeAutoScalingGroupsResult><AutoScalingGroups/></DescribeAutoScalingGroupsResult><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>".to_string())
            })
        }
        "DescribeTargetGroups" | "DescribeTargetHealth" => {
            let mut keys = form_list(body, "Names.member.", "");
            keys.extend(form_list(body, "TargetGroupArns.member.", ""));
            keys.extend(form_field(body, "TargetGroupArn"));
            keys.iter().any(fresh).then(|| {
                xml_error(
                    400,
                    false,
                    "TargetGroupNotFound",
                    "One or more target groups not found (fault proxy: not visible yet)",
                )
            })
        }
        "DescribeLaunchTemplates" | "DescribeLaunchTemplateVersions" => {
            let mut names = form_list(body, "LaunchTemplateName.", "");
            names.extend(form_field(body, "LaunchTemplateName"));
            let mut ids = form_list(body, "LaunchTemplateId.", "");
            ids.extend(form_field(body, "LaunchTemplateId"));
            if names.iter().any(fresh) {
                Some(xml_error(400, true, "InvalidLaunchTemplateName.NotFoundException", "At least one of the launch templates specified in the request does not exist. (fault proxy: not visible yet)"))
            } else if ids.iter().any(fresh) {
                Some(xml_error(400, true, "InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID given, does not exist. (fault proxy: not visible yet)"))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A 200 answer with an XML body.
fn xml_ok(xml: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(200)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(xml)))
        .unwrap()
}

/// An AWS refusal for now, as [`AwsRules`] says, of a call about to be forwarded.
fn refusal(
    s: &Shared,
    rules: AwsRules,
    action: &str,
    body: &str,
) -> Option<(&'static str, String)> {
    match action {
        "CreateAutoScalingGroup"
            if s.profile_made
                .is_some_and(|t| t.elapsed() < rules.profile_propagation) =>
        {
            Some((
                "ValidationError",
                "You must use a valid fully-formed launch template. Value for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name (fault proxy: IAM has not propagated it yet)".to_string(),
            ))
        }
        // AWS never returns an OIDC client secret: a new rule must give one, a modified
        // listener or rule must give one or say to keep the one it has.
        "CreateRule" | "ModifyRule" | "ModifyListener" | "CreateListener"
            if body.contains("AuthenticateOidcConfig")
                && !body.contains("AuthenticateOidcConfig.ClientSecret=")
                && (action.starts_with("Create")
                    || !body.contains("AuthenticateOidcConfig.UseExistingClientSecret=true")) =>
        {
            Some((
                "ValidationError",
                "A client secret must be specified for an authenticate-oidc action (fault proxy)"
                    .to_string(),
            ))
        }
        "CreateLaunchTemplateVersion" => {
            let name = form_field(body, "LaunchTemplateName")?;
            let (made, deleted) = s.template_versions.get(&name)?;
            (made - deleted.len() >= rules.max_template_versions).then(|| {
                (
                    "LaunchTemplateVersionLimitExceeded",
                    format!(
                        "launch template {name} holds {} versions, the most it may (fault proxy)",
                        rules.max_template_versions
                    ),
                )
            })
        }
        "DeleteAutoScalingGroup" => {
            let name = form_field(body, "AutoScalingGroupName")?;
            let busy = s
                .group_activity
                .get(&name)
                .is_some_and(|t| t.elapsed() < rules.activity);
            busy.then(|| {
                (
                    "ScalingActivityInProgress",
                    format!("Scaling activities in progress for {name} (fault proxy)"),
                )
            })
        }
        _ => None,
    }
}

impl Shared {
    /// xorshift64*: enough randomness for fault shares, no dependency.
    fn roll(&mut self) -> f64 {
        if self.rng == 0 {
            self.rng = match self.faults.seed {
                0 => {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos() as u64)
                        .unwrap_or(1)
                        ^ 0x9E37_79B9_7F4A_7C15
                }
                s => s,
            } | 1;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The AWS action of a request: the `Action` form field (query protocols) or the
/// `X-Amz-Target` header (JSON protocols).
fn action_of(headers: &hyper::HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_string()
}

/// Calls that can change which target groups a route forwards to.
const ROUTE_CHANGES: [&str; 6] = [
    "ModifyListener",
    "CreateListener",
    "DeleteListener",
    "CreateRule",
    "ModifyRule",
    "DeleteRule",
];

/// Every `<TAG>value</TAG>` in an XML text.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        if let Some(j) = rest.find(&close) {
            out.push(rest[..j].trim().to_string());
            rest = &rest[j + close.len()..];
        }
    }
    out
}

fn form_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One ELBv2 query call to the emulator, as the proxy's own (not counted, not faulted).
async fn elb_call(
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
    params: &[(&str, &str)],
) -> Option<String> {
    query_call(
        upstream,
        client,
        "elasticloadbalancing",
        "2015-12-01",
        params,
    )
    .await
}

/// A query-protocol call (form-encoded `Action=...`) to `url`, unsigned (the emulator and
/// the proxy do not check signatures): the answer's body, whatever its status.
pub async fn query(
    url: &str,
    service: &str,
    version: &str,
    params: &[(&str, &str)],
) -> Option<String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    query_call(url.trim_end_matches('/'), &client, service, version, params).await
}

async fn query_call(
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
    service: &str,
    version: &str,
    params: &[(&str, &str)],
) -> Option<String> {
    let mut body = format!("Version={version}");
    for (k, v) in params {
        body.push_str(&format!("&{k}={}", form_escape(v)));
    }
    let req = Request::builder()
        .method("POST")
        .uri(format!("{upstream}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    let resp = client.request(req).await.ok()?;
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A paged describe asks the emulator for pages of at most `size` (AWS: up to 100 or 400),
/// so that every reader meets a next page; the emulator pages these itself.
fn small_pages(action: &str, body: Bytes, size: usize) -> Bytes {
    let key = match action {
        "DescribeRules" => "PageSize",
        "DescribeAutoScalingGroups" => "MaxRecords",
        _ => return body,
    };
    let text = String::from_utf8_lossy(&body);
    let asked = form_field(&text, key).and_then(|v| v.parse::<usize>().ok());
    if asked.is_some_and(|a| a <= size) {
        return body;
    }
    let kept: Vec<&str> = text
        .split('&')
        .filter(|kv| !kv.starts_with(&format!("{key}=")))
        .collect();
    Bytes::from(format!("{}&{key}={size}", kept.join("&")))
}

/// Every metric alarm's state in the emulator (the proxy's own call).
async fn metric_alarm_states(
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
) -> BTreeMap<String, String> {
    query_call(
        upstream,
        client,
        "monitoring",
        "2010-08-01",
        &[("Action", "DescribeAlarms")],
    )
    .await
    .map(|a| alarms::metric_states(&a))
    .unwrap_or_default()
}

/// Asks the emulator which target groups any listener's default action or rule forwards
/// to, and stamps the newly routed ones (a target group that loses its route loses its
/// stamp: routed again, its targets are checked again from `initial`).
/// The target groups a load balancer holds as AWS counts them: those its listeners' default
/// actions and rules forward to (the emulator counts only those named when a listener or
/// rule was created).
async fn routed_by_load_balancer(
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
    lb: &str,
) -> Vec<String> {
    let mut routed = std::collections::BTreeSet::new();
    let Some(listeners) = elb_call(
        upstream,
        client,
        &[("Action", "DescribeListeners"), ("LoadBalancerArn", lb)],
    )
    .await
    else {
        return Vec::new();
    };
    routed.extend(xml_values(&listeners, "TargetGroupArn"));
    for listener in xml_values(&listeners, "ListenerArn") {
        if let Some(rules) = elb_call(
            upstream,
            client,
            // One page of AWS's largest (the emulator pages at 50 by default).
            &[
                ("Action", "DescribeRules"),
                ("ListenerArn", &listener),
                ("PageSize", "400"),
            ],
        )
        .await
        {
            routed.extend(xml_values(&rules, "TargetGroupArn"));
        }
    }
    routed.into_iter().collect()
}

async fn refresh_routes(
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
    shared: &Arc<Mutex<Shared>>,
) {
    let Some(lbs) = elb_call(upstream, client, &[("Action", "DescribeLoadBalancers")]).await else {
        return;
    };
    let mut routed = std::collections::BTreeSet::new();
    for lb in xml_values(&lbs, "LoadBalancerArn") {
        let Some(listeners) = elb_call(
            upstream,
            client,
            &[("Action", "DescribeListeners"), ("LoadBalancerArn", &lb)],
        )
        .await
        else {
            return;
        };
        routed.extend(xml_values(&listeners, "TargetGroupArn"));
        for listener in xml_values(&listeners, "ListenerArn") {
            let Some(rules) = elb_call(
                upstream,
                client,
                // One page of AWS's largest (the emulator pages at 50 by default).
                &[
                    ("Action", "DescribeRules"),
                    ("ListenerArn", &listener),
                    ("PageSize", "400"),
                ],
            )
            .await
            else {
                return;
            };
            routed.extend(xml_values(&rules, "TargetGroupArn"));
        }
    }
    let now = Instant::now();
    let mut s = shared.lock().unwrap();
    s.routes.refreshed = Some(now);
    s.routes.routed_since.retain(|arn, _| routed.contains(arn));
    for arn in routed {
        s.routes.routed_since.entry(arn).or_insert(now);
    }
}

/// A DescribeTargetHealth answer as an ALB would give it (see [`AlbHealth`]).
async fn alb_target_health(
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
    shared: &Arc<Mutex<Shared>>,
    request: &str,
    answer: Bytes,
    alb: AlbHealth,
) -> Bytes {
    let Some(arn) = form_field(request, "TargetGroupArn") else {
        return answer;
    };
    let since = shared
        .lock()
        .unwrap()
        .routes
        .routed_since
        .get(&arn)
        .copied();
    let text = String::from_utf8_lossy(&answer);
    let replaced = match since {
        None => text.replace(
            "<State>healthy</State>",
            "<State>unused</State><Reason>Target.NotInUse</Reason><Description>Target group is not configured to receive traffic from the load balancer</Description>",
        ),
        Some(since) => {
            let known = shared.lock().unwrap().routes.checks.get(&arn).copied();
            let per_check = match known {
                Some(c) => c,
                None => {
                    let Some(tg) = elb_call(
                        upstream,
                        client,
                        &[("Action", "DescribeTargetGroups"), ("TargetGroupArns.member.1", &arn)],
                    )
                    .await
                    else {
                        return answer;
                    };
                    let num = |tag: &str, default: f64| {
                        xml_values(&tg, tag)
                            .first()
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(default)
                    };
                    let c = num("HealthCheckIntervalSeconds", 30.0)
                        * num("HealthyThresholdCount", 5.0);
                    if tg.contains("<TargetGroupArn>") {
                        shared.lock().unwrap().routes.checks.insert(arn.clone(), c);
                    }
                    c
                }
            };
            let checks = per_check * alb.time_scale;
            if since.elapsed() < Duration::from_secs_f64(checks) {
                text.replace(
                    "<State>healthy</State>",
                    "<State>initial</State><Reason>Elb.RegistrationInProgress</Reason><Description>Target registration is in progress</Description>",
                )
            } else {
                text.into_owned()
            }
        }
    };
    Bytes::from(replaced)
}

/// Whether a form-encoded body names the target group `name` (in an ARN).
pub fn names_target_group(body: &str, name: &str) -> bool {
    body.contains(&format!("%2F{name}%2F")) || body.contains(&format!("/{name}/"))
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. the emulator's URL) on a free loopback port.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        Self::start_on("127.0.0.1:0", upstream).await
    }

    /// Starts a proxy to `upstream` listening on `listen` (`HOST:PORT`).
    pub async fn start_on(listen: &str, upstream: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr: SocketAddr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_string();
        let s2 = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = s2.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let shared = shared.clone();
                        let client = client.clone();
                        let upstream = upstream.clone();
                        async move { forward(req, &upstream, &client, &shared).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
            task,
        })
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.shared.lock().unwrap();
        s.faults = faults;
        s.rng = 0;
        s.held.clear();
    }

    /// Calls seen so far, by action (faulted ones included: each is one attempt).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared.lock().unwrap().calls.clone()
    }

    /// Calls by what the proxy did with them.
    pub fn outcomes(&self) -> BTreeMap<Outcome, u64> {
        self.shared.lock().unwrap().outcomes.clone()
    }

    /// Every call seen so far, in order.
    pub fn log(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().log.clone()
    }

    /// Whether a call of `action` whose body contains `needle` has been seen.
    pub fn saw(&self, action: &str, needle: &str) -> bool {
        self.shared
            .lock()
            .unwrap()
            .log
            .iter()
            .any(|s| s.action == action && s.body.contains(needle))
    }

    /// Versions launch template `name` holds as the proxy counts them (made less deleted),
    /// when it saw it made.
    pub fn template_versions(&self, name: &str) -> Option<usize> {
        self.shared
            .lock()
            .unwrap()
            .template_versions
            .get(name)
            .map(|(made, deleted)| made - deleted.len())
    }

    /// Forgets the counts and the log.
    pub fn reset_counts(&self) {
        let mut s = self.shared.lock().unwrap();
        s.calls.clear();
        s.outcomes.clear();
        s.log.clear();
    }
}

fn xml_error(status: u16, ec2: bool, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = if ec2 {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>")
    } else {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        format!("<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>")
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A reset: the service fails, and hyper closes the connection without an answer.
#[derive(Debug)]
struct ConnectionReset;

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault proxy: connection reset")
    }
}

impl std::error::Error for ConnectionReset {}

/// The caller's request, addressed to the emulator.
fn upstream_request(
    parts: &hyper::http::request::Parts,
    upstream: &str,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{upstream}{path}"));
    for (k, v) in parts.headers.iter() {
        // The body may have been rewritten (a page size): hyper sets its length.
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    out.body(Full::new(body)).expect("request builds")
}

async fn forward(
    req: Request<Incoming>,
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
    shared: &Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, ConnectionReset> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let action = action_of(&parts.headers, &body);
    let text = String::from_utf8_lossy(&body).into_owned();
    let ec2 = text.contains("Version=2016-11-15");
    // AWS refuses a group whose name is taken (by a group `Delete in progress` too); the
    // emulator overwrites it.
    let name_taken = if action == "CreateAutoScalingGroup" {
        let rules_on = shared.lock().unwrap().faults.aws_rules.is_some();
        match form_field(&text, "AutoScalingGroupName") {
            Some(name) if rules_on => {
                let deleting = shared.lock().unwrap().deleting_groups.contains_key(&name);
                deleting
                    || query_call(
                        upstream,
                        client,
                        "autoscaling",
                        "2011-01-01",
                        &[
                            ("Action", "DescribeAutoScalingGroups"),
                            ("AutoScalingGroupNames.member.1", &name),
                        ],
                    )
                    .await
                    .is_some_and(|a| {
                        a.contains(&format!(
                            "<AutoScalingGroupName>{name}</AutoScalingGroupName>"
                        ))
                    })
            }
            _ => false,
        }
    } else {
        false
    };
    let (faults, outcome, refused, unseen, hold) = {
        let mut s = shared.lock().unwrap();
        *s.calls.entry(action.clone()).or_default() += 1;
        let faults = s.faults.clone();
        let applies = faults.actions.is_empty() || faults.actions.iter().any(|a| a == &action);
        let lose = faults
            .lose_first_answer
            .iter()
            .position(|(a, needle)| a == &action && text.contains(needle.as_str()))
            .is_some_and(|i| s.answers_lost.insert(i));
        let hold = faults
            .hold_first
            .iter()
            .enumerate()
            .find(|(i, (a, _))| a == &action && !s.held.contains(i))
            .map(|(i, (_, d))| (i, *d));
        if let Some((i, _)) = hold {
            s.held.insert(i);
        }
        let refused = faults.aws_rules.and_then(|rules| {
            limit_refusal(&action, &text)
                .or_else(|| refusal(&s, rules, &action, &text))
                .or_else(|| {
                    name_taken.then(|| {
                        (
                            "AlreadyExists",
                            format!(
                                "AutoScalingGroup by this name already exists - A group with the name {} already exists (fault proxy)",
                                form_field(&text, "AutoScalingGroupName").unwrap_or_default()
                            ),
                        )
                    })
                })
        });
        let unseen = faults
            .aws_rules
            .and_then(|rules| not_yet_visible(&s, rules, &action, &text));
        let held = faults
            .aws_rules
            .is_some_and(|r| !r.group_deletion.is_zero())
            && action == "DeleteAutoScalingGroup";
        let outcome = if lose {
            Outcome::AnswerLost
        } else if refused.is_some() {
            Outcome::Refused
        } else if unseen.is_some() {
            Outcome::NotYetVisible
        } else if held {
            Outcome::DeleteHeld
        } else if !applies {
            Outcome::Forwarded
        } else {
            let r = s.roll();
            if r < faults.throttle {
                Outcome::Throttled
            } else if r < faults.throttle + faults.error_5xx {
                Outcome::Failed
            } else if r < faults.throttle + faults.error_5xx + faults.reset {
                Outcome::Reset
            } else {
                Outcome::Forwarded
            }
        };
        *s.outcomes.entry(outcome).or_default() += 1;
        let access_key = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .map(String::from);
        s.log.push(Seen {
            at: Instant::now(),
            action: action.clone(),
            body: text.clone(),
            access_key,
            outcome,
            forwarded_for: parts.uri.authority().map(|a| a.to_string()),
        });
        (faults, outcome, refused, unseen, hold)
    };
    if let Some((_, d)) = hold {
        tokio::time::sleep(d).await;
    }
    let applies = faults.actions.is_empty() || faults.actions.iter().any(|a| a == &action);
    if applies && !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    match outcome {
        Outcome::Throttled => {
            let code = if ec2 {
                "RequestLimitExceeded"
            } else {
                "Throttling"
            };
            return Ok(xml_error(400, ec2, code, "Rate exceeded (fault proxy)"));
        }
        Outcome::Failed => {
            let code = if ec2 {
                "InternalError"
            } else {
                "InternalFailure"
            };
            return Ok(xml_error(
                500,
                ec2,
                code,
                "An internal error occurred (fault proxy)",
            ));
        }
        Outcome::Reset => return Err(ConnectionReset),
        Outcome::Refused => {
            let (code, message) = refused.expect("a refusal says why");
            return Ok(xml_error(400, ec2, code, &message));
        }
        Outcome::NotYetVisible => return Ok(unseen.expect("an unseen object has an answer")),
        Outcome::DeleteHeld => {
            let name = form_field(&text, "AutoScalingGroupName").unwrap_or_default();
            let delay = faults
                .aws_rules
                .map(|r| r.group_deletion)
                .unwrap_or_default();
            let first = {
                let mut s = shared.lock().unwrap();
                let first = !s.deleting_groups.contains_key(&name);
                if first {
                    s.deleting_groups
                        .insert(name.clone(), Instant::now() + delay);
                }
                first
            };
            if first {
                // The emulator deletes at once; AWS takes its time. Hold the call back.
                let out = upstream_request(&parts, upstream, body.clone());
                let (client, shared) = (client.clone(), shared.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Ok(r) = client.request(out).await {
                        let _ = r.into_body().collect().await;
                    }
                    shared.lock().unwrap().deleting_groups.remove(&name);
                });
            }
            return Ok(xml_ok("<DeleteAutoScalingGroupResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></DeleteAutoScalingGroupResponse>".to_string()));
        }
        Outcome::Forwarded
            if action == "DeleteLaunchTemplateVersions" && faults.aws_rules.is_some() =>
        {
            return Ok(delete_template_versions(shared, &text));
        }
        Outcome::Forwarded if action == "PutMetricData" => {
            return Ok(xml_ok(shared.lock().unwrap().metrics.put(&text)));
        }
        Outcome::Forwarded if action == "GetMetricData" => {
            return Ok(xml_ok(shared.lock().unwrap().metrics.get(&text)));
        }
        Outcome::Forwarded if action == "PutCompositeAlarm" => {
            return Ok(xml_ok(shared.lock().unwrap().composites.put(&text)));
        }
        Outcome::Forwarded
            if action == "SetAlarmState"
                && form_field(&text, "AlarmName")
                    .is_some_and(|n| shared.lock().unwrap().composites.has(&n)) =>
        {
            let metric = metric_alarm_states(upstream, client).await;
            let answer = shared.lock().unwrap().composites.set_state(&text, &metric);
            return Ok(xml_ok(answer));
        }
        Outcome::Forwarded
            if action == "DeleteAlarms" && shared.lock().unwrap().composites.delete(&text) =>
        {
            return Ok(xml_ok(
                "<DeleteAlarmsResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></DeleteAlarmsResponse>".to_string(),
            ));
        }
        Outcome::Forwarded if action == "DescribeScalingActivities" => {
            let group = form_field(&text, "AutoScalingGroupName").unwrap_or_default();
            let made = shared.lock().unwrap().short_groups.get(&group).copied();
            if let (Some(fault), Some(made)) =
                (capacity::of_group(&faults.no_capacity, &group), made)
            {
                return Ok(xml_ok(capacity::activities(
                    fault,
                    made,
                    Instant::now(),
                    &text,
                )));
            }
        }
        Outcome::Forwarded | Outcome::AnswerLost => {}
    }
    let body = match capacity::create_body(&faults.no_capacity, &text) {
        Some(b) if action == "CreateAutoScalingGroup" => Bytes::from(b),
        _ => body,
    };
    let body = match faults.aws_rules.map(|r| r.page_size) {
        Some(size) => small_pages(&action, body, size),
        None => body,
    };
    // Pages the emulator does not make, made by the proxy (see `proxy/pages.rs`); the
    // target groups of a load balancer as AWS counts them.
    let paged = faults
        .aws_rules
        .and_then(|r| Some((pages::paging_of(&action)?, r.page_size)));
    let (body, page_start) = match paged {
        Some((p, _)) => {
            let (b, start) = pages::request(p, &String::from_utf8_lossy(&body));
            (Bytes::from(b), start)
        }
        None => (body, 0),
    };
    let body = match form_field(&text, "LoadBalancerArn") {
        Some(lb) if action == "DescribeTargetGroups" && faults.aws_rules.is_some() => {
            let routed = routed_by_load_balancer(upstream, client, &lb).await;
            if routed.is_empty() {
                return Ok(xml_ok(
                    "<DescribeTargetGroupsResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><DescribeTargetGroupsResult><TargetGroups/></DescribeTargetGroupsResult><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></DescribeTargetGroupsResponse>".to_string(),
                ));
            }
            let kept: Vec<String> = String::from_utf8_lossy(&body)
                .split('&')
                .filter(|kv| !kv.starts_with("LoadBalancerArn="))
                .map(String::from)
                .chain(routed.iter().enumerate().map(|(i, arn)| {
                    format!("TargetGroupArns.member.{}={}", i + 1, form_escape(arn))
                }))
                .collect();
            Bytes::from(kept.join("&"))
        }
        _ => body,
    };
    let out = upstream_request(&parts, upstream, body);
    let resp = match client.request(out).await {
        Ok(r) => r,
        Err(e) => {
            return Ok(Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(format!("proxy: {e}"))))
                .unwrap())
        }
    };
    if outcome == Outcome::AnswerLost {
        // The emulator acted; its answer never reaches the caller.
        let _ = resp.into_body().collect().await;
        let code = if ec2 {
            "InternalError"
        } else {
            "InternalFailure"
        };
        return Ok(xml_error(500, ec2, code, "answer lost (fault proxy)"));
    }
    let (mut rparts, rbody) = resp.into_parts();
    let mut rbody = rbody
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let now = Instant::now();
    if let (Some((p, size)), true) = (paged, rparts.status.is_success()) {
        let text = String::from_utf8_lossy(&rbody).into_owned();
        rbody = Bytes::from(pages::answer(p, &text, page_start, size));
    }
    if action == "CreateAutoScalingGroup" && rparts.status.is_success() {
        if let Some(f) = form_field(&text, "AutoScalingGroupName")
            .and_then(|g| capacity::of_group(&faults.no_capacity, &g))
        {
            shared
                .lock()
                .unwrap()
                .short_groups
                .insert(f.group.clone(), now);
        }
    }
    if action == "DescribeAutoScalingGroups" && rparts.status.is_success() {
        let short: Vec<(NoCapacity, Instant)> = {
            let s = shared.lock().unwrap();
            faults
                .no_capacity
                .iter()
                .filter_map(|f| Some((f.clone(), *s.short_groups.get(&f.group)?)))
                .collect()
        };
        for (fault, made) in short {
            let text = String::from_utf8_lossy(&rbody).into_owned();
            rbody = Bytes::from(capacity::pending(&fault, made, now, &text));
        }
    }
    if faults.aws_rules.is_some() && rparts.status.is_success() {
        let mut s = shared.lock().unwrap();
        match action.as_str() {
            "CreateInstanceProfile" => s.profile_made = Some(now),
            "CreateLaunchTemplate" => {
                if let Some(name) = form_field(&text, "LaunchTemplateName") {
                    s.template_versions
                        .insert(name.clone(), (1, Default::default()));
                    s.made.insert(name, now);
                }
                let answer = String::from_utf8_lossy(&rbody).into_owned();
                if let Some(id) = xml_values(&answer, "launchTemplateId").into_iter().next() {
                    s.made.insert(id, now);
                }
            }
            "CreateTargetGroup" => {
                let answer = String::from_utf8_lossy(&rbody).into_owned();
                s.made.extend(form_field(&text, "Name").map(|n| (n, now)));
                s.made.extend(
                    xml_values(&answer, "TargetGroupArn")
                        .into_iter()
                        .map(|a| (a, now)),
                );
            }
            "CreateLaunchTemplateVersion" => {
                if let Some(name) = form_field(&text, "LaunchTemplateName") {
                    s.template_versions.entry(name).or_default().0 += 1;
                }
            }
            "DeleteLaunchTemplate" => {
                if let Some(name) = form_field(&text, "LaunchTemplateName") {
                    s.template_versions.remove(&name);
                }
            }
            "CreateAutoScalingGroup" | "UpdateAutoScalingGroup" | "SetDesiredCapacity" => {
                if let Some(name) = form_field(&text, "AutoScalingGroupName") {
                    if action == "CreateAutoScalingGroup" {
                        s.made.insert(name.clone(), now);
                    }
                    s.group_activity.insert(name, now);
                }
            }
            _ => {}
        }
    }
    if faults.aws_rules.is_some()
        && matches!(action.as_str(), "DescribeListeners" | "DescribeRules")
        && rparts.status.is_success()
    {
        // AWS never returns an OIDC client secret (the emulator returns what it was given).
        let text = String::from_utf8_lossy(&rbody);
        if text.contains("<ClientSecret>") {
            let mut out = String::new();
            let mut rest: &str = &text;
            while let Some(i) = rest.find("<ClientSecret>") {
                out.push_str(&rest[..i]);
                rest = match rest[i..].find("</ClientSecret>") {
                    Some(j) => &rest[i + j + "</ClientSecret>".len()..],
                    None => "",
                };
            }
            out.push_str(rest);
            rbody = Bytes::from(out);
        }
    }
    if faults.aws_rules.is_some()
        && action == "DescribeAutoScalingGroups"
        && rparts.status.is_success()
    {
        // A group being deleted says so until it is gone.
        let deleting: Vec<String> = shared
            .lock()
            .unwrap()
            .deleting_groups
            .keys()
            .cloned()
            .collect();
        if !deleting.is_empty() {
            let mut text = String::from_utf8_lossy(&rbody).into_owned();
            for name in deleting {
                let tag = format!("<AutoScalingGroupName>{name}</AutoScalingGroupName>");
                text = text.replace(&tag, &format!("{tag}<Status>Delete in progress</Status>"));
            }
            rbody = Bytes::from(text);
        }
    }
    if action == "DescribeAlarms" && rparts.status.is_success() {
        // AWS's answer: the types asked for, the state filter, composite alarms, pages.
        let composites = shared.lock().unwrap().composites.clone();
        let page_size = faults.aws_rules.map(|r| r.page_size);
        if page_size.is_some() || !composites.is_empty() {
            let metric = if composites.is_empty() {
                BTreeMap::new()
            } else {
                metric_alarm_states(upstream, client).await
            };
            let answer = String::from_utf8_lossy(&rbody).into_owned();
            rbody = Bytes::from(alarms::describe(
                &composites,
                &text,
                &answer,
                &metric,
                page_size.unwrap_or(usize::MAX),
            ));
        }
    }
    let zone_not_served = action == "DescribeTargetHealth"
        && faults
            .zone_not_served
            .iter()
            .any(|name| names_target_group(&text, name));
    if zone_not_served {
        let text = String::from_utf8_lossy(&rbody).replace(
            "<State>healthy</State>",
            "<State>unused</State><Reason>Target.NotInUse</Reason><Description>Target is in an Availability Zone that is not enabled for the load balancer</Description>",
        );
        rbody = Bytes::from(text);
    }
    if let Some(alb) = faults.alb_health {
        let stale = || {
            shared
                .lock()
                .unwrap()
                .routes
                .refreshed
                .is_none_or(|t| t.elapsed() >= ROUTES_FRESH_FOR)
        };
        if ROUTE_CHANGES.contains(&action.as_str()) || (action == "DescribeTargetHealth" && stale())
        {
            refresh_routes(upstream, client, shared).await;
        }
        if action == "DescribeTargetHealth" && rparts.status.is_success() && !zone_not_served {
            rbody = alb_target_health(upstream, client, shared, &text, rbody, alb).await;
        }
    }
    let unhealthy = action == "DescribeTargetHealth"
        && (faults.unhealthy_targets
            || faults.unhealthy_target_groups.iter().any(|(name, until)| {
                names_target_group(&text, name) && until.is_none_or(|u| now < u)
            }));
    let pending = action == "DescribeTargetHealth"
        && faults
            .pending_target_groups
            .iter()
            .any(|(name, until)| names_target_group(&text, name) && until.is_none_or(|u| now < u));
    if unhealthy {
        let text = String::from_utf8_lossy(&rbody).replace(
            "<State>healthy</State>",
            "<State>unhealthy</State><Reason>Target.FailedHealthChecks</Reason>",
        );
        rbody = Bytes::from(text);
    } else if pending {
        let text = String::from_utf8_lossy(&rbody).replace(
            "<State>healthy</State>",
            "<State>initial</State><Reason>Elb.RegistrationInProgress</Reason>",
        );
        rbody = Bytes::from(text);
    }
    rparts.headers.remove("content-length");
    rparts.headers.remove("transfer-encoding");
    Ok(Response::from_parts(rparts, Full::new(rbody)))
}
