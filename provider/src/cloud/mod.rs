//! The cloud seen by the engine: one trait per concern, in domain types. [`aws`] is the only
//! code that names AWS SDK types; [`fake`] is an in-memory cloud with scriptable faults for
//! fast, deterministic engine tests.

pub mod aws;
pub mod batch;
pub mod fake;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::ledger::Ledger;
use crate::spec::{Capacity, FleetSpec, TargetGroupSpec};

/// An error from the cloud, with AWS's own code and message kept.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    /// The call failed; `code` and `message` are AWS's.
    #[error("{action}: {message} ({code})")]
    Api {
        /// What we were doing, e.g. "creating target group (web-r1)".
        action: String,
        /// AWS error code, e.g. `ValidationError`.
        code: String,
        /// AWS error message.
        message: String,
    },
    /// A call failed before AWS answered (connection, timeout) after all retries.
    #[error("{action}: {message}")]
    Transport {
        /// What we were doing.
        action: String,
        /// What went wrong.
        message: String,
    },
}

impl CloudError {
    /// The AWS error code, if AWS answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Api { code, .. } => Some(code),
            CloudError::Transport { .. } => None,
        }
    }
}

/// Result of a cloud call.
pub type CloudResult<T> = Result<T, CloudError>;

/// What an Auto Scaling group looks like now.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatus {
    /// Group name, e.g. `web-r3`.
    pub name: String,
    /// Sizes.
    pub capacity: Capacity,
    /// Its instances.
    pub instances: Vec<InstanceStatus>,
    /// Tags on the group.
    pub tags: BTreeMap<String, String>,
    /// Target groups it is attached to.
    pub target_group_arns: Vec<String>,
    /// Launch template ID and the version it pins.
    pub launch_template: Option<(String, String)>,
    /// Whether a delete is under way.
    pub deleting: bool,
}

/// One instance of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStatus {
    /// Instance ID.
    pub id: String,
    /// `Pending`, `InService`, `Terminating`, ...
    pub lifecycle_state: String,
    /// `Healthy` or `Unhealthy`.
    pub health_status: String,
    /// Launch template ID and version it was launched from, when known.
    pub launch_template: Option<(String, String)>,
}

impl InstanceStatus {
    /// In service and healthy as far as the group knows.
    pub fn in_service(&self) -> bool {
        self.lifecycle_state == "InService" && self.health_status == "Healthy"
    }
}

/// One target's health in a target group.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHealth {
    /// Instance ID.
    pub id: String,
    /// `healthy`, `unhealthy`, `initial`, `draining`, `unused`, ...
    pub state: String,
    /// The load balancer's reason code when not healthy (`Target.NotInUse`,
    /// `Elb.RegistrationInProgress`, `Target.ResponseCodeMismatch`, ...).
    pub reason: Option<String>,
    /// The load balancer's description of that reason.
    pub description: Option<String>,
}

/// A target group as found by name.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroupInfo {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// What a new fleet's group is made of.
#[derive(Debug, Clone)]
pub struct GroupRequest {
    /// Group name.
    pub name: String,
    /// Launch template ID and the exact version to pin.
    pub launch_template: (String, i64),
    /// Target group to attach.
    pub target_group_arn: String,
    /// Subnets.
    pub subnet_ids: Vec<String>,
    /// The types the group may launch, in priority order: the template's `instance_type`
    /// first, then `fallback_instance_types`. More than one: a mixed instances policy.
    pub instance_types: Vec<String>,
    /// Size.
    pub capacity: Capacity,
    /// Health-check grace period.
    pub grace_period: Duration,
    /// Tags on the group (ownership tags included).
    pub tags: BTreeMap<String, String>,
}

/// What a launch template version resolves to (`launch_template`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseVersion {
    /// The version's number.
    Number(i64),
    /// No launch template has that ID.
    NoTemplate,
    /// The template exists, that version does not.
    NoVersion,
}

/// A target-tracking scaling policy of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPolicy {
    /// Its name within the group (see [`crate::naming::scaling_policy_name`]).
    pub name: String,
    /// The predefined metric, e.g. `ALBRequestCountPerTarget`.
    pub metric: String,
    /// The value the metric is held at.
    pub target_value: f64,
    /// Scale-out only.
    pub disable_scale_in: bool,
    /// For request counts: the load balancer and target group, `app/../targetgroup/..`.
    pub resource_label: Option<String>,
}

