//! The resource's Terraform value, its defaults, its validation (with attribute paths) and
//! its translation into the domain [`ReleaseSpec`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use crate::spec::{
    self, CanaryStep, Capacity, FleetSpec, HealthCheckSpec, HealthSpec, ReleaseSpec, Strategy,
    TargetGroupSpec, Timeouts,
};

type Str = Value<String>;
type Num = Value<i64>;
/// A set of strings as the configuration gave it: each element known or unknown (a subnet
/// made in the same apply is unknown at plan). Terraform requires the planned value to keep
/// every element the configuration gave, so elements are never merged or dropped: a `Vec`,
/// because two unknown elements are distinct members of a set.
type StrSet = Value<Vec<Str>>;
/// A map of strings whose values may each be unknown, for the same reason.
type StrMap = Value<BTreeMap<String, Str>>;

/// The set's value when it and every element are known.
pub(crate) fn known_set(v: &StrSet) -> Option<BTreeSet<String>> {
    v.as_ref_option()?.iter().map(known).collect()
}

/// The map's value when it and every value are known.
pub(crate) fn known_map(v: &StrMap) -> Option<BTreeMap<String, String>> {
    v.as_ref_option()?
        .iter()
        .map(|(k, v)| Some((k.clone(), known(v)?)))
        .collect()
}

/// The set's value when known; an empty one when null (its default); None while any part
/// of it is unknown.
fn known_set_or_empty(v: &StrSet) -> Option<BTreeSet<String>> {
    match v {
        Value::Null => Some(BTreeSet::new()),
        v => known_set(v),
    }
}

/// The map's value when known; an empty one when null; None while any part is unknown.
fn known_map_or_empty(v: &StrMap) -> Option<BTreeMap<String, String>> {
    match v {
        Value::Null => Some(BTreeMap::new()),
        v => known_map(v),
    }
}

/// A known set value.
#[cfg(test)]
fn set_value<I: IntoIterator<Item = String>>(items: I) -> StrSet {
    Value::Value(items.into_iter().map(Value::Value).collect())
}

/// The known elements of a set (unknown ones are checked when they are known).
fn known_elements(v: &StrSet) -> impl Iterator<Item = &String> {
    v.as_ref_option()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_ref_option())
}

/// `load_balancer.health_check`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheckBlock {
    pub path: Str,
    pub port: Str,
    pub protocol: Str,
    pub interval: Num,
    pub timeout: Num,
    pub healthy_threshold: Num,
    pub unhealthy_threshold: Num,
    pub matcher: Str,
}

/// `load_balancer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadBalancerBlock {
    pub listener_arn: Str,
    pub rule_arn: Str,
    pub vpc_id: Str,
    pub port: Num,
    pub protocol: Str,
    #[serde(with = "super::one_block")]
    pub health_check: Value<HealthCheckBlock>,
    pub deregistration_delay: Num,
    #[serde(with = "super::one_block")]
    pub stickiness: Value<StickinessBlock>,
}

/// `holding` (read-only): the release held part-way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HoldingBlock {
    pub fleet_name: Str,
    pub image_id: Str,
    pub weight: Num,
    pub since: Str,
}

/// `notification`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationBlock {
    pub sns_topic_arn: Str,
    pub events: StrSet,
}

impl NotificationBlock {
    /// The spec; Err while a part is unknown.
    pub fn spec(&self) -> Result<crate::notify::NotificationSpec, String> {
        let topic =
            known(&self.sns_topic_arn).ok_or_else(|| unknown("notification.sns_topic_arn"))?;
        let events =
            known_set_or_empty(&self.events).ok_or_else(|| unknown("notification.events"))?;
        Ok(crate::notify::NotificationSpec {
            sns_topic_arn: topic,
            events: events
                .iter()
                .filter_map(|e| crate::notify::Event::parse(e))
                .collect(),
        })
    }
}

/// `analysis`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisBlock {
    pub interval: Str,
    pub failure_limit: Num,
    #[serde(with = "super::one_block")]
    pub error_rate: Value<ErrorRateBlock>,
    #[serde(with = "super::one_block")]
    pub latency: Value<LatencyBlock>,
    pub metric: Value<Vec<MetricBlock>>,
}

/// `analysis.error_rate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorRateBlock {
    pub max: Value<f64>,
    pub max_increase: Value<f64>,
    pub min_requests: Num,
}

/// `analysis.latency`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencyBlock {
    pub statistic: Str,
    pub max: Str,
    pub max_increase: Str,
}

/// One `analysis.metric`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricBlock {
    pub name: Str,
    pub namespace: Str,
    pub metric_name: Str,
    pub dimensions: StrMap,
    pub statistic: Str,
    pub max: Value<f64>,
    pub min: Value<f64>,
}

fn unknown(what: &str) -> String {
    format!("{what} is not known yet")
}

impl AnalysisBlock {
    /// The domain value; Err(what is unknown, or a duration that does not parse).
    pub fn spec(&self) -> Result<crate::analysis::AnalysisSpec, String> {
        use crate::analysis::*;
        let d = |v: &Str, at: &str| -> Result<Option<Duration>, String> {
            match v {
                Value::Value(s) => crate::duration::parse(s)
                    .map(Some)
                    .map_err(|e| format!("{at}: {e}")),
                Value::Null => Ok(None),
                Value::Unknown => Err(unknown(at)),
            }
        };
        let f = |v: &Value<f64>, at: &str| -> Result<Option<f64>, String> {
            match v {
                Value::Value(x) => Ok(Some(*x)),
                Value::Null => Ok(None),
                Value::Unknown => Err(unknown(at)),
            }
        };
        let error_rate = match &self.error_rate {
            Value::Value(e) => Some(ErrorRate {
                max: f(&e.max, "analysis.error_rate.max")?,
                max_increase: f(&e.max_increase, "analysis.error_rate.max_increase")?,
                min_requests: known_or(&e.min_requests, 100)
                    .ok_or_else(|| unknown("analysis.error_rate.min_requests"))?
                    .max(0) as u64,
            }),
            Value::Null => None,
            Value::Unknown => return Err(unknown("analysis.error_rate")),
        };
        let latency = match &self.latency {
            Value::Value(l) => Some(Latency {
                statistic: known_or(&l.statistic, "p99".to_string())
                    .ok_or_else(|| unknown("analysis.latency.statistic"))?,
                max: d(&l.max, "analysis.latency.max")?,
                max_increase: d(&l.max_increase, "analysis.latency.max_increase")?,
            }),
            Value::Null => None,
            Value::Unknown => return Err(unknown("analysis.latency")),
        };
        let mut metrics = Vec::new();
        for m in self.metric.as_ref_option().into_iter().flatten() {
            let s = |v: &Str, at: &str| known(v).ok_or_else(|| unknown(at));
            metrics.push(MetricCheck {
                name: s(&m.name, "analysis.metric.name")?,
                namespace: s(&m.namespace, "analysis.metric.namespace")?,
                metric_name: s(&m.metric_name, "analysis.metric.metric_name")?,
                dimensions: known_map_or_empty(&m.dimensions)
                    .ok_or_else(|| unknown("analysis.metric.dimensions"))?,
                statistic: s(&m.statistic, "analysis.metric.statistic")?,
                max: f(&m.max, "analysis.metric.max")?,
                min: f(&m.min, "analysis.metric.min")?,
            });
        }
        Ok(AnalysisSpec {
            interval: d(&self.interval, "analysis.interval")?.unwrap_or(Duration::from_secs(60)),
            failure_limit: known_or(&self.failure_limit, 0)
                .ok_or_else(|| unknown("analysis.failure_limit"))?
                .max(0) as u32,
            error_rate,
            latency,
            metrics,
        })
    }
}

