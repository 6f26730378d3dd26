//! Launching a fleet: its name checked free, its launch template, target group and group
//! made with the ownership tags, its capacity.

use super::*;

impl Engine {
    pub(super) fn owned_tags(
        &self,
        spec: &ReleaseSpec,
        release: u64,
        phase: &str,
    ) -> BTreeMap<String, String> {
        let mut tags = spec.tags.clone();
        tags.insert(TAG_RELEASE_NAME.into(), spec.name.clone());
        tags.insert(TAG_RELEASE.into(), release.to_string());
        tags.insert(TAG_IMAGE.into(), spec.fleet.image_id.clone());
        tags.insert(TAG_PHASE.into(), phase.into());
        tags.insert(TAG_FINGERPRINT.into(), spec.fleet.fingerprint());
        tags
    }

    /// Refuses to touch a same-named object that the release does not own. Ok(true) when
    /// an object of that name exists and is the release's own (a leftover to clear).
    pub(super) async fn check_free(
        &self,
        spec: &ReleaseSpec,
        fleet: &str,
        group: Option<&GroupStatus>,
    ) -> EngineResult<bool> {
        let mut ours = false;
        let owned_by_us =
            |tags: &BTreeMap<String, String>| tags.get(TAG_RELEASE_NAME) == Some(&spec.name);
        if let Some(g) = group {
            ours = true;
            if !owned_by_us(&g.tags) {
                return Err(EngineError::Refused(format!(
                    "an Auto Scaling group named {fleet} already exists and is not owned by release {} (it has no {TAG_RELEASE_NAME} = {} tag); the provider never adopts or deletes objects it does not own: rename the release or remove that group",
                    spec.name, spec.name
                )));
            }
        }
        if let Some(tg) = self.cloud.fleets.find_target_group(fleet).await? {
            ours = true;
            if !owned_by_us(&tg.tags) {
                return Err(EngineError::Refused(format!(
                    "a target group named {fleet} already exists and is not owned by release {}; the provider never adopts or deletes objects it does not own: rename the release or remove that target group",
                    spec.name
                )));
            }
        }
        if let Some((_, tags)) = self.cloud.fleets.find_launch_template(fleet).await? {
            ours = true;
            if !owned_by_us(&tags) {
                return Err(EngineError::Refused(format!(
                    "a launch template named {fleet} already exists and is not owned by release {}; rename the release or remove that launch template",
                    spec.name
                )));
            }
        }
        Ok(ours)
    }

    /// The capacity a new fleet gets: the spec's desired, or else the serving fleet's live
    /// desired capacity (so an autoscaled fleet never shrinks on release), or else min.
    pub(super) fn new_capacity(
        spec: &ReleaseSpec,
        explicit_desired: bool,
        serving: Option<&GroupStatus>,
    ) -> Capacity {
        let mut c = spec.capacity;
        if !explicit_desired {
            if let Some(g) = serving {
                c.desired = g.capacity.desired.clamp(c.min, c.max);
            }
        }
        c
    }

    /// Creates the new fleet's launch template, target group and group, and attaches the
    /// target group so the load balancer health-checks it.
    pub(super) async fn create_fleet(
        &self,
        spec: &ReleaseSpec,
        name: &str,
        release: u64,
        capacity: Capacity,
        previous_action: &RouteState,
        record: &mut FleetRecord,
    ) -> EngineResult<()> {
        let mut instance_tags = spec.tags.clone();
        instance_tags.extend(spec.fleet.instance_tags.clone());
        instance_tags.insert(TAG_RELEASE_NAME.into(), spec.name.clone());
        instance_tags.insert(TAG_RELEASE.into(), release.to_string());
        let tags = self.owned_tags(spec, release, "launching");
        let (lt_id, lt_version) = self
            .cloud
            .fleets
            .create_launch_template(name, &spec.fleet, &tags, &instance_tags)
            .await?;
        record.launch_template_id = lt_id.clone();
        record.launch_template_version = lt_version;
        record.target_group_arn = self
            .cloud
            .fleets
            .create_target_group(name, &spec.vpc_id, &spec.fleet.target_group, &tags)
            .await?;
        let request = GroupRequest {
            name: name.to_string(),
            launch_template: (lt_id, lt_version),
            target_group_arn: record.target_group_arn.clone(),
            subnet_ids: spec.fleet.subnet_ids.iter().cloned().collect(),
            instance_types: std::iter::once(&spec.fleet.instance_type)
                .chain(&spec.fleet.fallback_instance_types)
                .cloned()
                .collect(),
            capacity,
            grace_period: spec.health.grace_period,
            tags,
        };
        // An instance profile made seconds ago (in the same apply, as in a complete
        // configuration) is refused as invalid until IAM has propagated it: AWS answers
        // `ValidationError`, a code it also gives for input that will never pass, so it is
        // retried only when the fleet names a profile, and for a bounded time.
        let retry_codes: &[&str] = if spec.fleet.iam_instance_profile.is_some() {
            &["ValidationError"]
        } else {
            &[]
        };
        self.retrying(
            retry_codes,
            PROFILE_PROPAGATION_LIMIT,
            &format!("creating Auto Scaling group {name}"),
            || self.cloud.fleets.create_group(&request),
        )
        .await?;
        // An ALB only health-checks target groups it routes to: the new target group
        // joins the listener's forward action at weight 0 or, when the listener does not
        // forward (a first release), a listener rule that no request matches.
        self.attach_for_health_checks(spec, previous_action, record)
            .await
    }

    /// Sets a group's phase tag; best effort (the ledger is the record, the tag a courtesy
    /// for people looking at the console).
    pub(super) async fn tag_phase(&self, name: &str, phase: &str) {
        let _ = self
            .cloud
            .fleets
            .tag_group(
                name,
                &BTreeMap::from([(TAG_PHASE.to_string(), phase.to_string())]),
            )
            .await;
    }
}