/// The final action of a route: the one the release owns.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerAction {
    /// Weighted forward: target group ARN → weight.
    Forward(Vec<(String, i64)>),
    /// A fixed response with this status code.
    Fixed(String),
    /// Anything else (`redirect`, ...): its type.
    Other(String),
}

pub use crate::route::Route;

/// A route's actions as read: the final one in domain terms, the types of those in front
/// of it (kept exactly as they are by every write), and the whole list as the cloud holds
/// it, so that it can be put back exactly.
#[derive(Debug, Clone)]
pub struct RouteState {
    /// The types of the actions in front of the final one, in order, e.g.
    /// `["authenticate-oidc"]`.
    pub front: Vec<String>,
    /// The final action.
    pub last: ListenerAction,
    /// The final forward's group stickiness (`TargetGroupStickinessConfig`), in seconds;
    /// None when off or not a forward.
    pub sticky: Option<u64>,
    /// The whole list, opaque to the engine: only the adapter that read it writes it back.
    pub snapshot: Snapshot,
}

impl RouteState {
    /// The final forward's weights by target group (none: not a forward).
    pub fn forward(&self) -> Vec<(String, i64)> {
        match &self.last {
            ListenerAction::Forward(w) => w.clone(),
            _ => Vec::new(),
        }
    }
}

impl RouteState {
    /// The same front actions and the same final action (what a read-back verifies; a
    /// forward's target groups in any order).
    pub fn same_as(&self, other: &RouteState) -> bool {
        let sorted = |a: &ListenerAction| match a {
            ListenerAction::Forward(w) => {
                let mut w = w.clone();
                w.sort();
                ListenerAction::Forward(w)
            }
            other => other.clone(),
        };
        self.front == other.front
            && sorted(&self.last) == sorted(&other.last)
            && self.sticky == other.sticky
    }
}

/// A route's whole action list as one adapter holds it.
#[derive(Clone)]
pub struct Snapshot {
    /// A rendering of the list, equal for equal lists.
    pub key: String,
    /// The adapter's own value.
    pub raw: Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

/// An object a release owns, for tagging.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    /// An Auto Scaling group, by name (its tags propagate to instances it launches).
    Group(String),
    /// A target group, by ARN.
    TargetGroup(String),
    /// A launch template, by ID.
    LaunchTemplate(String),
}

