//! `immutable_release`: plan, apply, read, import and destroy, delegating the work to the
//! engine.

use std::collections::BTreeMap;

use async_trait::async_trait;
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::state::{HistoryItem, ReleaseState, TargetTrackingBlock};
use super::{context, schema, Context, SharedContext};
use crate::cloud::{BaseVersion, Route};
use crate::decide::PlanKind;
use crate::engine::{self, EngineError, Observed};
use crate::ledger::{Ledger, Role};
use crate::log;
use crate::spec::{self, ReleaseSpec};
use crate::steps::{self, Step};
use serde::{Deserialize, Serialize};

/// The resource.
pub struct ReleaseResource {
    shared: SharedContext,
}

impl ReleaseResource {
    /// A resource that uses the provider's context once configured.
    pub fn new(shared: SharedContext) -> Self {
        Self { shared }
    }
}

/// Names of releases this provider process has just planned to replace. Terraform plans the
/// create half of a replacement with a second PlanResourceChange right after the first, in
/// the same process, with no prior state (and tf-provider passes no private state to
/// `plan_create`): without this, that second plan would meet the release's own ledger and
/// refuse it as "already exists".
static REPLACING: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn replacing(name: &str) -> bool {
    REPLACING.lock().map(|r| r.contains(name)).unwrap_or(false)
}

/// Reports an engine error as a diagnostic.
pub(super) fn report(diags: &mut Diagnostics, e: EngineError) {
    match e {
        EngineError::Aborted {
            summary,
            reason,
            traffic,
        } => {
            diags.root_error(summary, format!("{reason}. {traffic}"));
        }
        EngineError::Cloud(c) => diags.root_error("AWS call failed", c.to_string()),
        EngineError::Refused(m) => diags.root_error("Refused", m),
        e @ EngineError::AfterCommit { release, .. } => diags.root_error(
            format!("Release {release} serves; a clean-up after it failed"),
            e.to_string(),
        ),
    }
}

/// The warnings the engine kept for release `name` (see [`log::notice`]), as warning
/// diagnostics.
fn warn_notices(diags: &mut Diagnostics, name: &str) {
    for n in log::take_notices(name) {
        diags.root_warning(format!("Release {name}"), n);
    }
}

/// The route a state names, when its listener is known.
fn route_of(state: &ReleaseState) -> Option<Route> {
    let lb = state.load_balancer.as_ref_option()?;
    Some(Route {
        listener_arn: lb.listener_arn.as_ref_option()?.clone(),
        rule_arn: lb.rule_arn.as_ref_option().cloned(),
    })
}

/// Observes release `name`; an error diagnostic (`missing` gives its summary and detail when
/// no release of that name exists) and None otherwise.
async fn observe_or_report(
    ctx: &Context,
    diags: &mut Diagnostics,
    name: &str,
    missing: impl FnOnce() -> (&'static str, String),
) -> Option<Observed> {
    match ctx.engine.observe(name).await {
        Ok(Some(obs)) => Some(obs),
        Ok(None) => {
            let (summary, detail) = missing();
            diags.root_error(summary, detail);
            None
        }
        Err(e) => {
            report(diags, e);
            None
        }
    }
}

/// What a read learns that the plan needs but the schema does not show: the role of each
/// live fleet (to know what the listener should say).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReleasePrivate {
    /// Fleet name → weight it should have: 100 for the serving fleet, 0 for retained ones.
    pub expected_traffic: BTreeMap<String, i64>,
    /// What the next apply must put right besides weights and capacity (see
    /// [`Observed::drift`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Retained fleets whose group is gone (deleted outside Terraform): fleet name →
    /// (fingerprint, image), so that a plan setting the image back can warn with no call.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gone_retained: BTreeMap<String, (String, String)>,
    /// The ledger as last read, without its history: what a plan needs to say which fleet
    /// a release launches, rolls back to, retains or deletes (`planned_steps`) with no call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<Ledger>,
}

/// What an update plan says of `planned_steps`.
enum PlannedSteps {
    /// Nothing changes: the state keeps the steps of the last apply.
    Unchanged,
    /// The steps, known at plan.
    Known(Vec<Step>),
    /// Not known at plan (an argument is unknown, or the record could not be read).
    Unknown,
}

/// Private state as Terraform stores it (null when empty).
pub type Private = Value<ReleasePrivate>;

fn private_of(obs: &Observed, retain_fleets: Option<i64>) -> Private {
    let mut expected = BTreeMap::new();
    // A release held part-way holds its share; the serving fleet the rest.
    let held = obs
        .ledger
        .held()
        .and_then(|f| f.held.as_ref().map(|h| (f.release, h.weight)));
    for f in &obs.ledger.fleets {
        match f.role {
            Role::Active => {
                expected.insert(f.fleet_name.clone(), 100 - held.map_or(0, |(_, w)| w));
            }
            Role::Retained => {
                expected.insert(f.fleet_name.clone(), 0);
            }
            Role::Launching => {
                if let Some((_, w)) = held.filter(|(r, _)| *r == f.release) {
                    expected.insert(f.fleet_name.clone(), w);
                }
            }
        }
    }
    let gone_retained = obs
        .ledger
        .retained()
        .into_iter()
        .filter(|f| {
            !obs.groups
                .iter()
                .any(|g| g.name == f.fleet_name && !g.deleting)
        })
        .map(|f| {
            (
                f.fleet_name.clone(),
                (f.fingerprint.clone(), f.image_id.clone()),
            )
        })
        .collect();
    let mut record = obs.ledger.clone();
    record.history.clear();
    record.settings = None;
    Value::Value(ReleasePrivate {
        expected_traffic: expected,
        drift: obs.drift(retain_fleets),
        gone_retained,
        record: Some(record),
    })
}

