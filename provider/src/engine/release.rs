//! A release, start to commit: the record read (or rebuilt), what an interrupted apply left
//! settled, a rollback taken instead when a retained fleet has the arguments, the new fleet
//! launched (or the half-made one made ready again), the health gate, the traffic walk
//! ([`super::walk`]), and the commit. Each failure before the commit ends in
//! [`Engine::fail`]: traffic back where it was, verified.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::walk::{Walk, Walked};
use super::{
    current_release, fleet_name, reason_of, user_tags, Engine, EngineError, EngineResult, Note,
    TAG_PHASE,
};
use crate::cloud::{GroupStatus, RouteState};
use crate::decide;
use crate::duration::format as fmt_duration;
use crate::ledger::{FleetRecord, HistoryEntry, Ledger, Role, Status};
use crate::log;
use crate::notify::Event;
use crate::spec::{ReleaseSpec, Strategy};

/// How a release was asked for.
#[derive(Default)]
pub(super) struct Ask {
    /// The user set `desired_capacity` (else the serving fleet's is carried over).
    pub explicit_desired: bool,
    /// The apply's time limit (`timeouts`).
    pub limit: Duration,
    /// Why the serving fleet cannot serve (its group or target group deleted, instances not
    /// from its template): the new fleet takes all traffic at once, the broken one is
    /// deleted instead of retained.
    pub broken: Option<String>,
    /// A create: a live release of that name is refused, never adopted.
    pub fresh: bool,
    /// The record as the caller has just read it (under the lease): no second read.
    pub known: Option<Ledger>,
    /// A first release adopting a running service: the target group the route forwards to
    /// (not the release's), which it takes traffic from step by step and never touches.
    pub adopting: Option<String>,
}

/// What is left to do once a release has committed.
struct AfterCommit {
    /// The fleet that served until the commit.
    serving: Option<FleetRecord>,
    /// Why it could not serve (then it is deleted, not retained).
    broken: Option<String>,
    /// The new fleet's policies as the walk held them (no scale-in), to be let go.
    held: Option<Vec<crate::cloud::ScalingPolicy>>,
    started: Instant,
}

/// A new (or resumed) fleet on its way to traffic.
struct InFlight {
    record: FleetRecord,
    /// The route as it was before anything changed: what an abort puts back.
    previous: RouteState,
    started_at: String,
}