/// `load_balancer.stickiness`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StickinessBlock {
    pub duration: Str,
}

/// `metadata_options`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetadataOptionsBlock {
    pub http_tokens: Str,
    pub http_put_response_hop_limit: Num,
    pub http_endpoint: Str,
    pub instance_metadata_tags: Str,
}

/// One `block_device`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockDeviceBlock {
    pub device_name: Str,
    pub volume_size: Num,
    pub volume_type: Str,
    pub iops: Num,
    pub throughput: Num,
    pub encrypted: Value<bool>,
    pub kms_key_id: Str,
    pub delete_on_termination: Value<bool>,
}

impl BlockDeviceBlock {
    /// The domain value, defaults applied; None while any part is unknown.
    fn spec(&self) -> Option<spec::BlockDevice> {
        Some(spec::BlockDevice {
            device_name: known(&self.device_name)?,
            volume_size: known_opt(&self.volume_size)?,
            volume_type: known_or(&self.volume_type, "gp3".into())?,
            iops: known_opt(&self.iops)?,
            throughput: known_opt(&self.throughput)?,
            encrypted: known_or(&self.encrypted, true)?,
            kms_key_id: known_opt(&self.kms_key_id)?,
            delete_on_termination: known_or(&self.delete_on_termination, true)?,
        })
    }
}

impl MetadataOptionsBlock {
    /// The domain value, defaults (IMDSv2 required, hop limit 2) applied; None while any
    /// part is unknown.
    fn spec(&self) -> Option<spec::MetadataOptions> {
        let d = spec::MetadataOptions::default();
        Some(spec::MetadataOptions {
            http_tokens: known_or(&self.http_tokens, d.http_tokens)?,
            http_put_response_hop_limit: known_or(
                &self.http_put_response_hop_limit,
                d.http_put_response_hop_limit,
            )?,
            http_endpoint: known_or(&self.http_endpoint, d.http_endpoint)?,
            instance_metadata_tags: known_or(
                &self.instance_metadata_tags,
                d.instance_metadata_tags,
            )?,
        })
    }
}

/// `health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthBlock {
    pub min_healthy_percentage: Num,
    pub grace_period: Str,
    pub timeout: Str,
}

/// `canary_step`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryStepBlock {
    pub weight: Num,
    pub pause: Str,
}

/// `launch_template`: the user's template every fleet's template starts from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchTemplateBlock {
    pub id: Str,
    pub version: Str,
    /// Computed at plan: the number `version` resolves to.
    pub resolved_version: Num,
}

/// One `target_tracking`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetTrackingBlock {
    pub predefined_metric: Str,
    pub target_value: Value<f64>,
    pub disable_scale_in: Value<bool>,
}

impl TargetTrackingBlock {
    /// The domain value; None while any part is unknown.
    pub fn spec(&self) -> Option<spec::TargetTracking> {
        Some(spec::TargetTracking {
            metric: known(&self.predefined_metric)?,
            target_value: known(&self.target_value)?,
            disable_scale_in: known_or(&self.disable_scale_in, false)?,
        })
    }
}

/// `timeouts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeoutsBlock {
    pub create: Str,
    pub update: Str,
    pub delete: Str,
}

/// One `history` element.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryItem {
    pub release: Num,
    pub image_id: Str,
    pub fleet_name: Str,
    pub status: Str,
    pub started_at: Str,
    pub finished_at: Str,
    pub reason: Str,
}

/// The whole `immutable_release` value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleaseState {
    pub id: Str,
    pub name: Str,
    pub image_id: Str,
    pub instance_type: Str,
    /// A list: the order is a priority.
    pub fallback_instance_types: StrSet,
    pub subnet_ids: StrSet,
    pub security_group_ids: StrSet,
    pub iam_instance_profile: Str,
    pub user_data: Str,
    pub instance_tags: StrMap,
    pub key_name: Str,
    pub monitoring: Value<bool>,
    #[serde(with = "super::one_block")]
    pub metadata_options: Value<MetadataOptionsBlock>,
    #[serde(with = "super::one_block")]
    pub launch_template: Value<LaunchTemplateBlock>,
    pub block_device: Value<Vec<BlockDeviceBlock>>,
    pub min_size: Num,
    pub max_size: Num,
    pub desired_capacity: Num,
    pub load_balancer: Value<LoadBalancerBlock>,
    #[serde(with = "super::one_block")]
    pub health: Value<HealthBlock>,
    pub strategy: Str,
    pub canary_step: Value<Vec<CanaryStepBlock>>,
    pub target_tracking: Value<Vec<TargetTrackingBlock>>,
    pub alarm_names: StrSet,
    #[serde(with = "super::one_block")]
    pub analysis: Value<AnalysisBlock>,
    #[serde(with = "super::one_block")]
    pub notification: Value<NotificationBlock>,
    pub hold_at: Num,
    pub bake_time: Str,
    pub retain_fleets: Num,
    pub rollback_window: Str,
    pub history_limit: Num,
    pub tags: StrMap,
    #[serde(with = "super::one_block")]
    pub timeouts: Value<TimeoutsBlock>,
    // Read-only.
    pub release: Num,
    pub fleet_name: Str,
    pub target_group_arn: Str,
    pub launch_template_id: Str,
    pub previous_image_id: Str,
    pub traffic: Value<BTreeMap<String, i64>>,
    pub history: Value<Vec<HistoryItem>>,
    pub holding: Value<HoldingBlock>,
    pub planned_steps: StrSet,
    pub planned_duration: Str,
}

