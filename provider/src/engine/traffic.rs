//! Traffic: weights set and checked, a route put back exactly as it was read.

use super::*;

/// How long an abort or a stop keeps trying to put a route back before it says it could
/// not (the SDK's own retries give up far sooner when its retry quota is drained).
pub(super) const RESTORE_LIMIT: Duration = Duration::from_secs(180);
/// The longest wait between two attempts to put a route back.
pub(super) const RESTORE_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What putting a route back came to, as read back from AWS.
#[derive(Debug)]
pub(super) enum Restored {
    /// The route reads as it did before the release; `had_traffic`: the new fleet had
    /// weight on it when first read.
    Back { had_traffic: bool },
    /// Still not as it was when the schedule ran out: the last error, the final action as
    /// last read.
    NotBack {
        error: EngineError,
        read: Option<ListenerAction>,
        attempts: u32,
    },
}

/// Whether a final action gives the target group any weight.
fn gives_weight(action: &ListenerAction, target_group_arn: &str) -> bool {
    matches!(action, ListenerAction::Forward(w) if w.iter().any(|(tg, n)| tg == target_group_arn && *n > 0))
}

/// The error of a route that did not read back as it was put.
fn put_back_mismatch(
    route: &Route,
    previous: &RouteState,
    read: Option<&RouteState>,
) -> EngineError {
    EngineError::Cloud(CloudError::Transport {
        action: format!("verifying {} was put back", route.what()),
        message: format!(
            "put back {:?} behind {:?}, read back {:?}",
            previous.last,
            previous.front,
            read.map(|r| (&r.last, &r.front))
        ),
    })
}

impl Engine {
    /// Sets the route's weights, with the release's group stickiness (a write without it
    /// would switch it off), and checks both in AWS's answer to the change (ModifyListener
    /// and ModifyRule answer with the route's new actions), or else reads them back; a
    /// mismatch is an error.
    pub(super) async fn set_traffic(
        &self,
        spec: &ReleaseSpec,
        weights: &[(String, i64)],
    ) -> EngineResult<()> {
        let route = spec.route();
        let sticky = spec.sticky_seconds();
        let read = match self.cloud.traffic.forward(&route, weights, sticky).await? {
            Some(answered) => Some(answered),
            None => self
                .cloud
                .traffic
                .read(&route)
                .await?
                .map(|r| (r.last, r.sticky)),
        };
        let mut want: Vec<(String, i64)> = weights.to_vec();
        want.sort();
        let ok = matches!(&read, Some((ListenerAction::Forward(got), s)) if { let mut g = got.clone(); g.sort(); g == want && *s == sticky });
        if !ok {
            return Err(EngineError::Cloud(CloudError::Transport {
                action: format!("verifying {} weights", route.what()),
                message: format!("set {want:?} (stickiness {sticky:?} s), read back {read:?}"),
            }));
        }
        Ok(())
    }

    /// Puts the route back exactly as `previous` read it, whatever its final action (forward,
    /// fixed response, redirect), for an abort or a stop, and does not give up
    /// while AWS refuses: each attempt reads the route (a write whose answer was lost may
    /// have landed; a route already as it was needs none), writes it back and reads it
    /// again, on the engine's own schedule (1 s, doubling to [`RESTORE_BACKOFF_MAX`], for
    /// [`RESTORE_LIMIT`]) — independent of the SDK's retries, whose quota a throttling
    /// storm drains — and not cut short by a stop request. What it says is what it read.
    pub(super) async fn restore_until_read_back(
        &self,
        spec: &ReleaseSpec,
        previous: &RouteState,
        new_target_group: &str,
    ) -> Restored {
        let route = spec.route();
        let deadline = Instant::now() + RESTORE_LIMIT;
        let mut wait = Duration::from_secs(1);
        let mut had_traffic = false;
        let mut last_read: Option<ListenerAction> = None;
        for attempt in 1.. {
            let error = match self.cloud.traffic.read(&route).await {
                Ok(Some(now)) if now.same_as(previous) => {
                    return Restored::Back { had_traffic };
                }
                Ok(now) => {
                    had_traffic |= now
                        .as_ref()
                        .is_some_and(|r| gives_weight(&r.last, new_target_group));
                    last_read = now.as_ref().map(|r| r.last.clone());
                    match self.cloud.traffic.put_back(&route, previous).await {
                        Ok(()) => match self.cloud.traffic.read(&route).await {
                            Ok(Some(r)) if r.same_as(previous) => {
                                return Restored::Back { had_traffic };
                            }
                            Ok(r) => {
                                last_read = r.as_ref().map(|r| r.last.clone());
                                put_back_mismatch(&route, previous, r.as_ref())
                            }
                            Err(e) => e.into(),
                        },
                        Err(e) => e.into(),
                    }
                }
                Err(e) => e.into(),
            };
            if Instant::now() + wait > deadline {
                return Restored::NotBack {
                    error,
                    read: last_read,
                    attempts: attempt,
                };
            }
            log::warn(format!(
                "release {}: putting the {} back failed (attempt {attempt}): {error}; trying again in {}",
                spec.name,
                route.what(),
                fmt_duration(wait)
            ));
            // Not the stop-aware sleep: a stop must not leave traffic on the fleet it left.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RESTORE_BACKOFF_MAX);
        }
        unreachable!("the attempts loop returns")
    }

    /// Puts traffic back on the serving fleet when the listener drifted.
    pub async fn restore_traffic(&self, spec: &ReleaseSpec, ledger: &Ledger) -> EngineResult<()> {
        let Some(active) = ledger.active() else {
            return Ok(());
        };
        let retained: Vec<String> = ledger.retained_target_groups();
        // A release held part-way holds its share.
        let want = match ledger
            .held()
            .filter(|_| super::kept_held(ledger, spec).is_some())
        {
            Some(h) => decide::split(
                &h.target_group_arn,
                h.held.as_ref().map_or(0, |x| x.weight),
                Some(&active.target_group_arn),
                &retained,
            ),
            None => decide::split(&active.target_group_arn, 100, None, &retained),
        };
        let now = self.cloud.traffic.read(&spec.route()).await?;
        let sticky = spec.sticky_seconds();
        let same = matches!(&now, Some(r) if r.sticky == sticky && matches!(&r.last, ListenerAction::Forward(w) if { let mut a = w.clone(); a.sort(); let mut b = want.clone(); b.sort(); a == b }));
        if !same {
            log::info(format!(
                "release {}: listener drifted ({:?}, stickiness {:?}); restoring",
                active.fleet_name,
                now.as_ref().map(|r| &r.last),
                now.as_ref().map(|r| r.sticky)
            ));
            self.set_traffic(spec, &want).await?;
        }
        Ok(())
    }
}