/// Fills the read-only attributes (and what AWS is the truth for: the serving image and the
/// capacity) from what was observed.
pub(super) fn fill(state: &mut ReleaseState, obs: &Observed) {
    let ledger = &obs.ledger;
    let active = ledger.active();
    state.id = Value::Value(ledger.name.clone());
    state.name = Value::Value(ledger.name.clone());
    state.release = engine::current_release(ledger).map(|r| r as i64).into();
    state.fleet_name = active.map(|a| a.fleet_name.clone()).into();
    state.target_group_arn = active.map(|a| a.target_group_arn.clone()).into();
    state.launch_template_id = active.map(|a| a.launch_template_id.clone()).into();
    state.previous_image_id = ledger.previous_image_id().into();
    state.traffic = Value::Value(obs.traffic());
    // Stickiness as the route has it: switched off (or changed) by hand, the plan shows it
    // and the apply puts it back.
    if let Value::Value(lb) = &mut state.load_balancer {
        let configured = lb.stickiness.as_ref_option().and_then(|s| {
            s.duration
                .as_ref_option()
                .and_then(|d| crate::duration::parse(d).ok())
                .map(|d| (d.as_secs(), s.duration.clone()))
        });
        lb.stickiness = match (obs.sticky, configured) {
            (None, _) => Value::Null,
            // The configuration's own spelling of the same duration ("1h", not "3600s").
            (Some(secs), Some((want, text))) if secs == want => {
                Value::Value(super::state::StickinessBlock { duration: text })
            }
            (Some(secs), _) => Value::Value(super::state::StickinessBlock {
                duration: Value::Value(crate::duration::format(std::time::Duration::from_secs(
                    secs,
                ))),
            }),
        };
    }
    state.history = Value::Value(history_items(ledger));
    state.holding = match ledger.held() {
        Some(f) => Value::Value(super::state::HoldingBlock {
            fleet_name: Value::Value(f.fleet_name.clone()),
            image_id: Value::Value(f.image_id.clone()),
            weight: f.held.as_ref().map(|h| h.weight).into(),
            since: f
                .held
                .as_ref()
                .map(|h| h.since.clone())
                .filter(|s| !s.is_empty())
                .into(),
        }),
        None => Value::Null,
    };
    state.target_tracking = scaling_as_found(&state.target_tracking, obs.scaling.as_deref());
    if let Some(a) = active {
        state.image_id = Value::Value(a.image_id.clone());
    }
    if let Some(g) = obs.active_group() {
        state.min_size = Value::Value(g.capacity.min);
        state.max_size = Value::Value(g.capacity.max);
        state.desired_capacity = Value::Value(g.capacity.desired);
    }
}

/// [`fill`] for the resource: while a release is held part-way, `image_id` is the held
/// fleet's (the configuration that got it there: the next plan is empty), while `release`,
/// `fleet_name` and `previous_image_id` go on describing the serving fleet.
fn fill_release(state: &mut ReleaseState, obs: &Observed) {
    fill(state, obs);
    if let Some(h) = obs.ledger.held() {
        state.image_id = Value::Value(h.image_id.clone());
    }
}

/// `target_tracking` as AWS has it on the serving fleet: the state's own blocks (their
/// order the configuration's) when they are the same policies, else the policies found —
/// a policy deleted or changed outside Terraform shows as drift, put back by the next apply.
fn scaling_as_found(
    state: &Value<Vec<TargetTrackingBlock>>,
    found: Option<&[crate::cloud::ScalingPolicy]>,
) -> Value<Vec<TargetTrackingBlock>> {
    let found: Vec<TargetTrackingBlock> = found
        .unwrap_or_default()
        .iter()
        .map(|p| TargetTrackingBlock {
            predefined_metric: Value::Value(p.metric.clone()),
            target_value: Value::Value(p.target_value),
            disable_scale_in: Value::Value(p.disable_scale_in),
        })
        .collect();
    let sorted = |blocks: &[TargetTrackingBlock]| {
        let mut v: Vec<String> = blocks
            .iter()
            .map(|b| match b.spec() {
                Some(t) => t.to_string(),
                None => "unknown".into(),
            })
            .collect();
        v.sort();
        v
    };
    let had = state.as_ref_option().map(Vec::as_slice).unwrap_or_default();
    if sorted(had) == sorted(&found) {
        state.clone()
    } else {
        Value::Value(found)
    }
}

fn history_items(ledger: &Ledger) -> Vec<HistoryItem> {
    ledger
        .history
        .iter()
        .map(|h| HistoryItem {
            release: Value::Value(h.release as i64),
            image_id: Value::Value(h.image_id.clone()),
            fleet_name: Value::Value(h.fleet_name.clone()),
            status: Value::Value(h.status.as_str().to_string()),
            started_at: Value::Value(h.started_at.clone()),
            finished_at: h.finished_at.clone().into(),
            reason: h.reason.clone().into(),
        })
        .collect()
}

/// The arguments whose change forces a replacement: `name`, and the route's listener, rule
/// and VPC.
fn forces_replacement(prior: &ReleaseState, planned: &ReleaseState) -> Vec<AttributePath> {
    let mut replace = Vec::new();
    if planned.name != prior.name {
        replace.push(AttributePath::new("name"));
    }
    let lb = |s: &ReleaseState| {
        s.load_balancer
            .as_ref_option()
            .map(|l| (l.listener_arn.clone(), l.vpc_id.clone(), l.rule_arn.clone()))
    };
    if let (Some((pa, pv, pr)), Some((na, nv, nr))) = (lb(prior), lb(planned)) {
        if pa != na {
            replace.push(AttributePath::new("load_balancer").attribute("listener_arn"));
        }
        if pr != nr {
            replace.push(AttributePath::new("load_balancer").attribute("rule_arn"));
        }
        if pv != nv {
            replace.push(AttributePath::new("load_balancer").attribute("vpc_id"));
        }
    }
    replace
}

/// The read-only attributes of a plan that releases nothing: the ones a changed
/// `retain_fleets` or `history_limit` may change are unknown; weights changed outside
/// Terraform show going back; drift the apply repairs makes every one unknown, with a
/// warning that says what.
fn plan_read_only_of_settings(
    diags: &mut Diagnostics,
    prior: &ReleaseState,
    planned: &mut ReleaseState,
    private: &Private,
) {
    if planned.retain_fleets != prior.retain_fleets || planned.history_limit != prior.history_limit
    {
        planned.history = Value::Unknown;
        planned.previous_image_id = Value::Unknown;
        planned.traffic = Value::Unknown;
    } else if let Value::Value(p) = private {
        // Weights changed outside Terraform: the plan shows them going back.
        if !p.expected_traffic.is_empty()
            && prior.traffic.as_ref_option() != Some(&p.expected_traffic)
        {
            planned.traffic = Value::Value(p.expected_traffic.clone());
        }
    }
    if let Value::Value(p) = private {
        if !p.drift.is_empty() {
            // A broken serving fleet, a half-made one, extra retained fleets: the apply
            // may change every read-only attribute.
            planned.unknown_read_only();
            diags.root_warning(
                "Drift: this apply puts the release back in shape",
                format!(
                    "{}. `terraform apply` repairs this: a broken serving fleet is replaced by a new fleet of the same arguments, a half-made fleet is finished if it matches the configuration or removed, extra retained fleets are retired.",
                    p.drift.join("; ")
                ),
            );
        }
    }
}