/// Launch templates, target groups and Auto Scaling groups.
#[async_trait]
pub trait Fleets: Send + Sync {
    /// Creates a launch template; returns its ID and version number.
    async fn create_launch_template(
        &self,
        name: &str,
        spec: &FleetSpec,
        tags: &BTreeMap<String, String>,
        instance_tags: &BTreeMap<String, String>,
    ) -> CloudResult<(String, i64)>;
    /// The number a version of launch template `id` resolves to (`$Latest`, `$Default` or a
    /// number), or which of the two does not exist.
    async fn resolve_launch_template(&self, id: &str, version: &str) -> CloudResult<BaseVersion>;
    /// Finds a launch template by name: its ID and tags.
    async fn find_launch_template(
        &self,
        name: &str,
    ) -> CloudResult<Option<(String, BTreeMap<String, String>)>>;
    /// The plain-text user data of a launch template version, None when it has none.
    async fn launch_template_user_data(
        &self,
        id: &str,
        version: i64,
    ) -> CloudResult<Option<String>>;
    /// Deletes a launch template by name; absent is fine.
    async fn delete_launch_template(&self, name: &str) -> CloudResult<()>;
    /// Creates a target group; returns its ARN.
    async fn create_target_group(
        &self,
        name: &str,
        vpc_id: &str,
        spec: &TargetGroupSpec,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<String>;
    /// Finds a target group by name.
    async fn find_target_group(&self, name: &str) -> CloudResult<Option<TargetGroupInfo>>;
    /// Deletes a target group; absent is fine.
    async fn delete_target_group(&self, arn: &str) -> CloudResult<()>;
    /// Creates an Auto Scaling group.
    async fn create_group(&self, request: &GroupRequest) -> CloudResult<()>;
    /// Describes groups by name, in one call; absent ones are left out.
    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<GroupStatus>>;
    /// Every group tagged as owned by this release.
    async fn groups_of_release(&self, release_name: &str) -> CloudResult<Vec<GroupStatus>>;
    /// Every group that registers its instances in one of these target groups (a service
    /// the release adopts: its capacity is the first fleet's).
    async fn groups_behind(&self, target_group_arns: &[String]) -> CloudResult<Vec<GroupStatus>>;
    /// Sets a group's sizes.
    async fn set_capacity(&self, name: &str, capacity: Capacity) -> CloudResult<()>;
    /// Sets tags on a group (added or overwritten).
    async fn tag_group(&self, name: &str, tags: &BTreeMap<String, String>) -> CloudResult<()>;
    /// Sets (adds or overwrites) and removes tags of an object the release owns.
    async fn retag(
        &self,
        object: &Owned,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> CloudResult<()>;
    /// Schedules the group to scale to zero at `at` (the end of the rollback window),
    /// replacing any earlier schedule of the provider's.
    async fn schedule_scale_to_zero(
        &self,
        name: &str,
        at: std::time::SystemTime,
    ) -> CloudResult<()>;
    /// Removes that schedule; absent is fine.
    async fn cancel_scale_to_zero(&self, name: &str) -> CloudResult<()>;
    /// Deletes a group and its instances; absent is fine.
    async fn delete_group(&self, name: &str) -> CloudResult<()>;
    /// Creates or replaces a target-tracking policy of a group (by its name).
    async fn put_scaling_policy(&self, group: &str, policy: &ScalingPolicy) -> CloudResult<()>;
    /// The target-tracking policies of a group (none when the group is gone).
    async fn scaling_policies(&self, group: &str) -> CloudResult<Vec<ScalingPolicy>>;
    /// Deletes a policy of a group; absent is fine.
    async fn delete_scaling_policy(&self, group: &str, name: &str) -> CloudResult<()>;
    /// Scaling activities of the group that failed since `since`: their status messages.
    async fn failed_activities(
        &self,
        name: &str,
        since: std::time::SystemTime,
    ) -> CloudResult<Vec<String>>;
    /// Health of every target of a target group.
    async fn target_health(&self, target_group_arn: &str) -> CloudResult<Vec<TargetHealth>>;
}

/// The route that carries traffic. Every write changes the route's final action only:
/// the actions in front of it (`authenticate-oidc`, `authenticate-cognito`) are kept exactly.
#[async_trait]
pub trait Traffic: Send + Sync {
    /// Reads the route; None when the listener (or the rule) does not exist.
    async fn read(&self, route: &Route) -> CloudResult<Option<RouteState>>;
    /// The route's final action; None when the route does not exist.
    async fn action(&self, route: &Route) -> CloudResult<Option<ListenerAction>> {
        Ok(self.read(route).await?.map(|s| s.last))
    }
    /// Makes the final action a weighted forward, with group stickiness of `sticky`
    /// seconds or none (a write that leaves it out switches it off, on AWS as in the
    /// emulator). Returns the final action and its stickiness as AWS's answer to the change
    /// gives them (ModifyListener and ModifyRule answer with the new actions), None when
    /// the answer does not say (then read it).
    async fn forward(
        &self,
        route: &Route,
        weights: &[(String, i64)],
        sticky: Option<u64>,
    ) -> CloudResult<Option<(ListenerAction, Option<u64>)>>;
    /// Makes the final action a fixed response.
    async fn fixed_response(&self, route: &Route, status: u16) -> CloudResult<()>;
    /// `state` with its final action a forward of `weights` (stickiness `sticky`), the
    /// rest as read: a state to put back (a held release's promotion puts back the route
    /// as it was before the release took any share). No call.
    fn with_forward(
        &self,
        state: &RouteState,
        weights: &[(String, i64)],
        sticky: Option<u64>,
    ) -> RouteState;
    /// Puts the route's whole action list back as `state` read it.
    async fn put_back(&self, route: &Route, state: &RouteState) -> CloudResult<()>;
    /// Creates a rule of the route's listener that no request matches (a header with a
    /// random value), with the route's front actions and a forward to the target group, so
    /// that the ALB health-checks it; returns its ARN.
    async fn attach_for_health_checks(
        &self,
        route: &Route,
        target_group_arn: &str,
        token: &str,
    ) -> CloudResult<String>;
    /// Deletes a listener rule; absent is fine.
    async fn delete_rule(&self, rule_arn: &str) -> CloudResult<()>;
    /// The health-check rules of a listener (rule ARN, token; see [`crate::naming`]),
    /// found by the rules themselves, so that one an interrupted apply made but never
    /// recorded is found too.
    async fn health_rules(&self, listener_arn: &str) -> CloudResult<Vec<(String, String)>>;
    /// Whether `rule_arn` is a rule of `listener_arn` other than its default rule.
    async fn rule_of_listener(&self, listener_arn: &str, rule_arn: &str) -> CloudResult<bool>;
    /// How many target groups the listener's load balancer holds (those a listener or rule
    /// of it forwards to: AWS allows 100 per Application Load Balancer); None when the
    /// listener does not exist.
    async fn target_groups_on_load_balancer(
        &self,
        listener_arn: &str,
    ) -> CloudResult<Option<usize>>;
}

/// Machine images and key pairs: what an instance is launched from.
#[async_trait]
pub trait Images: Send + Sync {
    /// The image's state (`available`, `pending`, ...), None when it does not exist.
    async fn image_state(&self, image_id: &str) -> CloudResult<Option<String>>;
    /// Whether an EC2 key pair of that name exists in the region.
    async fn key_pair_exists(&self, name: &str) -> CloudResult<bool>;
}

/// CloudWatch alarms.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// Of these alarm names, the ones now in `ALARM`.
    async fn in_alarm(&self, names: &[String]) -> CloudResult<Vec<String>>;
    /// Of these alarm names, the ones no metric or composite alarm of the region has.
    async fn missing(&self, names: &[String]) -> CloudResult<Vec<String>>;
    /// Each query's statistic over the window `[start, end)` (one period spanning it;
    /// None: no data), every query in one `GetMetricData` call (AWS takes 500).
    async fn metric_data(
        &self,
        queries: &[crate::analysis::MetricQuery],
        start: std::time::SystemTime,
        end: std::time::SystemTime,
    ) -> CloudResult<crate::analysis::Answers>;
}

/// Where a release's notifications go (SNS).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes one message with its subject to a topic.
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> CloudResult<()>;
}

