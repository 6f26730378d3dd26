//! Watching a pause or a bake: the alarms, the new fleet's health and, with `analysis`, its
//! own metrics against the serving fleet's (judged every `interval`), polled until the time
//! is up or something fails.

use super::*;
use crate::analysis::{self, FleetDims, Judgement};

/// What a release's judgements came to so far (`analysis.failure_limit` counts failures
/// over the whole walk).
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Failed judgements.
    pub failed: u32,
}

/// The fleet that serves beside the new one: its name and target group.
pub(super) type Serving<'a> = Option<(&'a str, &'a str)>;

/// The start of the minute `t` is in.
fn minute_floor(t: std::time::SystemTime) -> std::time::SystemTime {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    std::time::UNIX_EPOCH + Duration::from_secs(secs / 60 * 60)
}

impl Engine {
    /// Holds for `length`, watching alarms, the fleet's health and its analysis;
    /// Err(reason) to abort.
    pub(super) async fn watch(
        &self,
        spec: &ReleaseSpec,
        fleet: &FleetRecord,
        serving: Serving<'_>,
        tally: &mut Tally,
        length: Duration,
        what: &str,
    ) -> EngineResult<Result<(), String>> {
        let deadline = Instant::now() + length;
        let alarms: Vec<String> = spec.alarm_names.iter().cloned().collect();
        let mut interval = None;
        let mut bad_polls = 0;
        // Analysis: the queries of one judgement, the step's start (the window's), when
        // the next judgement is due, and what the judgements of this step came to.
        let judged = spec.analysis.as_ref().and_then(|a| {
            let new = FleetDims::of(
                &fleet.fleet_name,
                &fleet.target_group_arn,
                &spec.listener_arn,
            )?;
            let base = serving.and_then(|(n, arn)| FleetDims::of(n, arn, &spec.listener_arn));
            Some((a, analysis::queries(a, &new, base.as_ref())))
        });
        let step_started = self.clock.now();
        let mut next_judgement = judged.as_ref().map(|(a, _)| Instant::now() + a.interval);
        let (mut judgements, mut inconclusive) = (0u32, Vec::new());
        loop {
            if let Some(why) = self.stop.requested() {
                return Ok(Err(format!("stopped during {what}: {why}")));
            }
            let observed = async {
                let gate = self.gate(fleet, spec.health.min_healthy_percentage).await?;
                let firing = if alarms.is_empty() {
                    Vec::new()
                } else {
                    self.cloud.alarms.in_alarm(&alarms).await?
                };
                EngineResult::Ok((gate, firing))
            }
            .await;
            let (gate, firing) = match observed {
                Ok(o) => {
                    bad_polls = 0;
                    o
                }
                Err(e) => {
                    // A pause only ends on a good observation.
                    tolerate(&mut bad_polls, e, &fleet.fleet_name)?;
                    interval = Some(
                        self.pause(
                            interval,
                            deadline.max(Instant::now() + Duration::from_millis(100)),
                        )
                        .await,
                    );
                    continue;
                }
            };
            if let Verdict::Abort(reason) = decide::watch(&gate, &firing, &fleet.fleet_name) {
                return Ok(Err(format!("{reason} during {what}")));
            }
            if let (Some((a, queries)), Some(due)) = (&judged, next_judgement) {
                if Instant::now() >= due {
                    // The window: from the step's start to now, in whole minutes (the
                    // current one included).
                    let start = minute_floor(step_started);
                    let end = minute_floor(self.clock.now()) + Duration::from_secs(60);
                    match self.cloud.alarms.metric_data(queries, start, end).await {
                        Ok(answers) => {
                            next_judgement = Some(due + a.interval);
                            judgements += 1;
                            match analysis::judge(
                                a,
                                &answers,
                                &fleet.fleet_name,
                                serving.map(|s| s.0),
                            ) {
                                Judgement::Pass(words) => log::info(format!(
                                    "release {}: {what}: {words}",
                                    fleet.fleet_name
                                )),
                                Judgement::Inconclusive(words) => {
                                    log::info(format!(
                                        "release {}: {what}: {words}",
                                        fleet.fleet_name
                                    ));
                                    inconclusive.push(words);
                                }
                                Judgement::Fail(why) => {
                                    tally.failed += 1;
                                    if tally.failed > a.failure_limit {
                                        return Ok(Err(format!("{why} during {what}")));
                                    }
                                    log::notice(
                                        &spec.name,
                                        format!(
                                            "{why} during {what}: failed judgement {} of the {} analysis.failure_limit tolerates",
                                            tally.failed, a.failure_limit
                                        ),
                                    );
                                }
                            }
                        }
                        Err(e) => {
                            // Asked again at the next look, not at once.
                            next_judgement =
                                Some(Instant::now() + self.poll_ceiling.min(a.interval));
                            tolerate(&mut bad_polls, e.into(), &fleet.fleet_name)?;
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if judgements > 0 && inconclusive.len() as u32 == judgements {
                    log::notice(
                        &spec.name,
                        format!(
                            "{what} of {} ended with only inconclusive judgements ({}), and the release went on: {}",
                            fleet.fleet_name,
                            judgements,
                            inconclusive.last().cloned().unwrap_or_default()
                        ),
                    );
                }
                return Ok(Ok(()));
            }
            log::info(format!(
                "release {}: {what}, {} left, {}/{} healthy, alarms OK",
                fleet.fleet_name,
                fmt_duration(left),
                gate.healthy,
                gate.desired
            ));
            // Look again by the next judgement at the latest.
            let until = next_judgement.map_or(deadline, |d| d.min(deadline));
            interval = Some(self.pause(interval, until).await);
        }
    }

    /// [`Engine::watch`], ending where the operation's time limit (`timeouts`, counted
    /// from `started`) does: a pause or bake that would outlast it is watched until then
    /// and the release aborts, saying so. Terraform's own deadline never cuts an apply
    /// half-way through a walk.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn watch_within(
        &self,
        spec: &ReleaseSpec,
        fleet: &FleetRecord,
        serving: Serving<'_>,
        tally: &mut Tally,
        length: Duration,
        what: &str,
        started: Instant,
        limit: Duration,
    ) -> EngineResult<Result<(), String>> {
        let budget = limit.saturating_sub(started.elapsed());
        if length <= budget {
            return self.watch(spec, fleet, serving, tally, length, what).await;
        }
        match self
            .watch(spec, fleet, serving, tally, budget, what)
            .await?
        {
            Ok(()) => Ok(Err(format!(
                "the apply's time limit ({}, `timeouts`) ran out during {what}",
                fmt_duration(limit)
            ))),
            failed => Ok(failed),
        }
    }
}