fn or<T: Clone>(v: &Value<T>, default: T) -> Value<T> {
    match v {
        Value::Null => Value::Value(default),
        other => other.clone(),
    }
}

fn path(steps: &[&'static str]) -> AttributePath {
    let mut p = AttributePath::new(steps[0]);
    for s in &steps[1..] {
        p = p.attribute(*s);
    }
    p
}

/// `a.b[2].c` as Terraform's attribute path.
fn dotted_path(at: &str) -> AttributePath {
    let mut out: Option<AttributePath> = None;
    for part in at.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<i64>().ok()),
            None => (part, None),
        };
        let name = name.to_string();
        let mut p = match out {
            None => AttributePath::new(name),
            Some(p) => p.attribute(name),
        };
        if let Some(i) = index {
            p = p.index(i);
        }
        out = Some(p);
    }
    out.unwrap_or_else(|| AttributePath::new("analysis"))
}

fn known<T: Clone>(v: &Value<T>) -> Option<T> {
    v.as_ref_option().cloned()
}

/// The value, or `default` when null; None while unknown.
fn known_or<T: Clone>(v: &Value<T>, default: T) -> Option<T> {
    match v {
        Value::Value(x) => Some(x.clone()),
        Value::Null => Some(default),
        Value::Unknown => None,
    }
}

/// Some(the value) or Some(None) when null; None while unknown.
fn known_opt<T: Clone>(v: &Value<T>) -> Option<Option<T>> {
    match v {
        Value::Value(x) => Some(Some(x.clone())),
        Value::Null => Some(None),
        Value::Unknown => None,
    }
}

impl ReleaseState {
    /// The planned value from the configuration: static defaults filled in for what the user
    /// left out (so that removing an argument goes back to its default), `desired_capacity`
    /// carried over from `prior` when unset, `max_size` = max(min, desired) when unset.
    pub fn with_defaults(config: &ReleaseState, prior: Option<&ReleaseState>) -> ReleaseState {
        let mut p = config.clone();
        p.id = config.name.clone();
        p.security_group_ids = or(&config.security_group_ids, Vec::new());
        p.instance_tags = or(&config.instance_tags, BTreeMap::new());
        p.min_size = or(&config.min_size, 1);
        p.strategy = or(&config.strategy, "blue_green".into());
        p.alarm_names = or(&config.alarm_names, Vec::new());
        p.bake_time = or(&config.bake_time, "0s".into());
        p.retain_fleets = or(&config.retain_fleets, 1);
        p.rollback_window = or(&config.rollback_window, "1h".into());
        p.history_limit = or(&config.history_limit, 10);
        p.tags = or(&config.tags, BTreeMap::new());
        if let Value::Value(lb) = &mut p.load_balancer {
            lb.port = or(&lb.port, 80);
            lb.protocol = or(&lb.protocol, "HTTP".into());
            lb.deregistration_delay = or(&lb.deregistration_delay, 30);
            if let Value::Value(hc) = &mut lb.health_check {
                let d = HealthCheckSpec::default();
                hc.path = or(&hc.path, d.path);
                hc.port = or(&hc.port, d.port);
                hc.protocol = or(&hc.protocol, d.protocol);
                hc.interval = or(&hc.interval, d.interval);
                hc.timeout = or(&hc.timeout, d.timeout);
                hc.healthy_threshold = or(&hc.healthy_threshold, d.healthy_threshold);
                hc.unhealthy_threshold = or(&hc.unhealthy_threshold, d.unhealthy_threshold);
                hc.matcher = or(&hc.matcher, d.matcher);
            }
        }
        if let Value::Value(h) = &mut p.health {
            h.min_healthy_percentage = or(&h.min_healthy_percentage, 100);
            h.grace_period = or(&h.grace_period, "30s".into());
            h.timeout = or(&h.timeout, "10m".into());
        }
        if let Value::Value(steps) = &mut p.canary_step {
            for s in steps.iter_mut() {
                s.pause = or(&s.pause, "0s".into());
            }
        }
        if let Value::Value(lt) = &mut p.launch_template {
            lt.version = or(&lt.version, "$Default".into());
        }
        if let Value::Value(policies) = &mut p.target_tracking {
            for t in policies.iter_mut() {
                t.disable_scale_in = or(&t.disable_scale_in, false);
            }
        }
        if config.desired_capacity.is_null() {
            p.desired_capacity = match prior.map(|s| &s.desired_capacity) {
                Some(Value::Value(d)) => Value::Value(*d),
                _ => p.min_size,
            };
        }
        if config.max_size.is_null() {
            p.max_size = match (&p.min_size, &p.desired_capacity) {
                (Value::Value(a), Value::Value(b)) => Value::Value(*a.max(b)),
                _ => Value::Unknown,
            };
        }
        p
    }

    /// Copies the read-only attributes from another value (e.g. prior state).
    pub fn copy_read_only(&mut self, from: &ReleaseState) {
        self.release = from.release;
        self.fleet_name = from.fleet_name.clone();
        self.target_group_arn = from.target_group_arn.clone();
        self.launch_template_id = from.launch_template_id.clone();
        self.previous_image_id = from.previous_image_id.clone();
        self.traffic = from.traffic.clone();
        self.history = from.history.clone();
        self.holding = from.holding.clone();
        self.planned_steps = from.planned_steps.clone();
        self.planned_duration = from.planned_duration.clone();
    }

    /// Sets `planned_steps` and `planned_duration` from a list of steps.
    pub fn set_planned(&mut self, steps: Option<&[crate::steps::Step]>) {
        match steps {
            Some(steps) => {
                self.planned_steps =
                    Value::Value(steps.iter().map(|s| Value::Value(s.to_string())).collect());
                self.planned_duration =
                    Value::Value(crate::duration::format(crate::steps::least_duration(steps)));
            }
            None => {
                self.planned_steps = Value::Unknown;
                self.planned_duration = Value::Unknown;
            }
        }
    }

    /// Marks the read-only attributes unknown (a release is planned).
    pub fn unknown_read_only(&mut self) {
        self.holding = Value::Unknown;
        self.release = Value::Unknown;
        self.fleet_name = Value::Unknown;
        self.target_group_arn = Value::Unknown;
        self.launch_template_id = Value::Unknown;
        self.previous_image_id = Value::Unknown;
        self.traffic = Value::Unknown;
        self.history = Value::Unknown;
    }