/// The domain spec of a planned value, or an error diagnostic.
fn spec_of(ctx: &Context, diags: &mut Diagnostics, planned: &ReleaseState) -> Option<ReleaseSpec> {
    match planned.to_spec(&ctx.default_tags) {
        Ok(s) => Some(s),
        Err(e) => {
            diags.root_error("Invalid configuration", e);
            None
        }
    }
}

/// What the Terraform layer records in the ledger for import: the arguments, without the
/// user data (read back from the launch template) and without the read-only attributes.
/// `alarm_names` when known and not empty.
fn alarm_names(planned: &ReleaseState) -> Option<Vec<String>> {
    let names = super::state::known_set(&planned.alarm_names)?;
    (!names.is_empty()).then(|| names.into_iter().collect())
}

/// What an alarm firing at plan would do to the apply (see `warn_if_alarms_fire`).
enum AlarmMeets {
    /// The promotion of a release held at this weight.
    Held(i64),
    /// A release that launches a fleet and watches alarms.
    Release,
}

/// A release whose steps launch a fleet and watch alarms (a pause or the bake).
fn watches_alarms(steps: &[Step]) -> bool {
    steps.iter().any(|s| matches!(s, Step::Launch { .. })) && steps.iter().any(|s| {
        matches!(s, Step::Watch { alarms, pause, .. } if !alarms.is_empty() && !pause.is_zero())
            || matches!(s, Step::Bake { alarms, bake, .. } if !alarms.is_empty() && !bake.is_zero())
    })
}

fn settings_snapshot(state: &ReleaseState) -> serde_json::Value {
    let mut s = state.clone();
    s.user_data = Value::Null;
    s.copy_read_only(&ReleaseState::default());
    serde_json::to_value(&s).unwrap_or(serde_json::Value::Null)
}

impl ReleaseResource {
    /// The alarms to watch exist. At plan (`refuse` false) a missing alarm is a warning on
    /// `alarm_names`: the same configuration may be about to create it (its name is known
    /// at plan, as in `examples/complete`). At apply (`refuse` true), once everything the
    /// configuration makes first exists, it is an error before anything changes: a release
    /// must never watch an alarm that is not there (it would never fire).
    async fn check_alarms(
        &self,
        ctx: &Context,
        diags: &mut Diagnostics,
        planned: &ReleaseState,
        refuse: bool,
    ) {
        let Some(names) = alarm_names(planned) else {
            return;
        };
        match ctx.engine.missing_alarms(&names).await {
            Ok(missing) if !missing.is_empty() => {
                let list = missing.join(", ");
                if refuse {
                    diags.error(
                        "Alarm not found",
                        format!("alarm_names: no CloudWatch alarm named {list} exists in this region; a release watches its alarms during every pause and the bake, so each must exist: create it first or remove it from alarm_names. Nothing was changed."),
                        AttributePath::new("alarm_names"),
                    );
                } else {
                    diags.warning(
                        "Alarm not found",
                        format!("alarm_names: no CloudWatch alarm named {list} exists in this region yet. If this configuration creates it, this is expected; otherwise the apply will refuse the release before changing anything."),
                        AttributePath::new("alarm_names"),
                    );
                }
            }
            Ok(_) => {}
            Err(e) => diags.root_error("AWS call failed", e.to_string()),
        }
    }

    /// A first release on a route that forwards to several target groups of someone else's:
    /// only one can be adopted step by step, so the release would take all traffic at once,
    /// with a fleet of `min_size` unless `desired_capacity` says more.
    fn warn_cannot_adopt(diags: &mut Diagnostics, target_groups: &[&String], explicit: bool) {
        let names: Vec<&str> = target_groups
            .iter()
            .map(|a| crate::naming::target_group_name(a))
            .collect();
        let capacity = if explicit {
            "a fleet of desired_capacity"
        } else {
            "a fleet of min_size (desired_capacity is unset)"
        };
        diags.warning(
            "Running service not adopted step by step",
            format!(
                "the route forwards to {} target groups that are not this release's ({}): only a route that forwards to one is adopted step by step, so this first release will take all of its traffic at once, with {capacity}, after its health gate. Forward to one target group first (or set desired_capacity to the service's capacity)",
                names.len(),
                names.join(", ")
            ),
            AttributePath::new("load_balancer").attribute("listener_arn"),
        );
    }

    /// An alarm of `alarm_names` already in `ALARM` at plan: nobody watches alarms between
    /// applies, and the apply would meet it. `Held(weight)`: a held release's promotion
    /// would abort; `Release`: a release would abort at its first watched pause or bake,
    /// the hotfix for what the alarm sees included.
    async fn warn_if_alarms_fire(
        ctx: &Context,
        diags: &mut Diagnostics,
        planned: &ReleaseState,
        meets: AlarmMeets,
    ) {
        let Some(names) = alarm_names(planned) else {
            return;
        };
        let Ok(firing) = ctx.engine.alarms_firing(&names).await else {
            return;
        };
        if firing.is_empty() {
            return;
        }
        let firing = firing.join(", ");
        let (summary, detail) = match meets {
            AlarmMeets::Held(weight) => (
                "Alarm in ALARM while a release is held",
                format!("alarm {firing} is in ALARM while the release is held at {weight} %: promoting it now would abort it (traffic back on the serving fleet, the held fleet deleted)"),
            ),
            AlarmMeets::Release => (
                "Alarm already in ALARM",
                format!("alarm {firing} is in ALARM now: this release would abort at its first pause (traffic back on the serving fleet, the new fleet deleted). To release a fix for what it sees, leave it out of alarm_names for this apply, or roll back to a retained fleet (a rollback watches no alarm)"),
            ),
        };
        diags.warning(summary, detail, AttributePath::new("alarm_names"));
    }

