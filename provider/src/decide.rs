//! The pure decision core: no AWS, no clock, no Terraform. Given what was observed, these
//! functions say what to do next. Most of the provider's logic is tested here, as tables.

use std::time::Duration;

use crate::cloud::{GroupStatus, TargetHealth};
use crate::spec::{CanaryStep, Strategy};

/// Healthy instances needed for the gate: `ceil(desired × percentage / 100)`.
///
/// | desired | % | need |
/// |---|---|---|
/// | 3 | 100 | 3 |
/// | 3 | 50 | 2 |
/// | 1 | 1 | 1 |
/// | 0 | 100 | 0 |
pub fn healthy_needed(desired: i64, min_healthy_percentage: i64) -> i64 {
    let desired = desired.max(0);
    (desired * min_healthy_percentage + 99) / 100
}

/// What the health gate sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Instances of the group that are InService in the group and healthy in the target group.
    pub healthy: i64,
    /// How many are needed.
    pub need: i64,
    /// Instances InService in the group.
    pub in_service: i64,
    /// Desired capacity.
    pub desired: i64,
    /// Targets registered and being health-checked (`initial`): a change is coming.
    pub registering: i64,
    /// The targets that are not healthy, counted by state and reason, with the load
    /// balancer's description of each reason: what a wait or an abort says.
    pub not_healthy: Vec<NotHealthy>,
}

/// Targets in one state for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHealthy {
    /// How many.
    pub count: i64,
    /// `unused`, `initial`, `unhealthy`, `draining`, ...
    pub state: String,
    /// The reason code, e.g. `Target.NotInUse`.
    pub reason: Option<String>,
    /// The load balancer's description of the reason.
    pub description: Option<String>,
}

/// Counts the targets that are not healthy by (state, reason), in a fixed order.
fn not_healthy(targets: &[TargetHealth]) -> Vec<NotHealthy> {
    let mut out: Vec<NotHealthy> = Vec::new();
    let mut sorted: Vec<&TargetHealth> = targets.iter().filter(|t| t.state != "healthy").collect();
    sorted.sort_by(|a, b| (&a.state, &a.reason).cmp(&(&b.state, &b.reason)));
    for t in sorted {
        match out
            .iter_mut()
            .find(|n| n.state == t.state && n.reason == t.reason)
        {
            Some(n) => n.count += 1,
            None => out.push(NotHealthy {
                count: 1,
                state: t.state.clone(),
                reason: t.reason.clone(),
                description: t.description.clone(),
            }),
        }
    }
    out
}

impl Gate {
    /// Counts the gate from the group and its target group's health.
    pub fn observe(
        group: &GroupStatus,
        targets: &[TargetHealth],
        min_healthy_percentage: i64,
    ) -> Self {
        let in_service: Vec<&str> = group
            .instances
            .iter()
            .filter(|i| i.in_service())
            .map(|i| i.id.as_str())
            .collect();
        let healthy = targets
            .iter()
            .filter(|t| t.state == "healthy" && in_service.contains(&t.id.as_str()))
            .count() as i64;
        Self {
            healthy,
            need: healthy_needed(group.capacity.desired, min_healthy_percentage),
            in_service: in_service.len() as i64,
            desired: group.capacity.desired,
            registering: targets.iter().filter(|t| t.state == "initial").count() as i64,
            not_healthy: not_healthy(targets),
        }
    }

    /// The gate is open.
    pub fn open(&self) -> bool {
        self.healthy >= self.need
    }

