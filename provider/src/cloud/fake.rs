//! An in-memory cloud for engine tests: target health follows a script, alarms and
//! failures are set by the test, and by default it behaves as AWS does where moto does not:
//! new instances are `Pending` for some reads, a just-made group, target group or launch
//! template is not seen by the next describe (eventual consistency), a deleted group is
//! `Delete in progress` for some reads (its name still taken), names are unique, and the
//! hard limits hold (5 target groups per forward, weights 0–999, user data 16 KB).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Alarms, BaseVersion, CloudError, CloudResult, Fleets, GroupRequest, GroupStatus, Images,
    InstanceStatus, LeaseRecord, LedgerStore, ListenerAction, Owned, Route, RouteState,
    ScalingPolicy, Snapshot, TargetGroupInfo, TargetHealth, Traffic,
};
use crate::ledger::Ledger;
use crate::spec::{Capacity, FleetSpec, TargetGroupSpec};

/// When a target group's targets report healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthScript {
    /// At once.
    Healthy,
    /// After this many target-health reads.
    AfterPolls(u32),
    /// Never.
    Never,
    /// Healthy for this many target-health reads, then unhealthy.
    HealthyForPolls(u32),
    /// Registered and being checked (`initial`) until this (tokio) instant, then healthy.
    RegisteringUntil(tokio::time::Instant),
    /// `unused` even when routed: the targets are in an Availability Zone the load balancer
    /// does not serve.
    ZoneNotServed,
}

#[derive(Debug, Default)]
struct State {
    /// Messages published: (topic, subject, message).
    published: Vec<(String, String, String)>,
    /// Publishing fails (the topic is gone, no permission).
    publish_fails: bool,
    next_id: u64,
    templates: BTreeMap<String, (String, BTreeMap<String, String>)>,
    user_data: BTreeMap<String, String>,
    target_groups: BTreeMap<String, TargetGroupInfo>,
    groups: BTreeMap<String, GroupStatus>,
    health_reads: BTreeMap<String, u32>,
    health: BTreeMap<String, HealthScript>,
    /// Routes: a listener's default actions (by listener ARN) or a user rule's actions (by
    /// rule ARN), in order; the last is the final action.
    listeners: BTreeMap<String, Vec<ListenerAction>>,
    /// Per route: the final forward's group stickiness in seconds (none: off). A write
    /// that leaves it out switches it off, as on AWS.
    sticky: BTreeMap<String, u64>,
    /// User rules: rule ARN → listener ARN.
    user_rules: BTreeMap<String, String>,
    images: BTreeMap<String, String>,
    alarms: BTreeSet<String>,
    /// Every alarm a test defined (by setting its state).
    defined_alarms: BTreeSet<String>,
    ledgers: BTreeMap<String, Ledger>,
    fail: BTreeMap<String, (u32, u32)>,
    calls: BTreeMap<String, u32>,
    listener_log: Vec<Vec<(String, i64)>>,
    schedules: BTreeMap<String, std::time::SystemTime>,
    failed_activities: BTreeMap<String, Vec<String>>,
    rules: BTreeMap<String, String>,
    /// Reads of groups a new instance stays `Pending` for (0: `InService` at once).
    pending_reads: u32,
    /// Describes a just-made object is not seen by (0: seen at once).
    visibility_reads: u32,
    /// Name, ARN or ID of a just-made object → describes left that do not see it.
    invisible: BTreeMap<String, u32>,
    /// Reads a deleted group stays `Delete in progress` for (0: gone at once).
    deletion_reads: u32,
    /// Group `Delete in progress` → reads left before it is gone.
    deleting: BTreeMap<String, u32>,
    /// Instance ID → reads left before it is `InService`.
    pending: BTreeMap<String, u32>,
    /// Ledgers whose latest version is not the provider's JSON.
    unreadable: BTreeSet<String>,
    /// Ledger name → its latest version number.
    ledger_versions: BTreeMap<String, i64>,
    /// Ledger name → (the version the store last read or wrote, a conflict was met).
    ledger_seen: BTreeMap<String, (i64, bool)>,
    /// Failed launches a group got past: group → messages.
    transient_failures: BTreeMap<String, Vec<String>>,
    /// action → (code, message, calls left to fail).
    fail_codes: BTreeMap<String, (String, String, u32)>,
    leases: BTreeMap<String, LeaseRecord>,
    /// Group → its scaling policies (gone with the group, as in AWS).
    policies: BTreeMap<String, Vec<ScalingPolicy>>,
    /// EC2 key pairs by name.
    key_pairs: BTreeSet<String>,
    /// The user's launch templates: ID → (default version, latest version).
    bases: BTreeMap<String, (i64, i64)>,
    /// A fleet's template name → the base template version it started from.
    template_bases: BTreeMap<String, (String, i64)>,
    /// (instance type, subnet) with no capacity: launches there fail with AWS's
    /// `InsufficientInstanceCapacity` message.
    no_capacity: BTreeSet<(String, String)>,
    /// Group → (its subnets, its types in priority order).
    placement: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// Instance ID → (type, subnet) it launched with.
    launched: BTreeMap<String, (String, String)>,
    /// Group → launches that failed for lack of capacity, newest first.
    capacity_failures: BTreeMap<String, Vec<String>>,
    /// Target groups of other services on the load balancer.
    foreign_target_groups: usize,
    /// Metric points: (namespace, metric name, dimensions) → values (every window sees
    /// them all: the fake has no time of its own).
    metrics: BTreeMap<(String, String, BTreeMap<String, String>), Vec<f64>>,
    /// Windows asked for by `GetMetricData`, in order.
    metric_windows: Vec<(std::time::SystemTime, std::time::SystemTime)>,
}

/// Reads of its group a new instance is `Pending` for, by default.
pub const DEFAULT_PENDING_READS: u32 = 2;
/// Describes that do not see a just-made object, by default.
pub const DEFAULT_VISIBILITY_READS: u32 = 1;
/// Reads a deleted group stays `Delete in progress` for, by default.
pub const DEFAULT_DELETION_READS: u32 = 2;

/// The fake cloud.
#[derive(Debug, Default)]
pub struct FakeCloud {
    state: Mutex<State>,
}

impl FakeCloud {
    /// A cloud with one listener answering a fixed 404 and one available image.
    pub fn new(listener_arn: &str, image_id: &str) -> Self {
        let fake = Self::default();
        {
            let mut s = fake.state.lock().unwrap();
            s.pending_reads = DEFAULT_PENDING_READS;
            s.visibility_reads = DEFAULT_VISIBILITY_READS;
            s.deletion_reads = DEFAULT_DELETION_READS;
            s.listeners.insert(
                listener_arn.into(),
                vec![ListenerAction::Fixed("404".into())],
            );
            s.images.insert(image_id.into(), "available".into());
        }
        fake
    }

    /// Makes an image available.
    pub fn add_image(&self, image_id: &str) {
        self.state
            .lock()
            .unwrap()
            .images
            .insert(image_id.into(), "available".into());
    }