    /// `target_tracking` on a fleet whose `max_size` leaves it no room above the capacity it
    /// starts with (unset, `max_size` is the larger of `min_size` and `desired_capacity`):
    /// the policies could never scale out.
    fn warn_if_no_room_to_scale(
        diags: &mut Diagnostics,
        config: &ReleaseState,
        planned: &ReleaseState,
    ) {
        let policies = config
            .target_tracking
            .as_ref_option()
            .is_some_and(|p| !p.is_empty());
        let (Value::Value(max), Value::Value(min)) = (&planned.max_size, &planned.min_size) else {
            return;
        };
        let start = match &planned.desired_capacity {
            Value::Value(d) => (*d).max(*min),
            _ => *min,
        };
        if policies && *max <= start {
            diags.warning(
                "target_tracking cannot scale out",
                format!(
                    "max_size is {max}{}, no more than the {start} instance(s) the fleet starts with: target_tracking can scale in but never out. Set max_size above desired_capacity.",
                    if config.max_size.is_null() {
                        " (unset, it defaults to the larger of min_size and desired_capacity)"
                    } else {
                        ""
                    }
                ),
                AttributePath::new("max_size"),
            );
        }
    }

    /// `desired_capacity` set beside `target_tracking`: the policies move the desired
    /// capacity, and a value given here would be put back by every apply.
    fn warn_if_desired_with_scaling(diags: &mut Diagnostics, config: &ReleaseState) {
        let policies = config
            .target_tracking
            .as_ref_option()
            .is_some_and(|p| !p.is_empty());
        if policies && config.desired_capacity.is_value() {
            diags.warning(
                "desired_capacity beside target_tracking",
                "the scaling policies move the serving fleet's desired capacity between min_size and max_size, and a desired_capacity set here is put back by every apply that finds it moved, against them. Leave it unset: the state then follows the policies without a change to plan, and a release carries the serving fleet's desired capacity over.",
                AttributePath::new("desired_capacity"),
            );
        }
    }

    /// `launch_template`: the number its version resolves to now (unknown while the ID is),
    /// or an error on the attribute when the template or that version does not exist.
    async fn resolve_base(
        &self,
        ctx: &Context,
        diags: &mut Diagnostics,
        planned: &mut ReleaseState,
    ) {
        let Value::Value(lt) = &mut planned.launch_template else {
            return;
        };
        lt.resolved_version = Value::Unknown;
        let (Value::Value(id), Value::Value(version)) = (&lt.id, &lt.version) else {
            return;
        };
        if spec::check_launch_template_id(id).is_err()
            || spec::check_launch_template_version(version).is_err()
        {
            return; // said by validation
        }
        let at = |a: &'static str| AttributePath::new("launch_template").attribute(a);
        match ctx.engine.base_template_version(id, version).await {
            Ok(BaseVersion::Number(n)) => lt.resolved_version = Value::Value(n),
            Ok(BaseVersion::NoTemplate) => diags.error(
                "Launch template not found",
                format!("launch_template.id {id} does not exist in this region: give the ID of an existing launch template (or one this configuration creates)"),
                at("id"),
            ),
            Ok(BaseVersion::NoVersion) => diags.error(
                "Launch template version not found",
                format!("launch_template.version {version} of {id} does not exist: give \"$Latest\", \"$Default\" or an existing version number"),
                at("version"),
            ),
            Err(e) => diags.root_error("AWS call failed", e.to_string()),
        }
    }

    /// A pause or bake shorter than `analysis.interval` is never judged, and a release
    /// with no watch that long is never judged at all: the plan says so.
    fn warn_if_never_judged(ctx: &Context, diags: &mut Diagnostics, planned: &ReleaseState) {
        let Ok(spec) = planned.to_spec(&ctx.default_tags) else {
            return;
        };
        let Some(a) = &spec.analysis else { return };
        let mut watches: Vec<(String, std::time::Duration)> = spec
            .canary_steps
            .iter()
            .filter(|s| !s.pause.is_zero())
            .map(|s| (format!("the pause at {} %", s.weight), s.pause))
            .collect();
        if !spec.bake_time.is_zero() {
            watches.push(("the bake".into(), spec.bake_time));
        }
        let every = crate::duration::format(a.interval);
        let short: Vec<&str> = watches
            .iter()
            .filter(|(_, d)| *d < a.interval)
            .map(|(w, _)| w.as_str())
            .collect();
        if watches.iter().all(|(_, d)| *d < a.interval) {
            diags.root_warning(
                "Never judged by analysis",
                format!(
                    "no canary pause or bake lasts analysis.interval ({every}), so analysis never judges this release: give it a bake_time or pauses of at least {every}, or shorten the interval"
                ),
            );
        } else if !short.is_empty() {
            diags.root_warning(
                "Not judged by analysis",
                format!(
                    "{} shorter than analysis.interval ({every}): analysis never judges {}, only alarms and health watch {}",
                    short.join(", "),
                    if short.len() == 1 { "it" } else { "them" },
                    if short.len() == 1 { "it" } else { "them" },
                ),
            );
        }
    }

    /// AWS's 100 target groups per Application Load Balancer: a release that launches a
    /// fleet adds its target group to the listener's load balancer while it walks.
    async fn check_target_group_room(
        &self,
        ctx: &Context,
        diags: &mut Diagnostics,
        planned: &ReleaseState,
    ) {
        let Some(Value::Value(arn)) = planned
            .load_balancer
            .as_ref_option()
            .map(|lb| &lb.listener_arn)
        else {
            return;
        };
        let retain = planned.retain_fleets.as_ref_option().copied().unwrap_or(1);
        match ctx.engine.target_groups_on_load_balancer(arn).await {
            Ok(Some(held)) => {
                if let Err(e) = spec::check_target_group_room(held, retain) {
                    diags.error(
                        "Load balancer full",
                        e,
                        AttributePath::new("load_balancer").attribute("listener_arn"),
                    );
                }
            }
            // A listener that does not exist is said by check_in_aws.
            Ok(None) => {}
            Err(e) => diags.root_error("AWS call failed", e.to_string()),
        }
    }

    /// AWS's 50 tags per object, counted with the provider's `default_tags` merged under
    /// the release's `tags` (the configuration alone is checked at validate).
    fn check_tag_limits(ctx: &Context, diags: &mut Diagnostics, planned: &ReleaseState) {
        let (Value::Value(tags), Value::Value(inst)) = (&planned.tags, &planned.instance_tags)
        else {
            return;
        };
        let mut merged: std::collections::BTreeMap<String, String> = ctx.default_tags.clone();
        merged.extend(tags.keys().map(|k| (k.clone(), String::new())));
        let inst = inst.keys().map(|k| (k.clone(), String::new())).collect();
        for (attr, e) in spec::check_tag_counts(&merged, &inst) {
            diags.error("Invalid argument", e, AttributePath::new(attr));
        }
    }

