//! Traffic: weights set and checked, a route put back exactly as it was read.

use super::*;

impl Engine {
    /// Sets the route's weights and checks them in AWS's answer to the change (ModifyListener
    /// and ModifyRule answer with the route's new actions), or else reads them back; a
    /// mismatch is an error.
    pub(super) async fn set_traffic(
        &self,
        route: &Route,
        weights: &[(String, i64)],
    ) -> EngineResult<()> {
        let read = match self.cloud.traffic.forward(route, weights).await? {
            Some(answered) => Some(answered),
            None => self.cloud.traffic.action(route).await?,
        };
        let mut want: Vec<(String, i64)> = weights.to_vec();
        want.sort();
        let ok = matches!(&read, Some(ListenerAction::Forward(got)) if { let mut g = got.clone(); g.sort(); g == want });
        if !ok {
            return Err(EngineError::Cloud(CloudError::Transport {
                action: format!("verifying {} weights", route.what()),
                message: format!("set {want:?}, read back {read:?}"),
            }));
        }
        Ok(())
    }

    /// Puts the route back exactly as `previous` read it, whatever its final action
    /// (forward, fixed response, redirect), and reads it back: a mismatch is an error.
    pub(super) async fn restore_action(
        &self,
        spec: &ReleaseSpec,
        previous: &RouteState,
    ) -> EngineResult<()> {
        let route = spec.route();
        self.cloud.traffic.put_back(&route, previous).await?;
        let read = self.cloud.traffic.read(&route).await?;
        if !read.as_ref().is_some_and(|r| r.same_as(previous)) {
            return Err(EngineError::Cloud(CloudError::Transport {
                action: format!("verifying {} was put back", route.what()),
                message: format!(
                    "put back {:?} behind {:?}, read back {:?}",
                    previous.last,
                    previous.front,
                    read.map(|r| (r.last, r.front))
                ),
            }));
        }
        Ok(())
    }

    /// Puts traffic back on the serving fleet when the listener drifted.
    pub async fn restore_traffic(&self, spec: &ReleaseSpec, ledger: &Ledger) -> EngineResult<()> {
        let Some(active) = ledger.active() else {
            return Ok(());
        };
        let retained: Vec<String> = ledger.retained_target_groups();
        let want = decide::split(&active.target_group_arn, 100, None, &retained);
        let now = self.cloud.traffic.action(&spec.route()).await?;
        let same = matches!(&now, Some(ListenerAction::Forward(w)) if { let mut a = w.clone(); a.sort(); let mut b = want.clone(); b.sort(); a == b });
        if !same {
            log::info(format!(
                "release {}: listener drifted ({now:?}); restoring",
                active.fleet_name
            ));
            self.set_traffic(&spec.route(), &want).await?;
        }
        Ok(())
    }
}
