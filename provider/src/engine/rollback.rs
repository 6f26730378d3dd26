//! A rollback: the retained fleet that has the arguments scaled back, gated, given all
//! traffic, committed under the next release number.

use super::*;

impl Engine {
    /// Rolls back to a retained fleet: no new fleet; scale it back if needed, wait for
    /// health, move all traffic, keep the replaced fleet as retained.
    pub(super) async fn rollback(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        to: u64,
        limit: Duration,
    ) -> EngineResult<Ledger> {
        let started = Instant::now();
        let target = ledger
            .fleets
            .iter()
            .find(|f| f.release == to)
            .cloned()
            .expect("retained fleet exists");
        let serving = ledger.active().cloned();
        log::info(format!("rollback to {}: starting", target.fleet_name));
        self.ready_to_serve_again(spec, &target, serving.as_ref())
            .await?;
        if let Err(reason) = self
            .wait_healthy(&target, spec, spec.health.timeout.min(limit))
            .await?
        {
            let traffic = match &serving {
                Some(s) => format!(
                    "Traffic stayed on release {} ({}).",
                    current_release(&ledger).unwrap_or(s.release),
                    s.fleet_name
                ),
                None => "No release was serving.".to_string(),
            };
            self.notify(
                spec,
                Note::of(
                    crate::notify::Event::Aborted,
                    &target,
                    serving.as_ref().map(|s| s.fleet_name.as_str()),
                    serving
                        .as_ref()
                        .map(|s| BTreeMap::from([(s.fleet_name.clone(), 100)]))
                        .unwrap_or_default(),
                )
                .because(format!("rollback to {}: {reason}", target.fleet_name)),
            );
            return Err(EngineError::Aborted {
                summary: format!("rollback to {} aborted", target.fleet_name),
                reason,
                traffic,
            });
        }
        // Its scaling policies back before it takes traffic (a retained fleet whose record
        // says it carries none is not read), then all traffic and the commit. If it cannot
        // serve after all, it stays retained: its policies off again.
        let committed = match self
            .scale_with_policies(spec, &target, !target.scaling)
            .await
        {
            Ok(carries) => {
                ledger.set_scaling(target.release, carries);
                self.commit_rollback(spec, &mut ledger, &target).await
            }
            Err(e) => Err(e),
        };
        let release = match committed {
            Ok(r) => r,
            Err(e) => {
                let mut back = target.clone();
                back.scaling = true;
                self.policies_off(spec, &mut ledger, &back).await;
                return Err(e);
            }
        };
        let mut rolled = target.clone();
        rolled.release = release;
        self.notify(
            spec,
            Note::of(
                crate::notify::Event::RolledBack,
                &rolled,
                serving.as_ref().map(|s| s.fleet_name.as_str()),
                BTreeMap::from([(target.fleet_name.clone(), 100)]),
            )
            .because(format!(
                "the fleet arguments are release {}'s again: its retained fleet {} serves",
                target.release, target.fleet_name
            )),
        );
        if let Some(s) = &serving {
            self.policies_off(spec, &mut ledger, s).await;
            self.start_rollback_window(spec, &s.fleet_name).await;
        }
        self.retire(
            spec,
            &mut ledger,
            serving.as_ref().map(|s| s.fleet_name.as_str()),
        )
        .await
        .map_err(|e| EngineError::AfterCommit {
            release,
            fleet: target.fleet_name.clone(),
            error: e.to_string(),
        })?;
        log::info(format!(
            "rollback to {}: done in {}",
            target.fleet_name,
            fmt_duration(started.elapsed())
        ));
        Ok(ledger)
    }

    /// The retained fleet made ready to serve again: its rollback window cancelled (it must
    /// not scale to zero), its capacity back to what the serving fleet has (both groups
    /// described in one call).
    async fn ready_to_serve_again(
        &self,
        spec: &ReleaseSpec,
        target: &FleetRecord,
        serving: Option<&FleetRecord>,
    ) -> EngineResult<()> {
        self.cloud
            .fleets
            .cancel_scale_to_zero(&target.fleet_name)
            .await?;
        let names: Vec<String> = std::iter::once(target.fleet_name.clone())
            .chain(serving.map(|s| s.fleet_name.clone()))
            .collect();
        let groups = self.cloud.fleets.describe_groups(&names).await?;
        let group_of = |name: &str| groups.iter().find(|g| g.name == name);
        let Some(group) = group_of(&target.fleet_name) else {
            return Err(EngineError::Refused(format!(
                "retained fleet {} is gone from AWS; cannot roll back to it",
                target.fleet_name
            )));
        };
        let want = Self::new_capacity(spec, false, serving.and_then(|s| group_of(&s.fleet_name)));
        if group.capacity.desired < want.desired
            || group.capacity.min != want.min
            || group.capacity.max != want.max
        {
            self.cloud
                .fleets
                .set_capacity(&target.fleet_name, want)
                .await?;
        }
        Ok(())
    }

    /// All traffic to `target`, then the commit point: the ledger says it serves under the
    /// next release number (returned). If the ledger cannot say so, traffic goes back.
    async fn commit_rollback(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        target: &FleetRecord,
    ) -> EngineResult<u64> {
        let others: Vec<String> = ledger
            .fleets
            .iter()
            .filter(|f| f.release != target.release)
            .map(|f| f.target_group_arn.clone())
            .collect();
        let before = self.cloud.traffic.action(&spec.route()).await?;
        self.set_traffic(
            spec,
            &decide::split(&target.target_group_arn, 100, None, &others),
        )
        .await?;
        let release = ledger
            .commit_rollback(
                target.release,
                &self.now_rfc3339(),
                spec.history_limit as usize,
            )
            .expect("retained fleet exists");
        if let Err(e) = self
            .cloud
            .ledger
            .save(ledger, &Self::ledger_tags(spec))
            .await
        {
            if let Some(ListenerAction::Forward(w)) = &before {
                let _ = self.set_traffic(spec, w).await;
            }
            return Err(e.into());
        }
        Ok(release)
    }
}
