//! What the user asked for, in domain terms: a validated [`ReleaseSpec`]. The Terraform layer
//! builds it from HCL values; everything below it sees only these types.
//!
//! The rules of the contract's argument table live here as pure functions, so that plan-time
//! validation and the engine agree on them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How traffic moves to a new fleet once it is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// All traffic at once after the health gate.
    BlueGreen,
    /// Walk the canary steps, then 100 %.
    Canary,
}

impl Strategy {
    /// Parses the HCL value.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "blue_green" => Ok(Self::BlueGreen),
            "canary" => Ok(Self::Canary),
            other => Err(format!(
                "strategy must be \"blue_green\" or \"canary\", not {other:?}"
            )),
        }
    }
}

/// The most user data a launch template may hold (AWS: 16 KB, before base64).
pub const MAX_USER_DATA: usize = 16 * 1024;

/// One canary step: send `weight` percent to the new fleet, then watch for `pause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryStep {
    /// Percent of traffic on the new fleet, 1–99.
    pub weight: u8,
    /// How long to hold this weight while watching alarms and health.
    pub pause: Duration,
}

/// The target group's health check, as ELBv2 takes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheckSpec {
    /// HTTP path probed.
    pub path: String,
    /// `"traffic-port"` or a port number.
    pub port: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// Seconds between probes (5–300).
    pub interval: i64,
    /// Seconds before a probe fails (2–120).
    pub timeout: i64,
    /// Successes before healthy (2–10).
    pub healthy_threshold: i64,
    /// Failures before unhealthy (2–10).
    pub unhealthy_threshold: i64,
    /// HTTP codes counted as success.
    pub matcher: String,
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        Self {
            path: "/".into(),
            port: "traffic-port".into(),
            protocol: "HTTP".into(),
            interval: 30,
            timeout: 5,
            healthy_threshold: 3,
            unhealthy_threshold: 2,
            matcher: "200".into(),
        }
    }
}

/// The fleet's target group settings (part of what shapes a fleet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetGroupSpec {
    /// Port instances serve on.
    pub port: i64,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// The health check.
    pub health_check: HealthCheckSpec,
    /// Seconds a deregistered target drains.
    pub deregistration_delay: i64,
}

/// The instance metadata service as every instance of a fleet gets it (the launch
/// template's `MetadataOptions`). The default requires IMDSv2 session tokens, which closes
/// the SSRF hole of v1's plain GETs, with a hop limit of 2 so that containers on the
/// instance still reach it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetadataOptions {
    /// `required` (IMDSv2 only) or `optional` (v1 answered too).
    pub http_tokens: String,
    /// Network hops a metadata response may take, 1–64.
    pub http_put_response_hop_limit: i64,
    /// `enabled` or `disabled`.
    pub http_endpoint: String,
    /// Instance tags in the metadata: `enabled` or `disabled`.
    pub instance_metadata_tags: String,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        Self {
            http_tokens: "required".into(),
            http_put_response_hop_limit: 2,
            http_endpoint: "enabled".into(),
            instance_metadata_tags: "disabled".into(),
        }
    }
}

/// One EBS volume of every instance (a launch template block device mapping).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockDevice {
    /// e.g. `/dev/xvda` (the image's root device name replaces its root volume).
    pub device_name: String,
    /// GiB; None: the snapshot's size.
    pub volume_size: Option<i64>,
    /// `gp3` (default), `gp2`, `io1`, `io2`, `st1`, `sc1`, `standard`.
    pub volume_type: String,
    /// Provisioned IOPS (`gp3`, `io1`, `io2` only).
    pub iops: Option<i64>,
    /// MiB/s (`gp3` only).
    pub throughput: Option<i64>,
    /// Encrypted at rest (default true).
    pub encrypted: bool,
    /// The KMS key for the encryption; None: the account's default EBS key.
    pub kms_key_id: Option<String>,
    /// Deleted with the instance (default true).
    pub delete_on_termination: bool,
}

/// Checks `launch_template.id`: `lt-` and 17 hexadecimal digits (8 in older accounts).
pub fn check_launch_template_id(id: &str) -> Result<(), String> {
    let hex = id.strip_prefix("lt-").unwrap_or("");
    if !(matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_hexdigit())) {
        return Err(format!(
            "launch_template.id must be a launch template ID (\"lt-\" and 17 hexadecimal digits), not a name; got {id:?}"
        ));
    }
    Ok(())
}

/// Checks `launch_template.version`: `$Latest`, `$Default` or a version number from 1.
pub fn check_launch_template_version(version: &str) -> Result<(), String> {
    let number = version.parse::<i64>().is_ok_and(|n| n >= 1) && !version.starts_with('+');
    if !(number || version == "$Latest" || version == "$Default") {
        return Err(format!(
            "launch_template.version must be \"$Latest\", \"$Default\" or a version number from 1 (resolved to a number at plan); got {version:?}"
        ));
    }
    Ok(())
}

/// The metrics a target-tracking policy may follow (`target_tracking.predefined_metric`).
pub const SCALING_METRICS: [&str; 4] = [
    "ASGAverageCPUUtilization",
    "ASGAverageNetworkIn",
    "ASGAverageNetworkOut",
    "ALBRequestCountPerTarget",
];

/// The metric bound to a fleet's own target group (and the load balancer).
pub const REQUEST_COUNT: &str = "ALBRequestCountPerTarget";

/// At most this many `target_tracking` blocks.
pub const MAX_SCALING_POLICIES: usize = 5;

/// One target-tracking scaling policy every serving fleet carries (`target_tracking`).
/// Not fleet-shaping: a change is a settings update of the serving fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTracking {
    /// One of [`SCALING_METRICS`].
    pub metric: String,
    /// The value the metric is held at (per instance for request counts, a percentage for
    /// CPU).
    pub target_value: f64,
    /// The policy only scales out.
    pub disable_scale_in: bool,
}

impl std::fmt::Display for TargetTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.metric, self.target_value)?;
        if self.disable_scale_in {
            f.write_str(" (scale-out only)")?;
        }
        Ok(())
    }
}