    /// Why we are (still) waiting, in the words of a wait message: the figures, then the
    /// targets that are not healthy by state and the load balancer's reason, e.g. "need 3
    /// healthy targets, have 0 (3 of 3 instances InService); 3 `unused` (Target.NotInUse:
    /// Target group is not configured to receive traffic from the load balancer)".
    pub fn reason(&self) -> String {
        let mut text = format!(
            "need {} healthy targets, have {} ({} of {} instances InService)",
            self.need, self.healthy, self.in_service, self.desired
        );
        let parts: Vec<String> = self
            .not_healthy
            .iter()
            .map(|n| {
                let why = match (&n.reason, &n.description) {
                    (Some(r), Some(d)) => format!(" ({r}: {d})"),
                    (Some(r), None) => format!(" ({r})"),
                    (None, Some(d)) => format!(" ({d})"),
                    (None, None) => String::new(),
                };
                format!("{} `{}`{why}", n.count, n.state)
            })
            .collect();
        if !parts.is_empty() {
            text.push_str("; ");
            text.push_str(&parts.join(", "));
        }
        text
    }
}

impl Gate {
    /// Targets the load balancer does not use (`unused`, `Target.NotInUse`) although a
    /// route forwards to their target group: after a health check's start-up this cannot
    /// cure itself by waiting (AWS: the target's Availability Zone is not enabled for the
    /// load balancer). How many, or None.
    pub fn not_in_use(&self) -> Option<i64> {
        let n: i64 = self
            .not_healthy
            .iter()
            .filter(|n| n.state == "unused" && n.reason.as_deref() == Some("Target.NotInUse"))
            .map(|n| n.count)
            .sum();
        (n > 0).then_some(n)
    }
}

/// How long targets of a routed target group may stay `unused` (`Target.NotInUse`) before
/// the wait gives up on them: two health-check intervals, at least 10 s (AWS starts
/// checking a routed target group's targets within seconds).
pub fn not_in_use_grace(check_interval: Duration) -> Duration {
    (check_interval * 2).max(Duration::from_secs(10))
}

/// Whether a health wait stops now because targets stayed `unused` on a routed target
/// group for `unused_for` (see [`Gate::not_in_use`]): the abort reason, or None.
pub fn hopeless(
    gate: &Gate,
    unused_for: Option<Duration>,
    check_interval: Duration,
) -> Option<String> {
    let n = gate.not_in_use()?;
    let grace = not_in_use_grace(check_interval);
    (unused_for? >= grace).then(|| {
        format!(
            "{n} target(s) stayed `unused` (Target.NotInUse) for {}s although a route forwards to their target group: the load balancer does not use them, which waiting will not cure — their instances are most likely in an Availability Zone the load balancer does not serve (check that every subnet in subnet_ids is in a zone enabled on the load balancer); {}",
            grace.as_secs(),
            gate.reason()
        )
    })
}

/// One step of moving traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Set the new fleet's weight (percent); the serving fleet gets the rest.
    Weight(i64),
    /// Hold and watch for this long.
    Pause(Duration),
    /// Hold at 100 % and watch for this long.
    Bake(Duration),
}

/// The traffic steps of a release.
///
/// - A first release (nothing serves) and every `blue_green` release: `[Weight(100)]`.
/// - `canary` with steps 10/2m and 50/5m: `[Weight(10), Pause(2m), Weight(50), Pause(5m), Weight(100)]`.
/// - A rollback always goes straight to 100 %.
///
/// A non-zero `bake` adds `Bake(bake)` at the end.
pub fn traffic_steps(
    strategy: Strategy,
    canary: &[CanaryStep],
    bake: Duration,
    straight: bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if strategy == Strategy::Canary && !straight {
        for s in canary {
            steps.push(Step::Weight(i64::from(s.weight)));
            if !s.pause.is_zero() {
                steps.push(Step::Pause(s.pause));
            }
        }
    }
    steps.push(Step::Weight(100));
    if !bake.is_zero() {
        steps.push(Step::Bake(bake));
    }
    steps
}