    /// The fleet-shaping part, when it is all known.
    pub fn fleet_spec(&self) -> Option<FleetSpec> {
        let lb = self.load_balancer.as_ref_option()?;
        let hc = match &lb.health_check {
            Value::Value(hc) => HealthCheckSpec {
                path: known(&hc.path)?,
                port: known(&hc.port)?,
                protocol: known(&hc.protocol)?,
                interval: known(&hc.interval)?,
                timeout: known(&hc.timeout)?,
                healthy_threshold: known(&hc.healthy_threshold)?,
                unhealthy_threshold: known(&hc.unhealthy_threshold)?,
                matcher: known(&hc.matcher)?,
            },
            Value::Null => HealthCheckSpec::default(),
            Value::Unknown => return None,
        };
        Some(FleetSpec {
            image_id: known(&self.image_id)?,
            instance_type: known(&self.instance_type)?,
            fallback_instance_types: match &self.fallback_instance_types {
                Value::Null => Vec::new(),
                v => v
                    .as_ref_option()?
                    .iter()
                    .map(known)
                    .collect::<Option<_>>()?,
            },
            subnet_ids: known_set(&self.subnet_ids)?,
            security_group_ids: known_set_or_empty(&self.security_group_ids)?,
            iam_instance_profile: known_opt(&self.iam_instance_profile)?,
            user_data: known_opt(&self.user_data)?,
            instance_tags: known_map_or_empty(&self.instance_tags)?,
            target_group: TargetGroupSpec {
                port: known(&lb.port).unwrap_or(80),
                protocol: known(&lb.protocol).unwrap_or_else(|| "HTTP".into()),
                health_check: hc,
                deregistration_delay: known(&lb.deregistration_delay).unwrap_or(30),
            },
            key_name: known_opt(&self.key_name)?,
            monitoring: known_or(&self.monitoring, false)?,
            metadata: match &self.metadata_options {
                Value::Value(m) => m.spec()?,
                Value::Null => spec::MetadataOptions::default(),
                Value::Unknown => return None,
            },
            block_devices: match &self.block_device {
                Value::Value(list) => list
                    .iter()
                    .map(BlockDeviceBlock::spec)
                    .collect::<Option<_>>()?,
                Value::Null => Vec::new(),
                Value::Unknown => return None,
            },
            base: match &self.launch_template {
                Value::Value(b) => Some(spec::BaseTemplate {
                    id: known(&b.id)?,
                    version: known(&b.resolved_version)?,
                }),
                Value::Null => None,
                Value::Unknown => return None,
            },
        })
    }

    /// The capacity, when known.
    pub fn capacity(&self) -> Option<Capacity> {
        Some(Capacity {
            min: known(&self.min_size)?,
            max: known(&self.max_size)?,
            desired: known(&self.desired_capacity)?,
        })
    }

    /// The domain spec of a fully known planned value (defaults applied), with the
    /// provider's default tags merged under the release's own.
    pub fn to_spec(&self, default_tags: &BTreeMap<String, String>) -> Result<ReleaseSpec, String> {
        let fleet = self
            .fleet_spec()
            .ok_or_else(|| unknown("a fleet-shaping argument"))?;
        let lb = self
            .load_balancer
            .as_ref_option()
            .ok_or_else(|| unknown("load_balancer"))?;
        let dur = |v: &Str, default: Duration| -> Result<Duration, String> {
            match v {
                Value::Value(s) => crate::duration::parse(s),
                _ => Ok(default),
            }
        };
        let health = match &self.health {
            Value::Value(h) => HealthSpec {
                min_healthy_percentage: known(&h.min_healthy_percentage).unwrap_or(100),
                grace_period: dur(&h.grace_period, Duration::from_secs(30))?,
                timeout: dur(&h.timeout, Duration::from_secs(600))?,
            },
            _ => HealthSpec::default(),
        };
        let timeouts = match &self.timeouts {
            Value::Value(t) => {
                let d = Timeouts::default();
                Timeouts {
                    create: dur(&t.create, d.create)?,
                    update: dur(&t.update, d.update)?,
                    delete: dur(&t.delete, d.delete)?,
                }
            }
            _ => Timeouts::default(),
        };
        let mut canary_steps = Vec::new();
        for s in self.canary_step.as_ref_option().into_iter().flatten() {
            canary_steps.push(CanaryStep {
                weight: known(&s.weight).ok_or_else(|| unknown("canary_step.weight"))? as u8,
                pause: dur(&s.pause, Duration::ZERO)?,
            });
        }
        let mut scaling = Vec::new();
        for t in self.target_tracking.as_ref_option().into_iter().flatten() {
            scaling.push(t.spec().ok_or_else(|| unknown("target_tracking"))?);
        }
        let mut tags = default_tags.clone();
        tags.extend(known_map_or_empty(&self.tags).ok_or_else(|| unknown("tags"))?);
        // With default_tags merged: AWS's 50 tags per object.
        if let Some((_, e)) = spec::check_tag_counts(&tags, &fleet.instance_tags)
            .into_iter()
            .next()
        {
            return Err(e);
        }
        Ok(ReleaseSpec {
            name: known(&self.name).ok_or_else(|| unknown("name"))?,
            fleet,
            capacity: self.capacity().ok_or_else(|| unknown("capacity"))?,
            listener_arn: known(&lb.listener_arn).ok_or_else(|| unknown("listener_arn"))?,
            rule_arn: match &lb.rule_arn {
                Value::Unknown => return Err(unknown("rule_arn")),
                other => known(other),
            },
            vpc_id: known(&lb.vpc_id).ok_or_else(|| unknown("vpc_id"))?,
            health,
            strategy: Strategy::parse(
                &known(&self.strategy).unwrap_or_else(|| "blue_green".into()),
            )?,
            canary_steps,
            alarm_names: known_set_or_empty(&self.alarm_names)
                .ok_or_else(|| unknown("alarm_names"))?,
            bake_time: dur(&self.bake_time, Duration::ZERO)?,
            retain_fleets: known(&self.retain_fleets).unwrap_or(1),
            rollback_window: dur(&self.rollback_window, Duration::from_secs(3600))?,
            analysis: match &self.analysis {
                Value::Value(a) => Some(a.spec()?),
                Value::Null => None,
                Value::Unknown => return Err(unknown("analysis")),
            },
            hold_at: known(&self.hold_at),
            notification: match &self.notification {
                Value::Value(n) => Some(n.spec()?),
                Value::Null => None,
                Value::Unknown => return Err(unknown("notification")),
            },
            stickiness: match &lb.stickiness {
                Value::Value(st) => match &st.duration {
                    Value::Value(d) => Some(
                        crate::duration::parse(d)
                            .map_err(|e| format!("load_balancer.stickiness.duration: {e}"))?,
                    ),
                    Value::Unknown => return Err(unknown("load_balancer.stickiness")),
                    Value::Null => None,
                },
                Value::Unknown => return Err(unknown("load_balancer.stickiness")),
                Value::Null => None,
            },
            history_limit: known(&self.history_limit).unwrap_or(10),
            tags,
            timeouts,
            scaling,
        })
    }

