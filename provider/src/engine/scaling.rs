//! Scaling: the target-tracking policies (`target_tracking`) that the serving fleet carries.
//! Put on a fleet before it takes traffic (a new fleet, or a retained one rolled back to),
//! taken off a fleet as it leaves traffic (a retained fleet holds its capacity until its
//! rollback window scales it to zero), made to match the configuration on a settings
//! update. A group's policies go with the group when it is deleted.

use super::*;
use crate::cloud::ScalingPolicy;
use crate::naming::{request_count_label, scaling_policy_name};
use crate::spec::{REQUEST_COUNT, SCALING_METRICS};

/// The policies `spec` asks of fleet `record`: request counts bound to the fleet's own
/// target group behind the route's load balancer. `hold`: none scales in (a fleet in the
/// middle of a release, which may have to take all traffic).
pub(crate) fn wanted(
    spec: &ReleaseSpec,
    record: &FleetRecord,
    hold: bool,
) -> Result<Vec<ScalingPolicy>, String> {
    spec.scaling
        .iter()
        .map(|t| {
            let resource_label = if t.metric == REQUEST_COUNT {
                Some(
                    request_count_label(&spec.listener_arn, &record.target_group_arn)
                        .ok_or_else(|| {
                            format!(
                                "{REQUEST_COUNT} needs an Application Load Balancer listener and {}'s target group; got {} and {:?}",
                                record.fleet_name, spec.listener_arn, record.target_group_arn
                            )
                        })?,
                )
            } else {
                None
            };
            Ok(ScalingPolicy {
                name: scaling_policy_name(&record.fleet_name, &t.metric),
                metric: t.metric.clone(),
                target_value: t.target_value,
                disable_scale_in: t.disable_scale_in || hold,
                resource_label,
            })
        })
        .collect()
}

/// What makes `have` (a fleet's policies as read) into `want`: the policies to put (new or
/// different) and the names to delete — only the provider's own, named for the fleet
/// (a policy someone else put on the group stays).
pub(crate) fn changes(
    fleet: &str,
    have: &[ScalingPolicy],
    want: &[ScalingPolicy],
) -> (Vec<ScalingPolicy>, Vec<String>) {
    let put = want.iter().filter(|w| !have.contains(w)).cloned().collect();
    let ours = |p: &ScalingPolicy| {
        SCALING_METRICS
            .iter()
            .any(|m| p.name == scaling_policy_name(fleet, m))
    };
    let delete = have
        .iter()
        .filter(|h| ours(h) && !want.iter().any(|w| w.name == h.name))
        .map(|h| h.name.clone())
        .collect();
    (put, delete)
}

impl Engine {
    /// Makes fleet `record`'s policies the ones `spec` asks; `fresh`: it has none (its
    /// group was just made, or its record says so): nothing to read. Returns whether it
    /// carries any now.
    pub(super) async fn scale_with_policies(
        &self,
        spec: &ReleaseSpec,
        record: &FleetRecord,
        fresh: bool,
    ) -> EngineResult<bool> {
        let now = self
            .set_policies(spec, record, fresh.then(Vec::new), false)
            .await?;
        Ok(!now.is_empty())
    }

    /// Makes fleet `record`'s policies the ones `spec` asks (`hold`: none scales in), from
    /// `have` (its policies as known; None: read them). Returns its policies now.
    pub(super) async fn set_policies(
        &self,
        spec: &ReleaseSpec,
        record: &FleetRecord,
        have: Option<Vec<ScalingPolicy>>,
        hold: bool,
    ) -> EngineResult<Vec<ScalingPolicy>> {
        let want = wanted(spec, record, hold).map_err(EngineError::Refused)?;
        let have = match have {
            Some(h) => h,
            None => self.own_policies(&record.fleet_name).await?,
        };
        let (put, delete) = changes(&record.fleet_name, &have, &want);
        for name in &delete {
            self.cloud
                .fleets
                .delete_scaling_policy(&record.fleet_name, name)
                .await?;
        }
        for p in &put {
            self.cloud
                .fleets
                .put_scaling_policy(&record.fleet_name, p)
                .await?;
        }
        if !put.is_empty() || !delete.is_empty() {
            let what = if want.is_empty() {
                "removed".to_string()
            } else {
                let list: Vec<String> = spec.scaling.iter().map(|t| t.to_string()).collect();
                format!(
                    "{}{}",
                    list.join(", "),
                    if hold {
                        "; no scale-in until the release commits"
                    } else {
                        ""
                    }
                )
            };
            log::info(format!("{}: scaling policies {what}", record.fleet_name));
        }
        Ok(want)
    }

    /// Before a release's walk: the new fleet's policies (none scaling in when `hold`: the
    /// walk holds traffic on both fleets) — returned, an error here aborts the release —
    /// and, when `hold`, the serving fleet's kept from scaling in too: an abort may give it
    /// all traffic back (a failure there is logged; the walk goes on).
    pub(super) async fn policies_before_walk(
        &self,
        spec: &ReleaseSpec,
        record: &FleetRecord,
        fresh: bool,
        serving: Option<&FleetRecord>,
        hold: bool,
    ) -> EngineResult<Vec<ScalingPolicy>> {
        let held = self
            .set_policies(spec, record, fresh.then(Vec::new), hold)
            .await?;
        if let Some(s) = serving.filter(|s| hold && s.scaling) {
            if let Err(e) = self.set_policies(spec, s, None, true).await {
                log::warn(format!(
                    "{}: its scaling policies could not be kept from scaling in: {e}",
                    s.fleet_name
                ));
            }
        }
        Ok(held)
    }