    /// Checks that need AWS: the image exists and is available, the key pair exists (with
    /// `image`: what instances launch from); the listener exists. Returns the listener's
    /// default action as read (with `listener`, when it exists), so that no caller reads it
    /// again.
    async fn check_in_aws(
        &self,
        ctx: &Context,
        diags: &mut Diagnostics,
        planned: &ReleaseState,
        image: bool,
        listener: bool,
    ) -> Option<crate::cloud::ListenerAction> {
        let mut read = None;
        if image {
            if let Value::Value(id) = &planned.image_id {
                match ctx.engine.image_state(id).await {
                    Ok(None) => diags.error(
                        "Image not found",
                        format!("image_id {id} does not exist in this region (or is not shared with this account): use an AMI that DescribeImages returns"),
                        AttributePath::new("image_id"),
                    ),
                    Ok(Some(state)) if state != "available" => diags.error(
                        "Image not available",
                        format!("image_id {id} is {state}; it must be available before it can be released"),
                        AttributePath::new("image_id"),
                    ),
                    Ok(Some(_)) => {}
                    Err(e) => diags.root_error("AWS call failed", e.to_string()),
                }
            }
        }
        if image {
            if let Value::Value(key) = &planned.key_name {
                match ctx.engine.key_pair_exists(key).await {
                    Ok(true) => {}
                    Ok(false) => diags.error(
                        "Key pair not found",
                        format!("key_name {key} is not an EC2 key pair in this region: AWS would refuse every launch; import or create the key pair first"),
                        AttributePath::new("key_name"),
                    ),
                    Err(e) => diags.root_error("AWS call failed", e.to_string()),
                }
            }
        }
        if listener {
            if let Some(Value::Value(arn)) = planned
                .load_balancer
                .as_ref_option()
                .map(|lb| &lb.listener_arn)
            {
                match ctx.engine.route_action(&Route::listener(arn)).await {
                    Ok(None) => diags.error(
                        "Listener not found",
                        format!("load_balancer.listener_arn {arn} does not exist: create the listener first"),
                        AttributePath::new("load_balancer").attribute("listener_arn"),
                    ),
                    Ok(Some(action)) => {
                        read = Some(action);
                        let rule = planned
                            .load_balancer
                            .as_ref_option()
                            .and_then(|lb| lb.rule_arn.as_ref_option());
                        if let Some(rule) = rule {
                            match ctx.engine.rule_of_listener(arn, rule).await {
                                Ok(true) => {}
                                Ok(false) => diags.error(
                                    "Listener rule not found",
                                    format!("load_balancer.rule_arn {rule} is not a rule of listener {arn} (the listener's default rule is owned without rule_arn): create the rule on that listener first"),
                                    AttributePath::new("load_balancer").attribute("rule_arn"),
                                ),
                                Err(e) => diags.root_error("AWS call failed", e.to_string()),
                            }
                        }
                    }
                    Err(e) => diags.root_error("AWS call failed", e.to_string()),
                }
            }
        }
        read
    }

    /// After an apply: the state as AWS now says, and the arguments recorded for import
    /// (in the ledger just observed: no second read).
    async fn settle(
        &self,
        ctx: &Context,
        diags: &mut Diagnostics,
        planned: ReleaseState,
        spec: &ReleaseSpec,
        known: Option<Ledger>,
    ) -> Option<(ReleaseState, Private)> {
        let mut state = planned;
        let name = state.name.as_ref_option().cloned().unwrap_or_default();
        let obs = match known {
            // The record the apply has just written: observed without reading it again.
            Some(ledger) => match ctx.engine.observe_with(ledger).await {
                Ok(obs) => obs,
                Err(e) => {
                    report(diags, e);
                    return None;
                }
            },
            None => {
                observe_or_report(ctx, diags, &name, || {
                    (
                        "Release vanished",
                        format!("release {name} was not found in AWS right after it was applied"),
                    )
                })
                .await?
            }
        };
        fill_release(&mut state, &obs);
        let private = private_of(&obs, state.retain_fleets.as_ref_option().copied());
        if let Err(e) = ctx
            .engine
            .record_settings(spec, obs.ledger, settings_snapshot(&state))
            .await
        {
            log::warn(format!("recording settings of {}: {e}", spec.name));
        }
        Some((state, private))
    }
}

impl ReleaseResource {
    /// A plan that sets the image back to a retained fleet whose group was deleted outside
    /// Terraform (as the last read found, in the private state): warn that the apply
    /// releases a new fleet instead of rolling back.
    fn warn_if_rollback_target_gone(
        &self,
        ctx: &Context,
        diags: &mut Diagnostics,
        planned: &ReleaseState,
        private: &Private,
    ) {
        let (Ok(spec), Value::Value(p)) = (planned.to_spec(&ctx.default_tags), private) else {
            return;
        };
        for (fleet, (fingerprint, image)) in &p.gone_retained {
            if spec.fleet.matches(fingerprint) {
                diags.root_warning(
                    "Rollback target is gone",
                    format!(
                        "retained fleet {fleet} (image {image}) was deleted outside Terraform, so this apply cannot roll back to it: it releases a new fleet from that image instead, with the health gate and traffic steps of any release"
                    ),
                );
            }
        }
    }