    /// Scripts the health of the target group that a fleet name will get.
    pub fn script_health(&self, fleet_name: &str, script: HealthScript) {
        self.state
            .lock()
            .unwrap()
            .health
            .insert(fleet_name.into(), script);
    }

    /// A health-check rule made by an apply that was killed before it recorded it.
    pub fn add_unrecorded_rule(&self, token: &str, target_group_arn: &str) {
        let arn = format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/{token}"
        );
        self.state
            .lock()
            .unwrap()
            .rules
            .insert(arn, target_group_arn.into());
    }

    /// Sets or clears an alarm's ALARM state.
    pub fn set_alarm(&self, name: &str, firing: bool) {
        let mut s = self.state.lock().unwrap();
        s.defined_alarms.insert(name.into());
        if firing {
            s.alarms.insert(name.into());
        } else {
            s.alarms.remove(name);
        }
    }

    /// Makes the next `times` calls of `action` fail with a 500 (`InternalFailure`).
    pub fn fail(&self, action: &str, times: u32) {
        self.fail_with(action, "InternalFailure", "injected failure", times);
    }

    /// Lets `skip` calls of `action` through, then fails the next `times`.
    pub fn fail_after(&self, action: &str, skip: u32, times: u32) {
        self.state
            .lock()
            .unwrap()
            .fail
            .insert(action.into(), (skip, times));
    }

    /// How many times `action` was called.
    pub fn calls(&self, action: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(action)
            .copied()
            .unwrap_or(0)
    }

    /// An EC2 key pair.
    pub fn add_key_pair(&self, name: &str) {
        self.state.lock().unwrap().key_pairs.insert(name.into());
    }

    /// A launch template of the user's, with versions 1 to `latest`, `default` the default.
    pub fn add_base_template(&self, id: &str, default: i64, latest: i64) {
        self.state
            .lock()
            .unwrap()
            .bases
            .insert(id.into(), (default, latest));
    }

    /// The base template version a fleet's template started from.
    pub fn template_base(&self, fleet: &str) -> Option<(String, i64)> {
        self.state
            .lock()
            .unwrap()
            .template_bases
            .get(fleet)
            .cloned()
    }

    /// A group as it is now.
    pub fn group(&self, name: &str) -> Option<GroupStatus> {
        self.state.lock().unwrap().groups.get(name).cloned()
    }

    /// Names of the groups that exist.
    pub fn group_names(&self) -> Vec<String> {
        self.state.lock().unwrap().groups.keys().cloned().collect()
    }

    /// Deletes a group as someone in the console would (no call counted).
    pub fn delete_group_outside(&self, name: &str) {
        self.state.lock().unwrap().groups.remove(name);
    }

    /// The stored ledger of a release.
    pub fn ledger(&self, name: &str) -> Option<Ledger> {
        self.state.lock().unwrap().ledgers.get(name).cloned()
    }

    /// Names of the target groups that exist.
    pub fn target_group_names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .target_groups
            .values()
            .map(|t| t.name.clone())
            .collect()
    }

    /// Names of the launch templates that exist.
    pub fn template_names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .templates
            .keys()
            .cloned()
            .collect()
    }

    /// Writes a release's ledger as another apply would (a new version, unseen by this
    /// store's last read).
    pub fn write_ledger_outside(&self, ledger: &Ledger) {
        let mut s = self.state.lock().unwrap();
        s.ledgers.insert(ledger.name.clone(), ledger.clone());
        *s.ledger_versions.entry(ledger.name.clone()).or_default() += 1;
    }

    /// New instances stay `Pending` for this many reads of their group, as AWS's take a
    /// while to boot (0: `InService` at once; default [`DEFAULT_PENDING_READS`]).
    pub fn set_pending_reads(&self, reads: u32) {
        self.state.lock().unwrap().pending_reads = reads;
    }

    /// A just-made group, target group or launch template is not seen by this many
    /// describes of it (0: at once; default [`DEFAULT_VISIBILITY_READS`]).
    pub fn set_visibility_reads(&self, reads: u32) {
        self.state.lock().unwrap().visibility_reads = reads;
    }

    /// A deleted group stays `Delete in progress` for this many reads (0: gone at once;
    /// default [`DEFAULT_DELETION_READS`]).
    pub fn set_deletion_reads(&self, reads: u32) {
        self.state.lock().unwrap().deletion_reads = reads;
    }

    /// AWS's behaviour off: instances in service at once, objects seen at once, groups
    /// gone at once (for tests of exact call counts).
    pub fn plain(self) -> Self {
        {
            let mut s = self.state.lock().unwrap();
            s.pending_reads = 0;
            s.visibility_reads = 0;
            s.deletion_reads = 0;
        }
        self
    }

    /// Makes a release's ledger unreadable, as a hand writing a version of its own would.
    pub fn corrupt_ledger_outside(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.unreadable.insert(name.into());
        *s.ledger_versions.entry(name.into()).or_default() += 1;
    }

    /// Deletes a release's ledger, as a hand outside Terraform would.
    pub fn delete_ledger_outside(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.ledgers.remove(name);
        s.ledger_versions.remove(name);
        // As the next process finds it: nothing of it read before.
        s.ledger_seen.remove(name);
    }

    /// The tags of every group, target group and launch template: `group NAME`,
    /// `target group NAME`, `launch template NAME` → tags.
    pub fn all_tags(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let s = self.state.lock().unwrap();
        let mut out = BTreeMap::new();
        for (n, g) in &s.groups {
            out.insert(format!("group {n}"), g.tags.clone());
        }
        for t in s.target_groups.values() {
            out.insert(format!("target group {}", t.name), t.tags.clone());
        }
        for (n, (_, tags)) in &s.templates {
            out.insert(format!("launch template {n}"), tags.clone());
        }
        out
    }

    /// The final action of a route now (by listener or rule ARN).
    pub fn listener(&self, arn: &str) -> Option<ListenerAction> {
        self.route_actions(arn).and_then(|a| a.last().cloned())
    }

    /// The whole action list of a route now (by listener or rule ARN).
    pub fn route_actions(&self, arn: &str) -> Option<Vec<ListenerAction>> {
        self.state.lock().unwrap().listeners.get(arn).cloned()
    }

    /// Sets a route's whole action list, as a user's own Terraform would (by listener or
    /// rule ARN); front actions are given as `Other("authenticate-oidc")` and the like.
    pub fn set_route_actions(&self, arn: &str, actions: Vec<ListenerAction>) {
        self.state
            .lock()
            .unwrap()
            .listeners
            .insert(arn.into(), actions);
    }

    /// Adds a user rule to a listener, with these actions.
    pub fn add_user_rule(&self, listener_arn: &str, rule_arn: &str, actions: Vec<ListenerAction>) {
        let mut s = self.state.lock().unwrap();
        s.user_rules.insert(rule_arn.into(), listener_arn.into());
        s.listeners.insert(rule_arn.into(), actions);
    }

    /// The group stickiness of a route's final forward, in seconds (None: off).
    pub fn sticky(&self, key: &str) -> Option<u64> {
        self.state.lock().unwrap().sticky.get(key).copied()
    }

    /// Switches a route's stickiness off or on behind the provider's back.
    pub fn set_sticky_outside(&self, key: &str, sticky: Option<u64>) {
        let mut s = self.state.lock().unwrap();
        match sticky {
            Some(secs) => s.sticky.insert(key.into(), secs),
            None => s.sticky.remove(key),
        };
    }

    /// Every weighted forward ever set, in order.
    pub fn listener_log(&self) -> Vec<Vec<(String, i64)>> {
        self.state.lock().unwrap().listener_log.clone()
    }

    /// Makes a group's launches fail for good (e.g. an image that does not exist): it gets
    /// no instances, and as AWS retries, every read of its activities finds one more
    /// failure.
    pub fn fail_activity(&self, group: &str, message: &str) {
        self.state
            .lock()
            .unwrap()
            .failed_activities
            .entry(group.into())
            .or_default()
            .push(message.into());
    }

    /// Records failed launches of a group that AWS then gets past by itself (as with an
    /// instance profile made seconds ago): its instances launch all the same.
    pub fn fail_activity_transient(&self, group: &str, message: &str, times: usize) {
        self.state
            .lock()
            .unwrap()
            .transient_failures
            .insert(group.into(), vec![message.to_string(); times]);
    }

    /// Takes away (or gives back) the capacity of one instance type in one subnet's zone:
    /// launches there fail as AWS's do (`InsufficientInstanceCapacity`), and the group
    /// launches in its other zones and types meanwhile; each read of its activities finds
    /// AWS's next try.
    pub fn set_capacity_out(&self, instance_type: &str, subnet: &str, out: bool) {
        let key = (instance_type.to_string(), subnet.to_string());
        let mut s = self.state.lock().unwrap();
        if out {
            s.no_capacity.insert(key);
        } else {
            s.no_capacity.remove(&key);
        }
    }

    /// The (instance type, subnet) of each instance a group has.
    pub fn placements(&self, group: &str) -> Vec<(String, String)> {
        let s = self.state.lock().unwrap();
        s.groups
            .get(group)
            .map(|g| {
                g.instances
                    .iter()
                    .filter_map(|i| s.launched.get(&i.id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Makes the next `times` calls of `action` fail with AWS's `code` and `message`.
    pub fn fail_with(&self, action: &str, code: &str, message: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .fail_codes
            .insert(action.into(), (code.into(), message.into(), times));
    }

    /// Listener rules that exist: rule ARN → target group ARN.
    pub fn rules(&self) -> BTreeMap<String, String> {
        self.state.lock().unwrap().rules.clone()
    }

    /// The scale-to-zero schedule of a group, if any.
    pub fn schedule(&self, group: &str) -> Option<std::time::SystemTime> {
        self.state.lock().unwrap().schedules.get(group).copied()
    }

    /// The messages published so far: (topic, subject, message).
    pub fn published(&self) -> Vec<(String, String, String)> {
        self.state.lock().unwrap().published.clone()
    }

    /// Publishing fails from now on (as for a topic deleted or not allowed).
    pub fn fail_publishing(&self) {
        self.state.lock().unwrap().publish_fails = true;
    }

    /// Puts metric points (`PutMetricData`): every later window sees them.
    pub fn put_metric(&self, namespace: &str, metric: &str, dims: &[(&str, &str)], values: &[f64]) {
        let key = (
            namespace.to_string(),
            metric.to_string(),
            dims.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self.state
            .lock()
            .unwrap()
            .metrics
            .entry(key)
            .or_default()
            .extend_from_slice(values);
    }

    /// Forgets every metric point.
    pub fn clear_metrics(&self) {
        self.state.lock().unwrap().metrics.clear();
    }

    /// The windows `GetMetricData` was asked for, in order.
    pub fn metric_windows(&self) -> Vec<(std::time::SystemTime, std::time::SystemTime)> {
        self.state.lock().unwrap().metric_windows.clone()
    }

    /// Puts `n` target groups of other services on the load balancer.
    pub fn add_foreign_target_groups(&self, n: usize) {
        self.state.lock().unwrap().foreign_target_groups += n;
    }

    /// A service running before any release: group `group` of `desired` instances behind
    /// target group `target_group_arn`, to which the listener forwards all traffic.
    pub fn add_running_service(
        &self,
        listener_arn: &str,
        group: &str,
        target_group_arn: &str,
        desired: i64,
    ) {
        let mut s = self.state.lock().unwrap();
        s.groups.insert(
            group.into(),
            GroupStatus {
                name: group.into(),
                capacity: Capacity {
                    min: desired,
                    max: desired,
                    desired,
                },
                instances: vec![],
                tags: BTreeMap::new(),
                target_group_arns: vec![target_group_arn.into()],
                launch_template: None,
                deleting: false,
            },
        );
        s.listeners.insert(
            listener_arn.into(),
            vec![ListenerAction::Forward(vec![(target_group_arn.into(), 1)])],
        );
    }

    /// Adds a group that the release does not own.
    pub fn add_foreign_group(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.groups.insert(
            name.into(),
            GroupStatus {
                name: name.into(),
                capacity: Capacity {
                    min: 0,
                    max: 0,
                    desired: 0,
                },
                instances: vec![],
                tags: BTreeMap::new(),
                target_group_arns: vec![],
                launch_template: None,
                deleting: false,
            },
        );
    }

    fn call(&self, action: &str) -> CloudResult<std::sync::MutexGuard<'_, State>> {
        let mut s = self.state.lock().unwrap();
        *s.calls.entry(action.into()).or_default() += 1;
        if let Some((code, message, n)) = s.fail_codes.get_mut(action) {
            if *n > 0 {
                *n -= 1;
                return Err(CloudError::Api {
                    action: action.into(),
                    code: code.clone(),
                    message: message.clone(),
                });
            }
        }
        if let Some((skip, n)) = s.fail.get_mut(action) {
            if *skip > 0 {
                *skip -= 1;
            } else if *n > 0 {
                *n -= 1;
                return Err(CloudError::Api {
                    action: action.into(),
                    code: "InternalFailure".into(),
                    message: "injected failure".into(),
                });
            }
        }
        Ok(s)
    }
}

fn launch(s: &mut State, group: &str, desired: i64) {
    // A group whose launches fail (see `fail_activity`) gets no instances.
    if s.failed_activities.contains_key(group) {
        return;
    }
    let Some(g) = s.groups.get(group) else { return };
    let mut instances = g.instances.clone();
    let template = g.launch_template.clone();
    while (instances.len() as i64) < desired {
        let Some(placed) = place(s, group, &instances) else {
            break;
        };
        s.next_id += 1;
        let id = format!("i-{:08x}", s.next_id);
        if let Some(p) = placed {
            s.launched.insert(id.clone(), p);
        }
        // As AWS: `Pending` for a while, when the test asks for it.
        let state = if s.pending_reads > 0 {
            s.pending.insert(id.clone(), s.pending_reads);
            "Pending"
        } else {
            "InService"
        };
        instances.push(InstanceStatus {
            id,
            lifecycle_state: state.into(),
            health_status: "Healthy".into(),
            launch_template: template.clone(),
        });
    }
    instances.truncate(desired.max(0) as usize);
    s.groups.get_mut(group).unwrap().instances = instances;
}

/// Where the group's next instance launches, as AWS chooses: the first of its types that
/// has capacity in one of its subnets, in the subnet with the fewest of its instances.
/// Every zone it finds out of capacity on the way is a failed launch, as AWS records one.
/// None: no type has capacity anywhere (AWS tries again later); Some(None): a group with
/// no placement known (one the release does not own).
fn place(
    s: &mut State,
    group: &str,
    instances: &[InstanceStatus],
) -> Option<Option<(String, String)>> {
    let Some((subnets, types)) = s.placement.get(group).cloned() else {
        return Some(None);
    };
    let subnets = if subnets.is_empty() {
        vec!["subnet-default".to_string()]
    } else {
        subnets
    };
    let count = |s: &State, subnet: &str| {
        instances
            .iter()
            .filter(|i| s.launched.get(&i.id).is_some_and(|(_, n)| n == subnet))
            .count()
    };
    for ty in &types {
        // The balanced choice first, as AWS: the subnet with the fewest instances.
        let mut order = subnets.clone();
        order.sort_by_key(|n| count(s, n));
        for subnet in &order {
            if !s.no_capacity.contains(&(ty.clone(), subnet.clone())) {
                return Some(Some((ty.clone(), subnet.clone())));
            }
            let others: Vec<String> = order
                .iter()
                .filter(|n| *n != subnet)
                .map(|n| fake_zone(&subnets, n))
                .collect();
            let message = format!(
                "We currently do not have sufficient {ty} capacity in the Availability Zone you requested ({}). Our system will be working on provisioning additional capacity. You can currently get {ty} capacity by not specifying an Availability Zone in your request or choosing {}. Launching EC2 instance failed. (Launching a new EC2 instance)",
                fake_zone(&subnets, subnet),
                others.join(", ")
            );
            s.capacity_failures
                .entry(group.to_string())
                .or_default()
                .insert(0, message);
        }
    }
    None
}

/// The fake's name of a subnet's zone: `us-east-1a` for the group's first subnet, and so on.
fn fake_zone(subnets: &[String], subnet: &str) -> String {
    let i = subnets.iter().position(|n| n == subnet).unwrap_or(0);
    format!("us-east-1{}", (b'a' + (i % 26) as u8) as char)
}

#[async_trait]
impl Fleets for FakeCloud {
    async fn resolve_launch_template(&self, id: &str, version: &str) -> CloudResult<BaseVersion> {
        let s = self.call("DescribeLaunchTemplateVersions")?;
        let Some((default, latest)) = s.bases.get(id).copied() else {
            return Ok(BaseVersion::NoTemplate);
        };
        Ok(match version {
            "$Latest" => BaseVersion::Number(latest),
            "$Default" => BaseVersion::Number(default),
            n => match n.parse::<i64>() {
                Ok(n) if (1..=latest).contains(&n) => BaseVersion::Number(n),
                _ => BaseVersion::NoVersion,
            },
        })
    }

    async fn create_launch_template(
        &self,
        name: &str,
        spec: &FleetSpec,
        tags: &BTreeMap<String, String>,
        _instance_tags: &BTreeMap<String, String>,
    ) -> CloudResult<(String, i64)> {
        let mut s = self.call("CreateLaunchTemplate")?;
        // As EC2: names are unique in a region.
        if s.templates.contains_key(name) {
            return Err(CloudError::Api {
                action: "CreateLaunchTemplate".into(),
                code: "InvalidLaunchTemplateName.AlreadyExistsException".into(),
                message: format!("Launch template name already in use: {name}"),
            });
        }
        if let Some(ud) = spec.user_data.as_ref().filter(|u| u.len() > 16384) {
            return Err(CloudError::Api {
                action: "CreateLaunchTemplate".into(),
                code: "InvalidParameterValue".into(),
                message: format!("User data is limited to 16384 bytes; {} given", ud.len()),
            });
        }
        if let Some(b) = &spec.base {
            // As EC2: the base version is read, and must exist.
            let exists = s.bases.get(&b.id).is_some_and(|(_, l)| b.version <= *l);
            if !exists {
                return Err(CloudError::Api {
                    action: "DescribeLaunchTemplateVersions".into(),
                    code: "InvalidLaunchTemplateId.VersionNotFound".into(),
                    message: format!("no version {} of launch template {}", b.version, b.id),
                });
            }
            s.template_bases
                .insert(name.into(), (b.id.clone(), b.version));
        }
        s.next_id += 1;
        let id = format!("lt-{:08x}", s.next_id);
        s.made(&[name, &id]);
        if let Some(ud) = &spec.user_data {
            s.user_data.insert(id.clone(), ud.clone());
        }
        s.templates.insert(name.into(), (id.clone(), tags.clone()));
        Ok((id, 1))
    }

    async fn find_launch_template(
        &self,
        name: &str,
    ) -> CloudResult<Option<(String, BTreeMap<String, String>)>> {
        let mut s = self.call("DescribeLaunchTemplates")?;
        if s.unseen(name) {
            return Ok(None);
        }
        Ok(s.templates.get(name).cloned())
    }

    async fn launch_template_user_data(
        &self,
        id: &str,
        _version: i64,
    ) -> CloudResult<Option<String>> {
        let mut s = self.call("DescribeLaunchTemplateVersions")?;
        if s.unseen(id) {
            return Err(CloudError::Api {
                action: "DescribeLaunchTemplateVersions".into(),
                code: "InvalidLaunchTemplateId.NotFound".into(),
                message: format!(
                    "The specified launch template, with template ID {id}, does not exist."
                ),
            });
        }
        Ok(s.user_data.get(id).cloned())
    }

    async fn delete_launch_template(&self, name: &str) -> CloudResult<()> {
        let mut s = self.call("DeleteLaunchTemplate")?;
        s.templates.remove(name);
        Ok(())
    }

    async fn create_target_group(
        &self,
        name: &str,
        _vpc_id: &str,
        _spec: &TargetGroupSpec,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<String> {
        let mut s = self.call("CreateTargetGroup")?;
        // As ELBv2: a name is unique in a region (the fake's settings never match another's).
        if s.target_groups.values().any(|t| t.name == name) {
            return Err(CloudError::Api {
                action: "CreateTargetGroup".into(),
                code: "DuplicateTargetGroupName".into(),
                message: format!("A target group with the same name '{name}' exists, but with different settings"),
            });
        }
        let arn =
            format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/0001");
        s.made(&[name, &arn]);
        s.target_groups.insert(
            arn.clone(),
            TargetGroupInfo {
                arn: arn.clone(),
                name: name.into(),
                tags: tags.clone(),
            },
        );
        Ok(arn)
    }

    async fn find_target_group(&self, name: &str) -> CloudResult<Option<TargetGroupInfo>> {
        let mut s = self.call("DescribeTargetGroups")?;
        if s.unseen(name) {
            return Ok(None);
        }
        Ok(s.target_groups.values().find(|t| t.name == name).cloned())
    }

    async fn delete_target_group(&self, arn: &str) -> CloudResult<()> {
        let mut s = self.call("DeleteTargetGroup")?;
        let in_use = routed(&s, arn);
        if in_use {
            return Err(CloudError::Api {
                action: "DeleteTargetGroup".into(),
                code: "ResourceInUse".into(),
                message: format!(
                    "Target group '{arn}' is currently in use by a listener or a rule"
                ),
            });
        }
        s.target_groups.remove(arn);
        Ok(())
    }

    async fn create_group(&self, r: &GroupRequest) -> CloudResult<()> {
        let mut s = self.call("CreateAutoScalingGroup")?;
        if s.groups.contains_key(&r.name) {
            return Err(CloudError::Api {
                action: "CreateAutoScalingGroup".into(),
                code: "AlreadyExists".into(),
                message: r.name.clone(),
            });
        }
        s.groups.insert(
            r.name.clone(),
            GroupStatus {
                name: r.name.clone(),
                capacity: r.capacity,
                instances: vec![],
                tags: r.tags.clone(),
                target_group_arns: vec![r.target_group_arn.clone()],
                launch_template: Some((
                    r.launch_template.0.clone(),
                    r.launch_template.1.to_string(),
                )),
                deleting: false,
            },
        );
        s.placement.insert(
            r.name.clone(),
            (r.subnet_ids.clone(), r.instance_types.clone()),
        );
        launch(&mut s, &r.name, r.capacity.desired);
        s.made(&[&r.name]);
        Ok(())
    }

    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<GroupStatus>> {
        let mut s = self.call("DescribeAutoScalingGroups")?;
        // Every read brings each `Pending` instance one read closer to `InService`.
        let mut done = Vec::new();
        for (id, left) in s.pending.iter_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                done.push(id.clone());
            }
        }
        for id in done {
            s.pending.remove(&id);
            for g in s.groups.values_mut() {
                for i in g.instances.iter_mut().filter(|i| i.id == id) {
                    i.lifecycle_state = "InService".into();
                }
            }
        }
        s.advance_deletions();
        let mut out = Vec::new();
        for n in names {
            if !s.unseen(n) {
                out.extend(s.groups.get(n).cloned());
            }
        }
        Ok(out)
    }

    async fn groups_behind(&self, target_group_arns: &[String]) -> CloudResult<Vec<GroupStatus>> {
        let s = self.call("DescribeAutoScalingGroups")?;
        Ok(s.groups
            .values()
            .filter(|g| {
                g.target_group_arns
                    .iter()
                    .any(|a| target_group_arns.contains(a))
            })
            .cloned()
            .collect())
    }

    async fn groups_of_release(&self, release_name: &str) -> CloudResult<Vec<GroupStatus>> {
        let mut s = self.call("DescribeAutoScalingGroups")?;
        s.advance_deletions();
        Ok(s.groups
            .values()
            .filter(|g| {
                g.tags
                    .get(crate::naming::TAG_RELEASE_NAME)
                    .map(String::as_str)
                    == Some(release_name)
            })
            .cloned()
            .collect())
    }

    async fn set_capacity(&self, name: &str, capacity: Capacity) -> CloudResult<()> {
        let mut s = self.call("UpdateAutoScalingGroup")?;
        if let Some(g) = s.groups.get_mut(name) {
            g.capacity = capacity;
        }
        launch(&mut s, name, capacity.desired);
        Ok(())
    }

    async fn tag_group(&self, name: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        let mut s = self.call("CreateOrUpdateTags")?;
        if let Some(g) = s.groups.get_mut(name) {
            g.tags.extend(tags.clone());
        }
        Ok(())
    }

    async fn retag(
        &self,
        object: &Owned,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> CloudResult<()> {
        let mut s = self.call("Retag")?;
        let tags = match object {
            Owned::Group(name) => s.groups.get_mut(name).map(|g| &mut g.tags),
            Owned::TargetGroup(arn) => s.target_groups.get_mut(arn).map(|t| &mut t.tags),
            Owned::LaunchTemplate(id) => s
                .templates
                .values_mut()
                .find(|(i, _)| i == id)
                .map(|(_, t)| t),
        };
        if let Some(tags) = tags {
            tags.extend(set.clone());
            tags.retain(|k, _| !remove.contains(k));
        }
        Ok(())
    }

    async fn schedule_scale_to_zero(
        &self,
        name: &str,
        at: std::time::SystemTime,
    ) -> CloudResult<()> {
        let mut s = self.call("PutScheduledUpdateGroupAction")?;
        s.schedules.insert(name.into(), at);
        Ok(())
    }

    async fn cancel_scale_to_zero(&self, name: &str) -> CloudResult<()> {
        let mut s = self.call("DeleteScheduledAction")?;
        s.schedules.remove(name);
        Ok(())
    }

    async fn delete_group(&self, name: &str) -> CloudResult<()> {
        let mut s = self.call("DeleteAutoScalingGroup")?;
        s.schedules.remove(name);
        s.policies.remove(name);
        // As AWS: `Delete in progress` for a while, the name still taken.
        let reads = s.deletion_reads;
        if reads == 0 {
            s.groups.remove(name);
        } else if let Some(g) = s.groups.get_mut(name) {
            if !g.deleting {
                g.deleting = true;
                g.capacity = Capacity {
                    min: 0,
                    max: 0,
                    desired: 0,
                };
                s.deleting.insert(name.into(), reads);
            }
        }
        Ok(())
    }

    async fn put_scaling_policy(&self, group: &str, policy: &ScalingPolicy) -> CloudResult<()> {
        let mut s = self.call("PutScalingPolicy")?;
        let refuse = |message: String| CloudError::Api {
            action: "PutScalingPolicy".into(),
            code: "ValidationError".into(),
            message,
        };
        let Some(g) = s.groups.get(group).filter(|g| !g.deleting) else {
            return Err(refuse(format!("Auto Scaling group {group} not found")));
        };
        // As AWS: a resource label only for a target group attached to the group.
        if let Some(label) = &policy.resource_label {
            let tg = label.split_once("/targetgroup/").map(|(_, t)| t);
            let attached = tg.is_some_and(|tg| {
                g.target_group_arns
                    .iter()
                    .any(|a| a.ends_with(&format!(":targetgroup/{tg}")))
            });
            if !attached {
                return Err(refuse(format!(
                    "The target group in resource label {label} is not attached to Auto Scaling group {group}"
                )));
            }
        }
        let list = s.policies.entry(group.into()).or_default();
        list.retain(|p| p.name != policy.name);
        list.push(policy.clone());
        Ok(())
    }

    async fn scaling_policies(&self, group: &str) -> CloudResult<Vec<ScalingPolicy>> {
        let s = self.call("DescribePolicies")?;
        Ok(s.policies.get(group).cloned().unwrap_or_default())
    }

    async fn delete_scaling_policy(&self, group: &str, name: &str) -> CloudResult<()> {
        let mut s = self.call("DeletePolicy")?;
        if let Some(list) = s.policies.get_mut(group) {
            list.retain(|p| p.name != name);
        }
        Ok(())
    }

    async fn failed_activities(
        &self,
        name: &str,
        _since: std::time::SystemTime,
    ) -> CloudResult<Vec<String>> {
        let mut s = self.call("DescribeScalingActivities")?;
        // AWS tries again where capacity failed, and perhaps fails again.
        if s.capacity_failures.contains_key(name) {
            if let Some(desired) = s.groups.get(name).map(|g| g.capacity.desired) {
                launch(&mut s, name, desired);
            }
        }
        let mut out = s.capacity_failures.get(name).cloned().unwrap_or_default();
        out.extend(s.transient_failures.get(name).cloned().unwrap_or_default());
        if let Some(failed) = s.failed_activities.get_mut(name) {
            // AWS tried again since the last look, and failed again.
            if let Some(last) = failed.last().cloned() {
                failed.push(last);
            }
            out.extend(failed.iter().cloned());
        }
        Ok(out)
    }

    async fn target_health(&self, arn: &str) -> CloudResult<Vec<TargetHealth>> {
        let mut s = self.call("DescribeTargetHealth")?;
        let unseen = s.unseen(arn);
        let Some(tg) = s.target_groups.get(arn).cloned().filter(|_| !unseen) else {
            return Err(CloudError::Api {
                action: "DescribeTargetHealth".into(),
                code: "TargetGroupNotFound".into(),
                message: arn.into(),
            });
        };
        let reads = {
            let r = s.health_reads.entry(arn.into()).or_default();
            *r += 1;
            *r
        };
        // As an ALB: a target group that no listener action or rule forwards to is not
        // health-checked at all (its targets are `unused`), whatever its script says.
        let routed = routed(&s, arn);
        // The reason codes and descriptions an ALB gives for each state.
        let (state, reason) = if !routed {
            (
                "unused",
                Some((
                    "Target.NotInUse",
                    "Target group is not configured to receive traffic from the load balancer",
                )),
            )
        } else {
            match s
                .health
                .get(&tg.name)
                .copied()
                .unwrap_or(HealthScript::Healthy)
            {
                HealthScript::Healthy => ("healthy", None),
                HealthScript::AfterPolls(n) if reads > n => ("healthy", None),
                HealthScript::HealthyForPolls(n) if reads <= n => ("healthy", None),
                HealthScript::RegisteringUntil(t) if tokio::time::Instant::now() >= t => {
                    ("healthy", None)
                }
                HealthScript::ZoneNotServed => (
                    "unused",
                    Some((
                        "Target.NotInUse",
                        "Target is in an Availability Zone that is not enabled for the load balancer",
                    )),
                ),
                HealthScript::RegisteringUntil(_) => (
                    "initial",
                    Some((
                        "Elb.RegistrationInProgress",
                        "Target registration is in progress",
                    )),
                ),
                _ => (
                    "unhealthy",
                    Some((
                        "Target.ResponseCodeMismatch",
                        "Health checks failed with these codes: [502]",
                    )),
                ),
            }
        };
        Ok(s.groups
            .values()
            .filter(|g| g.target_group_arns.contains(&tg.arn))
            .flat_map(|g| g.instances.iter())
            .map(|i| TargetHealth {
                id: i.id.clone(),
                state: state.into(),
                reason: reason.map(|r| r.0.to_string()),
                description: reason.map(|r| r.1.to_string()),
            })
            .collect())
    }
}

/// Whether any route or rule forwards to the target group.
fn routed(s: &State, arn: &str) -> bool {
    s.rules.values().any(|t| t == arn)
        || s.listeners.values().flatten().any(|a| match a {
            ListenerAction::Forward(w) => w.iter().any(|(t, _)| t == arn),
            _ => false,
        })
}

impl State {
    /// Marks just-made objects (by each of their names, ARNs, IDs) unseen for the next
    /// describes, as AWS's eventually consistent reads.
    fn made(&mut self, keys: &[&str]) {
        if self.visibility_reads > 0 {
            for k in keys {
                self.invisible.insert(k.to_string(), self.visibility_reads);
            }
        }
    }

    /// Whether a describe of `key` does not see it yet (and one read closer to seeing it).
    fn unseen(&mut self, key: &str) -> bool {
        match self.invisible.get_mut(key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// One read of groups: a group `Delete in progress` is one read closer to gone.
    fn advance_deletions(&mut self) {
        let mut gone = Vec::new();
        for (name, left) in self.deleting.iter_mut() {
            if *left == 0 {
                gone.push(name.clone());
            } else {
                *left -= 1;
            }
        }
        for name in gone {
            self.deleting.remove(&name);
            self.groups.remove(&name);
        }
    }

    /// Replaces a route's final action, keeping the actions in front.
    fn set_final(&mut self, route: &Route, action: ListenerAction) -> CloudResult<()> {
        let Some(actions) = self.listeners.get_mut(route.key()) else {
            return Err(CloudError::Api {
                action: "ModifyListener".into(),
                code: "ListenerNotFound".into(),
                message: format!("{} not found", route.what()),
            });
        };
        actions.pop();
        actions.push(action);
        Ok(())
    }
}

#[async_trait]
impl Traffic for FakeCloud {
    async fn read(&self, route: &Route) -> CloudResult<Option<RouteState>> {
        let s = self.call(if route.rule_arn.is_some() {
            "DescribeRules"
        } else {
            "DescribeListeners"
        })?;
        let Some(actions) = s.listeners.get(route.key()) else {
            return Ok(None);
        };
        let (last, front) = actions.split_last().expect("a route has an action");
        Ok(Some(RouteState {
            front: front
                .iter()
                .map(|a| match a {
                    ListenerAction::Other(t) => t.clone(),
                    other => format!("{other:?}"),
                })
                .collect(),
            last: last.clone(),
            sticky: s.sticky.get(route.key()).copied(),
            snapshot: Snapshot {
                key: format!("{actions:?}"),
                raw: std::sync::Arc::new((actions.clone(), s.sticky.get(route.key()).copied())),
            },
        }))
    }

    async fn forward(
        &self,
        route: &Route,
        weights: &[(String, i64)],
        sticky: Option<u64>,
    ) -> CloudResult<Option<(ListenerAction, Option<u64>)>> {
        let mut s = self.call("ModifyListener")?;
        // AWS's limits: 5 target groups in a forward action, weights 0–999.
        if weights.len() > 5 || weights.iter().any(|(_, w)| !(0..=999).contains(w)) {
            return Err(CloudError::Api {
                action: "ModifyListener".into(),
                code: "ValidationError".into(),
                message: format!(
                    "a forward action takes at most 5 target groups weighted 0–999; given {weights:?}"
                ),
            });
        }
        s.set_final(route, ListenerAction::Forward(weights.to_vec()))?;
        match sticky {
            Some(secs) => s.sticky.insert(route.key().into(), secs),
            None => s.sticky.remove(route.key()),
        };
        s.listener_log.push(weights.to_vec());
        Ok(Some((ListenerAction::Forward(weights.to_vec()), sticky)))
    }

    async fn fixed_response(&self, route: &Route, status: u16) -> CloudResult<()> {
        let mut s = self.call("ModifyListener")?;
        s.sticky.remove(route.key());
        s.set_final(route, ListenerAction::Fixed(status.to_string()))
    }

    fn with_forward(
        &self,
        state: &RouteState,
        weights: &[(String, i64)],
        sticky: Option<u64>,
    ) -> RouteState {
        let (mut actions, _) = state
            .snapshot
            .raw
            .downcast_ref::<(Vec<ListenerAction>, Option<u64>)>()
            .expect("a snapshot of the fake")
            .clone();
        actions.pop();
        actions.push(ListenerAction::Forward(weights.to_vec()));
        RouteState {
            front: state.front.clone(),
            last: ListenerAction::Forward(weights.to_vec()),
            sticky,
            snapshot: Snapshot {
                key: format!("{actions:?}"),
                raw: std::sync::Arc::new((actions, sticky)),
            },
        }
    }

    async fn put_back(&self, route: &Route, state: &RouteState) -> CloudResult<()> {
        let mut s = self.call("ModifyListener")?;
        let (actions, sticky) = state
            .snapshot
            .raw
            .downcast_ref::<(Vec<ListenerAction>, Option<u64>)>()
            .expect("a snapshot of the fake")
            .clone();
        if let Some(ListenerAction::Forward(w)) = actions.last() {
            s.listener_log.push(w.clone());
        }
        s.listeners.insert(route.key().into(), actions);
        match sticky {
            Some(secs) => s.sticky.insert(route.key().into(), secs),
            None => s.sticky.remove(route.key()),
        };
        Ok(())
    }

    async fn attach_for_health_checks(
        &self,
        _route: &Route,
        target_group_arn: &str,
        token: &str,
    ) -> CloudResult<String> {
        let mut s = self.call("CreateRule")?;
        let arn = format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/{token}"
        );
        s.rules.insert(arn.clone(), target_group_arn.into());
        Ok(arn)
    }

    async fn delete_rule(&self, rule_arn: &str) -> CloudResult<()> {
        let mut s = self.call("DeleteRule")?;
        s.rules.remove(rule_arn);
        Ok(())
    }

    async fn health_rules(&self, _listener_arn: &str) -> CloudResult<Vec<(String, String)>> {
        let s = self.call("DescribeRules")?;
        // The fake's rule ARN ends with its token.
        Ok(s.rules
            .keys()
            .map(|arn| {
                (
                    arn.clone(),
                    arn.rsplit('/').next().unwrap_or("").to_string(),
                )
            })
            .collect())
    }

    async fn rule_of_listener(&self, listener_arn: &str, rule_arn: &str) -> CloudResult<bool> {
        let s = self.call("DescribeRules")?;
        Ok(s.user_rules.get(rule_arn).map(String::as_str) == Some(listener_arn))
    }

    async fn target_groups_on_load_balancer(
        &self,
        listener_arn: &str,
    ) -> CloudResult<Option<usize>> {
        let s = self.call("DescribeTargetGroups")?;
        if !s.listeners.contains_key(listener_arn) {
            return Ok(None);
        }
        // One load balancer: every route's forwards, every rule's target group, and those
        // of other services (`add_foreign_target_groups`).
        let mut arns: BTreeSet<&String> = s
            .listeners
            .values()
            .flatten()
            .filter_map(|a| match a {
                ListenerAction::Forward(w) => Some(w.iter().map(|(arn, _)| arn)),
                _ => None,
            })
            .flatten()
            .collect();
        arns.extend(s.rules.values());
        Ok(Some(arns.len() + s.foreign_target_groups))
    }
}

#[async_trait]
impl Images for FakeCloud {
    async fn image_state(&self, image_id: &str) -> CloudResult<Option<String>> {
        let s = self.call("DescribeImages")?;
        Ok(s.images.get(image_id).cloned())
    }

    async fn key_pair_exists(&self, name: &str) -> CloudResult<bool> {
        let s = self.call("DescribeKeyPairs")?;
        Ok(s.key_pairs.contains(name))
    }
}

#[async_trait]
impl Alarms for FakeCloud {
    async fn metric_data(
        &self,
        queries: &[crate::analysis::MetricQuery],
        start: std::time::SystemTime,
        end: std::time::SystemTime,
    ) -> CloudResult<crate::analysis::Answers> {
        let mut s = self.call("GetMetricData")?;
        s.metric_windows.push((start, end));
        Ok(queries
            .iter()
            .map(|q| {
                let key = (
                    q.namespace.clone(),
                    q.metric_name.clone(),
                    q.dimensions.clone(),
                );
                let points = s.metrics.get(&key).cloned().unwrap_or_default();
                (
                    q.id.clone(),
                    crate::analysis::statistic_of(&q.statistic, &points),
                )
            })
            .collect())
    }

    async fn in_alarm(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let s = self.call("DescribeAlarms")?;
        Ok(names
            .iter()
            .filter(|n| s.alarms.contains(*n))
            .cloned()
            .collect())
    }

    async fn missing(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let s = self.call("DescribeAlarms")?;
        Ok(names
            .iter()
            .filter(|n| !s.defined_alarms.contains(*n))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl LedgerStore for FakeCloud {
    async fn load(&self, release_name: &str) -> CloudResult<Option<Ledger>> {
        let mut s = self.call("LoadLedger")?;
        if s.unreadable.contains(release_name) {
            // Read, if not understood: the version is known, as AWS's adapter knows it.
            let v = s.ledger_versions.get(release_name).copied().unwrap_or(0);
            s.ledger_seen.insert(release_name.into(), (v, false));
            return Err(CloudError::Api {
                action: "LoadLedger".into(),
                code: crate::ledger::UNREADABLE.into(),
                message: "the release ledger is not readable: expected value at line 1 column 1"
                    .into(),
            });
        }
        let version = s.ledger_versions.get(release_name).copied();
        match version {
            Some(v) => {
                s.ledger_seen.insert(release_name.into(), (v, false));
            }
            None => {
                s.ledger_seen.remove(release_name);
            }
        }
        Ok(s.ledgers.get(release_name).cloned())
    }

    async fn save(&self, ledger: &Ledger, _tags: &BTreeMap<String, String>) -> CloudResult<()> {
        let mut s = self.call("SaveLedger")?;
        let name = ledger.name.clone();
        let seen = s.ledger_seen.get(&name).copied();
        let conflict = |read: i64| {
            CloudError::Api {
            action: "SaveLedger".into(),
            code: "LedgerConflict".into(),
            message: format!(
                "the release ledger was written by another apply between this apply's read (version {read}) and its write"
            ),
        }
        };
        if let Some((read, true)) = seen {
            return Err(conflict(read));
        }
        // As AWS numbers versions: the next after the latest.
        let written = s.ledger_versions.get(&name).copied().unwrap_or(0) + 1;
        if let Some((read, _)) = seen.filter(|(read, _)| written != read + 1) {
            s.ledger_seen.insert(name, (read, true));
            return Err(conflict(read));
        }
        let (text, trimmed) = ledger.to_stored_json();
        if trimmed > 0 {
            crate::log::notice(
                &name,
                format!("the oldest {trimmed} history entries were left out of the ledger"),
            );
        }
        let stored = Ledger::from_json(&text).expect("stored text reads back");
        s.ledgers.insert(name.clone(), stored);
        s.unreadable.remove(&name);
        s.ledger_versions.insert(name.clone(), written);
        s.ledger_seen.insert(name, (written, false));
        Ok(())
    }

    async fn delete(&self, release_name: &str) -> CloudResult<()> {
        let mut s = self.call("DeleteLedger")?;
        s.ledgers.remove(release_name);
        s.ledger_versions.remove(release_name);
        s.ledger_seen.remove(release_name);
        Ok(())
    }

    async fn create_lease(
        &self,
        release_name: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<Option<String>> {
        let mut s = self.call("CreateLease")?;
        if s.leases.contains_key(release_name) {
            return Ok(None);
        }
        s.next_id += 1;
        let id = format!("lt-lease{:08}", s.next_id);
        s.leases.insert(
            release_name.to_string(),
            LeaseRecord {
                id: id.clone(),
                tags: tags.clone(),
            },
        );
        Ok(Some(id))
    }

    async fn read_lease(&self, release_name: &str) -> CloudResult<Option<LeaseRecord>> {
        let s = self.call("ReadLease")?;
        Ok(s.leases.get(release_name).cloned())
    }

    async fn renew_lease(&self, id: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        let mut s = self.call("RenewLease")?;
        if let Some(l) = s.leases.values_mut().find(|l| l.id == id) {
            l.tags.extend(tags.clone());
        }
        Ok(())
    }

    async fn delete_lease(&self, id: &str) -> CloudResult<()> {
        let mut s = self.call("DeleteLease")?;
        s.leases.retain(|_, l| l.id != id);
        Ok(())
    }
}

#[async_trait]
impl super::Notifier for FakeCloud {
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> CloudResult<()> {
        let mut s = self.state.lock().unwrap();
        if s.publish_fails {
            return Err(CloudError::Api {
                action: format!("publishing to {topic_arn}"),
                code: "NotFound".into(),
                message: "Topic does not exist".into(),
            });
        }
        s.published
            .push((topic_arn.into(), subject.into(), message.into()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HealthCheckSpec;

    const LISTENER: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2";

    fn tg_spec() -> TargetGroupSpec {
        TargetGroupSpec {
            port: 80,
            protocol: "HTTP".into(),
            health_check: HealthCheckSpec::default(),
            deregistration_delay: 30,
        }
    }

    fn group(name: &str, tg: &str, lt: &str) -> GroupRequest {
        GroupRequest {
            name: name.into(),
            capacity: Capacity {
                min: 1,
                max: 1,
                desired: 1,
            },
            subnet_ids: vec![],
            instance_types: vec!["t3.micro".into()],
            target_group_arn: tg.into(),
            launch_template: (lt.into(), 1),
            grace_period: std::time::Duration::from_secs(30),
            tags: BTreeMap::new(),
        }
    }

    fn fleet_spec() -> FleetSpec {
        crate::spec::examples::fleet("ami-1")
    }

    #[tokio::test]
    async fn new_objects_are_unseen_for_a_while_and_names_stay_taken() {
        let fake = FakeCloud::new(LISTENER, "ami-1");
        fake.set_visibility_reads(2);
        let tg = fake
            .create_target_group("web-r1", "vpc-1", &tg_spec(), &BTreeMap::new())
            .await
            .unwrap();
        assert!(fake.find_target_group("web-r1").await.unwrap().is_none());
        assert!(fake.find_target_group("web-r1").await.unwrap().is_none());
        assert!(fake.find_target_group("web-r1").await.unwrap().is_some());
        let e = fake.target_health(&tg).await.unwrap_err();
        assert!(e.to_string().contains("TargetGroupNotFound"), "{e}");
        let dup = fake
            .create_target_group("web-r1", "vpc-1", &tg_spec(), &BTreeMap::new())
            .await
            .unwrap_err();
        assert!(
            dup.to_string().contains("DuplicateTargetGroupName"),
            "{dup}"
        );
        fake.create_group(&group("web-r1", &tg, "lt-1"))
            .await
            .unwrap();
        let names = ["web-r1".to_string()];
        assert!(fake.describe_groups(&names).await.unwrap().is_empty());
        assert!(fake.describe_groups(&names).await.unwrap().is_empty());
        let g = fake.describe_groups(&names).await.unwrap();
        assert_eq!(g.len(), 1);
    }

    #[tokio::test]
    async fn a_deleted_group_is_delete_in_progress_for_a_while_its_name_taken() {
        let fake = FakeCloud::new(LISTENER, "ami-1").plain();
        fake.set_deletion_reads(2);
        fake.create_group(&group("web-r1", "tg", "lt-1"))
            .await
            .unwrap();
        fake.delete_group("web-r1").await.unwrap();
        let names = ["web-r1".to_string()];
        for _ in 0..2 {
            let g = fake.describe_groups(&names).await.unwrap();
            assert!(g[0].deleting, "Delete in progress");
            let again = fake.create_group(&group("web-r1", "tg", "lt-1")).await;
            assert!(again.unwrap_err().to_string().contains("AlreadyExists"));
        }
        assert!(fake.describe_groups(&names).await.unwrap().is_empty());
        fake.create_group(&group("web-r1", "tg", "lt-1"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn aws_limits_are_refused() {
        let fake = FakeCloud::new(LISTENER, "ami-1");
        let route = Route::listener(LISTENER);
        let six: Vec<(String, i64)> = (0..6).map(|i| (format!("tg-{i}"), 0)).collect();
        let e = fake.forward(&route, &six, None).await.unwrap_err();
        assert!(e.to_string().contains("ValidationError"), "{e}");
        let heavy = vec![("tg-1".to_string(), 1000)];
        assert!(fake.forward(&route, &heavy, None).await.is_err());
        let five: Vec<(String, i64)> = (0..5).map(|i| (format!("tg-{i}"), 999)).collect();
        fake.forward(&route, &five, None).await.unwrap();
        let mut spec = fleet_spec();
        spec.user_data = Some("#".repeat(16 * 1024 + 1));
        let e = fake
            .create_launch_template("web-r1", &spec, &BTreeMap::new(), &BTreeMap::new())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("InvalidParameterValue"), "{e}");
        spec.user_data = Some("#".repeat(16 * 1024));
        fake.create_launch_template("web-r1", &spec, &BTreeMap::new(), &BTreeMap::new())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn instances_are_pending_for_some_reads_by_default() {
        let fake = FakeCloud::new(LISTENER, "ami-1").plain();
        fake.set_pending_reads(DEFAULT_PENDING_READS);
        fake.create_group(&group("web-r1", "tg", "lt-1"))
            .await
            .unwrap();
        let names = ["web-r1".to_string()];
        let mut reads = 0;
        while !fake.describe_groups(&names).await.unwrap()[0].instances[0].in_service() {
            reads += 1;
            assert!(reads < 10);
        }
        assert_eq!(reads, DEFAULT_PENDING_READS - 1);
    }
}