/// The traffic steps in a short text kept with a walk's progress in the record
/// ("w10 p2m0s w50 p5m0s w100 b1m0s"): an apply that finds a different list starts afresh.
pub fn walk_key(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::Weight(w) => format!("w{w}"),
            Step::Pause(d) => format!("p{}", crate::duration::format(*d)),
            Step::Bake(d) => format!("b{}", crate::duration::format(*d)),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The walk an apply takes through `steps` when `done` of them were done by an earlier,
/// interrupted apply, each step with its index in `steps`. The walk goes on from the last
/// weight reached: a pause or bake that was in progress is watched again from the start at
/// that weight; a pause watched to its end is not. `done` = 0: the whole list.
pub fn resume(steps: &[Step], done: usize) -> Vec<(usize, Step)> {
    let start = done.min(steps.len());
    let mut walk: Vec<(usize, Step)> = Vec::new();
    let next_is_weight = matches!(steps.get(start), Some(Step::Weight(_)));
    if !next_is_weight {
        // The last weight reached, set again first.
        if let Some(i) = steps[..start]
            .iter()
            .rposition(|s| matches!(s, Step::Weight(_)))
        {
            walk.push((i, steps[i].clone()));
        }
    }
    walk.extend(steps.iter().cloned().enumerate().skip(start));
    walk
}

/// The listener's forward action for a weight: the new fleet gets `weight`, the serving
/// fleet the rest, retained fleets 0 (kept in the action so the ALB health-checks them).
/// Weights always sum to 100; a target group appears once.
pub fn split(
    new_tg: &str,
    weight: i64,
    serving_tg: Option<&str>,
    retained: &[String],
) -> Vec<(String, i64)> {
    let weight = weight.clamp(0, 100);
    let mut out: Vec<(String, i64)> = Vec::new();
    match serving_tg {
        Some(s) if s != new_tg => {
            out.push((new_tg.to_string(), weight));
            out.push((s.to_string(), 100 - weight));
        }
        _ => out.push((new_tg.to_string(), 100)),
    }
    for r in retained {
        if !out.iter().any(|(arn, _)| arn == r) {
            out.push((r.clone(), 0));
        }
    }
    // An ALB forward action holds at most five target groups.
    out.truncate(5);
    out
}

/// A forward's weights without the target groups `drop`, their share given back to the
/// others in proportion (summing to 100; those at 0 stay at 0). Empty when no other target
/// group had traffic.
pub fn without(weights: &[(String, i64)], drop: &[&str]) -> Vec<(String, i64)> {
    let kept: Vec<(String, i64)> = weights
        .iter()
        .filter(|(a, _)| !drop.contains(&a.as_str()))
        .cloned()
        .collect();
    let total: i64 = kept.iter().map(|(_, w)| (*w).max(0)).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut out: Vec<(String, i64)> = kept
        .iter()
        .map(|(a, w)| (a.clone(), (*w).max(0) * 100 / total))
        .collect();
    let short = 100 - out.iter().map(|(_, w)| w).sum::<i64>();
    if let Some(top) = out.iter_mut().max_by_key(|(_, w)| *w) {
        top.1 += short;
    }
    out
}

/// Whether a release may go on, after looking at alarms and the new fleet's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// Abort, because...
    Abort(String),
}

/// Judges one observation during a pause or bake.
pub fn watch(gate: &Gate, alarms_in_alarm: &[String], fleet_name: &str) -> Verdict {
    if let Some(first) = alarms_in_alarm.first() {
        return Verdict::Abort(format!(
            "alarm {first} is in ALARM{}",
            if alarms_in_alarm.len() > 1 {
                format!(" (and {} more)", alarms_in_alarm.len() - 1)
            } else {
                String::new()
            }
        ));
    }
    if !gate.open() {
        return Verdict::Abort(format!(
            "fleet {fleet_name} became unhealthy: {}",
            gate.reason()
        ));
    }
    Verdict::Continue
}

/// How long to sleep before the next poll: starts at 1 s (or the ceiling if smaller) and
/// doubles while nothing changes, never past `ceiling` nor past the time left.
pub fn next_poll(previous: Option<Duration>, ceiling: Duration, left: Duration) -> Duration {
    let start = Duration::from_secs(1).min(ceiling);
    let next = match previous {
        None => start,
        Some(p) => (p * 2).min(ceiling),
    };
    next.min(left).max(Duration::from_millis(1))
}

