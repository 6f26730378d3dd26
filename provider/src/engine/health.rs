//! The health gate: a new fleet attached so that the load balancer health-checks it (a
//! weight-0 place in the forward action, or a listener rule no request matches), the wait
//! until enough of its desired capacity is healthy, and the look before every weight.

use super::*;

impl Engine {
    /// Observes the health gate of a group once.
    pub(super) async fn gate(&self, fleet: &FleetRecord, min_pct: i64) -> EngineResult<Gate> {
        let groups = self
            .cloud
            .fleets
            .describe_groups(std::slice::from_ref(&fleet.fleet_name))
            .await?;
        let Some(group) = groups.first() else {
            return Ok(Gate {
                healthy: 0,
                need: 1,
                in_service: 0,
                desired: 0,
                registering: 0,
                not_healthy: Vec::new(),
            });
        };
        let targets = self
            .cloud
            .fleets
            .target_health(&fleet.target_group_arn)
            .await?;
        Ok(Gate::observe(group, &targets, min_pct))
    }

    /// Waits until the gate opens or the deadline passes (then Err with the last reason).
    pub(super) async fn wait_healthy(
        &self,
        fleet: &FleetRecord,
        spec: &ReleaseSpec,
        limit: Duration,
    ) -> EngineResult<Result<Gate, String>> {
        let min_pct = spec.health.min_healthy_percentage;
        let check = &spec.fleet.target_group.health_check;
        let check_interval = Duration::from_secs(check.interval.max(1) as u64);
        let threshold = check.healthy_threshold.max(1) as u32;
        let mut registering_since: Option<Instant> = None;
        // Since when targets have been `unused` although routed (every caller has routed
        // the target group before it waits: a health-check rule or a forward weight).
        let mut unused_since: Option<Instant> = None;
        // The last look that saw targets, none of them registering.
        let mut last_look: Option<Instant> = None;
        let started = Instant::now();
        // The group was created just before the wait; a little slack covers clock skew.
        let since = self.clock.now() - Duration::from_secs(30);
        let deadline = started + limit;
        let mut interval = None;
        let mut bad_polls = 0;
        loop {
            if let Some(why) = self.stop.requested() {
                return Ok(Err(format!("stopped waiting for health: {why}")));
            }
            let gate = match self.gate(fleet, min_pct).await {
                Ok(g) => {
                    bad_polls = 0;
                    g
                }
                Err(e) => {
                    tolerate(&mut bad_polls, e, &fleet.fleet_name)?;
                    interval = Some(self.pause(interval, deadline).await);
                    continue;
                }
            };
            if gate.open() {
                log::info(format!(
                    "release {}: healthy, {}/{} healthy targets",
                    fleet.fleet_name, gate.healthy, gate.desired
                ));
                return Ok(Ok(gate));
            }
            let failed = self
                .failed_launches(fleet, &gate, since, &mut bad_polls)
                .await?;
            if gate.not_in_use().is_none() {
                unused_since = None;
            } else if unused_since.is_none() {
                unused_since = Some(Instant::now());
            }
            let ended = give_up(
                &fleet.fleet_name,
                &gate,
                &failed,
                unused_since.map(|t| t.elapsed()),
                check_interval,
                started.elapsed(),
                (Instant::now() >= deadline).then_some(limit),
            );
            if let Some(why) = ended {
                return Ok(Err(why));
            }
            let capacity = crate::capacity::Failed::sort(&failed).capacity_note();
            log::info(format!(
                "release {}: waiting for health: {}{}",
                fleet.fleet_name,
                gate.reason(),
                capacity.map(|c| format!("; {c}")).unwrap_or_default()
            ));
            // Registration began after the last look that did not see it (or, with none,
            // when the wait began: the target group was routed just before): counting from
            // there, the prediction is early rather than late, whatever looks failed or saw
            // no group yet.
            if gate.registering > 0 && registering_since.is_none() {
                registering_since = Some(last_look.unwrap_or(started));
            } else if gate.registering == 0 && !gate.not_healthy.is_empty() {
                last_look = Some(Instant::now());
            }
            let d = self
                .next_health_look(
                    interval,
                    deadline,
                    registering_since,
                    check_interval,
                    threshold,
                )
                .await;
            interval = Some(d);
        }
    }