    /// After an aborted walk, traffic back on the serving fleet: it scales as configured
    /// again (a failure is logged; the plan then shows the policies as drift).
    pub(super) async fn policies_after_abort(
        &self,
        spec: &ReleaseSpec,
        serving: Option<&FleetRecord>,
        hold: bool,
    ) {
        if let Some(s) = serving.filter(|s| hold && s.scaling) {
            if let Err(e) = self.set_policies(spec, s, None, false).await {
                log::warn(format!(
                    "{}: its scaling policies could not be put back: {e}",
                    s.fleet_name
                ));
            }
        }
    }

    /// The provider's own policies of a fleet (named for it), as AWS has them.
    pub(super) async fn own_policies(&self, fleet: &str) -> EngineResult<Vec<ScalingPolicy>> {
        let all = self.cloud.fleets.scaling_policies(fleet).await?;
        Ok(all
            .into_iter()
            .filter(|p| p.name == scaling_policy_name(fleet, &p.metric))
            .collect())
    }

    /// Takes the provider's policies off a fleet leaving traffic, when it may carry some;
    /// the record says it carries none after. A failure is logged: the fleet is out of
    /// traffic, and the end of its rollback window scales it to zero whatever its
    /// policies say.
    pub(super) async fn policies_off(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
        fleet: &FleetRecord,
    ) {
        if !fleet.scaling {
            return;
        }
        let mut none = spec.clone();
        none.scaling.clear();
        match self.scale_with_policies(&none, fleet, false).await {
            Ok(_) => ledger.set_scaling(fleet.release, false),
            Err(e) => log::warn(format!(
                "{}: its scaling policies could not be removed: {e}",
                fleet.fleet_name
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(fleet: &str, metric: &str, target: f64) -> ScalingPolicy {
        ScalingPolicy {
            name: scaling_policy_name(fleet, metric),
            metric: metric.into(),
            target_value: target,
            disable_scale_in: false,
            resource_label: None,
        }
    }

    #[test]
    fn policy_changes_as_a_table() {
        let cpu = |t| policy("web-r2", "ASGAverageCPUUtilization", t);
        let req = |t| policy("web-r2", REQUEST_COUNT, t);
        let theirs = policy("someone", "ASGAverageNetworkIn", 1.0);
        type Case = (
            &'static str,
            Vec<ScalingPolicy>,
            Vec<ScalingPolicy>,
            (Vec<ScalingPolicy>, Vec<String>),
        );
        let cases: Vec<Case> = vec![
            (
                "a fresh fleet gets every policy",
                vec![],
                vec![cpu(50.0), req(500.0)],
                (vec![cpu(50.0), req(500.0)], vec![]),
            ),
            (
                "the same policies: nothing",
                vec![cpu(50.0)],
                vec![cpu(50.0)],
                (vec![], vec![]),
            ),
            (
                "a new target is put again",
                vec![cpu(50.0)],
                vec![cpu(60.0)],
                (vec![cpu(60.0)], vec![]),
            ),
            (
                "a policy no longer asked is deleted",
                vec![cpu(50.0), req(500.0)],
                vec![req(500.0)],
                (vec![], vec![cpu(50.0).name]),
            ),
            (
                "all off",
                vec![cpu(50.0), req(500.0)],
                vec![],
                (vec![], vec![cpu(50.0).name, req(500.0).name]),
            ),
            (
                "someone else's policy stays",
                vec![theirs.clone()],
                vec![],
                (vec![], vec![]),
            ),
        ];
        for (what, have, want, expected) in cases {
            assert_eq!(changes("web-r2", &have, &want), expected, "{what}");
        }
    }

    #[test]
    fn request_counts_are_bound_to_the_fleets_own_target_group() {
        let mut spec = crate::spec::examples::release(
            "ami-1",
            "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/web/abc/def",
        );
        spec.scaling = vec![crate::spec::TargetTracking {
            metric: REQUEST_COUNT.into(),
            target_value: 500.0,
            disable_scale_in: false,
        }];
        let mut record = crate::ledger::examples::fleet(2, Role::Launching);
        record.target_group_arn =
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-r2/123".into();
        let w = wanted(&spec, &record, false).unwrap();
        assert!(!w[0].disable_scale_in);
        assert!(wanted(&spec, &record, true).unwrap()[0].disable_scale_in);
        assert_eq!(
            w[0].resource_label.as_deref(),
            Some("app/web/abc/targetgroup/web-r2/123")
        );
        assert_eq!(w[0].name, "web-r2-ALBRequestCountPerTarget");
        record.target_group_arn = String::new();
        assert!(wanted(&spec, &record, false).is_err());
    }
}