/// Checks the `target_tracking` blocks: the metric's name, a finite target above zero (a
/// CPU percentage at most 100), each metric once, at most [`MAX_SCALING_POLICIES`].
/// Each problem with the block's index and the attribute.
pub fn check_target_tracking(policies: &[TargetTracking]) -> Vec<(usize, &'static str, String)> {
    let mut out = Vec::new();
    if policies.len() > MAX_SCALING_POLICIES {
        // Said at the first block beyond the limit, where the reader looks.
        out.push((
            MAX_SCALING_POLICIES,
            "predefined_metric",
            format!(
                "target_tracking takes at most {MAX_SCALING_POLICIES} blocks (AWS's limit of target-tracking policies a group may use well); got {}",
                policies.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, p) in policies.iter().enumerate() {
        if !SCALING_METRICS.contains(&p.metric.as_str()) {
            out.push((
                i,
                "predefined_metric",
                format!(
                    "target_tracking.predefined_metric must be one of {}; got {:?}",
                    SCALING_METRICS.join(", "),
                    p.metric
                ),
            ));
        } else if !seen.insert(p.metric.clone()) {
            out.push((
                i,
                "predefined_metric",
                format!(
                    "target_tracking.predefined_metric {:?} is given twice; two policies on one metric fight each other, give each metric once",
                    p.metric
                ),
            ));
        }
        if !(p.target_value.is_finite() && p.target_value > 0.0) {
            out.push((
                i,
                "target_value",
                format!(
                    "target_tracking.target_value must be greater than 0; got {}",
                    p.target_value
                ),
            ));
        } else if p.metric == "ASGAverageCPUUtilization" && p.target_value > 100.0 {
            out.push((
                i,
                "target_value",
                format!(
                    "target_tracking.target_value of ASGAverageCPUUtilization is a percentage, at most 100; got {}",
                    p.target_value
                ),
            ));
        }
    }
    out
}

/// The EBS volume types a block device may have.
pub const VOLUME_TYPES: [&str; 7] = ["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard"];

/// What is wrong with one block device, as (attribute, message) pairs: the volume type,
/// its size range, IOPS and throughput only where the type takes them (with AWS's ranges),
/// a KMS key only on an encrypted volume.
pub fn check_block_device(d: &BlockDevice) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if d.device_name.trim().is_empty() {
        out.push((
            "device_name",
            "block_device.device_name must name a device such as \"/dev/xvda\"".to_string(),
        ));
    }
    let t = d.volume_type.as_str();
    if !VOLUME_TYPES.contains(&t) {
        out.push((
            "volume_type",
            format!(
                "block_device.volume_type must be one of {}; got {t:?}",
                VOLUME_TYPES.join(", ")
            ),
        ));
        return out;
    }
    let (lo, hi) = match t {
        "io1" | "io2" => (4, 16384),
        "st1" | "sc1" => (125, 16384),
        "standard" => (1, 1024),
        _ => (1, 16384),
    };
    if let Some(size) = d.volume_size {
        if let Err(e) = check_range(
            &format!("block_device.volume_size ({t}, GiB)"),
            size,
            lo,
            hi,
        ) {
            out.push(("volume_size", e));
        }
    }
    match (t, d.iops) {
        ("gp3", Some(n)) => push_range(&mut out, "iops", "block_device.iops (gp3)", n, 3000, 16000),
        ("io1", Some(n)) => push_range(&mut out, "iops", "block_device.iops (io1)", n, 100, 64000),
        ("io2", Some(n)) => push_range(&mut out, "iops", "block_device.iops (io2)", n, 100, 256000),
        // Said on the attribute that is set: the type.
        ("io1" | "io2", None) => out.push((
            "volume_type",
            format!("block_device.iops is required for volume_type {t:?} (provisioned IOPS)"),
        )),
        (_, Some(_)) => out.push((
            "iops",
            format!(
                "block_device.iops is taken only by volume types gp3, io1 and io2; not by {t:?}"
            ),
        )),
        _ => {}
    }
    match (t, d.throughput) {
        ("gp3", Some(n)) => push_range(
            &mut out,
            "throughput",
            "block_device.throughput (gp3, MiB/s)",
            n,
            125,
            1000,
        ),
        (_, Some(_)) => out.push((
            "throughput",
            format!("block_device.throughput is taken only by volume type gp3; not by {t:?}"),
        )),
        _ => {}
    }
    if d.kms_key_id.is_some() && !d.encrypted {
        out.push((
            "kms_key_id",
            "block_device.kms_key_id encrypts the volume: it needs encrypted = true".to_string(),
        ));
    }
    out
}

fn push_range(
    out: &mut Vec<(&'static str, String)>,
    attr: &'static str,
    what: &str,
    n: i64,
    lo: i64,
    hi: i64,
) {
    if let Err(e) = check_range(what, n, lo, hi) {
        out.push((attr, e));
    }
}

/// What is wrong with the metadata options, as (attribute, message) pairs.
pub fn check_metadata_options(m: &MetadataOptions) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (attr, v, allowed) in [
        ("http_tokens", &m.http_tokens, ["required", "optional"]),
        ("http_endpoint", &m.http_endpoint, ["enabled", "disabled"]),
        (
            "instance_metadata_tags",
            &m.instance_metadata_tags,
            ["enabled", "disabled"],
        ),
    ] {
        if !allowed.contains(&v.as_str()) {
            out.push((
                attr,
                format!(
                    "metadata_options.{attr} must be {:?} or {:?}; got {v:?}",
                    allowed[0], allowed[1]
                ),
            ));
        }
    }
    push_range(
        &mut out,
        "http_put_response_hop_limit",
        "metadata_options.http_put_response_hop_limit",
        m.http_put_response_hop_limit,
        1,
        64,
    );
    out
}

/// Everything that shapes a fleet: a change to any of it is a release, and equality with a
/// retained fleet's spec is a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FleetSpec {
    /// Machine image.
    pub image_id: String,
    /// EC2 instance type.
    pub instance_type: String,
    /// Types AWS may launch, in this order, when `instance_type` has no capacity in a zone
    /// (`fallback_instance_types`): the group gets a mixed instances policy.
    pub fallback_instance_types: Vec<String>,
    /// Subnets the group launches into.
    pub subnet_ids: BTreeSet<String>,
    /// Security groups of the instances.
    pub security_group_ids: BTreeSet<String>,
    /// Instance profile name or ARN.
    pub iam_instance_profile: Option<String>,
    /// Plain-text user data (base64-encoded on the way to AWS).
    pub user_data: Option<String>,
    /// Tags on every instance.
    pub instance_tags: BTreeMap<String, String>,
    /// Target group settings.
    pub target_group: TargetGroupSpec,
    /// EC2 key pair of the instances.
    pub key_name: Option<String>,
    /// Detailed (1-minute) CloudWatch monitoring of the instances.
    pub monitoring: bool,
    /// The instance metadata service (IMDSv2 required unless said otherwise).
    pub metadata: MetadataOptions,
    /// EBS volumes; empty: the image's own mappings.
    pub block_devices: Vec<BlockDevice>,
    /// The user's launch template (and its version, resolved to a number at plan) that
    /// each fleet's own template starts from; the release's arguments win over it.
    pub base: Option<BaseTemplate>,
}

/// A launch template of the user's, at one version number (`launch_template`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseTemplate {
    /// Its ID, `lt-…`.
    pub id: String,
    /// The version number `version` resolved to at plan.
    pub version: i64,
}

