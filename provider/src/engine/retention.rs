//! Retention: a replaced fleet kept warm for rollback (its window scales it to zero), the
//! oldest retired beyond `retain_fleets`, and deletion that never touches a fleet the route
//! sends traffic to.

use super::*;

impl Engine {
    /// The retained fleet of `release` when its group is gone (deleted outside Terraform, or
    /// being deleted): a rollback to it is impossible.
    pub async fn retained_gone(
        &self,
        ledger: &Ledger,
        release: u64,
    ) -> EngineResult<Option<FleetRecord>> {
        let Some(fleet) = ledger.fleets.iter().find(|f| f.release == release) else {
            return Ok(None);
        };
        let group = self
            .cloud
            .fleets
            .describe_groups(std::slice::from_ref(&fleet.fleet_name))
            .await?;
        Ok(match group.first() {
            Some(g) if !g.deleting => None,
            _ => Some(fleet.clone()),
        })
    }

    /// Deletes a fleet: group (waiting until it is gone), target group, launch template.
    /// Never one that the route sends traffic to, whatever the ledger says: the route is
    /// read first, and a fleet it gives weight is refused.
    pub(super) async fn delete_fleet(
        &self,
        route: &Route,
        fleet_name: &str,
        target_group_arn: Option<&str>,
    ) -> EngineResult<()> {
        let arn = match target_group_arn {
            Some(a) if !a.is_empty() => Some(a.to_string()),
            _ => self
                .cloud
                .fleets
                .find_target_group(fleet_name)
                .await?
                .map(|t| t.arn),
        };
        if let Some(arn) = &arn {
            if let Some(ListenerAction::Forward(w)) = self.cloud.traffic.action(route).await? {
                if let Some((_, weight)) = w.iter().find(|(a, w)| a == arn && *w > 0) {
                    return Err(EngineError::Refused(format!(
                        "not deleting fleet {fleet_name}: {} sends it traffic (weight {weight})",
                        route.what()
                    )));
                }
            }
        }
        // AWS refuses while a scaling activity runs (`ScalingActivityInProgress`,
        // `ResourceInUse`), and a target group while a route or a draining target still
        // holds it (`ResourceInUse`): both pass.
        self.retrying(
            &["ScalingActivityInProgress", "ResourceInUse"],
            DELETE_RETRY_LIMIT,
            &format!("deleting Auto Scaling group {fleet_name}"),
            || self.cloud.fleets.delete_group(fleet_name),
        )
        .await?;
        self.wait_group_gone(fleet_name, Duration::from_secs(600))
            .await?;
        if let Some(arn) = arn {
            self.retrying(
                &["ResourceInUse"],
                DELETE_RETRY_LIMIT,
                &format!("deleting target group of {fleet_name}"),
                || self.cloud.fleets.delete_target_group(&arn),
            )
            .await?;
        }
        self.cloud.fleets.delete_launch_template(fleet_name).await?;
        Ok(())
    }

    /// Waits until a deleted group is gone: AWS keeps it `Delete in progress` until its
    /// instances are terminated. Its reads are eventually consistent both ways (a group
    /// made moments ago may not be seen yet), so one answer without it proves nothing:
    /// gone is two answers in a row, a poll apart (as the AWS provider's
    /// `ContinuousTargetOccurence`).
    pub(super) async fn wait_group_gone(&self, name: &str, limit: Duration) -> EngineResult<()> {
        let deadline = Instant::now() + limit;
        let mut interval = None;
        let mut absent = 0;
        loop {
            if self
                .cloud
                .fleets
                .describe_groups(&[name.to_string()])
                .await?
                .is_empty()
            {
                absent += 1;
                if absent >= GONE_READS {
                    return Ok(());
                }
            } else {
                absent = 0;
            }
            if Instant::now() >= deadline {
                return Err(EngineError::Cloud(CloudError::Transport {
                    action: format!("waiting for Auto Scaling group ({name}) deletion"),
                    message: format!("still present after {}", fmt_duration(limit)),
                }));
            }
            interval = Some(self.pause(interval, deadline).await);
        }
    }