/// Where a release's ledger (fleets and history) is kept in AWS.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Loads the ledger of a release, None when there is none.
    async fn load(&self, release_name: &str) -> CloudResult<Option<Ledger>>;
    /// Saves the ledger.
    async fn save(&self, ledger: &Ledger, tags: &BTreeMap<String, String>) -> CloudResult<()>;
    /// Deletes the ledger; absent is fine.
    async fn delete(&self, release_name: &str) -> CloudResult<()>;
    /// Creates the release's lease with these tags, atomically: Some(its ID), or None when
    /// a lease exists already.
    async fn create_lease(
        &self,
        release_name: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<Option<String>>;
    /// The release's lease, None when there is none.
    async fn read_lease(&self, release_name: &str) -> CloudResult<Option<LeaseRecord>>;
    /// Overwrites some tags of the lease with this ID (renewal).
    async fn renew_lease(&self, id: &str, tags: &BTreeMap<String, String>) -> CloudResult<()>;
    /// Deletes the lease with this ID; absent is fine. By ID, so that a lease another
    /// holder made since under the same name is never deleted.
    async fn delete_lease(&self, id: &str) -> CloudResult<()>;
}

/// A lease as found: the ID of the object that holds it (one per acquisition) and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    /// The ID (a launch template ID in AWS).
    pub id: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// The whole cloud, as the engine uses it.
#[derive(Clone)]
pub struct Cloud {
    /// Fleets.
    pub fleets: Arc<dyn Fleets>,
    /// Traffic.
    pub traffic: Arc<dyn Traffic>,
    /// Images.
    pub images: Arc<dyn Images>,
    /// Alarms.
    pub alarms: Arc<dyn Alarms>,
    /// Ledger.
    pub ledger: Arc<dyn LedgerStore>,
    /// Notifications.
    pub notifier: Arc<dyn Notifier>,
}

impl Cloud {
    /// One object that implements every concern.
    pub fn from_one<T>(all: Arc<T>) -> Self
    where
        T: Fleets + Traffic + Images + Alarms + LedgerStore + Notifier + 'static,
    {
        Self {
            fleets: all.clone(),
            traffic: all.clone(),
            images: all.clone(),
            alarms: all.clone(),
            ledger: all.clone(),
            notifier: all,
        }
    }
}