/// FNV-1a 64 of `text`, as 16 hex digits.
fn fnv1a(text: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

/// The version of [`FleetSpec::canonical`]'s rendering, written in front of every
/// fingerprint (`v1:…`): a later rendering gets a new version and still recognises this one.
const FINGERPRINT_VERSION: &str = "v1";

impl FleetSpec {
    /// A stable fingerprint of the fleet-shaping arguments, recorded on every fleet so that
    /// a later plan can tell a rollback (same fingerprint as a retained fleet) from a
    /// release: `v1:` and FNV-1a 64 of [`FleetSpec::canonical`]. User data is included but
    /// never logged. Compare recorded fingerprints with [`FleetSpec::matches`], which also
    /// knows the records of provider 0.1.0.
    pub fn fingerprint(&self) -> String {
        format!("{FINGERPRINT_VERSION}:{}", fnv1a(&self.canonical()))
    }

    /// Whether a fingerprint recorded on a fleet (by this version, or by 0.1.0) is this
    /// spec's.
    pub fn matches(&self, recorded: &str) -> bool {
        match recorded.split_once(':') {
            Some((FINGERPRINT_VERSION, _)) => recorded == self.fingerprint(),
            Some(_) => false,
            // 0.1.0 wrote a bare hash of the struct's debug rendering, before any of the
            // later arguments existed.
            None => {
                self.later_arguments().is_empty() && recorded == fnv1a(&self.legacy_rendering())
            }
        }
    }

    /// One `key=value` line per argument, in a fixed order, values JSON-quoted; sets and
    /// maps sorted. Fixed by this function, not by the compiler, so that neither a provider
    /// upgrade nor a new toolchain turns every retained fleet into a stranger. An argument
    /// added later is written only when it is set, so fleets recorded before it still match.
    pub fn canonical(&self) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let list = |items: &mut dyn Iterator<Item = String>| -> String {
            items.collect::<Vec<_>>().join(",")
        };
        let opt = |v: &Option<String>| v.as_deref().map(q).unwrap_or_else(|| "null".into());
        let tg = &self.target_group;
        let hc = &tg.health_check;
        [
            format!("image_id={}", q(&self.image_id)),
            format!("instance_type={}", q(&self.instance_type)),
            format!(
                "subnet_ids=[{}]",
                list(&mut self.subnet_ids.iter().map(|s| q(s)))
            ),
            format!(
                "security_group_ids=[{}]",
                list(&mut self.security_group_ids.iter().map(|s| q(s)))
            ),
            format!("iam_instance_profile={}", opt(&self.iam_instance_profile)),
            format!("user_data={}", opt(&self.user_data)),
            format!(
                "instance_tags={{{}}}",
                list(
                    &mut self
                        .instance_tags
                        .iter()
                        .map(|(k, v)| format!("{}:{}", q(k), q(v)))
                )
            ),
            format!("target_group.port={}", tg.port),
            format!("target_group.protocol={}", q(&tg.protocol)),
            format!(
                "target_group.deregistration_delay={}",
                tg.deregistration_delay
            ),
            format!("health_check.path={}", q(&hc.path)),
            format!("health_check.port={}", q(&hc.port)),
            format!("health_check.protocol={}", q(&hc.protocol)),
            format!("health_check.interval={}", hc.interval),
            format!("health_check.timeout={}", hc.timeout),
            format!("health_check.healthy_threshold={}", hc.healthy_threshold),
            format!(
                "health_check.unhealthy_threshold={}",
                hc.unhealthy_threshold
            ),
            format!("health_check.matcher={}", q(&hc.matcher)),
        ]
        .into_iter()
        .chain(self.later_arguments())
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// The lines of the arguments added after `v1`'s first rendering, each only when it
    /// differs from its default: a fleet recorded before them, which had the defaults, still
    /// matches. (The default metadata options require IMDSv2, which fleets released before
    /// them did not: they get it at their next release, without a release of their own.)
    fn later_arguments(&self) -> Vec<String> {
        let q = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = Vec::new();
        if !self.fallback_instance_types.is_empty() {
            out.push(format!(
                "fallback_instance_types=[{}]",
                self.fallback_instance_types
                    .iter()
                    .map(|t| q(t))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if let Some(k) = &self.key_name {
            out.push(format!("key_name={}", q(k)));
        }
        if self.monitoring {
            out.push("monitoring=true".into());
        }
        let m = &self.metadata;
        if *m != MetadataOptions::default() {
            out.push(format!(
                "metadata_options={},{},{},{}",
                q(&m.http_tokens),
                m.http_put_response_hop_limit,
                q(&m.http_endpoint),
                q(&m.instance_metadata_tags)
            ));
        }
        if let Some(b) = &self.base {
            out.push(format!("launch_template={},{}", q(&b.id), b.version));
        }
        let num = |v: Option<i64>| v.map_or("null".to_string(), |n| n.to_string());
        for d in &self.block_devices {
            out.push(format!(
                "block_device={},{},{},{},{},{},{},{}",
                q(&d.device_name),
                num(d.volume_size),
                q(&d.volume_type),
                num(d.iops),
                num(d.throughput),
                d.encrypted,
                d.kms_key_id
                    .as_deref()
                    .map(q)
                    .unwrap_or_else(|| "null".into()),
                d.delete_on_termination
            ));
        }
        out
    }

    /// What provider 0.1.0 hashed: the derived debug rendering of its `FleetSpec`, written
    /// out by hand so that it no longer depends on this struct's fields or the compiler.
    fn legacy_rendering(&self) -> String {
        let d = |s: &str| format!("{s:?}");
        let set = |v: &BTreeSet<String>| {
            format!(
                "{{{}}}",
                v.iter().map(|s| d(s)).collect::<Vec<_>>().join(", ")
            )
        };
        let opt = |v: &Option<String>| match v {
            Some(s) => format!("Some({})", d(s)),
            None => "None".into(),
        };
        let tg = &self.target_group;
        let hc = &tg.health_check;
        format!(
            "FleetSpec {{ image_id: {}, instance_type: {}, subnet_ids: {}, security_group_ids: {}, iam_instance_profile: {}, user_data: {}, instance_tags: {{{}}}, target_group: TargetGroupSpec {{ port: {}, protocol: {}, health_check: HealthCheckSpec {{ path: {}, port: {}, protocol: {}, interval: {}, timeout: {}, healthy_threshold: {}, unhealthy_threshold: {}, matcher: {} }}, deregistration_delay: {} }} }}",
            d(&self.image_id),
            d(&self.instance_type),
            set(&self.subnet_ids),
            set(&self.security_group_ids),
            opt(&self.iam_instance_profile),
            opt(&self.user_data),
            self.instance_tags
                .iter()
                .map(|(k, v)| format!("{}: {}", d(k), d(v)))
                .collect::<Vec<_>>()
                .join(", "),
            tg.port,
            d(&tg.protocol),
            d(&hc.path),
            d(&hc.port),
            d(&hc.protocol),
            hc.interval,
            hc.timeout,
            hc.healthy_threshold,
            hc.unhealthy_threshold,
            d(&hc.matcher),
            tg.deregistration_delay,
        )
    }
}

/// Fleet size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Minimum size.
    pub min: i64,
    /// Maximum size.
    pub max: i64,
    /// Desired capacity.
    pub desired: i64,
}

/// The health gate and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSpec {
    /// Percent of desired capacity that must be healthy before traffic moves.
    pub min_healthy_percentage: i64,
    /// The group's health-check grace period.
    pub grace_period: Duration,
    /// Longest wait for the gate.
    pub timeout: Duration,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            min_healthy_percentage: 100,
            grace_period: Duration::from_secs(30),
            timeout: Duration::from_secs(600),
        }
    }
}

