//! The executor of a release's traffic steps ([`decide::traffic_steps`]): each weight behind
//! a health gate, each pause and the bake watched, and the progress recorded after every
//! pause watched to its end, so that an interrupted apply's successor resumes from the last
//! weight reached ([`decide::resume`]) instead of walking every step again.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Engine, EngineResult, Note, TAG_PHASE};
use crate::decide::{self, Step};
use crate::ledger::{FleetRecord, Ledger, Progress};
use crate::log;
use crate::notify::Event;
use crate::spec::ReleaseSpec;

/// A release's traffic walk: the steps and the fleets that share the listener.
pub(super) struct Walk {
    /// The whole list, as the plan showed it.
    pub steps: Vec<Step>,
    /// The serving fleet's target group (None: nothing serves, or it is broken).
    pub serving_arn: Option<String>,
    /// The serving fleet's name (with `serving_arn`).
    pub serving_name: Option<String>,
    /// Retained fleets' target groups (weight 0).
    pub retained_arns: Vec<String>,
    /// When the apply started, and its time limit.
    pub started: Instant,
    pub limit: Duration,
    /// Stop at this weight (`hold_at`): 0 before any traffic, else right after the weight.
    pub hold_at: Option<i64>,
}

/// Where a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walked {
    /// At its end: the new fleet has all traffic.
    Done,
    /// Held at this weight (`hold_at`): the release stays open.
    Held(i64),
}

impl Engine {
    /// Walks `walk` for the new fleet `record` from where its recorded progress says an
    /// earlier apply got (the health gate has just passed). `Ok(Err(reason))`: the release
    /// must end (an alarm, an unhealthy fleet, the time limit).
    pub(super) async fn walk(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        record: &mut FleetRecord,
        walk: &Walk,
    ) -> EngineResult<Result<Walked, String>> {
        let key = decide::walk_key(&walk.steps);
        let done = record
            .progress
            .as_ref()
            .filter(|p| p.of == key)
            .map_or(0, |p| p.done);
        let steps = decide::resume(&walk.steps, done);
        if done > 0 {
            log::info(format!(
                "release {}: resuming the traffic steps at step {} of {} ({key}); {done} done by an earlier apply",
                record.fleet_name,
                steps.first().map_or(walk.steps.len(), |(i, _)| i + 1),
                walk.steps.len()
            ));
        }
        // Where the walk stands: the last weight of the steps already done (a release held
        // there, or stopped after a pause).
        let mut current_weight = walk.steps[..done.min(walk.steps.len())]
            .iter()
            .rev()
            .find_map(|s| match s {
                Step::Weight(w) => Some(*w),
                _ => None,
            })
            .unwrap_or(0);
        if walk.hold_at == Some(0) && done == 0 {
            return Ok(Ok(Walked::Held(0)));
        }
        let mut tally = super::watch::Tally::default();
        let serving = walk
            .serving_name
            .as_deref()
            .zip(walk.serving_arn.as_deref());
        // The health gate and every watch end on an observation of an open gate; only a
        // weight that follows another weight needs a fresh look before traffic moves.
        let mut gate_fresh = true;
        for (i, step) in steps {
            let outcome = match step {
                Step::Weight(w) => {
                    let fresh = std::mem::replace(&mut gate_fresh, false);
                    let outcome = self
                        .shift(spec, record, walk, current_weight, w, fresh)
                        .await;
                    current_weight = w;
                    if matches!(outcome, Ok(Ok(()))) && walk.hold_at == Some(w) {
                        // Held here: the next apply that promotes goes on from the step
                        // after this weight (its pause, watched).
                        self.record_progress(spec, ledger, record, &key, i + 1)
                            .await;
                        return Ok(Ok(Walked::Held(w)));
                    }
                    outcome
                }
                Step::Pause(d) => {
                    gate_fresh = true;
                    let what = format!("canary pause at {current_weight} %");
                    let watched = self
                        .watch_within(
                            spec,
                            record,
                            serving,
                            &mut tally,
                            d,
                            &what,
                            walk.started,
                            walk.limit,
                        )
                        .await;
                    if matches!(watched, Ok(Ok(()))) && !d.is_zero() {
                        self.record_progress(spec, ledger, record, &key, i + 1)
                            .await;
                    }
                    watched
                }
                Step::Bake(d) => {
                    // At 100 % the serving fleet has no traffic: analysis judges the
                    // new fleet's own thresholds only.
                    self.watch_within(
                        spec,
                        record,
                        None,
                        &mut tally,
                        d,
                        "bake",
                        walk.started,
                        walk.limit,
                    )
                    .await
                }
            };
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Ok(Err(e)),
                Err(e) => return Err(e),
            }
        }
        Ok(Ok(Walked::Done))
    }

    /// One weight: `weight` % to the new fleet, the rest to the serving one, once the new
    /// fleet is seen healthy (`fresh`: it was, a moment ago).
    async fn shift(
        &self,
        spec: &ReleaseSpec,
        record: &mut FleetRecord,
        walk: &Walk,
        from: i64,
        weight: i64,
        fresh: bool,
    ) -> EngineResult<Result<(), String>> {
        // Never give traffic to a fleet not healthy right now.
        if !fresh {
            let gate = self
                .gate(record, spec.health.min_healthy_percentage)
                .await?;
            if !gate.open() {
                return Ok(Err(format!(
                    "fleet {} became unhealthy before traffic moved to {weight} %: {}",
                    record.fleet_name,
                    gate.reason()
                )));
            }
        }
        log::info(format!(
            "release {}: traffic {from} % → {weight} %",
            record.fleet_name
        ));
        let split = decide::split(
            &record.target_group_arn,
            weight,
            walk.serving_arn.as_deref(),
            &walk.retained_arns,
        );
        self.set_traffic(spec, &split).await?;
        let mut traffic = BTreeMap::from([(record.fleet_name.clone(), weight)]);
        if let Some(serving) = &walk.serving_name {
            traffic.insert(serving.clone(), 100 - weight);
        }
        self.notify(
            spec,
            Note::of(
                Event::Traffic,
                record,
                walk.serving_name.as_deref(),
                traffic,
            ),
        );
        self.detach_health_rule(record).await?;
        if weight < 100 {
            // Where the walk is, for whoever looks at the group (the commit tags it
            // `serving` right after the last weight).
            let _ = self
                .cloud
                .fleets
                .tag_group(
                    &record.fleet_name,
                    &BTreeMap::from([(TAG_PHASE.to_string(), format!("traffic-{weight}"))]),
                )
                .await;
        }
        Ok(Ok(()))
    }

    /// Records that `done` steps of the walk `key` are done. A record that cannot be
    /// written costs only a longer walk after an interruption: the release goes on.
    async fn record_progress(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        record: &mut FleetRecord,
        key: &str,
        done: usize,
    ) {
        record.progress = Some(Progress {
            of: key.to_string(),
            done,
        });
        ledger.update_fleet(record);
        if let Err(e) = self
            .cloud
            .ledger
            .save(ledger, &Self::ledger_tags(spec))
            .await
        {
            log::warn(format!(
                "release {}: recording the traffic steps done failed ({e}); an interrupted apply would walk them again",
                record.fleet_name
            ));
        }
    }
}