    /// Sleeps until the next look of a health wait and returns how long that was
    /// (`decide::next_health_poll`): while targets register, on a quarter-second grid once a
    /// change is due; else on the shared whole-second grid.
    async fn next_health_look(
        &self,
        interval: Option<Duration>,
        deadline: Instant,
        registering_since: Option<Instant>,
        check_interval: Duration,
        threshold: u32,
    ) -> Duration {
        let d = decide::next_health_poll(
            interval,
            self.poll_ceiling,
            deadline.saturating_duration_since(Instant::now()),
            registering_since.map(|t| t.elapsed()),
            check_interval,
            threshold,
        );
        // A change is due: look on a finer grid (a quarter second late at most).
        let grid = if registering_since.is_some() {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        self.sleep_on_grid(d, deadline, grid).await;
        d
    }

    /// The new group's failed launches since `since`: none looked for once every desired
    /// instance is in service (no launch is failing then). A failed look is tolerated as any
    /// bad poll.
    async fn failed_launches(
        &self,
        fleet: &FleetRecord,
        gate: &Gate,
        since: std::time::SystemTime,
        bad_polls: &mut u32,
    ) -> EngineResult<Vec<String>> {
        if gate.in_service >= gate.desired {
            return Ok(Vec::new());
        }
        match self
            .cloud
            .fleets
            .failed_activities(&fleet.fleet_name, since)
            .await
        {
            Ok(f) => {
                *bad_polls = 0;
                Ok(f)
            }
            Err(e) => {
                tolerate(bad_polls, e.into(), &fleet.fleet_name)?;
                Ok(Vec::new())
            }
        }
    }

    pub(super) async fn attach_for_health_checks(
        &self,
        spec: &ReleaseSpec,
        previous: &RouteState,
        record: &mut FleetRecord,
    ) -> EngineResult<()> {
        if let ListenerAction::Forward(current) = &previous.last {
            if current.iter().any(|(a, _)| a == &record.target_group_arn) {
                return Ok(());
            }
            if current.len() < 5 {
                let mut attached = current.clone();
                attached.push((record.target_group_arn.clone(), 0));
                return self.set_traffic(spec, &attached).await;
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let token = crate::naming::health_token(&record.fleet_name, nanos);
        let rule = self
            .cloud
            .traffic
            .attach_for_health_checks(&spec.route(), &record.target_group_arn, &token)
            .await?;
        record.health_rule_arn = Some(rule);
        Ok(())
    }

    /// Removes every health-check rule of fleet `fleet_name` on the listener, recorded or
    /// not (an apply killed between CreateRule's answer and the ledger write left one that
    /// only the rule itself tells of; it would keep the target group in use).
    pub(super) async fn sweep_health_rules(
        &self,
        listener_arn: &str,
        fleet_name: &str,
    ) -> EngineResult<()> {
        for (rule, token) in self.cloud.traffic.health_rules(listener_arn).await? {
            if crate::naming::is_health_token_of_fleet(&token, fleet_name) {
                self.cloud.traffic.delete_rule(&rule).await?;
            }
        }
        Ok(())
    }

    /// Removes a fleet's health-check rule once the default action routes to it (or the
    /// fleet goes away).
    pub(super) async fn detach_health_rule(&self, record: &mut FleetRecord) -> EngineResult<()> {
        if let Some(rule) = record.health_rule_arn.take() {
            self.cloud.traffic.delete_rule(&rule).await?;
        }
        Ok(())
    }
}

/// Why a wait for health ends now with the gate still closed, if it does: fail fast when
/// targets cannot become healthy by waiting (routed yet `unused`), when launches keep
/// failing for a lasting cause (more than AWS's own retries), or when the time is up
/// (`timed_out`: the limit). Launches that fail for lack of capacity (`capacity`) never end
/// the wait by themselves: AWS launches in another zone or type, and tries again; the
/// timeout's message says they were the cause.
fn give_up(
    fleet: &str,
    gate: &Gate,
    failed: &[String],
    unused_for: Option<Duration>,
    check_interval: Duration,
    elapsed: Duration,
    timed_out: Option<Duration>,
) -> Option<String> {
    if let Some(why) = decide::hopeless(gate, unused_for, check_interval) {
        return Some(format!(
            "Auto Scaling group ({fleet}) cannot become healthy: {why}; after {}",
            fmt_duration(elapsed)
        ));
    }
    let failed = crate::capacity::Failed::sort(failed);
    if failed.lasting.len() > LAUNCH_FAILURES_TOLERATED {
        return Some(format!(
            "Auto Scaling group ({fleet}) failed to launch instances: {} ({} failed launches); {} after {}",
            failed.lasting[0],
            failed.lasting.len(),
            gate.reason(),
            fmt_duration(elapsed)
        ));
    }
    timed_out.map(|limit| {
        format!(
            "waiting for Auto Scaling group ({fleet}) healthy capacity: {} after {}{}",
            gate.reason(),
            fmt_duration(limit),
            failed
                .capacity_note()
                .map(|c| format!("; {c}"))
                .unwrap_or_default()
        )
    })
}