/// Operation time limits from the `timeouts` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Create limit.
    pub create: Duration,
    /// Update limit.
    pub update: Duration,
    /// Delete limit.
    pub delete: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            create: Duration::from_secs(30 * 60),
            update: Duration::from_secs(45 * 60),
            delete: Duration::from_secs(20 * 60),
        }
    }
}

/// One `immutable_release`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseSpec {
    /// Name, prefix of every object the release owns.
    pub name: String,
    /// The fleet-shaping arguments.
    pub fleet: FleetSpec,
    /// Size of the fleet.
    pub capacity: Capacity,
    /// The ALB listener whose default action (or rule) the release owns.
    pub listener_arn: String,
    /// The rule of that listener the release owns, None for the default action.
    pub rule_arn: Option<String>,
    /// VPC of the target groups.
    pub vpc_id: String,
    /// Health gate.
    pub health: HealthSpec,
    /// Traffic strategy.
    pub strategy: Strategy,
    /// Canary steps (empty for blue/green).
    pub canary_steps: Vec<CanaryStep>,
    /// Alarms watched during pauses and bake.
    pub alarm_names: BTreeSet<String>,
    /// Watch time at 100 %.
    pub bake_time: Duration,
    /// Previous fleets kept for rollback.
    pub retain_fleets: i64,
    /// How long retained fleets keep full capacity.
    pub rollback_window: Duration,
    /// Past releases kept in history.
    pub history_limit: i64,
    /// Tags on every owned object (provider default tags already merged under).
    pub tags: BTreeMap<String, String>,
    /// Operation limits.
    pub timeouts: Timeouts,
    /// Target-tracking policies the serving fleet carries.
    pub scaling: Vec<TargetTracking>,
    /// Group stickiness of the route's forward action (`load_balancer.stickiness`); None:
    /// off. Not fleet-shaping: carried by every write of the route.
    pub stickiness: Option<Duration>,
    /// The new fleet judged on its own metrics during pauses and the bake (`analysis`).
    pub analysis: Option<crate::analysis::AnalysisSpec>,
    /// Where each event of an apply is told (`notification`).
    pub notification: Option<crate::notify::NotificationSpec>,
    /// Stop the release at this weight until a later apply raises or removes it (`hold_at`).
    pub hold_at: Option<i64>,
}

impl ReleaseSpec {
    /// The route's stickiness as AWS holds it, in seconds.
    pub fn sticky_seconds(&self) -> Option<u64> {
        self.stickiness.map(|d| d.as_secs())
    }

    /// The route the release owns.
    pub fn route(&self) -> crate::route::Route {
        crate::route::Route {
            listener_arn: self.listener_arn.clone(),
            rule_arn: self.rule_arn.clone(),
        }
    }
}

/// Checks the release name: 1–24 characters, `^[a-z][a-z0-9-]*$`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().enumerate().all(|(i, c)| {
        if i == 0 {
            c.is_ascii_lowercase()
        } else {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        }
    });
    if name.is_empty() || name.len() > 24 || !ok_chars {
        return Err(format!(
            "name must be 1 to 24 characters, start with a lower-case letter and contain only lower-case letters, digits and hyphens (it prefixes every AWS object the release owns); got {name:?}"
        ));
    }
    Ok(())
}

/// Checks an AMI ID's form: `ami-` and 8 or 17 hexadecimal digits.
pub fn check_image_id(id: &str) -> Result<(), String> {
    let hex = id.strip_prefix("ami-").unwrap_or("");
    let ok = (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(format!(
            "image_id must be an AMI ID: \"ami-\" followed by 8 or 17 hexadecimal digits; got {id:?}"
        ));
    }
    Ok(())
}

/// Checks an ARN's form and its service and resource type, e.g. an ALB listener:
/// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID`.
/// A rule ARN that belongs to the listener `listener_arn`: AWS names a listener's rules
/// `...:listener-rule/app/LB/ID/LISTENER-ID/RULE-ID` beside `...:listener/app/LB/ID/LISTENER-ID`.
pub fn check_rule_arn(listener_arn: &str, rule_arn: &str) -> Result<(), String> {
    let prefix = format!(
        "{}/",
        listener_arn.replacen(":listener/", ":listener-rule/", 1)
    );
    match rule_arn.strip_prefix(&prefix) {
        Some(id) if !id.is_empty() && !id.contains('/') => Ok(()),
        _ => Err(format!(
            "rule_arn must be the ARN of a rule of listener_arn ({prefix}RULE-ID); got {rule_arn:?}"
        )),
    }
}

pub fn check_listener_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "elasticloadbalancing"
        && !parts[3].is_empty()
        && !parts[4].is_empty()
        && parts[5].starts_with("listener/app/");
    if !ok {
        return Err(format!(
            "listener_arn must be the ARN of an Application Load Balancer listener (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID); got {arn:?}"
        ));
    }
    Ok(())
}

/// Checks a VPC ID's form.
pub fn check_vpc_id(id: &str) -> Result<(), String> {
    check_prefixed_id(id, "vpc-", "vpc_id", "a VPC ID")
}

/// Checks a subnet ID's form.
pub fn check_subnet_id(id: &str) -> Result<(), String> {
    check_prefixed_id(id, "subnet-", "subnet_ids", "subnet IDs")
}

/// Most types `fallback_instance_types` may name: a mixed instances policy takes 40
/// overrides, of which `instance_type` is the first; ten in all keep a fleet's types a
/// choice a reviewer can read.
pub const MAX_FALLBACK_INSTANCE_TYPES: usize = 9;

/// Checks `fallback_instance_types`: at most nine, each an instance type, none repeated and
/// none `instance_type` itself (a mixed instances policy refuses a type twice).
pub fn check_fallback_instance_types(primary: Option<&str>, fallbacks: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if fallbacks.len() > MAX_FALLBACK_INSTANCE_TYPES {
        out.push(format!(
            "fallback_instance_types holds {} types; at most {MAX_FALLBACK_INSTANCE_TYPES} are allowed (with instance_type, ten a fleet may launch)",
            fallbacks.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for t in fallbacks {
        if let Err(e) = check_instance_type(t) {
            out.push(format!("fallback_instance_types: {e}"));
        } else if Some(t.as_str()) == primary {
            out.push(format!(
                "fallback_instance_types must not name instance_type ({t:?}): it is always the first type tried"
            ));
        } else if !seen.insert(t.as_str()) {
            out.push(format!(
                "fallback_instance_types names {t:?} twice; each type may appear once"
            ));
        }
    }
    out
}

/// Checks an instance type's form (`family.size`, e.g. `t3.micro`).
pub fn check_instance_type(t: &str) -> Result<(), String> {
    let ok = t.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be an EC2 instance type such as \"t3.micro\"; got {t:?}"
        ))
    }
}

/// Target groups an Application Load Balancer may hold (AWS's quota).
pub const MAX_TARGET_GROUPS_PER_LOAD_BALANCER: usize = 100;