    /// The steps an update plan will take, from what changes and the record (one read of
    /// the ledger): `Unchanged` when nothing does (the state keeps the last apply's).
    async fn planned_steps(
        &self,
        ctx: &Context,
        prior: &ReleaseState,
        planned: &ReleaseState,
        config: &ReleaseState,
        private: &Private,
    ) -> PlannedSteps {
        let Ok(spec) = planned.to_spec(&ctx.default_tags) else {
            return PlannedSteps::Unknown;
        };
        let fleet_changed = prior.fleet_spec() != planned.fleet_spec();
        let capacity_changed = prior.capacity() != planned.capacity();
        let arguments = |s: &ReleaseState| {
            let mut s = s.clone();
            s.copy_read_only(&ReleaseState::default());
            s
        };
        let settings_changed = arguments(prior) != arguments(planned);
        let mut repair: Vec<String> = Vec::new();
        if let Value::Value(p) = private {
            repair.extend(p.drift.iter().cloned());
            if !p.expected_traffic.is_empty()
                && prior.traffic.as_ref_option() != Some(&p.expected_traffic)
            {
                repair.push(format!(
                    "listener weights back to {}",
                    p.expected_traffic
                        .iter()
                        .map(|(f, w)| format!("{f} {w} %"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if !fleet_changed && !capacity_changed && !settings_changed && repair.is_empty() {
            return PlannedSteps::Unchanged;
        }
        // The ledger as the refresh read it (private state), else one read.
        let ledger = match private.as_ref_option().and_then(|p| p.record.clone()) {
            Some(l) => Some(l),
            None => match ctx.engine.ledger(&spec.name).await {
                Ok(l) => l,
                Err(_) => return PlannedSteps::Unknown,
            },
        };
        let mut kind =
            engine::held_kind(ledger.as_ref(), &spec, capacity_changed, settings_changed)
                .unwrap_or_else(|| {
                    engine::classify(
                        ledger.as_ref(),
                        &spec.fleet,
                        capacity_changed,
                        settings_changed,
                    )
                });
        if fleet_changed && !matches!(kind, PlanKind::Release | PlanKind::Rollback(_)) {
            kind = PlanKind::Release;
        }
        let mut out = Vec::new();
        if !repair.is_empty() {
            out.push(Step::Repair {
                what: repair.join("; "),
            });
        }
        out.extend(steps::plan(
            &kind,
            &spec,
            ledger.as_ref(),
            !config.desired_capacity.is_null(),
        ));
        PlannedSteps::Known(out)
    }

    /// An update, once the lease is held.
    async fn update_leased(
        &self,
        ctx: &Context,
        diags: &mut Diagnostics,
        prior: ReleaseState,
        planned: ReleaseState,
        config: ReleaseState,
    ) -> Option<(ReleaseState, Private)> {
        let spec = spec_of(ctx, diags, &planned)?;
        let limit = spec.timeouts.update;
        let explicit_desired = !config.desired_capacity.is_null();
        let fleet_changed = prior.fleet_spec() != planned.fleet_spec();
        let ledger = ctx.engine.ledger(&spec.name).await.ok().flatten();
        let capacity_changed = prior.capacity() != planned.capacity();
        let kind = engine::held_kind(ledger.as_ref(), &spec, capacity_changed, true)
            .unwrap_or_else(|| {
                engine::classify(ledger.as_ref(), &spec.fleet, capacity_changed, true)
            });
        let kind =
            if fleet_changed && kind != PlanKind::Release && !matches!(kind, PlanKind::Rollback(_))
            {
                PlanKind::Release
            } else {
                kind
            };
        if matches!(kind, PlanKind::Release | PlanKind::Rollback(_)) {
            self.check_alarms(ctx, diags, &planned, true).await;
            if !diags.errors.is_empty() {
                return None;
            }
        }
        let result = Self::run_update(ctx, &spec, kind, ledger, explicit_desired, limit).await;
        let (ledger_after, released) = match result {
            Ok(u) => u,
            Err(e @ EngineError::AfterCommit { .. }) => {
                // The release serves: the state says so, with the error.
                report(diags, e);
                return self.settle(ctx, diags, planned, &spec, None).await;
            }
            Err(e) => return Self::failed_update(ctx, diags, e, prior, &spec).await,
        };
        let after = async {
            // A release or rollback has just set and verified the listener.
            if let (false, Some(l)) = (released, &ledger_after) {
                ctx.engine.restore_traffic(&spec, l).await?;
            }
            ctx.engine
                .save_settings(&spec, ledger_after, released)
                .await
        }
        .await;
        let known = match after {
            Ok(ledger) => ledger,
            Err(e) => {
                report(diags, e);
                None
            }
        };
        self.settle(ctx, diags, planned, &spec, known).await
    }
}

impl ReleaseResource {
    /// The engine's part of an update of `kind`: a release or rollback (from the ledger
    /// just read under the lease, if any), a scale, or settings; each repairs drift first.
    /// Returns the ledger after it (None: there is none) and whether a release or rollback
    /// ran (it set and verified the route and put the serving fleet's policies on).
    async fn run_update(
        ctx: &Context,
        spec: &ReleaseSpec,
        kind: PlanKind,
        ledger: Option<Ledger>,
        explicit_desired: bool,
        limit: std::time::Duration,
    ) -> Result<(Option<Ledger>, bool), EngineError> {
        match (kind, ledger) {
            (PlanKind::Release | PlanKind::Rollback(_), Some(l)) => ctx
                .engine
                .release_known(spec, l, explicit_desired, limit)
                .await
                .map(|l| (Some(l), true)),
            (PlanKind::Release | PlanKind::Rollback(_), None) => ctx
                .engine
                .release(spec, explicit_desired, limit)
                .await
                .map(|l| (Some(l), true)),
            (PlanKind::Scale, known) => {
                let repaired = ctx
                    .engine
                    .repair(spec, known, explicit_desired, limit)
                    .await?;
                ctx.engine.scale(spec, limit).await?;
                Ok(repaired)
            }
            (PlanKind::Settings | PlanKind::NoChange, known) => {
                ctx.engine
                    .repair(spec, known, explicit_desired, limit)
                    .await
            }
        }
    }

    /// An update that failed before any commit: reported; after an abort the state goes on
    /// describing the fleet that serves (the prior arguments: the next plan proposes the
    /// release again), with the aborted attempt and its reason already in `history`.
    async fn failed_update(
        ctx: &Context,
        diags: &mut Diagnostics,
        e: EngineError,
        prior: ReleaseState,
        spec: &ReleaseSpec,
    ) -> Option<(ReleaseState, Private)> {
        let aborted = matches!(e, EngineError::Aborted { .. });
        report(diags, e);
        if !aborted {
            return None;
        }
        let obs = ctx.engine.observe(&spec.name).await.ok()??;
        let mut state = prior;
        fill_release(&mut state, &obs);
        let private = private_of(&obs, state.retain_fleets.as_ref_option().copied());
        Some((state, private))
    }
}

#[async_trait]
impl Resource for ReleaseResource {
    type State<'a> = ReleaseState;
    type PrivateState<'a> = Private;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema::release_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        config.validate(diags);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let ctx = context(&self.shared, diags)?;
        let mut state = state;
        let name = state.name.as_ref_option().cloned().unwrap_or_default();
        let mut observed = ctx.engine.observe(&name).await;
        if let (Ok(None), Some(route)) = (&observed, route_of(&state)) {
            // The ledger is gone but the state says the release exists: rebuild it from the
            // fleets' tags rather than forget fleets that may serve.
            match ctx.engine.rebuild(&name, &route).await {
                Ok(Some(ledger)) => {
                    diags.root_warning(
                        "Release ledger rebuilt",
                        format!(
                            "the ledger of release {name} ({name}-ledger) was missing in AWS; it was rebuilt from the ownership tags of {} fleet(s) and the route's weights{}. The history before the loss is gone; release numbers go on from {}.",
                            ledger.fleets.len(),
                            ledger
                                .active()
                                .map(|a| format!(" ({} serves)", a.fleet_name))
                                .unwrap_or_default(),
                            ledger.next_release
                        ),
                    );
                    observed = ctx.engine.observe_with(ledger).await.map(Some);
                }
                Ok(None) => {}
                Err(e) => observed = Err(e),
            }
            warn_notices(diags, &name);
        }
        match observed {
            Ok(Some(obs)) => {
                fill_release(&mut state, &obs);
                let private = private_of(&obs, state.retain_fleets.as_ref_option().copied());
                Some((state, private))
            }
            Ok(None) => {
                diags.root_warning(
                    "Release no longer exists",
                    format!("release {name} was not found in AWS (no ledger {name}-ledger); it was deleted outside Terraform and is removed from the state, so the next apply creates it again"),
                );
                None
            }
            Err(e) => {
                report(diags, e);
                Some((state, private_state))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        _proposed: Self::State<'a>,
        config: Self::State<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let ctx = context(&self.shared, diags)?;
        let mut planned = ReleaseState::with_defaults(&config, None);
        planned.unknown_read_only();
        self.resolve_base(ctx, diags, &mut planned).await;
        Self::warn_if_desired_with_scaling(diags, &config);
        Self::warn_if_no_room_to_scale(diags, &config, &planned);
        let listener_action = self.check_in_aws(ctx, diags, &planned, true, true).await;
        let mut first = None;
        if let Ok(spec) = planned.to_spec(&ctx.default_tags) {
            let explicit = !config.desired_capacity.is_null();
            // A route that forwards to a target group of its own already: the first release
            // adopts that service, step by step (the listener's action as just read; a
            // rule's read here).
            let route_action = match &spec.rule_arn {
                None => listener_action,
                Some(_) => ctx.engine.route_action(&spec.route()).await.ok().flatten(),
            };
            let adopting = match route_action {
                Some(crate::cloud::ListenerAction::Forward(w)) => {
                    let with: Vec<&String> =
                        w.iter().filter(|(_, x)| *x > 0).map(|(a, _)| a).collect();
                    match with.as_slice() {
                        [one] => Some(crate::naming::target_group_name(one).to_string()),
                        [] => None,
                        many => {
                            Self::warn_cannot_adopt(diags, many, explicit);
                            None
                        }
                    }
                }
                _ => None,
            };
            if adopting.is_some() && !explicit {
                // The capacity of the groups behind the adopted target group, read at apply.
                planned.desired_capacity = Value::Unknown;
            }
            first = Some(match adopting {
                Some(tg) => steps::plan_adopting(&spec, explicit, &tg),
                None => steps::plan(&PlanKind::Release, &spec, None, explicit),
            });
        }
        if first.as_deref().is_some_and(watches_alarms) {
            Self::warn_if_alarms_fire(ctx, diags, &planned, AlarmMeets::Release).await;
        }
        planned.set_planned(first.as_deref());
        self.check_target_group_room(ctx, diags, &planned).await;
        Self::check_tag_limits(ctx, diags, &planned);
        Self::warn_if_never_judged(ctx, diags, &planned);
        self.check_alarms(ctx, diags, &planned, false).await;
        if planned.desired_capacity == Value::Value(0) && config.desired_capacity.is_null() {
            diags.error(
                "Invalid argument",
                "min_size is 0 and desired_capacity is unset, so the first release would launch no instance and could never pass its health gate: set desired_capacity (or min_size) to at least 1".to_string(),
                AttributePath::new("min_size"),
            );
        }
        if let Value::Value(name) = planned.name.as_ref().filter(|n| !replacing(n)) {
            match ctx.engine.ledger(name).await {
                Ok(Some(_)) => diags.error(
                    "Release already exists",
                    format!("a release named {name} already exists in this region (launch template {name}-ledger); bring it under this configuration with `terraform import <address> {name}`, or choose another name"),
                    AttributePath::new("name"),
                ),
                Ok(None) => {}
                Err(e) => diags.root_error("AWS call failed", e.to_string()),
            }
        }
        Some((planned, Value::Null))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        _proposed: Self::State<'a>,
        config: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let ctx = context(&self.shared, diags)?;
        let mut planned = ReleaseState::with_defaults(&config, Some(&prior));
        planned.copy_read_only(&prior);
        self.resolve_base(ctx, diags, &mut planned).await;
        Self::warn_if_desired_with_scaling(diags, &config);
        Self::warn_if_no_room_to_scale(diags, &config, &planned);
        if planned.alarm_names != prior.alarm_names {
            self.check_alarms(ctx, diags, &planned, false).await;
        }
        let replace = forces_replacement(&prior, &planned);
        if !replace.is_empty() {
            // An unknown listener or VPC (made in the same apply) may or may not change:
            // Terraform's rule for an argument that forces replacement is to plan one.
            if let Value::Value(name) = &prior.name {
                if let Ok(mut r) = REPLACING.lock() {
                    r.insert(name.clone());
                }
            }
            planned.unknown_read_only();
            // The create half of the replacement plans its own steps.
            planned.set_planned(None);
            self.check_in_aws(ctx, diags, &planned, true, true).await;
            self.check_target_group_room(ctx, diags, &planned).await;
            Self::check_tag_limits(ctx, diags, &planned);
            return Some((planned, private, replace));
        }
        let steps = self
            .planned_steps(ctx, &prior, &planned, &config, &private)
            .await;
        if planned.analysis != prior.analysis
            || planned.canary_step != prior.canary_step
            || planned.bake_time != prior.bake_time
        {
            Self::warn_if_never_judged(ctx, diags, &planned);
        }
        match &steps {
            PlannedSteps::Unchanged => {}
            PlannedSteps::Known(s) => planned.set_planned(Some(s)),
            PlannedSteps::Unknown => planned.set_planned(None),
        }
        let fleet_changed = match (prior.fleet_spec(), planned.fleet_spec()) {
            (Some(a), Some(b)) => a != b,
            _ => true,
        };
        // A release held part-way whose hold_at is raised or removed is promoted: the apply
        // walks on and commits, as a release does.
        let held_at = prior
            .holding
            .as_ref_option()
            .and_then(|h| h.weight.as_ref_option().copied());
        let promotes =
            held_at.is_some_and(|w| planned.hold_at.as_ref_option().is_none_or(|h| *h > w));
        if let Some(w) = held_at {
            Self::warn_if_alarms_fire(ctx, diags, &planned, AlarmMeets::Held(w)).await;
        } else if let PlannedSteps::Known(s) = &steps {
            if watches_alarms(s) {
                Self::warn_if_alarms_fire(ctx, diags, &planned, AlarmMeets::Release).await;
            }
        }
        if fleet_changed || promotes {
            self.warn_if_rollback_target_gone(ctx, diags, &planned, &private);
            // A release launches a fleet (a rollback does not: it always has room).
            if let PlannedSteps::Known(s) = &steps {
                if s.iter().any(|s| matches!(s, Step::Launch { .. })) {
                    self.check_target_group_room(ctx, diags, &planned).await;
                }
            }
            planned.unknown_read_only();
            self.check_in_aws(
                ctx,
                diags,
                &planned,
                planned.image_id != prior.image_id || planned.key_name != prior.key_name,
                false,
            )
            .await;
            return Some((planned, private, replace));
        }
        // A settings update retags every object the release owns: the same limits, with
        // the provider's default_tags as they are now.
        Self::check_tag_limits(ctx, diags, &planned);
        plan_read_only_of_settings(diags, &prior, &mut planned, &private);
        Some((planned, private, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: Self::State<'a>,
        private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(private)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: Self::State<'a>,
        config: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let ctx = context(&self.shared, diags)?;
        let explicit_desired = !config.desired_capacity.is_null();
        let mut planned = planned;
        if matches!(planned.desired_capacity, Value::Unknown) && !explicit_desired {
            // Adopting a running service: the capacity of its groups, read by the release
            // (this is only the floor; the state gets what was launched).
            planned.desired_capacity = planned.min_size;
        }
        let spec = spec_of(ctx, diags, &planned)?;
        self.check_alarms(ctx, diags, &planned, true).await;
        if !diags.errors.is_empty() {
            return None;
        }
        let _busy = crate::stop::Busy::start();
        let lease = match ctx.engine.lease(&spec.name).await {
            Ok(l) => l,
            Err(e) => {
                report(diags, e);
                return None;
            }
        };
        let ctx = &ctx.under(&lease);
        // A live release of this name that this plan did not replace is refused, not adopted.
        let released = ctx
            .engine
            .create(&spec, explicit_desired, spec.timeouts.create)
            .await;
        let settled = match released {
            Ok(ledger) => self.settle(ctx, diags, planned, &spec, Some(ledger)).await,
            Err(e) => {
                let committed = matches!(e, EngineError::AfterCommit { .. });
                report(diags, e);
                if committed {
                    // It serves: the state says so, with the error.
                    self.settle(ctx, diags, planned, &spec, None).await
                } else {
                    None
                }
            }
        };
        lease.release().await;
        ctx.engine.flush_notifications(&spec.name).await;
        warn_notices(diags, &spec.name);
        settled
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        planned: Self::State<'a>,
        config: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let ctx = context(&self.shared, diags)?;
        let spec = spec_of(ctx, diags, &planned)?;
        let _busy = crate::stop::Busy::start();
        let lease = match ctx.engine.lease(&spec.name).await {
            Ok(l) => l,
            Err(e) => {
                report(diags, e);
                return None;
            }
        };
        let out = self
            .update_leased(&ctx.under(&lease), diags, prior, planned, config)
            .await;
        lease.release().await;
        ctx.engine.flush_notifications(&spec.name).await;
        warn_notices(diags, &spec.name);
        out
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: Self::State<'a>,
        _private: Self::PrivateState<'a>,
        _meta: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let ctx = context(&self.shared, diags)?;
        let name = prior.name.as_ref_option().cloned().unwrap_or_default();
        let route = route_of(&prior).unwrap_or_else(|| Route::listener(""));
        let _busy = crate::stop::Busy::start();
        let lease = match ctx.engine.lease(&name).await {
            Ok(l) => l,
            Err(e) => {
                report(diags, e);
                return None;
            }
        };
        // `timeouts.delete` bounds the whole destroy; what is left when it runs out is
        // found by the next destroy (by the ledger and the ownership tags).
        let limit = prior
            .to_spec(&ctx.default_tags)
            .map(|s| s.timeouts.delete)
            .unwrap_or_else(|_| crate::spec::Timeouts::default().delete);
        let engine = ctx.engine.under(&lease);
        let out = match tokio::time::timeout(limit, engine.destroy(&name, &route)).await {
            Ok(Ok(())) => Some(()),
            Ok(Err(e)) => {
                report(diags, e);
                None
            }
            Err(_) => {
                diags.root_error(
                    "Destroy timed out",
                    format!(
                        "release {name} was not destroyed within timeouts.delete ({}); what is left stays recorded, and the next destroy goes on from there",
                        crate::duration::format(limit)
                    ),
                );
                None
            }
        };
        lease.release().await;
        out
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let ctx = context(&self.shared, diags)?;
        let obs = observe_or_report(ctx, diags, &id, || {
            (
                "Cannot import",
                format!("no release named {id:?} exists in this region (no launch template {id}-ledger)"),
            )
        })
        .await?;
        let mut state: ReleaseState = obs
            .ledger
            .settings
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if let Some(active) = obs.ledger.active() {
            match ctx.engine.fleet_user_data(active).await {
                Ok(ud) => state.user_data = ud.into(),
                Err(e) => {
                    report(diags, e);
                    return None;
                }
            }
        }
        fill_release(&mut state, &obs);
        let private = private_of(&obs, state.retain_fleets.as_ref_option().copied());
        Some((state, private))
    }
}