    /// Every rule of the contract's argument table that can be checked without AWS; known
    /// values only (unknown ones are checked again when they are known, at apply's plan).
    pub fn validate(&self, diags: &mut Diagnostics) {
        let mut fail = |p: AttributePath, msg: String| {
            diags.error("Invalid argument", msg, p);
        };
        self.validate_fleet(&mut fail);
        self.validate_launch_settings(&mut fail);
        self.validate_scaling(&mut fail);
        self.validate_load_balancer(&mut fail);
        self.validate_health(&mut fail);
        self.validate_strategy(&mut fail);
        self.validate_durations(&mut fail);
        self.validate_record(&mut fail);
        self.validate_analysis(&mut fail);
        self.validate_notification(&mut fail);
        self.validate_hold_at(&mut fail);
    }

    /// `hold_at`: 0, or with `canary` one of the step weights (not 100: that is the end).
    fn validate_hold_at(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        let Value::Value(h) = self.hold_at else {
            return;
        };
        if h == 0 {
            return;
        }
        let canary = known(&self.strategy).as_deref() == Some("canary");
        let weights: Option<Vec<i64>> = match &self.canary_step {
            Value::Value(steps) => steps.iter().map(|s| known(&s.weight)).collect(),
            Value::Null => Some(Vec::new()),
            Value::Unknown => None,
        };
        let Some(weights) = weights else {
            return;
        };
        if !canary {
            fail(
                path(&["hold_at"]),
                format!("hold_at must be 0 with strategy \"blue_green\" (held launched and healthy, before the switch); got {h}"),
            );
        } else if !weights.contains(&h) || h >= 100 {
            let listed: Vec<String> = weights
                .iter()
                .filter(|w| **w < 100)
                .map(|w| w.to_string())
                .collect();
            fail(
                path(&["hold_at"]),
                format!(
                    "hold_at must be 0 or one of the canary_step weights ({}); got {h}",
                    listed.join(", ")
                ),
            );
        }
    }

    /// `notification`: an SNS topic ARN, known events.
    fn validate_notification(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        let Value::Value(n) = &self.notification else {
            return;
        };
        let topic = known(&n.sns_topic_arn);
        let events: Vec<String> = known_set(&n.events)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (at, e) in crate::notify::check(
            topic
                .as_deref()
                .unwrap_or("arn:aws:sns:x:000000000000:known-later"),
            &events,
        ) {
            fail(path(&["notification", at]), e);
        }
    }

    /// `analysis`: each check as CloudWatch takes it, and something to judge (checked once
    /// every part of it is known).
    fn validate_analysis(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        let Value::Value(a) = &self.analysis else {
            return;
        };
        match a.spec() {
            Ok(spec) => {
                for (at, e) in crate::analysis::check(&spec) {
                    fail(dotted_path(&at), e);
                }
            }
            Err(e) if e.ends_with("is not known yet") => {}
            Err(e) => {
                let at = e.split(':').next().unwrap_or("analysis").to_string();
                fail(dotted_path(&at), e);
            }
        }
    }

    /// The fleet's arguments: name, image, type, network, capacity, user data.
    fn validate_fleet(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        if let Value::Value(n) = &self.name {
            if let Err(e) = spec::check_name(n) {
                fail(path(&["name"]), e);
            }
        }
        if let Value::Value(i) = &self.image_id {
            if let Err(e) = spec::check_image_id(i) {
                fail(path(&["image_id"]), e);
            }
        }
        if let Value::Value(t) = &self.instance_type {
            if let Err(e) = spec::check_instance_type(t) {
                fail(path(&["instance_type"]), format!("instance_type {e}"));
            }
        }
        // Checked once every element is known (a type read from a data source is unknown
        // at the first plan).
        if let Value::Value(list) = &self.fallback_instance_types {
            if let Some(types) = list.iter().map(known).collect::<Option<Vec<_>>>() {
                for e in spec::check_fallback_instance_types(
                    self.instance_type.as_ref_option().map(String::as_str),
                    &types,
                ) {
                    fail(path(&["fallback_instance_types"]), e);
                }
            }
        }
        // An unknown element is checked once known; the count is known with the set.
        if let Value::Value(s) = &self.subnet_ids {
            if s.is_empty() {
                fail(
                    path(&["subnet_ids"]),
                    "subnet_ids must hold at least one subnet ID".into(),
                );
            }
        }
        for id in known_elements(&self.subnet_ids) {
            if let Err(e) = spec::check_subnet_id(id) {
                fail(path(&["subnet_ids"]), e);
            }
        }
        for id in known_elements(&self.security_group_ids) {
            if let Err(e) = spec::check_security_group_id(id) {
                fail(path(&["security_group_ids"]), e);
            }
        }
        if let Value::Value(min) = &self.min_size {
            for (attr, e) in
                spec::check_capacity(*min, known(&self.desired_capacity), known(&self.max_size))
            {
                fail(path(&[attr]), e);
            }
        } else if self.min_size.is_null() {
            for (attr, e) in
                spec::check_capacity(1, known(&self.desired_capacity), known(&self.max_size))
            {
                fail(path(&[attr]), e);
            }
        }
        // AWS caps a launch template's user data at 16 KB (before base64): a release
        // would otherwise fail at CreateLaunchTemplate.
        if let Value::Value(u) = &self.user_data {
            if u.len() > spec::MAX_USER_DATA {
                fail(
                    path(&["user_data"]),
                    format!(
                        "user_data is {} bytes; a launch template's user data may be at most {} bytes (16 KB, AWS's limit before base64): fetch a larger script from S3 in a short user_data instead",
                        u.len(),
                        spec::MAX_USER_DATA
                    ),
                );
            }
        }
        if self.desired_capacity == Value::Value(0) {
            fail(
                path(&["desired_capacity"]),
                "desired_capacity must be at least 1: a release's new fleet passes its health gate with instances serving; got 0".into(),
            );
        }
    }