/// Checks that a release that launches a fleet has room for its target group on the
/// listener's load balancer, which holds `held` now (this release's own among them).
pub fn check_target_group_room(held: usize, retain_fleets: i64) -> Result<(), String> {
    if held < MAX_TARGET_GROUPS_PER_LOAD_BALANCER {
        return Ok(());
    }
    Err(format!(
        "the load balancer of load_balancer.listener_arn holds {held} target groups, AWS's limit for an Application Load Balancer is {MAX_TARGET_GROUPS_PER_LOAD_BALANCER}, and this release adds one more (its new fleet's) while it walks; a release holds {} at most (2 + retain_fleets). Nothing was changed: delete target groups the load balancer's listeners no longer forward to, or lower retain_fleets of a release on it",
        2 + retain_fleets.max(0)
    ))
}

/// Checks an IAM role ARN's form: `arn:<partition>:iam::<12 digits>:role/<path and name>`.
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|n| !n.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "assume_role.role_arn must be an IAM role ARN, arn:aws:iam::<12-digit account>:role/<name>; got {arn:?}"
        ))
    }
}

/// Checks a security group ID's form.
pub fn check_security_group_id(id: &str) -> Result<(), String> {
    check_prefixed_id(id, "sg-", "security_group_ids", "security group IDs")
}

fn check_prefixed_id(id: &str, prefix: &str, attr: &str, what: &str) -> Result<(), String> {
    let rest = id.strip_prefix(prefix).unwrap_or("");
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{attr} must hold {what}: \"{prefix}\" followed by letters and digits; got {id:?}"
        ));
    }
    Ok(())
}

/// Checks `load_balancer.stickiness.duration` (AWS: 1 s to 7 days) and that a retained
/// fleet outlives the sticky clients it served (`rollback_window` longer than it).
pub fn check_stickiness(
    duration: Duration,
    rollback_window: Option<Duration>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let week = Duration::from_secs(7 * 24 * 3600);
    if duration < Duration::from_secs(1) || duration > week || duration.subsec_nanos() != 0 {
        out.push((
            "duration",
            format!(
                "load_balancer.stickiness.duration must be whole seconds from 1s to 7 days (168h); got {}",
                crate::duration::format(duration)
            ),
        ));
    } else if let Some(w) = rollback_window {
        if w <= duration {
            out.push((
                "rollback_window",
                format!(
                    "rollback_window ({}) must be longer than load_balancer.stickiness.duration ({}): a client stays on the fleet that served it for that long, and a fleet leaving traffic must keep serving it until then",
                    crate::duration::format(w),
                    crate::duration::format(duration)
                ),
            ));
        }
    }
    out
}

/// AWS's limit of tags on one object (a group, a target group, a template, an instance).
pub const AWS_MAX_TAGS: usize = 50;
/// The ownership tags the provider puts on a group, a target group and a launch template
/// (`immutable:release-name`, `…:release`, `…:image-id`, `…:phase`, `…:fingerprint`).
pub const OWNERSHIP_TAGS: usize = 5;
/// The ownership tags an instance gets from its group (all but `…:phase`, which would go
/// stale on the instance: it is not propagated).
pub const INSTANCE_OWNERSHIP_TAGS: usize = 4;

/// Checks the tags an object and its instances would carry against AWS's 50: the release's
/// tags (`default_tags` merged) and the provider's 5 on each object; on the instances those,
/// `instance_tags`, and the provider's 4.
pub fn check_tag_counts(
    tags: &BTreeMap<String, String>,
    instance_tags: &BTreeMap<String, String>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let most = AWS_MAX_TAGS - OWNERSHIP_TAGS;
    if tags.len() > most {
        out.push((
            "tags",
            format!(
                "at most {most} tags (default_tags included): AWS allows {AWS_MAX_TAGS} on an object and the provider puts {OWNERSHIP_TAGS} ownership tags on each; got {}",
                tags.len()
            ),
        ));
    }
    let keys: std::collections::BTreeSet<&String> =
        tags.keys().chain(instance_tags.keys()).collect();
    let on_instances = keys.len() + INSTANCE_OWNERSHIP_TAGS;
    if on_instances > AWS_MAX_TAGS {
        out.push((
            "instance_tags",
            format!(
                "the instances would carry {on_instances} tags (tags and instance_tags, and the provider's {INSTANCE_OWNERSHIP_TAGS}): AWS allows {AWS_MAX_TAGS}"
            ),
        ));
    }
    out
}

/// Checks a health check's `matcher` as an ALB takes it for HTTP and HTTPS: HTTP codes from
/// 200 to 499, one (`"200"`), a list (`"200,202"`) or a range (`"200-299"`).
pub fn check_matcher(matcher: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "load_balancer.health_check.matcher must be HTTP codes from 200 to 499: one (\"200\"), a list (\"200,202\") or a range (\"200-299\"); got {matcher:?}"
        )
    };
    let code = |c: &str| -> Result<i64, String> {
        let c = c.trim();
        if c.is_empty() || !c.chars().all(|ch| ch.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = c.parse().map_err(|_| bad())?;
        if !(200..=499).contains(&n) {
            return Err(bad());
        }
        Ok(n)
    };
    if matcher.contains(',') && matcher.contains('-') {
        return Err(bad());
    }
    if let Some((lo, hi)) = matcher.split_once('-') {
        if code(lo)? >= code(hi)? {
            return Err(bad());
        }
        return Ok(());
    }
    for c in matcher.split(',') {
        code(c)?;
    }
    Ok(())
}

/// Checks a number against an inclusive range, naming the attribute.
pub fn check_range(attr: &str, value: i64, min: i64, max: i64) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!(
            "{attr} must be between {min} and {max}; got {value}"
        ));
    }
    Ok(())
}

/// Checks capacity: 0 ≤ min ≤ desired ≤ max (desired and max optional until known).
pub fn check_capacity(
    min: i64,
    desired: Option<i64>,
    max: Option<i64>,
) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    if min < 0 {
        errors.push(("min_size", format!("min_size must be 0 or more; got {min}")));
    }
    if let Some(d) = desired {
        if d < min {
            errors.push((
                "desired_capacity",
                format!("desired_capacity must be at least min_size ({min}); got {d}"),
            ));
        }
        if let Some(m) = max {
            if d > m {
                errors.push((
                    "desired_capacity",
                    format!("desired_capacity must be at most max_size ({m}); got {d}"),
                ));
            }
        }
    }
    if let Some(m) = max {
        if m < min {
            errors.push((
                "max_size",
                format!("max_size must be at least min_size ({min}); got {m}"),
            ));
        }
    }
    errors
}

/// Checks the canary steps against the strategy: required (at least one) with `canary`,
/// refused with `blue_green`; each weight 1–99 and strictly above the one before.
/// Returns errors with the index of the step they concern (None for the whole list).
pub fn check_canary_steps(strategy: Strategy, weights: &[i64]) -> Vec<(Option<usize>, String)> {
    let mut errors = Vec::new();
    match strategy {
        Strategy::BlueGreen if !weights.is_empty() => errors.push((
            None,
            "canary_step blocks are only allowed with strategy = \"canary\"; remove them or set strategy = \"canary\"".to_string(),
        )),
        Strategy::Canary if weights.is_empty() => errors.push((
            None,
            "strategy = \"canary\" needs at least one canary_step block (weight 1–99, pause a duration)".to_string(),
        )),
        _ => {}
    }
    let mut previous: Option<i64> = None;
    for (i, &w) in weights.iter().enumerate() {
        if !(1..=99).contains(&w) {
            errors.push((
                Some(i),
                format!("canary_step weight must be between 1 and 99; got {w}"),
            ));
        } else if let Some(p) = previous {
            if w <= p {
                errors.push((
                    Some(i),
                    format!("canary_step weights must increase strictly from step to step; {w} follows {p}"),
                ));
            }
        }
        previous = Some(w);
    }
    errors
}