/// How long a health wait sleeps before its next look.
///
/// While no target is registering, nothing is expected to change soon (instances are
/// booting): back off as [`next_poll`] does. Once targets are registering (state `initial`,
/// first seen `registering_for` ago), none can pass before `healthy_threshold` checks
/// `check_interval` apart: sleep toward that moment (never longer than `ceiling`), then look
/// every `max(1 s, check_interval / 10)` (at most `ceiling`) until they pass, so the gate
/// opens within about a second of the targets turning healthy.
pub fn next_health_poll(
    previous: Option<Duration>,
    ceiling: Duration,
    left: Duration,
    registering_for: Option<Duration>,
    check_interval: Duration,
    healthy_threshold: u32,
) -> Duration {
    let Some(since) = registering_for else {
        return next_poll(previous, ceiling, left);
    };
    let earliest = check_interval * healthy_threshold.saturating_sub(1);
    let fast = (check_interval / 10)
        .max(Duration::from_secs(1))
        .min(ceiling);
    let d = if since < earliest {
        (earliest - since).min(ceiling)
    } else {
        fast
    };
    d.min(left).max(Duration::from_millis(1))
}

/// What a plan is, for a resource that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKind {
    /// Nothing changes.
    NoChange,
    /// A new fleet.
    Release,
    /// Back to the retained fleet of this release number.
    Rollback(u64),
    /// Capacity of the serving fleet only.
    Scale,
    /// Settings only; no AWS object changes shape.
    Settings,
}

/// Classifies a plan from what changed.
///
/// `retained` holds (release, fingerprint) of the retained fleets, newest first.
pub fn classify(
    serving_fingerprint: &str,
    planned_fingerprint: &str,
    retained: &[(u64, String)],
    capacity_changed: bool,
    settings_changed: bool,
) -> PlanKind {
    if serving_fingerprint != planned_fingerprint {
        return match retained.iter().find(|(_, f)| f == planned_fingerprint) {
            Some((release, _)) => PlanKind::Rollback(*release),
            None => PlanKind::Release,
        };
    }
    if capacity_changed {
        PlanKind::Scale
    } else if settings_changed {
        PlanKind::Settings
    } else {
        PlanKind::NoChange
    }
}