impl Engine {
    /// A release as `ask` says (see [`Ask`]).
    pub(super) async fn release_as(
        &self,
        spec: &ReleaseSpec,
        mut ask: Ask,
    ) -> EngineResult<Ledger> {
        let started = Instant::now();
        let mut ledger = self.ledger_for_release(spec, &ask).await?;
        ledger.listener_arn = spec.listener_arn.clone();
        ledger.rule_arn = spec.rule_arn.clone();
        let resumed = self.settle_leftovers(spec, &mut ledger).await?;
        let mut previous = self.route_before(spec).await?;
        if let Some(held) = resumed.as_ref().filter(|r| r.held.is_some()) {
            // A held release keeps its share while it is promoted; what an abort puts
            // back is the route before it took any: the serving fleet's alone (or the
            // adopted service's target group's).
            let before = match ledger.active() {
                Some(active) => decide::split(
                    &active.target_group_arn,
                    100,
                    None,
                    &ledger.retained_target_groups(),
                ),
                None => decide::without(&previous.forward(), &[&held.target_group_arn]),
            };
            if !before.is_empty() {
                previous =
                    self.cloud
                        .traffic
                        .with_forward(&previous, &before, spec.sticky_seconds());
            }
        }
        if resumed.is_none() && ask.broken.is_none() {
            if let Some(to) = self.rollback_target(spec, &mut ledger).await? {
                return self.rollback(spec, ledger, to, ask.limit).await;
            }
            // The serving fleet's own arguments (a held release abandoned by setting them
            // back): nothing to release.
            if ledger
                .active()
                .is_some_and(|a| spec.fleet.matches(&a.fingerprint))
            {
                return Ok(ledger);
            }
        }
        let serving = ledger.active().cloned();
        if serving.is_none() && ask.broken.is_none() {
            ask.adopting = adopted(&previous, &ledger);
        }
        let fresh_group = resumed.is_none();
        let fleet = self
            .prepare_fleet(spec, &mut ledger, resumed, previous, &ask)
            .await?;
        let InFlight {
            mut record,
            previous,
            started_at,
        } = fleet;
        let health_limit = spec
            .health
            .timeout
            .min(ask.limit.saturating_sub(started.elapsed()));
        let healthy = self.wait_healthy(&record, spec, health_limit).await;
        if let Err(reason) = reason_of(healthy) {
            return Err(self
                .fail(spec, ledger, &record, &previous, &started_at, reason)
                .await);
        }
        self.notify(
            spec,
            Note::of(
                Event::Healthy,
                &record,
                serving.as_ref().map(|s| s.fleet_name.as_str()),
                Self::named(&ledger, &previous.forward()),
            ),
        );
        let walk = walk_of(spec, &ask, serving.as_ref(), &ledger, started);
        // Its scaling policies before it takes traffic. While the walk holds traffic on
        // both fleets, neither scales in: either may have to take all of it (the new one at
        // the end, the serving one on an abort).
        let hold = walk.serving_arn.is_some() && walk.steps.len() > 1;
        let held = match self
            .policies_before_walk(spec, &record, fresh_group, serving.as_ref(), hold)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                return Err(self
                    .fail(spec, ledger, &record, &previous, &started_at, e.to_string())
                    .await)
            }
        };
        record.scaling = !held.is_empty();
        let walked = self.walk(spec, &mut ledger, &mut record, &walk).await;
        let walked = match reason_of(walked) {
            Ok(w) => w,
            Err(reason) => {
                let error = self
                    .fail(spec, ledger, &record, &previous, &started_at, reason)
                    .await;
                self.policies_after_abort(spec, serving.as_ref(), hold)
                    .await;
                return Err(error);
            }
        };
        if let Walked::Held(weight) = walked {
            return self
                .hold(spec, ledger, record, serving.as_ref(), weight, &started_at)
                .await;
        }
        let fleet = InFlight {
            record,
            previous,
            started_at,
        };
        let ledger = self.commit(spec, ledger, &fleet).await?;
        if let Some(tg) = &ask.adopting {
            // The service's own target group leaves the route, untouched otherwise.
            let alone = decide::split(&fleet.record.target_group_arn, 100, None, &[]);
            if let Err(e) = self.set_traffic(spec, &alone).await {
                return Err(EngineError::AfterCommit {
                    release: fleet.record.release,
                    fleet: fleet.record.fleet_name.clone(),
                    error: format!(
                        "taking target group {} out of the route failed: {e}",
                        crate::naming::target_group_name(tg)
                    ),
                });
            }
            log::info(format!(
                "release {}: adopted; target group {} is out of the route (not modified or deleted)",
                fleet.record.fleet_name,
                crate::naming::target_group_name(tg)
            ));
        }
        self.notify(
            spec,
            Note::of(
                Event::Committed,
                &fleet.record,
                serving.as_ref().map(|s| s.fleet_name.as_str()),
                BTreeMap::from([(fleet.record.fleet_name.clone(), 100)]),
            ),
        );
        let after = AfterCommit {
            serving,
            broken: ask.broken,
            held: hold.then_some(held),
            started,
        };
        self.after_commit(spec, ledger, &fleet.record, after).await
    }

    /// Ends an apply with the release held at `weight` % (`hold_at`): the fleet recorded
    /// as held (its phase tag says so too, for a record rebuilt from tags), a `holding`
    /// line in the history, nothing committed or retired.
    async fn hold(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        mut record: FleetRecord,
        serving: Option<&FleetRecord>,
        weight: i64,
        started_at: &str,
    ) -> EngineResult<Ledger> {
        let since = record
            .held
            .as_ref()
            .filter(|h| h.weight == weight)
            .map(|h| h.since.clone())
            .unwrap_or_else(|| self.now_rfc3339());
        record.held = Some(crate::ledger::Held {
            weight,
            since: since.clone(),
        });
        ledger.update_fleet(&record);
        ledger.push_history(
            HistoryEntry {
                release: record.release,
                image_id: record.image_id.clone(),
                fleet_name: record.fleet_name.clone(),
                status: Status::Holding,
                started_at: started_at.to_string(),
                finished_at: None,
                reason: Some(format!("held at {weight} % since {since} (hold_at)")),
            },
            spec.history_limit as usize,
        );
        self.cloud
            .ledger
            .save(&ledger, &Self::ledger_tags(spec))
            .await?;
        self.tag_phase(&record.fleet_name, &format!("held-{weight}"))
            .await;
        let mut traffic = BTreeMap::from([(record.fleet_name.clone(), weight)]);
        if let Some(s) = serving {
            traffic.insert(s.fleet_name.clone(), 100 - weight);
        }
        self.notify(
            spec,
            Note::of(
                Event::Held,
                &record,
                serving.map(|s| s.fleet_name.as_str()),
                traffic,
            ),
        );
        log::info(format!(
            "release {}: held at {weight} %; an apply that raises or removes hold_at promotes it",
            record.fleet_name
        ));
        Ok(ledger)
    }

    /// The record the release goes on from: `known`, or read, or rebuilt from the fleets'
    /// tags, or a new one. A create (`fresh`) refuses a live release of that name.
    async fn ledger_for_release(&self, spec: &ReleaseSpec, ask: &Ask) -> EngineResult<Ledger> {
        let (ledger, rebuilt) = match &ask.known {
            Some(l) => (Some(l.clone()), false),
            None => match self.load_readable(&spec.name).await? {
                Some(l) => (Some(l), false),
                None => (self.rebuild(&spec.name, &spec.route()).await?, true),
            },
        };
        let name = &spec.name;
        match ledger {
            Some(l) if ask.fresh && l.active().is_some() => Err(EngineError::Refused(if rebuilt {
                format!(
                    "a release named {name} already serves from {} in this region (its ledger was lost and has been rebuilt from its fleets' tags); bring it under this configuration with `terraform import <address> {name}`, or choose another name",
                    l.active().map(|a| a.fleet_name.as_str()).unwrap_or_default(),
                )
            } else {
                format!(
                    "a release named {name} already exists in this region (launch template {name}-ledger); bring it under this configuration with `terraform import <address> {name}`, or choose another name"
                )
            })),
            Some(l) => Ok(l),
            None => Ok(Ledger::new(name, &spec.listener_arn)),
        }
    }

    /// The route's action before anything changes (what an abort puts back); a route that
    /// does not exist is refused.
    async fn route_before(&self, spec: &ReleaseSpec) -> EngineResult<RouteState> {
        let route = spec.route();
        self.cloud.traffic.read(&route).await?.ok_or_else(|| {
            EngineError::Refused(match &route.rule_arn {
                Some(rule) => format!(
                    "listener rule {rule} does not exist: create it first (the release owns its action)"
                ),
                None => format!(
                    "listener {} does not exist: create it first (the release owns its default action)",
                    route.listener_arn
                ),
            })
        })
    }

    /// The retained release whose fleet has `spec`'s fleet-shaping arguments: the apply is
    /// a rollback to it. One deleted outside Terraform is taken out of the listener and the
    /// record instead (setting its image back is then a fresh release).
    async fn rollback_target(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
    ) -> EngineResult<Option<u64>> {
        let Some(release) = ledger
            .retained()
            .iter()
            .find(|f| spec.fleet.matches(&f.fingerprint))
            .map(|f| f.release)
        else {
            return Ok(None);
        };
        let Some(fleet) = self.retained_gone(ledger, release).await? else {
            return Ok(Some(release));
        };
        log::warn(format!(
            "release {}: retained fleet {} was deleted outside Terraform; releasing a new fleet instead of rolling back to it",
            spec.name, fleet.fleet_name
        ));
        ledger.fleets.retain(|f| f.release != fleet.release);
        // Out of the forward action first: AWS refuses to delete a target group a route
        // names, even at weight 0.
        if let Some(active) = ledger.active() {
            let split = decide::split(
                &active.target_group_arn,
                100,
                None,
                &ledger.retained_target_groups(),
            );
            self.set_traffic(spec, &split).await?;
        }
        self.delete_fleet(
            &spec.route(),
            &fleet.fleet_name,
            Some(&fleet.target_group_arn),
        )
        .await?;
        ledger.set_status(
            fleet.release,
            Status::Retired,
            Some("its fleet was deleted outside Terraform".into()),
            Some(self.now_rfc3339()),
        );
        self.notify(
            spec,
            Note::of(Event::Retired, &fleet, None, super::serving_alone(ledger))
                .because("its fleet was deleted outside Terraform"),
        );
        Ok(None)
    }

    /// The fleet to release, ready for its health gate: the half-made one an interrupted
    /// apply left (`resumed`), made ready again, or a new one launched. A failure here ends
    /// in [`Engine::fail`] (returned as the error).
    async fn prepare_fleet(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        resumed: Option<FleetRecord>,
        previous: RouteState,
        ask: &Ask,
    ) -> EngineResult<InFlight> {
        let new_name = match &resumed {
            Some(r) => r.fleet_name.clone(),
            None => fleet_name(&spec.name, ledger.next_release),
        };
        // The serving group (its capacity is carried over) and the new one's name in one
        // read.
        let serving_name = ledger.active().map(|a| a.fleet_name.clone());
        let names: Vec<String> = serving_name.iter().cloned().chain([new_name]).collect();
        let groups = self.cloud.fleets.describe_groups(&names).await?;
        let group = |name: &str| groups.iter().find(|g| g.name == name);
        // Adopting a running service: the capacity of the groups behind its target group.
        let behind = match (&serving_name, &ask.adopting) {
            (None, Some(tg)) if !ask.explicit_desired => {
                self.cloud
                    .fleets
                    .groups_behind(std::slice::from_ref(tg))
                    .await?
            }
            _ => Vec::new(),
        };
        let adopted_group = behind.first().cloned().map(|mut g| {
            g.capacity.desired = behind.iter().map(|g| g.capacity.desired).sum();
            g
        });
        if let (Some(tg), Some(g)) = (&ask.adopting, &adopted_group) {
            log::info(format!(
                "release {}: adopting target group {}: {} instance(s), as its group(s) {} have",
                spec.name,
                crate::naming::target_group_name(tg),
                g.capacity.desired,
                behind
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let capacity = Self::new_capacity(
            spec,
            ask.explicit_desired,
            serving_name
                .as_deref()
                .and_then(group)
                .or(adopted_group.as_ref()),
        );
        let started_at = self.now_rfc3339();
        let (record, prepared) = match resumed {
            Some(mut record) => {
                record.stopped = None;
                let own = group(&record.fleet_name);
                let prepared = self
                    .ready_again(spec, &mut record, own, capacity, &previous)
                    .await;
                (record, prepared)
            }
            None => {
                let own = group(&fleet_name(&spec.name, ledger.next_release));
                self.launch(spec, ledger, capacity, own, &previous).await?
            }
        };
        ledger.update_fleet(&record);
        // (A held release being promoted started in an earlier apply.)
        if record.held.is_none() {
            self.notify(
                spec,
                Note::of(
                    Event::Started,
                    &record,
                    serving_name.as_deref(),
                    Self::named(ledger, &previous.forward()),
                ),
            );
        }
        if let Err(e) = prepared {
            return Err(self
                .fail(
                    spec,
                    ledger.clone(),
                    &record,
                    &previous,
                    &started_at,
                    e.to_string(),
                )
                .await);
        }
        Ok(InFlight {
            record,
            previous,
            started_at,
        })
    }

    /// A new fleet launched under the next release number: recorded as `launching` first,
    /// then its objects made. Returns the record and how the making went (a failure there
    /// ends the release in [`Engine::fail`]); an error here (the name taken by a stranger,
    /// the record not written) ends it before anything was made.
    async fn launch(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        capacity: crate::spec::Capacity,
        group: Option<&GroupStatus>,
        previous: &RouteState,
    ) -> EngineResult<(FleetRecord, EngineResult<()>)> {
        let release = ledger.next_release;
        let name = fleet_name(&spec.name, release);
        // A leftover of an earlier attempt with the same number is ours: clear it.
        if self.check_free(spec, &name, group).await? {
            self.delete_fleet(&spec.route(), &name, None).await?;
        }
        log::info(format!(
            "release {name}: launching {} × {} from {}",
            capacity.desired, spec.fleet.instance_type, spec.fleet.image_id
        ));
        ledger.next_release = release + 1;
        let mut record = FleetRecord {
            release,
            fleet_name: name.clone(),
            launch_template_id: String::new(),
            launch_template_version: 0,
            target_group_arn: String::new(),
            image_id: spec.fleet.image_id.clone(),
            fingerprint: spec.fleet.fingerprint(),
            role: Role::Launching,
            last_served: release,
            health_rule_arn: None,
            stopped: None,
            progress: None,
            held: None,
            scaling: false,
        };
        // The record says what is being made before anything is: a kill from here
        // on leaves a fleet the next apply finds (by this record and the objects'
        // tags) and finishes or removes.
        ledger.fleets.push(record.clone());
        self.cloud
            .ledger
            .save(ledger, &Self::ledger_tags(spec))
            .await?;
        let prepared = self
            .create_fleet(spec, &name, release, capacity, previous, &mut record)
            .await;
        Ok((record, prepared))
    }

    /// A half-made fleet made ready for its health gate again: the capacity asked for, a
    /// fresh health-check attachment (the rule may or may not have survived, recorded or
    /// not).
    async fn ready_again(
        &self,
        spec: &ReleaseSpec,
        record: &mut FleetRecord,
        group: Option<&GroupStatus>,
        capacity: crate::spec::Capacity,
        previous: &RouteState,
    ) -> EngineResult<()> {
        let name = record.fleet_name.clone();
        log::info(match &record.held {
            Some(h) => format!("release {name}: promoting it from {} %", h.weight),
            None => {
                format!("release {name}: finishing the release an interrupted apply left half-made")
            }
        });
        if group.map(|g| g.capacity) != Some(capacity) {
            self.cloud.fleets.set_capacity(&name, capacity).await?;
        }
        if record.held.is_some() {
            // Held part-way: in the route with its share already, health-checked there.
            return Ok(());
        }
        self.detach_health_rule(record).await?;
        self.sweep_health_rules(&spec.listener_arn, &name).await?;
        self.attach_for_health_checks(spec, previous, record)
            .await?;
        self.tag_phase(&name, "launching").await;
        Ok(())
    }

    /// The commit point: the record says the new fleet serves. If it cannot be written,
    /// the release aborts (traffic back where it was).
    async fn commit(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        fleet: &InFlight,
    ) -> EngineResult<Ledger> {
        let record = &fleet.record;
        ledger.update_fleet(record);
        let uncommitted = ledger.clone();
        if ledger.fleets.iter().all(|f| f.release == record.release) {
            // The only fleet, made with the configuration's tags, as was the ledger.
            ledger.tags = user_tags(&spec.tags);
        }
        ledger.commit_release(
            HistoryEntry {
                release: record.release,
                image_id: spec.fleet.image_id.clone(),
                fleet_name: record.fleet_name.clone(),
                status: Status::Active,
                started_at: fleet.started_at.clone(),
                finished_at: Some(self.now_rfc3339()),
                reason: None,
            },
            spec.history_limit as usize,
        );
        match self
            .cloud
            .ledger
            .save(&ledger, &Self::ledger_tags(spec))
            .await
        {
            Ok(()) => Ok(ledger),
            Err(e) => Err(self
                .abort(
                    spec,
                    uncommitted,
                    record,
                    &fleet.previous,
                    &fleet.started_at,
                    e.to_string(),
                )
                .await),
        }
    }

    /// After the commit: the new fleet tagged as serving, the replaced one retained (or,
    /// broken, deleted), fleets beyond `retain_fleets` retired. A failure here is reported
    /// as [`EngineError::AfterCommit`]: the release serves.
    async fn after_commit(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        record: &FleetRecord,
        after: AfterCommit,
    ) -> EngineResult<Ledger> {
        let AfterCommit {
            serving,
            broken,
            held,
            started,
        } = after;
        let name = &record.fleet_name;
        let _ = self
            .cloud
            .fleets
            .tag_group(
                name,
                &BTreeMap::from([(TAG_PHASE.to_string(), "serving".to_string())]),
            )
            .await;
        let served = current_release(&ledger).unwrap_or(record.release);
        let after_commit = |e: EngineError| EngineError::AfterCommit {
            release: served,
            fleet: name.clone(),
            error: e.to_string(),
        };
        if let Some(held) = held {
            // It serves alone now: it scales in as configured.
            self.set_policies(spec, record, Some(held), false)
                .await
                .map_err(after_commit)?;
        }
        self.clean_up_after_release(spec, &mut ledger, name, &serving, &broken)
            .await
            .map_err(after_commit)?;
        log::info(format!(
            "release {name}: done, serving 100 % in {}",
            fmt_duration(started.elapsed())
        ));
        Ok(ledger)
    }
}

/// The walk of a release: its traffic steps (all at once when the serving fleet is
/// broken: it leaves the listener with the first weight change), from the serving split.
fn walk_of(
    spec: &ReleaseSpec,
    ask: &Ask,
    serving: Option<&FleetRecord>,
    ledger: &Ledger,
    started: Instant,
) -> Walk {
    Walk {
        steps: decide::traffic_steps(
            if ask.broken.is_some() {
                Strategy::BlueGreen
            } else {
                spec.strategy
            },
            &spec.canary_steps,
            spec.bake_time,
            serving.is_none() && ask.adopting.is_none(),
        ),
        serving_arn: serving
            .filter(|_| ask.broken.is_none())
            .map(|s| s.target_group_arn.clone())
            .or_else(|| ask.adopting.clone()),
        serving_name: serving
            .filter(|_| ask.broken.is_none())
            .map(|s| s.fleet_name.clone())
            .or_else(|| {
                ask.adopting
                    .as_deref()
                    .map(|tg| crate::naming::target_group_name(tg).to_string())
            }),
        retained_arns: ledger.retained_target_groups(),
        started,
        limit: ask.limit,
        hold_at: spec.hold_at,
    }
}

/// The target group a first release adopts: the one the route forwards to with traffic that
/// is not one of the release's fleets'. None when nothing does, or when several do (the
/// release then takes all traffic at once, as it says).
fn adopted(previous: &RouteState, ledger: &Ledger) -> Option<String> {
    let forward = previous.forward();
    let foreign: Vec<&str> = forward
        .iter()
        .filter(|(arn, w)| *w > 0 && !ledger.fleets.iter().any(|f| &f.target_group_arn == arn))
        .map(|(arn, _)| arn.as_str())
        .collect();
    match foreign.as_slice() {
        [one] => Some(one.to_string()),
        [] => None,
        many => {
            log::warn(format!(
                "release {}: the route forwards to {} target groups that are not the release's ({}); only one can be adopted step by step, so the first release takes all traffic at once",
                ledger.name,
                many.len(),
                many.iter().map(|a| crate::naming::target_group_name(a)).collect::<Vec<_>>().join(", ")
            ));
            None
        }
    }
}