/// Checks a duration string and, where given, a lower bound.
pub fn check_duration(
    attr: &str,
    text: &str,
    at_least: Option<Duration>,
) -> Result<Duration, String> {
    let d = crate::duration::parse(text).map_err(|e| {
        format!("{attr} must be a duration such as \"90s\", \"5m\" or \"1h30m\": {e}")
    })?;
    if let Some(min) = at_least {
        if d < min {
            return Err(format!(
                "{attr} must be at least {}; got {text:?}",
                crate::duration::format(min)
            ));
        }
    }
    Ok(d)
}

/// Specs for tests: one fleet and one release, every setting at its default.
#[cfg(test)]
pub(crate) mod examples {
    use super::*;

    /// A fleet of `t3.micro` from `image` in one subnet, default health check.
    pub fn fleet(image: &str) -> FleetSpec {
        FleetSpec {
            image_id: image.into(),
            instance_type: "t3.micro".into(),
            fallback_instance_types: Vec::new(),
            subnet_ids: ["subnet-1".to_string()].into(),
            security_group_ids: BTreeSet::new(),
            iam_instance_profile: None,
            user_data: None,
            instance_tags: BTreeMap::new(),
            target_group: TargetGroupSpec {
                port: 80,
                protocol: "HTTP".into(),
                health_check: HealthCheckSpec::default(),
                deregistration_delay: 30,
            },
            key_name: None,
            monitoring: false,
            metadata: MetadataOptions::default(),
            block_devices: Vec::new(),
            base: None,
        }
    }