/// Why the serving fleet cannot be trusted to serve as it is (empty when it can): its
/// group or target group was deleted outside Terraform, the group was switched to another
/// launch template, or it runs instances not launched from the fleet's own launch template
/// version. Each is repaired by a replacement fleet, never in place.
pub fn serving_faults(
    fleet: &str,
    launch_template: (&str, i64),
    group: Option<&GroupStatus>,
    target_group_exists: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let want = (launch_template.0.to_string(), launch_template.1.to_string());
    match group {
        None => out.push(format!(
            "the Auto Scaling group of serving fleet {fleet} was deleted outside Terraform"
        )),
        Some(g) if g.deleting => out.push(format!(
            "the Auto Scaling group of serving fleet {fleet} is being deleted outside Terraform"
        )),
        Some(g) => {
            if let Some(lt) = &g.launch_template {
                if lt != &want {
                    out.push(format!(
                        "the Auto Scaling group of serving fleet {fleet} was switched to launch template {} version {} outside Terraform (the fleet's is {} version {})",
                        lt.0, lt.1, want.0, want.1
                    ));
                }
            }
            let strays: Vec<&str> = g
                .instances
                .iter()
                .filter(|i| i.launch_template.as_ref() != Some(&want))
                .map(|i| i.id.as_str())
                .collect();
            if !strays.is_empty() {
                out.push(format!(
                    "{} instance(s) of serving fleet {fleet} were not launched from its launch template {} version {}: {}",
                    strays.len(),
                    want.0,
                    want.1,
                    strays.join(", ")
                ));
            }
        }
    }
    if !target_group_exists {
        out.push(format!(
            "the target group of serving fleet {fleet} was deleted outside Terraform"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_given_back_goes_to_the_others_in_proportion() {
        let w = |v: &[(&str, i64)]| {
            v.iter()
                .map(|(a, x)| (a.to_string(), *x))
                .collect::<Vec<_>>()
        };
        type Weights<'a> = &'a [(&'a str, i64)];
        let cases: &[(Weights, &[&str], Weights)] = &[
            (&[("new", 10), ("app", 90)], &["new"], &[("app", 100)]),
            (&[("new", 10), ("app", 1)], &["new"], &[("app", 100)]),
            (
                &[("new", 50), ("a", 25), ("b", 25)],
                &["new"],
                &[("a", 50), ("b", 50)],
            ),
            (
                &[("new", 10), ("a", 60), ("b", 30), ("r", 0)],
                &["new"],
                &[("a", 67), ("b", 33), ("r", 0)],
            ),
            (&[("new", 100)], &["new"], &[]),
            (&[("new", 10), ("r", 0)], &["new"], &[]),
        ];
        for (weights, drop, want) in cases {
            assert_eq!(
                without(&w(weights), drop),
                w(want),
                "{weights:?} without {drop:?}"
            );
        }
    }

    #[test]
    fn a_walk_resumes_from_the_last_weight_reached() {
        use Step::*;
        let m = Duration::from_secs(60);
        // Canary 10 % / 2m, 50 % / 5m, then 100 % and a 1m bake.
        let steps = vec![
            Weight(10),
            Pause(2 * m),
            Weight(50),
            Pause(5 * m),
            Weight(100),
            Bake(m),
        ];
        assert_eq!(walk_key(&steps), "w10 p2m0s w50 p5m0s w100 b1m0s");
        let cases: &[(usize, &[usize])] = &[
            // Nothing done: the whole walk.
            (0, &[0, 1, 2, 3, 4, 5]),
            // 10 % set, killed in its pause: 10 % again, the pause again.
            (1, &[0, 1, 2, 3, 4, 5]),
            // The first pause watched to its end: straight to 50 %.
            (2, &[2, 3, 4, 5]),
            // Killed during the last pause: 50 % again and that pause, never 10 %.
            (3, &[2, 3, 4, 5]),
            // The last pause watched to its end: straight to 100 %.
            (4, &[4, 5]),
            // Killed during the bake: 100 % again and the bake.
            (5, &[4, 5]),
            // Everything done but the commit: 100 % again.
            (6, &[4]),
            // A count beyond the list (never written) is everything done.
            (9, &[4]),
        ];
        for (done, want) in cases {
            let got: Vec<usize> = resume(&steps, *done).iter().map(|(i, _)| *i).collect();
            assert_eq!(&got, want, "done = {done}");
            for (i, step) in resume(&steps, *done) {
                assert_eq!(step, steps[i], "done = {done}: steps keep their index");
            }
        }
        // Blue/green: one weight; a bake in progress is baked again at 100 %.
        let bg = vec![Weight(100), Bake(m)];
        assert_eq!(resume(&bg, 0), vec![(0, Weight(100)), (1, Bake(m))]);
        assert_eq!(resume(&bg, 1), vec![(0, Weight(100)), (1, Bake(m))]);
        // A canary without pauses has nothing worth resuming but is walked from its weight.
        let quick = vec![Weight(10), Weight(100)];
        assert_eq!(resume(&quick, 1), vec![(1, Weight(100))]);
    }
    use crate::cloud::InstanceStatus;
    use crate::spec::Capacity;

    fn group(desired: i64, states: &[(&str, &str, &str)]) -> GroupStatus {
        GroupStatus {
            name: "web-r1".into(),
            capacity: Capacity {
                min: 0,
                max: 10,
                desired,
            },
            instances: states
                .iter()
                .map(|(id, lc, h)| InstanceStatus {
                    id: id.to_string(),
                    lifecycle_state: lc.to_string(),
                    health_status: h.to_string(),
                    launch_template: Some(("lt-1".into(), "1".into())),
                })
                .collect(),
            tags: Default::default(),
            target_group_arns: vec![],
            launch_template: None,
            deleting: false,
        }
    }

    fn th(id: &str, state: &str) -> TargetHealth {
        TargetHealth {
            id: id.into(),
            state: state.into(),
            reason: None,
            description: None,
        }
    }

    #[test]
    fn gate_says_why_targets_are_not_healthy() {
        let unused = |id: &str| TargetHealth {
            id: id.into(),
            state: "unused".into(),
            reason: Some("Target.NotInUse".into()),
            description: Some(
                "Target group is not configured to receive traffic from the load balancer".into(),
            ),
        };
        let group = group(
            3,
            &[
                ("i-1", "InService", "Healthy"),
                ("i-2", "InService", "Healthy"),
                ("i-3", "InService", "Healthy"),
            ],
        );
        let gate = Gate::observe(
            &group,
            &[unused("i-1"), unused("i-2"), th("i-3", "healthy")],
            100,
        );
        assert_eq!(
            gate.reason(),
            "need 3 healthy targets, have 1 (3 of 3 instances InService); 2 `unused` (Target.NotInUse: Target group is not configured to receive traffic from the load balancer)"
        );
        let all_healthy = Gate::observe(&group, &[th("i-1", "healthy")], 100);
        assert!(!all_healthy.reason().contains(';'));
    }

    #[test]
    fn unused_targets_of_a_routed_target_group_are_hopeless_after_the_grace() {
        let g = group(
            2,
            &[
                ("i-1", "InService", "Healthy"),
                ("i-2", "InService", "Healthy"),
            ],
        );
        let unused = |id: &str| TargetHealth {
            id: id.into(),
            state: "unused".into(),
            reason: Some("Target.NotInUse".into()),
            description: Some(
                "Target is in an Availability Zone that is not enabled for the load balancer"
                    .into(),
            ),
        };
        let s = Duration::from_secs;
        let both = Gate::observe(&g, &[unused("i-1"), unused("i-2")], 100);
        let one = Gate::observe(&g, &[unused("i-1"), th("i-2", "healthy")], 100);
        let initial = Gate::observe(&g, &[th("i-1", "initial"), th("i-2", "initial")], 100);
        // (gate, unused for, health-check interval) → gives up?
        for (gate, unused_for, interval, hopeless_now) in [
            (&both, None, s(5), false),
            (&both, Some(s(9)), s(5), false),
            (&both, Some(s(10)), s(5), true),
            (&both, Some(s(30)), s(30), false),
            (&both, Some(s(60)), s(30), true),
            (&one, Some(s(10)), s(5), true),
            (&initial, Some(s(600)), s(5), false),
        ] {
            let got = hopeless(gate, unused_for, interval);
            assert_eq!(
                got.is_some(),
                hopeless_now,
                "{unused_for:?} {interval:?}: {got:?}"
            );
        }
        let why = hopeless(&both, Some(s(10)), s(5)).unwrap();
        assert!(why.contains("2 target(s) stayed `unused`"), "{why}");
        assert!(why.contains("Availability Zone"), "{why}");
        assert_eq!(one.not_in_use(), Some(1));
        assert_eq!(initial.not_in_use(), None);
    }

    #[test]
    fn healthy_needed_table() {
        for (desired, pct, need) in [
            (3, 100, 3),
            (3, 50, 2),
            (1, 1, 1),
            (0, 100, 0),
            (10, 33, 4),
            (4, 75, 3),
        ] {
            assert_eq!(healthy_needed(desired, pct), need, "{desired} × {pct} %");
        }
    }

    #[test]
    fn gate_counts_only_in_service_and_target_healthy() {
        let g = group(
            3,
            &[
                ("i-1", "InService", "Healthy"),
                ("i-2", "Pending", "Healthy"),
                ("i-3", "InService", "Unhealthy"),
            ],
        );
        let t = [
            th("i-1", "healthy"),
            th("i-2", "healthy"),
            th("i-3", "healthy"),
            th("i-9", "healthy"),
        ];
        let gate = Gate::observe(&g, &t, 100);
        assert_eq!(
            gate,
            Gate {
                healthy: 1,
                need: 3,
                in_service: 1,
                desired: 3,
                registering: 0,
                not_healthy: vec![],
            }
        );
        assert!(!gate.open());
        assert_eq!(
            gate.reason(),
            "need 3 healthy targets, have 1 (1 of 3 instances InService)"
        );
        let t = [th("i-1", "unhealthy")];
        assert_eq!(Gate::observe(&g, &t, 1).healthy, 0);
    }

    #[test]
    fn gate_of_an_empty_fleet_is_open() {
        assert!(Gate::observe(&group(0, &[]), &[], 100).open());
    }

    #[test]
    fn steps_table() {
        let canary = vec![
            CanaryStep {
                weight: 10,
                pause: Duration::from_secs(120),
            },
            CanaryStep {
                weight: 50,
                pause: Duration::ZERO,
            },
        ];
        use Step::*;
        let cases: Vec<(Strategy, bool, Duration, Vec<Step>)> = vec![
            (
                Strategy::BlueGreen,
                false,
                Duration::ZERO,
                vec![Weight(100)],
            ),
            (
                Strategy::BlueGreen,
                false,
                Duration::from_secs(60),
                vec![Weight(100), Bake(Duration::from_secs(60))],
            ),
            (
                Strategy::Canary,
                false,
                Duration::ZERO,
                vec![
                    Weight(10),
                    Pause(Duration::from_secs(120)),
                    Weight(50),
                    Weight(100),
                ],
            ),
            (Strategy::Canary, true, Duration::ZERO, vec![Weight(100)]),
        ];
        for (strategy, straight, bake, want) in cases {
            assert_eq!(traffic_steps(strategy, &canary, bake, straight), want);
        }
    }

    #[test]
    fn split_sums_to_100_and_keeps_retained_at_zero() {
        let retained = vec!["r1".to_string(), "r2".to_string()];
        for w in [0, 1, 10, 50, 99, 100, 150, -5] {
            for serving in [None, Some("s")] {
                let s = split("n", w, serving, &retained);
                assert_eq!(
                    s.iter().map(|(_, w)| w).sum::<i64>(),
                    100,
                    "{w} {serving:?}"
                );
                assert!(s
                    .iter()
                    .filter(|(a, _)| a.starts_with('r'))
                    .all(|(_, w)| *w == 0));
            }
        }
        assert_eq!(
            split("n", 10, Some("s"), &[]),
            vec![("n".into(), 10), ("s".into(), 90)]
        );
        assert_eq!(split("n", 10, None, &[]), vec![("n".into(), 100)]);
        assert_eq!(split("n", 30, Some("n"), &[]), vec![("n".into(), 100)]);
    }

    #[test]
    fn watch_aborts_on_alarm_or_unhealthy() {
        let open = Gate {
            healthy: 3,
            need: 3,
            in_service: 3,
            desired: 3,
            registering: 0,
            not_healthy: vec![],
        };
        let closed = Gate {
            healthy: 1,
            need: 3,
            in_service: 3,
            desired: 3,
            registering: 0,
            not_healthy: vec![],
        };
        assert_eq!(watch(&open, &[], "web-r2"), Verdict::Continue);
        assert_eq!(
            watch(&open, &["web-5xx".into()], "web-r2"),
            Verdict::Abort("alarm web-5xx is in ALARM".into())
        );
        assert!(matches!(watch(&closed, &[], "web-r2"), Verdict::Abort(r) if r.contains("have 1")));
    }

    #[test]
    fn polls_back_off_to_the_ceiling() {
        let ceiling = Duration::from_secs(5);
        let mut p = None;
        let mut seen = vec![];
        for _ in 0..5 {
            let n = next_poll(p, ceiling, Duration::from_secs(100));
            seen.push(n.as_secs());
            p = Some(n);
        }
        assert_eq!(seen, vec![1, 2, 4, 5, 5]);
        assert_eq!(
            next_poll(None, Duration::from_millis(100), Duration::from_secs(1)),
            Duration::from_millis(100)
        );
        assert_eq!(
            next_poll(Some(ceiling), ceiling, Duration::from_millis(300)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn classify_table() {
        let retained = vec![(2, "b".to_string()), (1, "a".to_string())];
        assert_eq!(
            classify("c", "c", &retained, false, false),
            PlanKind::NoChange
        );
        assert_eq!(
            classify("c", "d", &retained, false, false),
            PlanKind::Release
        );
        assert_eq!(
            classify("c", "a", &retained, true, true),
            PlanKind::Rollback(1)
        );
        assert_eq!(classify("c", "c", &retained, true, true), PlanKind::Scale);
        assert_eq!(
            classify("c", "c", &retained, false, true),
            PlanKind::Settings
        );
    }

    #[test]
    fn serving_faults_table() {
        let healthy = group(2, &[("i-1", "InService", "Healthy")]);
        let mut g = healthy.clone();
        g.launch_template = Some(("lt-1".into(), "1".into()));
        assert!(serving_faults("web-r1", ("lt-1", 1), Some(&g), true).is_empty());
        // Deleted group, deleted target group.
        let f = serving_faults("web-r1", ("lt-1", 1), None, false);
        assert_eq!(f.len(), 2);
        assert!(f[0].contains("Auto Scaling group of serving fleet web-r1 was deleted"));
        assert!(f[1].contains("target group of serving fleet web-r1 was deleted"));
        // The group switched to version 2, an instance launched from it.
        let mut switched = g.clone();
        switched.launch_template = Some(("lt-1".into(), "2".into()));
        switched.instances[0].launch_template = Some(("lt-1".into(), "2".into()));
        let f = serving_faults("web-r1", ("lt-1", 1), Some(&switched), true);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].contains("switched to launch template lt-1 version 2"));
        assert!(f[1].contains("1 instance(s) of serving fleet web-r1 were not launched"));
        assert!(f[1].contains("i-1"));
        // An instance attached by hand has no launch template at all.
        let mut attached = g.clone();
        attached.instances[0].launch_template = None;
        assert!(
            serving_faults("web-r1", ("lt-1", 1), Some(&attached), true)[0]
                .contains("not launched from its launch template")
        );
        let mut deleting = g;
        deleting.deleting = true;
        assert!(
            serving_faults("web-r1", ("lt-1", 1), Some(&deleting), true)[0]
                .contains("being deleted")
        );
    }

    #[test]
    fn health_polls_wait_for_the_checks_then_look_often() {
        let s = Duration::from_secs;
        let ceiling = s(5);
        let left = s(600);
        // Nothing registering: the back-off of next_poll.
        assert_eq!(next_health_poll(None, ceiling, left, None, s(30), 3), s(1));
        assert_eq!(
            next_health_poll(Some(s(4)), ceiling, left, None, s(30), 3),
            s(5)
        );
        // Registering for 2 s, 2 checks 5 s apart needed: wait until 5 s.
        assert_eq!(
            next_health_poll(Some(s(1)), ceiling, left, Some(s(2)), s(5), 2),
            s(3)
        );
        // Far from it: no longer than the ceiling.
        assert_eq!(
            next_health_poll(None, ceiling, left, Some(s(0)), s(30), 3),
            s(5)
        );
        // Past it: every max(1 s, interval / 10), at most the ceiling.
        assert_eq!(
            next_health_poll(None, ceiling, left, Some(s(6)), s(5), 2),
            s(1)
        );
        assert_eq!(
            next_health_poll(None, ceiling, left, Some(s(70)), s(30), 3),
            s(3)
        );
        assert_eq!(
            next_health_poll(
                None,
                Duration::from_millis(100),
                left,
                Some(s(70)),
                s(30),
                3
            ),
            Duration::from_millis(100)
        );
        // Never past the deadline.
        assert_eq!(
            next_health_poll(
                None,
                ceiling,
                Duration::from_millis(300),
                Some(s(70)),
                s(30),
                3
            ),
            Duration::from_millis(300)
        );
    }
}
