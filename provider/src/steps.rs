//! What an apply will do, as a list of steps computed by a pure function of the
//! configuration and the record: shown at plan (`planned_steps`, `planned_duration`) so a
//! reviewer reads what the apply will do and how long it takes at least. The traffic steps
//! come from [`decide::traffic_steps`], the very list the engine walks.

use std::time::Duration;

use crate::decide::{self, PlanKind, Step as Traffic};
use crate::duration::format as fmt;
use crate::ledger::{Ledger, Role};
use crate::spec::ReleaseSpec;

/// One step of an apply, in a reviewer's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Launch a new fleet: `count` instances (None: the serving fleet's desired capacity).
    Launch {
        fleet: String,
        count: Option<i64>,
        instance_type: String,
        image_id: String,
        /// The user's launch template and the version number its template starts from.
        base: Option<(String, i64)>,
    },
    /// A first release adopting a running service: traffic shifted from the route's own
    /// target group at these weights; it leaves the route at the commit, untouched.
    Adopt {
        target_group: String,
        weights: Vec<i64>,
    },
    /// Promote the release held at `weight` %: its health gate, then the rest of its walk.
    Promote { fleet: String, weight: i64 },
    /// Stop the release at `weight` % until an apply raises or removes `hold_at`.
    Hold { fleet: String, weight: i64 },
    /// Abandon the release held at `weight` %: traffic back on `serving`, the fleet deleted.
    Abandon {
        fleet: String,
        weight: i64,
        serving: Option<String>,
    },
    /// Finish a fleet an interrupted apply left half-made: traffic back on the serving
    /// split first, then its health gate and the rest of its walk.
    Finish {
        fleet: String,
        serving: Option<String>,
    },
    /// Wait until the share of desired capacity is healthy behind the load balancer.
    HealthGate {
        fleet: String,
        min_healthy_percentage: i64,
        checks: Duration,
        timeout: Duration,
    },
    /// Send `weight` percent to `fleet`, the rest to `serving` (if any).
    Weight {
        fleet: String,
        weight: i64,
        serving: Option<String>,
    },
    /// Hold the weight and watch the alarms and the new fleet's health.
    Watch {
        pause: Duration,
        weight: i64,
        alarms: Vec<String>,
        /// The analysis's words (`analysis::describe`), if any.
        analysis: Option<String>,
    },
    /// Hold 100 % and watch, before the release commits.
    Bake {
        bake: Duration,
        alarms: Vec<String>,
        analysis: Option<String>,
    },
    /// Keep a replaced fleet out of traffic for rollback, at capacity for the window
    /// (`policies_off`: its scaling policies taken off, so that it holds that capacity).
    Retain {
        fleet: String,
        window: Duration,
        policies_off: bool,
    },
    /// While the walk holds traffic on both fleets, these do not scale in (either may have
    /// to take all traffic); the new fleet's policies as configured once it commits.
    HoldScaleIn { fleets: Vec<String> },
    /// Make a fleet's scaling policies the configured ones (`before_traffic`: a fleet about
    /// to take traffic; else the serving fleet, in place).
    Scaling {
        fleet: String,
        policies: Vec<String>,
        before_traffic: bool,
    },
    /// Delete a fleet (after draining, if it served until moments ago).
    Delete {
        fleet: String,
        drain: Duration,
        why: String,
    },
    /// Give a retained fleet its capacity back (its window may have scaled it to zero).
    ScaleBack { fleet: String },
    /// Scale the serving fleet in place.
    Scale {
        fleet: String,
        min: i64,
        max: i64,
        desired: Option<i64>,
    },
    /// Record changed settings; no AWS object changes shape.
    Settings,
    /// Put right what changed outside Terraform (drift).
    Repair { what: String },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alarms = |a: &[String]| {
            if a.is_empty() {
                "the new fleet's health".to_string()
            } else {
                format!("alarms {} and the new fleet's health", a.join(", "))
            }
        };
        let judged = |a: &Option<String>| a.as_ref().map(|a| format!(", {a}")).unwrap_or_default();
        match self {
            Step::Launch {
                fleet,
                count,
                instance_type,
                image_id,
                base,
            } => {
                match count {
                    Some(n) => write!(f, "launch {fleet}: {n} × {instance_type} from {image_id}")?,
                    None => write!(
                        f,
                        "launch {fleet}: {instance_type} from {image_id}, as many as the serving fleet's desired capacity"
                    )?,
                }
                match base {
                    Some((id, version)) => write!(f, ", on launch template {id} version {version}"),
                    None => Ok(()),
                }
            }
            Step::Adopt {
                target_group,
                weights,
            } => write!(
                f,
                "shift from the existing target group {target_group}: {} (it is never modified or deleted, and leaves the route at the commit)",
                weights
                    .iter()
                    .map(|w| format!("{w} %"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Promote { fleet, weight } => write!(
                f,
                "promote {fleet} from {weight} %: its health checked again, then the rest of its walk"
            ),
            Step::Hold { fleet, weight } => write!(
                f,
                "hold {fleet} at {weight} % (the release stays open until an apply raises hold_at)"
            ),
            Step::Abandon {
                fleet,
                weight,
                serving,
            } => match serving {
                Some(s) => write!(
                    f,
                    "abandon {fleet}, held at {weight} %: traffic back to {s}, {fleet} deleted"
                ),
                None => write!(f, "abandon {fleet}, held at {weight} %: {fleet} deleted"),
            },
            Step::Finish { fleet, serving } => match serving {
                Some(s) => write!(
                    f,
                    "finish {fleet}, left half-made by an interrupted apply: traffic back to {s} first"
                ),
                None => write!(f, "finish {fleet}, left half-made by an interrupted apply"),
            },
            Step::HealthGate {
                fleet,
                min_healthy_percentage,
                checks,
                timeout,
            } if checks.is_zero() => write!(
                f,
                "health gate {fleet}: {min_healthy_percentage} % of desired capacity healthy behind the load balancer (timeout {})",
                fmt(*timeout)
            ),
            Step::HealthGate {
                fleet,
                min_healthy_percentage,
                checks,
                timeout,
            } => write!(
                f,
                "health gate {fleet}: {min_healthy_percentage} % of desired capacity healthy behind the load balancer (checks take at least {}; timeout {})",
                fmt(*checks),
                fmt(*timeout)
            ),
            Step::Weight {
                fleet,
                weight,
                serving,
            } => match serving {
                Some(s) if *weight < 100 => {
                    write!(f, "traffic {weight} % to {fleet}, {} % to {s}", 100 - weight)
                }
                _ => write!(f, "traffic 100 % to {fleet}"),
            },
            Step::Watch {
                pause,
                weight,
                alarms: a,
                analysis,
            } => write!(
                f,
                "watch {} at {weight} %: {}{}",
                fmt(*pause),
                alarms(a),
                judged(analysis)
            ),
            Step::Bake {
                bake,
                alarms: a,
                analysis,
            } => {
                write!(f, "bake {} at 100 %: {}{}", fmt(*bake), alarms(a), judged(analysis))
            }
            Step::Retain {
                fleet,
                window,
                policies_off,
            } => write!(
                f,
                "retain {fleet} out of traffic for rollback{}; scaled to zero after {}",
                if *policies_off {
                    ", its scaling policies off"
                } else {
                    ""
                },
                fmt(*window)
            ),
            Step::HoldScaleIn { fleets } => write!(
                f,
                "no scale-in on {} until the release commits: either may have to take all traffic",
                fleets.join(" and ")
            ),
            Step::Scaling {
                fleet,
                policies,
                before_traffic,
            } => match (policies.is_empty(), before_traffic) {
                (true, _) => write!(f, "take the scaling policies off {fleet}"),
                (false, true) => write!(
                    f,
                    "scaling policies on {fleet} before it takes traffic: {}",
                    policies.join(", ")
                ),
                (false, false) => {
                    write!(f, "scaling policies of {fleet}: {}", policies.join(", "))
                }
            },
            Step::Delete { fleet, drain, why } => {
                if drain.is_zero() {
                    write!(f, "delete {fleet} ({why})")
                } else {
                    write!(f, "drain {fleet} for {}, then delete it ({why})", fmt(*drain))
                }
            }
            Step::ScaleBack { fleet } => write!(
                f,
                "give {fleet} the serving fleet's capacity back if its rollback window scaled it in"
            ),
            Step::Scale {
                fleet,
                min,
                max,
                desired,
            } => match desired {
                Some(d) => write!(f, "scale {fleet} in place: min {min}, max {max}, desired {d}"),
                None => write!(f, "scale {fleet} in place: min {min}, max {max}"),
            },
            Step::Settings => write!(f, "record the changed settings; no fleet changes"),
            Step::Repair { what } => write!(f, "put the release back in shape: {what}"),
        }
    }
}

impl Step {
    /// The least time this step takes.
    pub fn least(&self) -> Duration {
        match self {
            Step::HealthGate { checks, .. } => *checks,
            Step::Watch { pause, .. } => *pause,
            Step::Bake { bake, .. } => *bake,
            Step::Delete { drain, .. } => *drain,
            _ => Duration::ZERO,
        }
    }
}

/// What a watch of `length` says of the analysis: the checks and how often, or that it is
/// too short to be judged.
fn analysis_words(spec: &ReleaseSpec, serving: Option<&str>, length: Duration) -> Option<String> {
    let a = spec.analysis.as_ref()?;
    let every = fmt(a.interval);
    let words = crate::analysis::describe(a, serving, &every);
    Some(if length < a.interval {
        format!("{words} (never judged: shorter than analysis.interval)")
    } else {
        words
    })
}

/// The least time a list of steps takes: health checks, pauses, bake, drains.
pub fn least_duration(steps: &[Step]) -> Duration {
    steps.iter().map(Step::least).sum()
}

/// The time a new fleet's first health checks take at least: `healthy_threshold` checks
/// `interval` apart.
fn checks(spec: &ReleaseSpec) -> Duration {
    let hc = &spec.fleet.target_group.health_check;
    Duration::from_secs((hc.interval.max(1) * hc.healthy_threshold.max(1)) as u64)
}

fn scaling(spec: &ReleaseSpec, fleet: &str, before_traffic: bool) -> Step {
    Step::Scaling {
        fleet: fleet.into(),
        policies: spec.scaling.iter().map(|t| t.to_string()).collect(),
        before_traffic,
    }
}

fn gate(spec: &ReleaseSpec, fleet: &str, checks: Duration) -> Step {
    Step::HealthGate {
        fleet: fleet.into(),
        min_healthy_percentage: spec.health.min_healthy_percentage,
        checks,
        timeout: spec.health.timeout,
    }
}

/// The steps of an apply of `kind` for `spec`, given the record (`None`: none yet).
/// `explicit_desired`: the user set `desired_capacity` (else a new fleet gets the serving
/// fleet's).
pub fn plan(
    kind: &PlanKind,
    spec: &ReleaseSpec,
    ledger: Option<&Ledger>,
    explicit_desired: bool,
) -> Vec<Step> {
    let serving = ledger
        .and_then(|l| l.active())
        .map(|f| f.fleet_name.clone());
    let alarms: Vec<String> = spec.alarm_names.iter().cloned().collect();
    match kind {
        PlanKind::NoChange => Vec::new(),
        PlanKind::Settings => {
            let mut steps = vec![Step::Settings];
            let active = ledger.and_then(|l| l.active());
            if let Some(a) = active.filter(|a| a.scaling || !spec.scaling.is_empty()) {
                steps.push(scaling(spec, &a.fleet_name, false));
            }
            steps
        }
        PlanKind::Scale => {
            let fleet = serving.unwrap_or_else(|| spec.name.clone());
            vec![
                Step::Scale {
                    fleet: fleet.clone(),
                    min: spec.capacity.min,
                    max: spec.capacity.max,
                    desired: explicit_desired.then_some(spec.capacity.desired),
                },
                gate(spec, &fleet, Duration::ZERO),
            ]
        }
        PlanKind::Release => release_steps(spec, ledger, serving, &alarms, explicit_desired),
        PlanKind::Rollback(to) => rollback_steps(spec, ledger, serving, *to),
    }
}

/// The steps of a first release that adopts a running service: the route forwards to
/// `target_group` (not the release's), from which traffic moves step by step.
pub fn plan_adopting(spec: &ReleaseSpec, explicit_desired: bool, target_group: &str) -> Vec<Step> {
    let alarms: Vec<String> = spec.alarm_names.iter().cloned().collect();
    let weights: Vec<i64> =
        decide::traffic_steps(spec.strategy, &spec.canary_steps, spec.bake_time, false)
            .into_iter()
            .filter_map(|t| match t {
                Traffic::Weight(w) => Some(w),
                _ => None,
            })
            .collect();
    let mut steps = vec![Step::Adopt {
        target_group: target_group.to_string(),
        weights,
    }];
    steps.extend(
        release_steps(spec, None, Some(target_group.to_string()), &alarms, explicit_desired)
            .into_iter()
            // Not the release's: never retained or deleted.
            .filter(|s| !matches!(s, Step::Retain { fleet, .. } | Step::Delete { fleet, .. } if fleet == target_group)),
    );
    steps
}

/// A release's steps: launch (or finish a half-made fleet of the same arguments from where
/// its walk got), health gate, the traffic walk, retirement.
fn release_steps(
    spec: &ReleaseSpec,
    ledger: Option<&Ledger>,
    serving: Option<String>,
    alarms: &[String],
    explicit_desired: bool,
) -> Vec<Step> {
    // A half-made fleet of these arguments, left by an interrupted apply, is
    // finished from where its walk got (as the engine does when its objects exist); one
    // held part-way is promoted.
    let leftover = ledger.and_then(|l| {
        l.fleets
            .iter()
            .rev()
            .find(|f| f.role == Role::Launching && spec.fleet.matches(&f.fingerprint))
    });
    // A release held with other arguments is abandoned first.
    let mut steps: Vec<Step> = ledger
        .and_then(|l| l.held())
        .filter(|h| !spec.fleet.matches(&h.fingerprint))
        .map(|h| Step::Abandon {
            fleet: h.fleet_name.clone(),
            weight: h.held.as_ref().map_or(0, |x| x.weight),
            serving: serving.clone(),
        })
        .into_iter()
        .collect();
    // The serving fleet's own arguments: nothing to release once the held one is gone.
    if ledger
        .and_then(|l| l.active())
        .is_some_and(|a| spec.fleet.matches(&a.fingerprint))
    {
        return steps;
    }
    let held_at = leftover.and_then(|f| f.held.as_ref()).map(|h| h.weight);
    steps.extend(match leftover {
        Some(f) => vec![
            match held_at {
                Some(weight) => Step::Promote {
                    fleet: f.fleet_name.clone(),
                    weight,
                },
                None => Step::Finish {
                    fleet: f.fleet_name.clone(),
                    serving: serving.clone(),
                },
            },
            gate(spec, &f.fleet_name, Duration::ZERO),
        ],
        None => {
            let next = ledger.map(|l| l.next_release).unwrap_or(1);
            let fleet = crate::naming::fleet_name(&spec.name, next);
            vec![
                Step::Launch {
                    fleet: fleet.clone(),
                    count: (explicit_desired || serving.is_none()).then_some(spec.capacity.desired),
                    instance_type: if spec.fleet.fallback_instance_types.is_empty() {
                        spec.fleet.instance_type.clone()
                    } else {
                        format!(
                            "{} (falling back to {})",
                            spec.fleet.instance_type,
                            spec.fleet.fallback_instance_types.join(", ")
                        )
                    },
                    image_id: spec.fleet.image_id.clone(),
                    base: spec.fleet.base.as_ref().map(|b| (b.id.clone(), b.version)),
                },
                gate(spec, &fleet, checks(spec)),
            ]
        }
    });
    let fleet = match leftover {
        Some(f) => f.fleet_name.clone(),
        None => crate::naming::fleet_name(&spec.name, ledger.map(|l| l.next_release).unwrap_or(1)),
    };
    let straight = serving.is_none();
    let traffic =
        decide::traffic_steps(spec.strategy, &spec.canary_steps, spec.bake_time, straight);
    if !spec.scaling.is_empty() {
        steps.push(scaling(spec, &fleet, true));
        if !straight && traffic.len() > 1 {
            let serving_carries = ledger
                .and_then(|l| l.active())
                .filter(|a| a.scaling)
                .map(|a| a.fleet_name.clone());
            steps.push(Step::HoldScaleIn {
                fleets: std::iter::once(fleet.clone())
                    .chain(serving_carries)
                    .collect(),
            });
        }
    }
    let done = leftover
        .and_then(|f| f.progress.as_ref())
        .filter(|p| p.of == decide::walk_key(&traffic))
        .map_or(0, |p| p.done);
    let mut weight = held_at.unwrap_or(0);
    let hold = |steps: &mut Vec<Step>, w: i64| {
        steps.push(Step::Hold {
            fleet: fleet.clone(),
            weight: w,
        })
    };
    if spec.hold_at == Some(0) && held_at.is_none() {
        hold(&mut steps, 0);
        return steps;
    }
    for (_, t) in decide::resume(&traffic, done) {
        steps.push(match t {
            Traffic::Weight(w) => {
                weight = w;
                if spec.hold_at == Some(w) {
                    steps.push(Step::Weight {
                        fleet: fleet.clone(),
                        weight: w,
                        serving: serving.clone(),
                    });
                    hold(&mut steps, w);
                    return steps;
                }
                Step::Weight {
                    fleet: fleet.clone(),
                    weight: w,
                    serving: serving.clone(),
                }
            }
            Traffic::Pause(p) => Step::Watch {
                pause: p,
                weight,
                alarms: alarms.to_vec(),
                analysis: analysis_words(spec, serving.as_deref(), p),
            },
            Traffic::Bake(b) => Step::Bake {
                bake: b,
                alarms: alarms.to_vec(),
                // At 100 % the serving fleet has no traffic to compare with.
                analysis: analysis_words(spec, None, b),
            },
        });
    }
    steps.extend(retirement(spec, ledger, serving.as_deref()));
    steps
}

/// A rollback's steps: the retained fleet scaled back, gated, given all traffic; the one
/// replaced joins the retained fleets.
fn rollback_steps(
    spec: &ReleaseSpec,
    ledger: Option<&Ledger>,
    serving: Option<String>,
    to: u64,
) -> Vec<Step> {
    let Some(target) = ledger.and_then(|l| l.fleets.iter().find(|f| f.release == to)) else {
        return Vec::new();
    };
    let fleet = target.fleet_name.clone();
    let mut steps = vec![
        Step::ScaleBack {
            fleet: fleet.clone(),
        },
        gate(spec, &fleet, Duration::ZERO),
    ];
    if !spec.scaling.is_empty() {
        steps.push(scaling(spec, &fleet, true));
    }
    steps.push(Step::Weight {
        fleet: fleet.clone(),
        weight: 100,
        serving: serving.clone(),
    });
    // The fleet rolled back to leaves the retained list; the one replaced joins it.
    let mut after = ledger
        .cloned()
        .unwrap_or_else(|| Ledger::new(&spec.name, &spec.listener_arn));
    after.fleets.retain(|f| f.release != to);
    steps.extend(retirement(spec, Some(&after), serving.as_deref()));
    steps
}

/// What becomes of the replaced fleet and the retained ones once a new fleet serves:
/// the newest `retain_fleets` are kept (the replaced one first), the rest deleted.
fn retirement(spec: &ReleaseSpec, ledger: Option<&Ledger>, replaced: Option<&str>) -> Vec<Step> {
    let keep = spec.retain_fleets.max(0) as usize;
    let mut candidates: Vec<String> = replaced.map(String::from).into_iter().collect();
    if let Some(l) = ledger {
        candidates.extend(
            l.retained()
                .iter()
                .map(|f| f.fleet_name.clone())
                .filter(|n| Some(n.as_str()) != replaced),
        );
    }
    let drain = Duration::from_secs(spec.fleet.target_group.deregistration_delay.max(0) as u64);
    candidates
        .into_iter()
        .enumerate()
        .map(|(i, fleet)| {
            if i < keep {
                // The fleet leaving traffic loses its policies (a retained one has none).
                let carries = ledger
                    .and_then(|l| l.fleets.iter().find(|f| f.fleet_name == fleet))
                    .is_some_and(|f| f.scaling);
                Step::Retain {
                    policies_off: i == 0 && replaced.is_some() && carries,
                    fleet,
                    window: spec.rollback_window,
                }
            } else {
                let served = Some(fleet.as_str()) == replaced;
                Step::Delete {
                    drain: if served { drain } else { Duration::ZERO },
                    fleet,
                    why: format!("beyond retain_fleets = {keep}"),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::examples::fleet;
    use crate::ledger::Progress;
    use crate::spec::*;

    /// The example release of image `ami-b`, 3 instances, checks 2 × 10 s.
    fn spec() -> ReleaseSpec {
        let mut s = crate::spec::examples::release("ami-b", "arn:listener");
        s.capacity.desired = 3;
        let hc = &mut s.fleet.target_group.health_check;
        hc.interval = 10;
        hc.healthy_threshold = 2;
        s
    }

    /// A record: web-r2 serving, web-r1 retained, next release 3.
    fn ledger() -> Ledger {
        let mut l = Ledger::new("web", "arn:listener");
        l.fleets = vec![fleet(1, Role::Retained), fleet(2, Role::Active)];
        l.next_release = 3;
        l
    }

    fn words(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_first_release_launches_gates_and_takes_all_traffic() {
        let steps = plan(&PlanKind::Release, &spec(), None, false);
        assert_eq!(
            words(&steps),
            vec![
                "launch web-r1: 3 × t3.micro from ami-b",
                "health gate web-r1: 100 % of desired capacity healthy behind the load balancer (checks take at least 20s; timeout 10m0s)",
                "traffic 100 % to web-r1",
            ]
        );
        assert_eq!(least_duration(&steps), Duration::from_secs(20));
    }

    #[test]
    fn a_canary_with_pauses_and_bake_lists_every_weight_and_watch() {
        let mut s = spec();
        s.strategy = Strategy::Canary;
        s.canary_steps = vec![
            CanaryStep {
                weight: 10,
                pause: Duration::from_secs(300),
            },
            CanaryStep {
                weight: 50,
                pause: Duration::from_secs(600),
            },
        ];
        s.alarm_names = ["web-5xx".to_string(), "web-p99".to_string()].into();
        s.bake_time = Duration::from_secs(900);
        let steps = plan(&PlanKind::Release, &s, Some(&ledger()), false);
        assert_eq!(
            words(&steps),
            vec![
                "launch web-r3: t3.micro from ami-b, as many as the serving fleet's desired capacity",
                "health gate web-r3: 100 % of desired capacity healthy behind the load balancer (checks take at least 20s; timeout 10m0s)",
                "traffic 10 % to web-r3, 90 % to web-r2",
                "watch 5m0s at 10 %: alarms web-5xx, web-p99 and the new fleet's health",
                "traffic 50 % to web-r3, 50 % to web-r2",
                "watch 10m0s at 50 %: alarms web-5xx, web-p99 and the new fleet's health",
                "traffic 100 % to web-r3",
                "bake 15m0s at 100 %: alarms web-5xx, web-p99 and the new fleet's health",
                "retain web-r2 out of traffic for rollback; scaled to zero after 1h0m0s",
                "delete web-r1 (beyond retain_fleets = 1)",
            ]
        );
        // 20 s of checks + 5 m + 10 m + 15 m of watching.
        assert_eq!(
            least_duration(&steps),
            Duration::from_secs(20 + 300 + 600 + 900)
        );
    }

    #[test]
    fn a_canary_left_in_its_last_pause_is_finished_from_there() {
        let mut s = spec();
        s.strategy = Strategy::Canary;
        s.canary_steps = [10, 50]
            .into_iter()
            .map(|weight| CanaryStep {
                weight,
                pause: Duration::from_secs(300),
            })
            .collect();
        let traffic = decide::traffic_steps(s.strategy, &s.canary_steps, s.bake_time, false);
        let mut l = ledger();
        let mut left = fleet(3, Role::Launching);
        left.fingerprint = s.fleet.fingerprint();
        l.fleets.push(left);
        l.next_release = 4;
        let at = |l: &Ledger, done: usize| {
            let mut l = l.clone();
            l.fleets[2].progress = Some(Progress {
                of: decide::walk_key(&traffic),
                done,
            });
            words(&plan(&PlanKind::Release, &s, Some(&l), false))
        };
        let head = [
            "finish web-r3, left half-made by an interrupted apply: traffic back to web-r2 first",
            "health gate web-r3: 100 % of desired capacity healthy behind the load balancer (timeout 10m0s)",
        ];
        // Killed during the last pause (the first one watched to its end): 50 % and its
        // pause again, never 10 %.
        assert_eq!(
            &at(&l, 2)[..5],
            [
                head[0],
                head[1],
                "traffic 50 % to web-r3, 50 % to web-r2",
                "watch 5m0s at 50 %: the new fleet's health",
                "traffic 100 % to web-r3",
            ]
        );
        // No progress recorded, or a different list: the whole walk.
        for done in [0, 1] {
            assert_eq!(at(&l, done)[2], "traffic 10 % to web-r3, 90 % to web-r2");
        }
        let mut other = l.clone();
        other.fleets[2].progress = Some(Progress {
            of: "w25 p1m0s w100".into(),
            done: 2,
        });
        assert_eq!(
            words(&plan(&PlanKind::Release, &s, Some(&other), false))[2],
            "traffic 10 % to web-r3, 90 % to web-r2"
        );
        // A leftover of other arguments is not finished: a new fleet is launched.
        let mut s2 = s.clone();
        s2.fleet.instance_type = "t3.small".into();
        assert_eq!(
            words(&plan(&PlanKind::Release, &s2, Some(&l), false))[0],
            "launch web-r4: t3.small from ami-b, as many as the serving fleet's desired capacity"
        );
        s2.fleet.fallback_instance_types = vec!["t3a.small".into(), "m5.large".into()];
        assert_eq!(
            words(&plan(&PlanKind::Release, &s2, Some(&l), false))[0],
            "launch web-r4: t3.small (falling back to t3a.small, m5.large) from ami-b, as many as the serving fleet's desired capacity"
        );
    }

    #[test]
    fn retain_fleets_zero_drains_the_replaced_fleet() {
        let mut s = spec();
        s.retain_fleets = 0;
        let steps = plan(&PlanKind::Release, &s, Some(&ledger()), true);
        let w = words(&steps);
        assert_eq!(w[0], "launch web-r3: 3 × t3.micro from ami-b");
        assert_eq!(
            &w[3..],
            [
                "drain web-r2 for 30s, then delete it (beyond retain_fleets = 0)",
                "delete web-r1 (beyond retain_fleets = 0)",
            ]
        );
        assert_eq!(least_duration(&steps), Duration::from_secs(20 + 30));
    }

    #[test]
    fn a_rollback_launches_nothing_and_retains_the_replaced_fleet() {
        let steps = plan(&PlanKind::Rollback(1), &spec(), Some(&ledger()), false);
        assert_eq!(
            words(&steps),
            vec![
                "give web-r1 the serving fleet's capacity back if its rollback window scaled it in",
                "health gate web-r1: 100 % of desired capacity healthy behind the load balancer (timeout 10m0s)",
                "traffic 100 % to web-r1",
                "retain web-r2 out of traffic for rollback; scaled to zero after 1h0m0s",
            ]
        );
        assert!(!steps.iter().any(|s| matches!(s, Step::Launch { .. })));
        assert_eq!(least_duration(&steps), Duration::ZERO);
        // To a fleet the record does not hold: nothing to plan.
        assert!(plan(&PlanKind::Rollback(9), &spec(), Some(&ledger()), false).is_empty());
    }

    #[test]
    fn scale_settings_and_no_change() {
        let scale = plan(&PlanKind::Scale, &spec(), Some(&ledger()), true);
        assert_eq!(
            words(&scale)[0],
            "scale web-r2 in place: min 2, max 4, desired 3"
        );
        assert_eq!(
            words(&plan(&PlanKind::Settings, &spec(), Some(&ledger()), false)),
            vec!["record the changed settings; no fleet changes"]
        );
        assert!(plan(&PlanKind::NoChange, &spec(), Some(&ledger()), false).is_empty());
    }

    #[test]
    fn scaling_policies_go_on_before_traffic_and_off_the_retained_fleet() {
        let mut s = spec();
        s.scaling = vec![TargetTracking {
            metric: REQUEST_COUNT.into(),
            target_value: 500.0,
            disable_scale_in: false,
        }];
        let mut l = ledger();
        l.fleets[1].scaling = true;
        let steps = words(&plan(&PlanKind::Release, &s, Some(&l), false));
        assert_eq!(
            steps[2..],
            [
                "scaling policies on web-r3 before it takes traffic: ALBRequestCountPerTarget at 500",
                "traffic 100 % to web-r3",
                "retain web-r2 out of traffic for rollback, its scaling policies off; scaled to zero after 1h0m0s",
                "delete web-r1 (beyond retain_fleets = 1)",
            ]
        );
        // A canary: neither fleet scales in during its walk.
        let mut c = s.clone();
        c.strategy = Strategy::Canary;
        c.canary_steps = vec![CanaryStep {
            weight: 10,
            pause: Duration::from_secs(60),
        }];
        let steps = words(&plan(&PlanKind::Release, &c, Some(&l), false));
        assert_eq!(
            steps[3],
            "no scale-in on web-r3 and web-r2 until the release commits: either may have to take all traffic"
        );
        let steps = words(&plan(&PlanKind::Rollback(1), &s, Some(&l), false));
        assert_eq!(
            steps[2..4],
            [
                "scaling policies on web-r1 before it takes traffic: ALBRequestCountPerTarget at 500",
                "traffic 100 % to web-r1",
            ]
        );
        assert_eq!(
            words(&plan(&PlanKind::Settings, &s, Some(&l), false)),
            [
                "record the changed settings; no fleet changes",
                "scaling policies of web-r2: ALBRequestCountPerTarget at 500",
            ]
        );
        s.scaling.clear();
        assert_eq!(
            words(&plan(&PlanKind::Settings, &s, Some(&l), false))[1],
            "take the scaling policies off web-r2"
        );
        // None configured, none carried: a settings update is only that.
        l.fleets[1].scaling = false;
        assert_eq!(
            words(&plan(&PlanKind::Settings, &s, Some(&l), false)).len(),
            1
        );
    }
}