    /// `key_name`, `metadata_options` and each `block_device` (checked once known).
    fn validate_launch_settings(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        if let Value::Value(lt) = &self.launch_template {
            if let Value::Value(id) = &lt.id {
                if let Err(e) = spec::check_launch_template_id(id) {
                    fail(path(&["launch_template", "id"]), e);
                }
            }
            if let Value::Value(v) = &lt.version {
                if let Err(e) = spec::check_launch_template_version(v) {
                    fail(path(&["launch_template", "version"]), e);
                }
            }
        }
        if let Value::Value(k) = &self.key_name {
            if k.trim().is_empty() || k.len() > 255 {
                fail(
                    path(&["key_name"]),
                    format!("key_name must name an EC2 key pair (1–255 characters); got {k:?}"),
                );
            }
        }
        if let Value::Value(m) = &self.metadata_options {
            if let Some(m) = m.spec() {
                for (attr, e) in spec::check_metadata_options(&m) {
                    fail(path(&["metadata_options", attr]), e);
                }
            }
        }
        if let Value::Value(devices) = &self.block_device {
            let mut names = BTreeSet::new();
            for (i, d) in devices.iter().enumerate() {
                let at = |attr: &'static str| {
                    AttributePath::new("block_device")
                        .index(i as i64)
                        .attribute(attr)
                };
                if let Some(d) = d.spec() {
                    for (attr, e) in spec::check_block_device(&d) {
                        fail(at(attr), e);
                    }
                    if !names.insert(d.device_name.clone()) {
                        fail(
                            at("device_name"),
                            format!(
                                "block_device.device_name {:?} is given twice; each device once",
                                d.device_name
                            ),
                        );
                    }
                }
            }
        }
    }

    /// `target_tracking`: the policies' metrics and targets, at most five (the known ones;
    /// an unknown block is checked once known).
    fn validate_scaling(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        let Value::Value(blocks) = &self.target_tracking else {
            return;
        };
        // With a block still unknown only the count is known; all is checked once known.
        let policies: Vec<spec::TargetTracking> = blocks
            .iter()
            .map(TargetTrackingBlock::spec)
            .collect::<Option<_>>()
            .unwrap_or_default();
        if policies.len() < blocks.len() {
            if blocks.len() > spec::MAX_SCALING_POLICIES {
                fail(
                    AttributePath::new("target_tracking")
                        .index(spec::MAX_SCALING_POLICIES as i64)
                        .attribute("predefined_metric"),
                    format!(
                        "target_tracking takes at most {} blocks; got {}",
                        spec::MAX_SCALING_POLICIES,
                        blocks.len()
                    ),
                );
            }
            return;
        }
        for (i, attr, e) in spec::check_target_tracking(&policies) {
            fail(
                AttributePath::new("target_tracking")
                    .index(i as i64)
                    .attribute(attr),
                e,
            );
        }
    }

    /// `load_balancer`: the route, the target group's settings and its health check.
    fn validate_load_balancer(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        if let Value::Value(lb) = &self.load_balancer {
            if let Value::Value(arn) = &lb.listener_arn {
                if let Err(e) = spec::check_listener_arn(arn) {
                    fail(path(&["load_balancer", "listener_arn"]), e);
                }
                if let Value::Value(rule) = &lb.rule_arn {
                    if let Err(e) = spec::check_rule_arn(arn, rule) {
                        fail(path(&["load_balancer", "rule_arn"]), e);
                    }
                }
            }
            if let Value::Value(v) = &lb.vpc_id {
                if let Err(e) = spec::check_vpc_id(v) {
                    fail(path(&["load_balancer", "vpc_id"]), e);
                }
            }
            if let Value::Value(p) = &lb.port {
                if let Err(e) = spec::check_range("load_balancer.port", *p, 1, 65535) {
                    fail(path(&["load_balancer", "port"]), e);
                }
            }
            if let Value::Value(p) = &lb.protocol {
                if p != "HTTP" && p != "HTTPS" {
                    fail(
                        path(&["load_balancer", "protocol"]),
                        format!("load_balancer.protocol must be \"HTTP\" or \"HTTPS\"; got {p:?}"),
                    );
                }
            }
            if let Value::Value(d) = &lb.deregistration_delay {
                if let Err(e) = spec::check_range("load_balancer.deregistration_delay", *d, 0, 3600)
                {
                    fail(path(&["load_balancer", "deregistration_delay"]), e);
                }
            }
            if let Value::Value(hc) = &lb.health_check {
                Self::validate_health_check(hc, fail);
            }
            if let Some(Value::Value(text)) = lb.stickiness.as_ref_option().map(|st| &st.duration) {
                let sp = |a: &'static str| path(&["load_balancer", "stickiness", a]);
                match spec::check_duration("load_balancer.stickiness.duration", text, None) {
                    Err(e) => fail(sp("duration"), e),
                    Ok(d) => {
                        // The window an unset rollback_window takes: 1h; unknown: later.
                        let window = match &self.rollback_window {
                            Value::Value(w) => crate::duration::parse(w).ok(),
                            Value::Null => Some(Duration::from_secs(3600)),
                            Value::Unknown => None,
                        };
                        for (attr, e) in spec::check_stickiness(d, window) {
                            if attr == "duration" {
                                fail(sp("duration"), e);
                            } else {
                                fail(path(&[attr]), e);
                            }
                        }
                    }
                }
            }
        }
    }

    /// `load_balancer.health_check`: ranges, and a timeout shorter than the interval.
    fn validate_health_check(hc: &HealthCheckBlock, fail: &mut dyn FnMut(AttributePath, String)) {
        let hp = |a: &'static str| path(&["load_balancer", "health_check", a]);
        for (attr, v, lo, hi) in [
            ("interval", &hc.interval, 5, 300),
            ("timeout", &hc.timeout, 2, 120),
            ("healthy_threshold", &hc.healthy_threshold, 2, 10),
            ("unhealthy_threshold", &hc.unhealthy_threshold, 2, 10),
        ] {
            if let Value::Value(n) = v {
                if let Err(e) =
                    spec::check_range(&format!("load_balancer.health_check.{attr}"), *n, lo, hi)
                {
                    fail(hp(attr), e);
                }
            }
        }
        // An unset one takes its default (timeout 5, interval 30); unknown: later.
        let defaults = crate::spec::HealthCheckSpec::default();
        let set_or = |v: &Num, d: i64| match v {
            Value::Value(x) => Some(*x),
            Value::Null => Some(d),
            _ => None,
        };
        if let (Some(t), Some(i)) = (
            set_or(&hc.timeout, defaults.timeout),
            set_or(&hc.interval, defaults.interval),
        ) {
            if t >= i {
                let (at, what) = if hc.timeout.is_null() {
                    ("interval", format!("load_balancer.health_check.interval ({i}) must be more than timeout ({t}, the default when unset)"))
                } else {
                    ("timeout", format!("load_balancer.health_check.timeout ({t}) must be less than interval ({i})"))
                };
                fail(hp(at), what);
            }
        }
        if let Value::Value(m) = &hc.matcher {
            if let Err(e) = spec::check_matcher(m) {
                fail(hp("matcher"), e);
            }
        }
        if let Value::Value(p) = &hc.path {
            if !p.starts_with('/') {
                fail(
                    hp("path"),
                    format!("load_balancer.health_check.path must start with \"/\"; got {p:?}"),
                );
            }
        }
        if let Value::Value(p) = &hc.protocol {
            if p != "HTTP" && p != "HTTPS" {
                fail(hp("protocol"), format!("load_balancer.health_check.protocol must be \"HTTP\" or \"HTTPS\"; got {p:?}"));
            }
        }
        if let Value::Value(p) = &hc.port {
            if p != "traffic-port" && !p.parse::<u16>().is_ok_and(|n| n > 0) {
                fail(hp("port"), format!("load_balancer.health_check.port must be \"traffic-port\" or a port number 1–65535; got {p:?}"));
            }
        }
    }

    /// `health`: the gate's share, grace period and timeout.
    fn validate_health(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        if let Value::Value(h) = &self.health {
            if let Value::Value(p) = &h.min_healthy_percentage {
                if let Err(e) = spec::check_range("health.min_healthy_percentage", *p, 1, 100) {
                    fail(path(&["health", "min_healthy_percentage"]), e);
                }
            }
            if let Value::Value(d) = &h.grace_period {
                if let Err(e) = spec::check_duration("health.grace_period", d, None) {
                    fail(path(&["health", "grace_period"]), e);
                }
            }
            if let Value::Value(d) = &h.timeout {
                if let Err(e) =
                    spec::check_duration("health.timeout", d, Some(Duration::from_secs(1)))
                {
                    fail(path(&["health", "timeout"]), e);
                }
            }
        }
    }

    /// `strategy` and `canary_step`.
    fn validate_strategy(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        let strategy = match &self.strategy {
            Value::Value(s) => match Strategy::parse(s) {
                Ok(s) => Some(s),
                Err(e) => {
                    fail(path(&["strategy"]), e);
                    None
                }
            },
            Value::Null => Some(Strategy::BlueGreen),
            Value::Unknown => None,
        };
        if let Value::Value(steps) = &self.canary_step {
            for (i, s) in steps.iter().enumerate() {
                if let Value::Value(p) = &s.pause {
                    if let Err(e) = spec::check_duration("canary_step.pause", p, None) {
                        fail(
                            AttributePath::new("canary_step")
                                .index(i as i64)
                                .attribute("pause"),
                            e,
                        );
                    }
                }
            }
            let weights: Option<Vec<i64>> = steps.iter().map(|s| known(&s.weight)).collect();
            if let (Some(strategy), Some(weights)) = (strategy, weights) {
                for (index, e) in spec::check_canary_steps(strategy, &weights) {
                    let p = match index {
                        Some(i) => AttributePath::new("canary_step")
                            .index(i as i64)
                            .attribute("weight"),
                        // The whole list: the first block when there is one, else `strategy`.
                        None if weights.is_empty() => path(&["strategy"]),
                        None => AttributePath::new("canary_step")
                            .index(0)
                            .attribute("weight"),
                    };
                    fail(p, e);
                }
            }
        } else if strategy == Some(Strategy::Canary) && self.canary_step.is_null() {
            for (_, e) in spec::check_canary_steps(Strategy::Canary, &[]) {
                fail(path(&["strategy"]), e);
            }
        }
    }

    /// `bake_time`, `rollback_window` and `timeouts`.
    fn validate_durations(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        // A retained fleet keeps its capacity for the window, then an Auto Scaling
        // scheduled action scales it to zero: shorter than a minute would retire a fleet
        // before a rollback could reach it.
        for (attr, v, at_least) in [
            ("bake_time", &self.bake_time, None),
            (
                "rollback_window",
                &self.rollback_window,
                Some(Duration::from_secs(60)),
            ),
        ] {
            if let Value::Value(d) = v {
                if let Err(e) = spec::check_duration(attr, d, at_least) {
                    fail(AttributePath::new(attr), e);
                }
            }
        }
        if let Value::Value(t) = &self.timeouts {
            for (attr, v) in [
                ("create", &t.create),
                ("update", &t.update),
                ("delete", &t.delete),
            ] {
                if let Value::Value(d) = v {
                    if let Err(e) = spec::check_duration(
                        &format!("timeouts.{attr}"),
                        d,
                        Some(Duration::from_secs(1)),
                    ) {
                        fail(AttributePath::new("timeouts").index(0).attribute(attr), e);
                    }
                }
            }
        }
    }

    /// What the record keeps: `retain_fleets`, `history_limit`, the user's `tags`.
    fn validate_record(&self, fail: &mut dyn FnMut(AttributePath, String)) {
        if let Value::Value(r) = &self.retain_fleets {
            if let Err(e) = spec::check_range("retain_fleets", *r, 0, 3) {
                fail(path(&["retain_fleets"]), format!("{e} (an ALB forward action holds at most 5 target groups: new + serving + 3 retained)"));
            }
        }
        if let Value::Value(h) = &self.history_limit {
            if let Err(e) = spec::check_range("history_limit", *h, 1, 100) {
                fail(path(&["history_limit"]), e);
            }
        }
        if let Value::Value(tags) = &self.tags {
            for k in tags.keys() {
                if k.starts_with("immutable:") {
                    fail(AttributePath::new("tags").key(k.clone()), format!("tag keys starting with \"immutable:\" are reserved for the provider's ownership tags; got {k:?}"));
                }
            }
        }
        // On the instances AWS lets the group's propagated tag win over the launch
        // template's: a key in both would silently lose its instance_tags value.
        if let (Value::Value(tags), Value::Value(inst)) = (&self.tags, &self.instance_tags) {
            // The same value in both is harmless (modules often do it); two known values
            // that differ would lose instance_tags' silently.
            for (k, v) in inst {
                if let (Value::Value(mine), Some(Value::Value(group))) = (v, tags.get(k)) {
                    if mine != group {
                        fail(
                            AttributePath::new("instance_tags").key(k.clone()),
                            format!("tag key {k:?} is in both tags ({group:?}) and instance_tags ({mine:?}): on the instances AWS puts the group's value (tags) over the launch template's (instance_tags); give it one value, or set it in one of them"),
                        );
                    }
                }
            }
            let keys = |m: &BTreeMap<String, Str>| -> BTreeMap<String, String> {
                m.keys().map(|k| (k.clone(), String::new())).collect()
            };
            for (attr, e) in spec::check_tag_counts(&keys(tags), &keys(inst)) {
                fail(path(&[attr]), e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> ReleaseState {
        ReleaseState {
            name: Value::Value("web".into()),
            image_id: Value::Value("ami-04681a1dbd79675a5".into()),
            instance_type: Value::Value("t3.micro".into()),
            subnet_ids: set_value(["subnet-abc".to_string()]),
            load_balancer: Value::Value(LoadBalancerBlock {
                listener_arn: Value::Value(
                    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2"
                        .into(),
                ),
                vpc_id: Value::Value("vpc-123".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn errors(s: &ReleaseState) -> Vec<String> {
        let mut d = Diagnostics::default();
        s.validate(&mut d);
        d.errors
            .iter()
            .map(|e| format!("{:?}", e.attribute))
            .collect()
    }

    #[test]
    fn minimal_config_is_valid_and_gets_defaults() {
        let s = minimal();
        assert!(errors(&s).is_empty());
        let p = ReleaseState::with_defaults(&s, None);
        assert_eq!(p.min_size, Value::Value(1));
        assert_eq!(p.desired_capacity, Value::Value(1));
        assert_eq!(p.max_size, Value::Value(1));
        let spec = p.to_spec(&BTreeMap::new()).unwrap();
        assert_eq!(spec.fleet.target_group.port, 80);
        assert_eq!(spec.strategy, Strategy::BlueGreen);
        assert_eq!(spec.health, HealthSpec::default());
    }

    #[test]
    fn desired_is_carried_over_when_unset() {
        let s = minimal();
        let mut prior = ReleaseState::with_defaults(&s, None);
        prior.desired_capacity = Value::Value(4);
        let mut c = s.clone();
        c.max_size = Value::Value(8);
        let p = ReleaseState::with_defaults(&c, Some(&prior));
        assert_eq!(p.desired_capacity, Value::Value(4));
    }

    /// The configuration as Terraform sends it (msgpack, unknown = extension 0) and the
    /// planned value as the provider returns it.
    fn plan_over_the_wire(config: &ReleaseState) -> ReleaseState {
        let wire = rmp_serde::to_vec_named(config).unwrap();
        let decoded: ReleaseState = rmp_serde::from_slice(&wire).unwrap();
        let planned = ReleaseState::with_defaults(&decoded, None);
        rmp_serde::from_slice(&rmp_serde::to_vec_named(&planned).unwrap()).unwrap()
    }

    #[test]
    fn unknown_elements_keep_the_configuration_shape() {
        // Subnets and a security group made in the same apply, a tag from another resource.
        let mut c = minimal();
        c.subnet_ids = Value::Value(vec![Value::Unknown, Value::Unknown]);
        c.security_group_ids = Value::Value(vec![Value::Value("sg-1".into()), Value::Unknown]);
        c.alarm_names = Value::Value(vec![Value::Unknown]);
        c.instance_tags = Value::Value(BTreeMap::from([
            ("role".to_string(), Value::Value("web".to_string())),
            ("vpc".to_string(), Value::Unknown),
        ]));
        c.tags = Value::Value(BTreeMap::from([("owner".to_string(), Value::Unknown)]));
        let p = plan_over_the_wire(&c);
        // Two unknown subnets stay two elements (they are distinct members of a set).
        assert_eq!(p.subnet_ids, c.subnet_ids);
        assert_eq!(p.security_group_ids, c.security_group_ids);
        assert_eq!(p.alarm_names, c.alarm_names);
        assert_eq!(p.instance_tags, c.instance_tags);
        assert_eq!(p.tags, c.tags);
        // Nothing that needs the values pretends to know them.
        assert_eq!(p.fleet_spec(), None);
        assert!(p.to_spec(&BTreeMap::new()).is_err());
        assert!(errors(&c).is_empty(), "{:?}", errors(&c));
    }

    #[test]
    fn known_elements_are_checked_while_others_are_unknown() {
        let mut c = minimal();
        c.subnet_ids = Value::Value(vec![Value::Unknown, Value::Value("net-1".into())]);
        c.security_group_ids = Value::Value(vec![Value::Unknown, Value::Value("1".into())]);
        let e = errors(&c);
        assert!(e.iter().any(|p| p.contains("subnet_ids")), "{e:?}");
        assert!(e.iter().any(|p| p.contains("security_group_ids")), "{e:?}");
        // An empty set is known to be empty.
        c.subnet_ids = Value::Value(vec![]);
        assert!(errors(&c).iter().any(|p| p.contains("subnet_ids")));
    }

    #[test]
    fn known_collections_read_as_before() {
        let mut c = minimal();
        c.security_group_ids = set_value(["sg-2".to_string(), "sg-1".to_string()]);
        let p = plan_over_the_wire(&c);
        let f = p.fleet_spec().unwrap();
        assert_eq!(
            f.security_group_ids,
            BTreeSet::from(["sg-1".to_string(), "sg-2".to_string()])
        );
        assert!(f.instance_tags.is_empty());
        // Unset collections plan as empty (optional + computed), as before.
        assert_eq!(p.alarm_names, Value::Value(vec![]));
        assert_eq!(known_map(&p.tags), Some(BTreeMap::new()));
    }

    #[test]
    fn bad_values_name_their_attribute() {
        let mut s = minimal();
        s.name = Value::Value("Web_1".into());
        s.strategy = Value::Value("canary".into());
        s.retain_fleets = Value::Value(4);
        s.rollback_window = Value::Value("30s".into());
        s.desired_capacity = Value::Value(0);
        s.max_size = Value::Value(2);
        s.user_data = Value::Value("#".repeat(16 * 1024 + 1));
        let e = errors(&s);
        assert!(e.iter().any(|p| p.contains("user_data")), "{e:?}");
        assert!(e.iter().any(|p| p.contains("rollback_window")), "{e:?}");
        assert!(e.iter().any(|p| p.contains("desired_capacity")), "{e:?}");
        assert!(e.iter().any(|p| p.contains("name")), "{e:?}");
        // A canary without steps is reported on `strategy` (there is no block to point at).
        assert!(e.iter().any(|p| p.contains("strategy")), "{e:?}");
        assert!(e.iter().any(|p| p.contains("retain_fleets")), "{e:?}");
        let mut fits = minimal();
        fits.user_data = Value::Value("#".repeat(16 * 1024));
        assert!(!errors(&fits).iter().any(|p| p.contains("user_data")));
    }
}
