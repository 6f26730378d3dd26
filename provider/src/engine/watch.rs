//! Watching a pause or a bake: the alarms and the new fleet's health, polled until the
//! time is up or something fails.

use super::*;

impl Engine {
    /// Holds for `length`, watching alarms and the fleet's health; Err(reason) to abort.
    pub(super) async fn watch(
        &self,
        spec: &ReleaseSpec,
        fleet: &FleetRecord,
        length: Duration,
        what: &str,
    ) -> EngineResult<Result<(), String>> {
        let deadline = Instant::now() + length;
        let alarms: Vec<String> = spec.alarm_names.iter().cloned().collect();
        let mut interval = None;
        let mut bad_polls = 0;
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
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Ok(()));
            }
            log::info(format!(
                "release {}: {what}, {} left, {}/{} healthy, alarms OK",
                fleet.fleet_name,
                fmt_duration(left),
                gate.healthy,
                gate.desired
            ));
            interval = Some(self.pause(interval, deadline).await);
        }
    }

    /// [`Engine::watch`], ending where the operation's time limit (`timeouts`, counted
    /// from `started`) does: a pause or bake that would outlast it is watched until then
    /// and the release aborts, saying so. Terraform's own deadline never cuts an apply
    /// half-way through a walk.
    pub(super) async fn watch_within(
        &self,
        spec: &ReleaseSpec,
        fleet: &FleetRecord,
        length: Duration,
        what: &str,
        started: Instant,
        limit: Duration,
    ) -> EngineResult<Result<(), String>> {
        let budget = limit.saturating_sub(started.elapsed());
        if length <= budget {
            return self.watch(spec, fleet, length, what).await;
        }
        match self.watch(spec, fleet, budget, what).await? {
            Ok(()) => Ok(Err(format!(
                "the apply's time limit ({}, `timeouts`) ran out during {what}",
                fmt_duration(limit)
            ))),
            failed => Ok(failed),
        }
    }
}