    /// After a release's commit: the broken fleet it replaced is deleted, or the fleet it
    /// replaced starts its rollback window; fleets beyond `retain_fleets` are retired.
    pub(super) async fn clean_up_after_release(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        name: &str,
        serving: &Option<FleetRecord>,
        broken: &Option<String>,
    ) -> EngineResult<()> {
        match (serving, broken) {
            (Some(s), Some(why)) => {
                log::warn(format!(
                    "release {name}: deleting {}, which could not serve: {why}",
                    s.fleet_name
                ));
                if let Some(rule) = &s.health_rule_arn {
                    self.cloud.traffic.delete_rule(rule).await?;
                }
                // It served until moments ago: its requests in flight finish first (when it
                // still has instances to serve them).
                let live = self
                    .cloud
                    .fleets
                    .describe_groups(std::slice::from_ref(&s.fleet_name))
                    .await?
                    .first()
                    .is_some_and(|g| !g.instances.is_empty());
                if live {
                    self.drain(spec, &s.fleet_name).await;
                }
                self.delete_fleet(&spec.route(), &s.fleet_name, None)
                    .await?;
                ledger.retire(s.release, &format!("fleet deleted: {why}"));
                self.cloud
                    .ledger
                    .save(ledger, &Self::ledger_tags(spec))
                    .await?;
            }
            (Some(s), None) => {
                self.policies_off(spec, ledger, s).await;
                self.start_rollback_window(spec, &s.fleet_name).await
            }
            _ => {}
        }
        let replaced = serving.as_ref().map(|s| s.fleet_name.as_str());
        self.retire(spec, ledger, replaced).await
    }

    /// Waits `deregistration_delay` for a fleet that left the route moments ago, so that
    /// the requests it was serving finish before its instances go (the load balancer drains
    /// a target for that long once no route sends it traffic).
    pub(super) async fn drain(&self, spec: &ReleaseSpec, fleet_name: &str) {
        let delay = Duration::from_secs(spec.fleet.target_group.deregistration_delay.max(0) as u64);
        if delay.is_zero() {
            return;
        }
        log::info(format!(
            "release {}: {fleet_name} drains for {} (deregistration_delay) before it is deleted",
            spec.name,
            fmt_duration(delay)
        ));
        self.sleep_until(Instant::now() + delay).await;
    }

    /// A fleet just left traffic: it keeps full capacity until `rollback_window` ends, then
    /// an Auto Scaling scheduled action scales it to zero, with no Terraform run needed. A
    /// failure here does not undo a finished release; it is logged.
    pub(super) async fn start_rollback_window(&self, spec: &ReleaseSpec, fleet_name: &str) {
        let at = self.clock.now() + spec.rollback_window;
        if let Err(e) = self
            .cloud
            .fleets
            .schedule_scale_to_zero(fleet_name, at)
            .await
        {
            log::warn(format!(
                "{fleet_name}: the end of its rollback window could not be scheduled: {e}"
            ));
        }
    }

    /// Keeps the newest `retain_fleets` retained fleets and deletes the rest (listener
    /// first, so no deleted target group is ever referenced). The fleet `just_replaced`
    /// served until moments ago: it drains for `deregistration_delay` before it goes.
    pub(super) async fn retire(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        just_replaced: Option<&str>,
    ) -> EngineResult<()> {
        let retained: Vec<FleetRecord> = ledger.retained().into_iter().cloned().collect();
        let keep = spec.retain_fleets.max(0) as usize;
        let cut = keep.min(retained.len());
        let (kept, gone) = (retained[..cut].to_vec(), retained[cut..].to_vec());
        let Some(active) = ledger.active().cloned() else {
            return Ok(());
        };
        let kept_arns: Vec<String> = kept.iter().map(|f| f.target_group_arn.clone()).collect();
        // With nothing to delete, the listener already has this split: the release or
        // rollback that calls this just set and verified it.
        if !gone.is_empty() {
            self.set_traffic(
                spec,
                &decide::split(&active.target_group_arn, 100, None, &kept_arns),
            )
            .await?;
        }
        for f in &kept {
            let _ = self
                .cloud
                .fleets
                .tag_group(
                    &f.fleet_name,
                    &BTreeMap::from([(TAG_PHASE.to_string(), "retained".to_string())]),
                )
                .await;
        }
        for f in gone.iter() {
            log::info(format!(
                "release {}: retiring {}",
                active.fleet_name, f.fleet_name
            ));
            if Some(f.fleet_name.as_str()) == just_replaced {
                self.drain(spec, &f.fleet_name).await;
            }
            self.delete_fleet(&spec.route(), &f.fleet_name, Some(&f.target_group_arn))
                .await?;
            ledger.retire(
                f.release,
                &format!("fleet deleted: beyond retain_fleets = {keep}"),
            );
            self.notify(
                spec,
                Note::of(
                    crate::notify::Event::Retired,
                    f,
                    None,
                    BTreeMap::from([(active.fleet_name.clone(), 100)]),
                )
                .because(format!("beyond retain_fleets = {keep}")),
            );
        }
        if !gone.is_empty() {
            self.cloud
                .ledger
                .save(ledger, &Self::ledger_tags(spec))
                .await?;
        }
        Ok(())
    }
}