    /// Release `web` of that fleet on `listener_arn`: blue/green, 2 of 2–4 instances,
    /// 100 % healthy within 10 minutes, one retained fleet for an hour.
    pub fn release(image: &str, listener_arn: &str) -> ReleaseSpec {
        ReleaseSpec {
            name: "web".into(),
            fleet: fleet(image),
            capacity: Capacity {
                min: 2,
                max: 4,
                desired: 2,
            },
            listener_arn: listener_arn.into(),
            rule_arn: None,
            vpc_id: "vpc-1".into(),
            health: HealthSpec {
                min_healthy_percentage: 100,
                grace_period: Duration::from_secs(30),
                timeout: Duration::from_secs(600),
            },
            strategy: Strategy::BlueGreen,
            canary_steps: vec![],
            alarm_names: BTreeSet::new(),
            bake_time: Duration::ZERO,
            retain_fleets: 1,
            rollback_window: Duration::from_secs(3600),
            history_limit: 10,
            tags: BTreeMap::new(),
            timeouts: Timeouts::default(),
            scaling: Vec::new(),
            stickiness: None,
            analysis: None,
            notification: None,
            hold_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "a", "web-2", "abcdefghijklmnopqrstuvwx"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "2web",
            "web_2",
            "abcdefghijklmnopqrstuvwxy",
            "-web",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_ids() {
        assert!(check_image_id("ami-04681a1dbd79675a5").is_ok());
        assert!(check_image_id("ami-1234abcd").is_ok());
        for bad in [
            "ami-123",
            "ami-xyzxyzxy",
            "04681a1dbd79675a5",
            "ami-04681a1dbd79675a5a",
        ] {
            assert!(check_image_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rule_arns() {
        let listener = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2";
        let rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
        assert_eq!(check_rule_arn(listener, rule), Ok(()));
        for bad in [
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/0000000000000000/9683b2d02a6cabee",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/",
            listener,
            "rule",
        ] {
            assert!(check_rule_arn(listener, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listener_arns() {
        assert!(check_listener_arn(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"
        )
        .is_ok());
        assert!(check_listener_arn(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/1"
        )
        .is_err());
        assert!(check_listener_arn("listener").is_err());
    }

    #[test]
    fn capacity_rules() {
        assert!(check_capacity(1, Some(2), Some(3)).is_empty());
        assert!(check_capacity(0, Some(0), Some(0)).is_empty());
        assert_eq!(check_capacity(2, Some(1), Some(3))[0].0, "desired_capacity");
        assert_eq!(check_capacity(1, Some(4), Some(3))[0].0, "desired_capacity");
        assert_eq!(check_capacity(3, None, Some(2))[0].0, "max_size");
        assert_eq!(check_capacity(-1, None, None)[0].0, "min_size");
    }

    #[test]
    fn a_release_needs_room_for_one_more_target_group() {
        assert!(check_target_group_room(0, 1).is_ok());
        assert!(check_target_group_room(99, 1).is_ok());
        let e = check_target_group_room(100, 3).unwrap_err();
        assert!(e.contains("holds 100 target groups"), "{e}");
        assert!(e.contains("holds 5 at most (2 + retain_fleets)"), "{e}");
        assert!(check_target_group_room(130, 0).is_err());
    }

    #[test]
    fn fallback_instance_types_rules() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        for (fallbacks, says) in [
            (v(&[]), None),
            (v(&["t3a.micro", "m5.large"]), None),
            (v(&["t3.micro"]), Some("must not name instance_type")),
            (v(&["t3a.micro", "t3a.micro"]), Some("twice")),
            (v(&["large"]), Some("must be an EC2 instance type")),
            (v(&["t3 .micro"]), Some("must be an EC2 instance type")),
            (
                (0..10).map(|i| format!("m{i}.large")).collect(),
                Some("holds 10 types; at most 9"),
            ),
        ] {
            let errors = check_fallback_instance_types(Some("t3.micro"), &fallbacks);
            match says {
                None => assert!(errors.is_empty(), "{fallbacks:?}: {errors:?}"),
                Some(text) => assert!(
                    errors.len() == 1 && errors[0].contains(text),
                    "{fallbacks:?}: {errors:?}"
                ),
            }
        }
    }

    #[test]
    fn fallback_types_shape_the_fleet_and_leave_older_fingerprints_alone() {
        let a = examples::fleet("ami-1234abcd");
        let before = a.fingerprint();
        let mut b = a.clone();
        b.fallback_instance_types = vec!["t3a.micro".into()];
        assert_ne!(before, b.fingerprint(), "a fallback type is fleet-shaping");
        let mut c = b.clone();
        c.fallback_instance_types = vec!["m5.large".into(), "t3a.micro".into()];
        let mut d = b.clone();
        d.fallback_instance_types = vec!["t3a.micro".into(), "m5.large".into()];
        assert_ne!(c.fingerprint(), d.fingerprint(), "the order is a priority");
        assert!(a.matches(&before), "none set: the fingerprint of before");
    }

    #[test]
    fn canary_rules() {
        assert!(check_canary_steps(Strategy::Canary, &[10, 50]).is_empty());
        assert!(check_canary_steps(Strategy::BlueGreen, &[]).is_empty());
        assert_eq!(check_canary_steps(Strategy::Canary, &[]).len(), 1);
        assert_eq!(check_canary_steps(Strategy::BlueGreen, &[10]).len(), 1);
        assert_eq!(
            check_canary_steps(Strategy::Canary, &[50, 50])[0].0,
            Some(1)
        );
        assert_eq!(check_canary_steps(Strategy::Canary, &[0])[0].0, Some(0));
        assert_eq!(check_canary_steps(Strategy::Canary, &[100])[0].0, Some(0));
    }

    #[test]
    fn fingerprint_tracks_fleet_shape_only() {
        let a = FleetSpec {
            user_data: Some("#!/bin/sh".into()),
            ..examples::fleet("ami-1234abcd")
        };
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.image_id = "ami-abcd1234".into();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert!(a.matches(&a.fingerprint()) && !a.matches(&b.fingerprint()));
    }

    #[test]
    fn later_arguments_shape_a_fleet_only_when_set() {
        let a = examples::fleet("ami-1234abcd");
        let v1 = a.fingerprint();
        // Defaults render as before: a fleet recorded before these arguments still matches.
        assert!(!a.canonical().contains("metadata_options"));
        type Change = Box<dyn Fn(&mut FleetSpec)>;
        let changes: Vec<(&str, Change)> = vec![
            ("key_name", Box::new(|f| f.key_name = Some("ops".into()))),
            ("monitoring", Box::new(|f| f.monitoring = true)),
            (
                "IMDSv1 allowed",
                Box::new(|f| f.metadata.http_tokens = "optional".into()),
            ),
            (
                "hop limit",
                Box::new(|f| f.metadata.http_put_response_hop_limit = 1),
            ),
            (
                "base launch template",
                Box::new(|f| {
                    f.base = Some(BaseTemplate {
                        id: "lt-0123456789abcdef0".into(),
                        version: 3,
                    })
                }),
            ),
            (
                "another version of it",
                Box::new(|f| {
                    f.base = Some(BaseTemplate {
                        id: "lt-0123456789abcdef0".into(),
                        version: 4,
                    })
                }),
            ),
            (
                "root volume",
                Box::new(|f| {
                    f.block_devices.push(BlockDevice {
                        device_name: "/dev/xvda".into(),
                        volume_size: Some(30),
                        volume_type: "gp3".into(),
                        iops: None,
                        throughput: None,
                        encrypted: true,
                        kms_key_id: None,
                        delete_on_termination: true,
                    })
                }),
            ),
        ];
        let mut seen = std::collections::BTreeSet::from([v1.clone()]);
        for (what, change) in changes {
            let mut b = a.clone();
            change(&mut b);
            assert!(!b.matches(&v1), "{what} is fleet-shaping");
            assert!(b.matches(&b.fingerprint()), "{what}");
            assert!(
                seen.insert(b.fingerprint()),
                "{what}: a fingerprint of its own"
            );
        }
    }

    #[test]
    fn block_devices_and_metadata_options_are_checked_as_aws_takes_them() {
        let gp3 = BlockDevice {
            device_name: "/dev/xvda".into(),
            volume_size: Some(30),
            volume_type: "gp3".into(),
            iops: None,
            throughput: None,
            encrypted: true,
            kms_key_id: None,
            delete_on_termination: true,
        };
        let attrs = |d: BlockDevice| -> Vec<&'static str> {
            check_block_device(&d).into_iter().map(|(a, _)| a).collect()
        };
        let with = |f: &dyn Fn(&mut BlockDevice)| {
            let mut d = gp3.clone();
            f(&mut d);
            d
        };
        let cases: Vec<(&str, BlockDevice, Vec<&str>)> = vec![
            ("gp3, 30 GiB, encrypted", gp3.clone(), vec![]),
            (
                "gp3 with IOPS and throughput",
                with(&|d| {
                    d.iops = Some(4000);
                    d.throughput = Some(250)
                }),
                vec![],
            ),
            (
                "io2 with IOPS",
                with(&|d| {
                    d.volume_type = "io2".into();
                    d.iops = Some(10000)
                }),
                vec![],
            ),
            (
                "unknown type",
                with(&|d| d.volume_type = "gp4".into()),
                vec!["volume_type"],
            ),
            (
                "0 GiB",
                with(&|d| d.volume_size = Some(0)),
                vec!["volume_size"],
            ),
            (
                "st1 below 125 GiB",
                with(&|d| d.volume_type = "st1".into()),
                vec!["volume_size"],
            ),
            (
                "standard above 1 TiB",
                with(&|d| {
                    d.volume_type = "standard".into();
                    d.volume_size = Some(2000)
                }),
                vec!["volume_size"],
            ),
            (
                "IOPS on gp2",
                with(&|d| {
                    d.volume_type = "gp2".into();
                    d.iops = Some(3000)
                }),
                vec!["iops"],
            ),
            (
                "io1 without IOPS",
                with(&|d| d.volume_type = "io1".into()),
                vec!["volume_type"],
            ),
            (
                "gp3 IOPS too low",
                with(&|d| d.iops = Some(100)),
                vec!["iops"],
            ),
            (
                "throughput on io2",
                with(&|d| {
                    d.volume_type = "io2".into();
                    d.iops = Some(1000);
                    d.throughput = Some(500)
                }),
                vec!["throughput"],
            ),
            (
                "gp3 throughput too high",
                with(&|d| d.throughput = Some(2000)),
                vec!["throughput"],
            ),
            (
                "a key on a plain volume",
                with(&|d| {
                    d.encrypted = false;
                    d.kms_key_id = Some("alias/ebs".into())
                }),
                vec!["kms_key_id"],
            ),
            (
                "no device name",
                with(&|d| d.device_name = " ".into()),
                vec!["device_name"],
            ),
        ];
        for (what, d, want) in cases {
            assert_eq!(attrs(d), want, "{what}");
        }
        assert!(check_metadata_options(&MetadataOptions::default()).is_empty());
        let bad = MetadataOptions {
            http_tokens: "v2".into(),
            http_put_response_hop_limit: 65,
            http_endpoint: "on".into(),
            instance_metadata_tags: "yes".into(),
        };
        let got: Vec<&str> = check_metadata_options(&bad)
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        assert_eq!(
            got,
            vec![
                "http_tokens",
                "http_endpoint",
                "instance_metadata_tags",
                "http_put_response_hop_limit"
            ]
        );
    }

    fn recorded_by_0_1_0() -> FleetSpec {
        FleetSpec {
            image_id: "ami-04681a1dbd79675a5".into(),
            instance_type: "t3.micro".into(),
            fallback_instance_types: Vec::new(),
            subnet_ids: ["subnet-b".to_string(), "subnet-a".to_string()].into(),
            security_group_ids: ["sg-1".to_string()].into(),
            iam_instance_profile: Some("web".into()),
            user_data: Some("#!/bin/sh\necho \"hi\"\n".into()),
            instance_tags: [("role".to_string(), "web".to_string())].into(),
            target_group: TargetGroupSpec {
                port: 8080,
                protocol: "HTTP".into(),
                health_check: HealthCheckSpec::default(),
                deregistration_delay: 30,
            },
            key_name: None,
            monitoring: false,
            metadata: MetadataOptions::default(),
            block_devices: Vec::new(),
            base: None,
        }
    }

    /// The fingerprint is a fixed rendering, not the compiler's: this exact value must
    /// never change (a retained fleet recorded with it must stay a rollback target).
    #[test]
    fn fingerprint_is_a_fixed_versioned_rendering() {
        let f = recorded_by_0_1_0();
        assert_eq!(f.fingerprint(), "v1:".to_string() + &fnv1a(&f.canonical()));
        assert_eq!(
            f.canonical().lines().next(),
            Some("image_id=\"ami-04681a1dbd79675a5\"")
        );
        assert!(f
            .canonical()
            .contains("subnet_ids=[\"subnet-a\",\"subnet-b\"]"));
        assert!(f
            .canonical()
            .contains("user_data=\"#!/bin/sh\\necho \\\"hi\\\"\\n\""));
        // Pinned: changing the rendering breaks every recorded fleet.
        assert_eq!(f.fingerprint(), PINNED_V1);
    }

    /// What provider 0.1.0 recorded for [`recorded_by_0_1_0`].
    const PINNED_LEGACY: &str = "583f00ffbf463bdd";

    /// Computed once with this rendering; see the test above.
    const PINNED_V1: &str = "v1:4f70c0b4e7ae6dbd";

    /// Records written by provider 0.1.0 (a bare hash of the derived debug rendering) still
    /// match: the hand-written legacy rendering is exactly what the derive printed.
    #[test]
    fn records_written_by_0_1_0_still_match() {
        let f = recorded_by_0_1_0();
        // What 0.1.0 computed: FNV-1a of `format!("{:?}", fleet)` with its fields (pinned:
        // `FleetSpec` has more fields now).
        let legacy = fnv1a(&f.legacy_rendering());
        assert_eq!(legacy, PINNED_LEGACY);
        assert!(f.matches(&legacy));
        let mut other = f.clone();
        other.image_id = "ami-0000000b".into();
        assert!(!other.matches(&legacy));
        // 0.1.0's fleets had none of the later arguments: one set is another fleet; the
        // defaults (IMDSv2 required included) are the same fleet.
        let mut keyed = f.clone();
        keyed.key_name = Some("ops".into());
        assert!(!keyed.matches(&legacy));
        assert_eq!(f.metadata, MetadataOptions::default());
        assert!(
            !f.matches("v2:0123456789abcdef"),
            "an unknown version is no match"
        );
    }

    #[test]
    fn target_tracking_checks_as_a_table() {
        let p = |metric: &str, target_value: f64| TargetTracking {
            metric: metric.into(),
            target_value,
            disable_scale_in: false,
        };
        type Case = (
            &'static str,
            Vec<TargetTracking>,
            Vec<(usize, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            ("none", vec![], vec![]),
            (
                "every metric once",
                SCALING_METRICS.iter().map(|m| p(m, 50.0)).collect(),
                vec![],
            ),
            (
                "a metric AWS lacks",
                vec![p("CPU", 50.0)],
                vec![(0, "predefined_metric")],
            ),
            (
                "a metric twice",
                vec![p(REQUEST_COUNT, 500.0), p(REQUEST_COUNT, 800.0)],
                vec![(1, "predefined_metric")],
            ),
            (
                "a target of zero",
                vec![p(REQUEST_COUNT, 0.0)],
                vec![(0, "target_value")],
            ),
            (
                "a negative target",
                vec![p(REQUEST_COUNT, -1.0)],
                vec![(0, "target_value")],
            ),
            (
                "not a number",
                vec![p(REQUEST_COUNT, f64::NAN)],
                vec![(0, "target_value")],
            ),
            (
                "CPU beyond 100 %",
                vec![p("ASGAverageCPUUtilization", 120.0)],
                vec![(0, "target_value")],
            ),
            (
                "requests beyond 100 are fine",
                vec![p(REQUEST_COUNT, 1000.0)],
                vec![],
            ),
            (
                "six blocks",
                (0..6).map(|i| p(SCALING_METRICS[i % 4], 50.0)).collect(),
                vec![
                    (5, "predefined_metric"),
                    (4, "predefined_metric"),
                    (5, "predefined_metric"),
                ],
            ),
        ];
        for (what, policies, want) in cases {
            let got: Vec<(usize, &str)> = check_target_tracking(&policies)
                .into_iter()
                .map(|(i, a, e)| {
                    assert!(e.contains("target_tracking"), "{what}: {e}");
                    (i, a)
                })
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn launch_template_checks() {
        for (id, ok) in [
            ("lt-0123456789abcdef0", true),
            ("lt-01234567", true),
            ("lt-0123456789ABCDEF0", true),
            ("lt-xyz", false),
            ("web-base", false),
            ("", false),
            ("lt-0123456789abcdef", false),
        ] {
            assert_eq!(check_launch_template_id(id).is_ok(), ok, "{id}");
        }
        for (v, ok) in [
            ("$Latest", true),
            ("$Default", true),
            ("1", true),
            ("42", true),
            ("0", false),
            ("-1", false),
            ("+3", false),
            ("latest", false),
            ("", false),
        ] {
            assert_eq!(check_launch_template_version(v).is_ok(), ok, "{v}");
        }
    }

    #[test]
    fn matchers_as_an_alb_takes_them() {
        for (m, ok) in [
            ("200", true),
            ("200,202", true),
            ("200-299", true),
            ("499", true),
            ("302", true),
            ("199", false),
            ("500", false),
            ("200-199", false),
            ("200-200", false),
            ("200,", false),
            ("", false),
            ("2xx", false),
            ("200-299,302", false),
            ("0-99", false),
        ] {
            assert_eq!(check_matcher(m).is_ok(), ok, "{m:?}");
        }
        assert!(check_matcher("500")
            .unwrap_err()
            .contains("from 200 to 499"));
    }

    #[test]
    fn tag_counts_within_what_aws_holds() {
        let n = |count: usize, prefix: &str| -> BTreeMap<String, String> {
            (0..count)
                .map(|i| (format!("{prefix}{i}"), "v".into()))
                .collect()
        };
        assert!(check_tag_counts(&n(45, "t"), &BTreeMap::new()).is_empty());
        let e = check_tag_counts(&n(46, "t"), &BTreeMap::new());
        assert_eq!(e[0].0, "tags", "{e:?}");
        assert!(e[0].1.contains("at most 45 tags"), "{e:?}");
        // 40 + 6 distinct instance tags + 4 = 50: fine; one more is not.
        assert!(check_tag_counts(&n(40, "t"), &n(6, "i")).is_empty());
        let e = check_tag_counts(&n(40, "t"), &n(7, "i"));
        assert_eq!(e, vec![("instance_tags", "the instances would carry 51 tags (tags and instance_tags, and the provider's 4): AWS allows 50".to_string())]);
        // A key in both counts once.
        assert!(check_tag_counts(&n(40, "t"), &n(7, "t")).is_empty());
    }
}
