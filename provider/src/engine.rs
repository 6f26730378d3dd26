//! The engine: runs releases, rollbacks, scaling and destroys against a [`Cloud`], looping
//! observe → decide → act with the pure functions of [`crate::decide`], and writing its
//! progress to AWS (ownership tags, the ledger) after every step.
//!
//! Time is tokio's, so tests drive it with `tokio::time::pause()`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::cloud::{
    Cloud, CloudError, GroupRequest, GroupStatus, ListenerAction, Owned, Route, RouteState,
};
use crate::decide::{self, Gate, PlanKind, Verdict};
use crate::duration::format as fmt_duration;
use crate::ledger::{FleetRecord, HistoryEntry, Ledger, Role, Status};
use crate::log;
use crate::spec::{Capacity, FleetSpec, ReleaseSpec};
use crate::stop::Stop;

/// Tag: the release name that owns an object.
pub const TAG_RELEASE_NAME: &str = "immutable:release-name";
/// Tag: the release number of a fleet.
pub const TAG_RELEASE: &str = "immutable:release";
/// Tag: the image a fleet runs.
pub const TAG_IMAGE: &str = "immutable:image-id";
/// Tag: how far the fleet's release got.
pub const TAG_PHASE: &str = "immutable:phase";
/// How long a deletion AWS refuses for now (an activity in progress, a resource in use)
/// is tried again.
const DELETE_RETRY_LIMIT: Duration = Duration::from_secs(300);
/// How long a new group whose instance profile AWS does not see yet is tried again.
const PROFILE_PROPAGATION_LIMIT: Duration = Duration::from_secs(120);
/// Answers in a row without a deleted group that prove it gone (reads are eventually
/// consistent).
const GONE_READS: u32 = 2;

/// Failed launches a new fleet's group may have before the release aborts: AWS retries a
/// failed launch by itself, and the first ones fail when an instance profile made seconds
/// ago has not propagated; a launch that can never succeed fails every time.
const LAUNCH_FAILURES_TOLERATED: usize = 2;

/// Tag: the fleet-shaping fingerprint.
pub const TAG_FINGERPRINT: &str = "immutable:fingerprint";

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An AWS call failed after its retries.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The release was aborted and rolled back; traffic stayed where it was.
    #[error("{summary}: {reason}. {traffic}")]
    Aborted {
        /// e.g. "release web-r2 aborted".
        summary: String,
        /// What failed, with the figures.
        reason: String,
        /// Where traffic is now, e.g. "Traffic stayed on release 1 (web-r1)."
        traffic: String,
    },
    /// The provider refuses to act, e.g. on an object it does not own.
    #[error("{0}")]
    Refused(String),
    /// The release committed (its fleet serves) but a clean-up after it failed.
    #[error("release {release} ({fleet}) serves all traffic; afterwards {error}. The next apply finishes the clean-up")]
    AfterCommit {
        /// The release number that serves.
        release: u64,
        /// Its fleet.
        fleet: String,
        /// What failed.
        error: String,
    },
}

/// Result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;

/// What a read sees of a release.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The ledger.
    pub ledger: Ledger,
    /// The listener's default action, None when the listener is gone.
    pub listener: Option<ListenerAction>,
    /// The live groups of the ledger's fleets.
    pub groups: Vec<GroupStatus>,
    /// Why the serving fleet cannot serve as it is (see [`decide::serving_faults`]).
    pub serving_faults: Vec<String>,
}

impl Observed {
    /// The serving fleet's group, if it exists.
    pub fn active_group(&self) -> Option<&GroupStatus> {
        let active = self.ledger.active()?;
        self.groups.iter().find(|g| g.name == active.fleet_name)
    }

    /// Listener weights by fleet name (target groups not owned by the release by ARN).
    pub fn traffic(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        if let Some(ListenerAction::Forward(weights)) = &self.listener {
            for (arn, w) in weights {
                let name = self
                    .ledger
                    .fleets
                    .iter()
                    .find(|f| &f.target_group_arn == arn)
                    .map(|f| f.fleet_name.clone())
                    .unwrap_or_else(|| arn.clone());
                out.insert(name, *w);
            }
        }
        out
    }

    /// Everything the next apply has to put right besides listener weights and capacity
    /// (which the plan shows as attribute changes): a broken serving fleet, a fleet left
    /// half-made, retained fleets beyond `retain_fleets`.
    pub fn drift(&self, retain_fleets: Option<i64>) -> Vec<String> {
        let mut out = self.serving_faults.clone();
        for f in self
            .ledger
            .fleets
            .iter()
            .filter(|f| f.role == Role::Launching)
        {
            out.push(match &f.stopped {
                Some(at) => format!("release {} was {at}", f.fleet_name),
                None => format!(
                    "fleet {} was left half-made by an interrupted apply (or another apply is releasing it right now)",
                    f.fleet_name
                ),
            });
        }
        if let Some(keep) = retain_fleets {
            let retained = self.ledger.retained().len();
            if retained > keep.max(0) as usize {
                out.push(format!(
                    "{retained} retained fleet(s), more than retain_fleets = {keep}"
                ));
            }
        }
        out
    }
}

/// Runs operations against a cloud.
#[derive(Clone)]
pub struct Engine {
    cloud: Cloud,
    poll_ceiling: Duration,
    stop: Stop,
    /// The origin of the shared poll grid.
    epoch: Instant,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Consecutive failed observations a wait tolerates before it gives up: one bad poll
/// (after the SDK's own retries) never fails a release.
const MAX_BAD_POLLS: u32 = 3;

/// Counts a failed observation; Err once there have been too many in a row.
fn tolerate(bad_polls: &mut u32, e: EngineError, fleet: &str) -> EngineResult<()> {
    *bad_polls += 1;
    if *bad_polls > MAX_BAD_POLLS {
        return Err(e);
    }
    log::warn(format!(
        "release {fleet}: an observation failed ({e}); trying again"
    ));
    Ok(())
}

/// Flattens the two ways a step can fail (an AWS error, or a reason to abort) into the
/// reason an abort reports.
fn reason_of<T>(result: EngineResult<Result<T, String>>) -> Result<T, String> {
    match result {
        Ok(r) => r,
        Err(e) => Err(e.to_string()),
    }
}

/// The fleet name of a release number: `<name>-r<N>`.
pub fn fleet_name(release_name: &str, release: u64) -> String {
    format!("{release_name}-r{release}")
}

impl Engine {
    /// An engine whose waits poll no slower than `poll_ceiling`.
    pub fn new(cloud: Cloud, poll_ceiling: Duration) -> Self {
        Self {
            cloud,
            poll_ceiling,
            stop: Stop::new(),
            epoch: Instant::now(),
        }
    }

    /// The same engine, stopping when `stop` is requested (the provider passes
    /// [`crate::stop::global`]).
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// The cloud this engine acts on.
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// Reads everything a release is in AWS. None when no ledger exists for the name.
    pub async fn observe(&self, name: &str) -> EngineResult<Option<Observed>> {
        let Some(ledger) = self.load_readable(name).await? else {
            return Ok(None);
        };
        self.observe_with(ledger).await.map(Some)
    }

    /// Reads everything a release is in AWS, its ledger given (e.g. just rebuilt: a read of
    /// a ledger written moments ago may not find it yet).
    pub async fn observe_with(&self, ledger: Ledger) -> EngineResult<Observed> {
        let listener = self.cloud.traffic.action(&ledger.route()).await?;
        let names: Vec<String> = ledger.fleets.iter().map(|f| f.fleet_name.clone()).collect();
        let groups = self.cloud.fleets.describe_groups(&names).await?;
        let serving_faults = self
            .serving_faults(&ledger, Some(&groups), listener.as_ref())
            .await?;
        Ok(Observed {
            ledger,
            listener,
            groups,
            serving_faults,
        })
    }

    /// The ledger, or None when it is missing or cannot be read (then a warning says so,
    /// and the caller rebuilds it from the fleets' tags).
    pub async fn load_readable(&self, name: &str) -> EngineResult<Option<Ledger>> {
        match self.cloud.ledger.load(name).await {
            Ok(l) => Ok(l),
            Err(e) if e.code() == Some(crate::ledger::UNREADABLE) => {
                log::notice(
                    name,
                    format!(
                        "the ledger could not be read ({e}); it is rebuilt from the fleets' tags"
                    ),
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

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

    /// Rebuilds a lost ledger from the ownership tags of the release's groups and from the
    /// route (the fleet it gives the most weight serves; a fleet tagged `retained` is kept
    /// for rollback; any other is a half-made one for the next apply to settle), and saves
    /// it; the caller has just found no ledger. None when no group of the release exists.
    /// Release numbers go on from the highest found.
    pub async fn rebuild(&self, name: &str, route: &Route) -> EngineResult<Option<Ledger>> {
        let groups: Vec<GroupStatus> = self
            .cloud
            .fleets
            .groups_of_release(name)
            .await?
            .into_iter()
            .filter(|g| {
                !g.deleting && g.tags.get(TAG_RELEASE_NAME).map(String::as_str) == Some(name)
            })
            .collect();
        if groups.is_empty() {
            return Ok(None);
        }
        let weights: BTreeMap<String, i64> = match self.cloud.traffic.action(route).await? {
            Some(ListenerAction::Forward(w)) => w.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let mut ledger = Ledger::new(name, &route.listener_arn);
        ledger.rule_arn = route.rule_arn.clone();
        let mut user_tags = BTreeMap::new();
        for g in &groups {
            let Some(release) = g.tags.get(TAG_RELEASE).and_then(|r| r.parse::<u64>().ok()) else {
                continue;
            };
            let target_group_arn = match g.target_group_arns.first() {
                Some(a) => a.clone(),
                None => self
                    .cloud
                    .fleets
                    .find_target_group(&g.name)
                    .await?
                    .map(|t| t.arn)
                    .unwrap_or_default(),
            };
            let (lt_id, lt_version) = g
                .launch_template
                .clone()
                .map(|(id, v)| (id, v.parse().unwrap_or(0)))
                .unwrap_or_default();
            let retained = g.tags.get(TAG_PHASE).map(String::as_str) == Some("retained");
            ledger.fleets.push(FleetRecord {
                release,
                fleet_name: g.name.clone(),
                launch_template_id: lt_id,
                launch_template_version: lt_version,
                image_id: g.tags.get(TAG_IMAGE).cloned().unwrap_or_default(),
                fingerprint: g.tags.get(TAG_FINGERPRINT).cloned().unwrap_or_default(),
                role: if retained {
                    Role::Retained
                } else {
                    Role::Launching
                },
                last_served: release,
                health_rule_arn: None,
                stopped: None,
                progress: None,
                target_group_arn,
            });
            ledger.next_release = ledger.next_release.max(release + 1);
            user_tags.extend(
                g.tags
                    .iter()
                    .filter(|(k, _)| !k.starts_with("immutable:") && !k.starts_with("aws:"))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        // The route is the truth about who serves.
        let serving = ledger
            .fleets
            .iter()
            .filter_map(|f| weights.get(&f.target_group_arn).map(|w| (*w, f.release)))
            .filter(|(w, _)| *w > 0)
            .max()
            .map(|(_, r)| r);
        ledger.fleets.sort_by_key(|f| f.release);
        let now = now_rfc3339();
        let newest = ledger.next_release - 1;
        for f in ledger.fleets.iter_mut() {
            if Some(f.release) == serving {
                f.role = Role::Active;
                // An older fleet serving means a rollback gave it a number of its own: it
                // served last, and that number is taken.
                if f.release < newest {
                    f.last_served = newest + 1;
                    ledger.next_release = newest + 2;
                }
            }
        }
        for f in ledger.fleets.clone() {
            let status = match f.role {
                Role::Active => Status::Active,
                Role::Retained => Status::Retained,
                Role::Launching => continue,
            };
            ledger.push_history(
                HistoryEntry {
                    release: f.release,
                    image_id: f.image_id.clone(),
                    fleet_name: f.fleet_name.clone(),
                    status,
                    started_at: now.clone(),
                    finished_at: Some(now.clone()),
                    reason: Some("rebuilt from the fleet's tags after the ledger was lost".into()),
                },
                usize::MAX,
            );
        }
        let mut tags = user_tags;
        tags.insert(TAG_RELEASE_NAME.into(), name.into());
        tags.insert(TAG_PHASE.into(), "ledger".into());
        self.cloud.ledger.save(&ledger, &tags).await?;
        log::warn(format!(
            "release {name}: the ledger was missing; rebuilt from the tags of {} fleet(s)",
            ledger.fleets.len()
        ));
        Ok(Some(ledger))
    }

    /// Why the serving fleet of `ledger` cannot serve as it is; `groups` holds the groups
    /// already described (the serving one is looked up if missing from it).
    /// `groups`, when given, are the described groups of every ledger fleet; `listener`,
    /// when given, the listener's action as just read.
    async fn serving_faults(
        &self,
        ledger: &Ledger,
        groups: Option<&[GroupStatus]>,
        listener: Option<&ListenerAction>,
    ) -> EngineResult<Vec<String>> {
        let Some(active) = ledger.active() else {
            return Ok(Vec::new());
        };
        let group = match groups {
            Some(groups) => groups.iter().find(|g| g.name == active.fleet_name).cloned(),
            None => self
                .cloud
                .fleets
                .describe_groups(std::slice::from_ref(&active.fleet_name))
                .await?
                .into_iter()
                .next(),
        };
        // AWS refuses to delete a target group a listener forwards to: when the listener
        // names it, it exists, and no call is needed to say so.
        let in_listener = matches!(listener, Some(ListenerAction::Forward(w)) if w.iter().any(|(a, _)| a == &active.target_group_arn));
        let tg_exists = in_listener
            || self
                .cloud
                .fleets
                .find_target_group(&active.fleet_name)
                .await?
                .is_some_and(|t| t.arn == active.target_group_arn);
        Ok(decide::serving_faults(
            &active.fleet_name,
            (&active.launch_template_id, active.launch_template_version),
            group.as_ref(),
            tg_exists,
        ))
    }

    /// Puts right what a read reported besides weights and capacity: a broken serving fleet
    /// is replaced by a new fleet of the same arguments (all traffic at once once healthy,
    /// the broken one deleted); a half-made fleet that matches the arguments is finished,
    /// others are removed.
    pub async fn repair(
        &self,
        spec: &ReleaseSpec,
        explicit_desired: bool,
        limit: Duration,
    ) -> EngineResult<()> {
        let Some(mut ledger) = self.cloud.ledger.load(&spec.name).await? else {
            return Ok(());
        };
        let listener = self.cloud.traffic.action(&spec.route()).await?;
        let faults = self
            .serving_faults(&ledger, None, listener.as_ref())
            .await?;
        if !faults.is_empty() {
            log::warn(format!(
                "release {}: replacing the serving fleet: {}",
                spec.name,
                faults.join("; ")
            ));
            self.release_as(
                spec,
                release::Ask {
                    explicit_desired,
                    limit,
                    broken: Some(faults.join("; ")),
                    ..Default::default()
                },
            )
            .await?;
            return Ok(());
        }
        let launching = ledger.fleets.iter().filter(|f| f.role == Role::Launching);
        if launching
            .clone()
            .any(|f| spec.fleet.matches(&f.fingerprint))
        {
            self.release(spec, explicit_desired, limit).await?;
        } else if launching.count() > 0 {
            self.settle_leftovers(spec, &mut ledger).await?;
        }
        Ok(())
    }

    fn owned_tags(
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

    fn ledger_tags(spec: &ReleaseSpec) -> BTreeMap<String, String> {
        let mut tags = spec.tags.clone();
        tags.insert(TAG_RELEASE_NAME.into(), spec.name.clone());
        tags.insert(TAG_PHASE.into(), "ledger".into());
        tags
    }

    /// Refuses to touch a same-named object that the release does not own. Ok(true) when
    /// an object of that name exists and is the release's own (a leftover to clear).
    async fn check_free(
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

    /// Runs `op` again while AWS answers one of `codes`, which AWS documents as "wait and
    /// retry" (an activity in progress, a resource still in use, a profile not yet
    /// propagated), backing off from 1 s (doubling, at most the poll ceiling) for at most
    /// `limit`; then the last answer stands. Matched by code, never by message text.
    async fn retrying<T, F, Fut>(
        &self,
        codes: &[&str],
        limit: Duration,
        what: &str,
        mut op: F,
    ) -> EngineResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = crate::cloud::CloudResult<T>>,
    {
        let deadline = Instant::now() + limit;
        let mut interval = None;
        loop {
            match op().await {
                Err(e)
                    if e.code().is_some_and(|c| codes.contains(&c))
                        && Instant::now() < deadline
                        && self.stop.requested().is_none() =>
                {
                    log::info(format!("{what}: {e}; trying again"));
                    interval = Some(self.pause(interval, deadline).await);
                }
                other => return other.map_err(EngineError::from),
            }
        }
    }

    /// Sleeps for the next poll interval; returns the interval used.
    async fn pause(&self, previous: Option<Duration>, deadline: Instant) -> Duration {
        let left = deadline.saturating_duration_since(Instant::now());
        let d = decide::next_poll(previous, self.poll_ceiling, left);
        self.sleep_aligned(d, deadline).await;
        d
    }

    /// Sleeps about `d`, waking on the engine's shared grid (whole seconds since the engine
    /// was made, or the poll ceiling when it is shorter) so that concurrent waits poll at the
    /// same moments and share their calls (see [`crate::cloud::batch`]); never past
    /// `deadline` (a pause ends on time), and at once on a stop.
    async fn sleep_aligned(&self, d: Duration, deadline: Instant) {
        self.sleep_on_grid(d, deadline, Duration::from_secs(1))
            .await
    }

    /// [`Self::sleep_aligned`] on a grid of `grid` (at most the poll ceiling).
    async fn sleep_on_grid(&self, d: Duration, deadline: Instant, grid: Duration) {
        let grid = grid.min(self.poll_ceiling).max(Duration::from_millis(1));
        let target = Instant::now() + d;
        let since = target.saturating_duration_since(self.epoch).as_nanos();
        let step = grid.as_nanos();
        let aligned = self.epoch + Duration::from_nanos((since.div_ceil(step) * step) as u64);
        self.sleep_until(aligned.min(deadline.max(target))).await;
    }

    /// Sleeps until `wake`, or until a stop is requested.
    async fn sleep_until(&self, wake: Instant) {
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = self.stop.wait() => {}
        }
    }

    /// Observes the health gate of a group once.
    async fn gate(&self, fleet: &FleetRecord, min_pct: i64) -> EngineResult<Gate> {
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
    async fn wait_healthy(
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
        let since = std::time::SystemTime::now() - Duration::from_secs(30);
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
            // Fail fast: an instance that cannot launch will not become healthy by waiting.
            // (Only while some are not in service: no launch is failing otherwise.)
            let failed = if gate.in_service >= gate.desired {
                Ok(Vec::new())
            } else {
                self.cloud
                    .fleets
                    .failed_activities(&fleet.fleet_name, since)
                    .await
            };
            let failed = match failed {
                Ok(f) => {
                    bad_polls = 0;
                    f
                }
                Err(e) => {
                    tolerate(&mut bad_polls, e.into(), &fleet.fleet_name)?;
                    Vec::new()
                }
            };
            if gate.not_in_use().is_none() {
                unused_since = None;
            } else if unused_since.is_none() {
                unused_since = Some(Instant::now());
            }
            if let Some(why) =
                decide::hopeless(&gate, unused_since.map(|t| t.elapsed()), check_interval)
            {
                return Ok(Err(format!(
                    "Auto Scaling group ({}) cannot become healthy: {why}; after {}",
                    fleet.fleet_name,
                    fmt_duration(started.elapsed())
                )));
            }
            if failed.len() > LAUNCH_FAILURES_TOLERATED {
                let first = &failed[0];
                return Ok(Err(format!(
                    "Auto Scaling group ({}) failed to launch instances: {first} ({} failed launches); {} after {}",
                    fleet.fleet_name,
                    failed.len(),
                    gate.reason(),
                    fmt_duration(started.elapsed())
                )));
            }
            if Instant::now() >= deadline {
                return Ok(Err(format!(
                    "waiting for Auto Scaling group ({}) healthy capacity: {} after {}",
                    fleet.fleet_name,
                    gate.reason(),
                    fmt_duration(limit)
                )));
            }
            log::info(format!(
                "release {}: waiting for health: {}",
                fleet.fleet_name,
                gate.reason()
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
            interval = Some(d);
        }
    }

    /// Sets the route's weights and checks them in AWS's answer to the change (ModifyListener
    /// and ModifyRule answer with the route's new actions), or else reads them back; a
    /// mismatch is an error.
    async fn set_traffic(&self, route: &Route, weights: &[(String, i64)]) -> EngineResult<()> {
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

    /// Holds for `length`, watching alarms and the fleet's health; Err(reason) to abort.
    async fn watch(
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
    async fn watch_within(
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

    /// Deletes a fleet: group (waiting until it is gone), target group, launch template.
    /// Never one that the route sends traffic to, whatever the ledger says: the route is
    /// read first, and a fleet it gives weight is refused.
    async fn delete_fleet(
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
    async fn wait_group_gone(&self, name: &str, limit: Duration) -> EngineResult<()> {
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

    /// The capacity a new fleet gets: the spec's desired, or else the serving fleet's live
    /// desired capacity (so an autoscaled fleet never shrinks on release), or else min.
    fn new_capacity(
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

    /// Performs a release: a new fleet beside the serving one, the health gate, the traffic
    /// steps, the bake, and retirement. On any failure the release is aborted: traffic goes
    /// back to where it was, the new fleet is deleted, and the history records why.
    ///
    /// `explicit_desired` says whether the user set `desired_capacity` (else it is carried
    /// over from the serving fleet).
    pub async fn release(
        &self,
        spec: &ReleaseSpec,
        explicit_desired: bool,
        limit: Duration,
    ) -> EngineResult<Ledger> {
        self.release_as(
            spec,
            release::Ask {
                explicit_desired,
                limit,
                ..Default::default()
            },
        )
        .await
    }

    /// As [`Engine::release`], with the record the caller has just read under the release's
    /// lease (one read fewer).
    pub async fn release_known(
        &self,
        spec: &ReleaseSpec,
        ledger: Ledger,
        explicit_desired: bool,
        limit: Duration,
    ) -> EngineResult<Ledger> {
        self.release_as(
            spec,
            release::Ask {
                explicit_desired,
                limit,
                known: Some(ledger),
                ..Default::default()
            },
        )
        .await
    }

    /// The first release of a new resource (Terraform's create): as [`Engine::release`],
    /// but a live release of that name (one with a serving fleet) is refused, never
    /// adopted. A ledger with no serving fleet is an interrupted create's: it is resumed.
    pub async fn create(
        &self,
        spec: &ReleaseSpec,
        explicit_desired: bool,
        limit: Duration,
    ) -> EngineResult<Ledger> {
        self.release_as(
            spec,
            release::Ask {
                explicit_desired,
                limit,
                fresh: true,
                ..Default::default()
            },
        )
        .await
    }

    /// After a release's commit: the broken fleet it replaced is deleted, or the fleet it
    /// replaced starts its rollback window; fleets beyond `retain_fleets` are retired.
    async fn clean_up_after_release(
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
            (Some(s), None) => self.start_rollback_window(spec, &s.fleet_name).await,
            _ => {}
        }
        let replaced = serving.as_ref().map(|s| s.fleet_name.as_str());
        self.retire(spec, ledger, replaced).await
    }

    /// Waits `deregistration_delay` for a fleet that left the route moments ago, so that
    /// the requests it was serving finish before its instances go (the load balancer drains
    /// a target for that long once no route sends it traffic).
    async fn drain(&self, spec: &ReleaseSpec, fleet_name: &str) {
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

    /// Creates the new fleet's launch template, target group and group, and attaches the
    /// target group so the load balancer health-checks it.
    async fn create_fleet(
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
    async fn tag_phase(&self, name: &str, phase: &str) {
        let _ = self
            .cloud
            .fleets
            .tag_group(
                name,
                &BTreeMap::from([(TAG_PHASE.to_string(), phase.to_string())]),
            )
            .await;
    }

    /// Fleets still `launching` in the ledger were left by an interrupted or stopped apply
    /// and never committed. Traffic goes back to the serving split first (verified). The
    /// newest one whose fleet-shaping arguments match `spec` and whose objects all still
    /// exist is kept, to be finished (returned; its target group stays in the listener at
    /// weight 0); the others are removed and recorded as aborted.
    async fn settle_leftovers(
        &self,
        spec: &ReleaseSpec,
        ledger: &mut Ledger,
    ) -> EngineResult<Option<FleetRecord>> {
        let leftovers: Vec<FleetRecord> = ledger
            .fleets
            .iter()
            .filter(|f| f.role == Role::Launching)
            .cloned()
            .collect();
        if leftovers.is_empty() {
            return Ok(None);
        }
        let mut resumed = None;
        for f in leftovers.iter().rev() {
            if let Some(r) = self.intact(spec, f).await? {
                resumed = Some(r);
                break;
            }
        }
        match ledger.active() {
            Some(active) => {
                let mut idle: Vec<String> = ledger.retained_target_groups();
                idle.extend(resumed.iter().map(|r| r.target_group_arn.clone()));
                let split = decide::split(&active.target_group_arn, 100, None, &idle);
                self.set_traffic(&spec.route(), &split).await?;
            }
            None => {
                let forwards_to_leftover = matches!(
                    self.cloud.traffic.action(&spec.route()).await?,
                    Some(ListenerAction::Forward(w)) if w.iter().any(|(a, _)| leftovers.iter().any(|f| &f.target_group_arn == a))
                );
                if forwards_to_leftover {
                    self.cloud
                        .traffic
                        .fixed_response(&spec.route(), 503)
                        .await?;
                }
            }
        }
        let keep = resumed.as_ref().map(|r| r.release);
        for f in leftovers.into_iter().filter(|f| Some(f.release) != keep) {
            log::warn(format!(
                "release {}: removing {}, left half-made by an interrupted apply",
                spec.name, f.fleet_name
            ));
            if let Some(rule) = &f.health_rule_arn {
                self.cloud.traffic.delete_rule(rule).await?;
            }
            self.sweep_health_rules(&spec.listener_arn, &f.fleet_name)
                .await?;
            self.delete_fleet(
                &spec.route(),
                &f.fleet_name,
                Some(&f.target_group_arn)
                    .filter(|a| !a.is_empty())
                    .map(String::as_str),
            )
            .await?;
            ledger.fleets.retain(|x| x.release != f.release);
            let reason = match &f.stopped {
                Some(at) => format!("{at}; removed by the next apply"),
                None => "interrupted apply; removed by the next apply".to_string(),
            };
            ledger.push_history(
                HistoryEntry {
                    release: f.release,
                    image_id: f.image_id.clone(),
                    fleet_name: f.fleet_name.clone(),
                    status: Status::Aborted,
                    started_at: now_rfc3339(),
                    finished_at: Some(now_rfc3339()),
                    reason: Some(crate::ledger::shorten(&reason)),
                },
                spec.history_limit as usize,
            );
        }
        self.cloud
            .ledger
            .save(ledger, &Self::ledger_tags(spec))
            .await?;
        Ok(resumed)
    }

    /// A leftover fleet, with its IDs filled in from AWS, when it matches `spec` and all its
    /// objects exist, carry the release's ownership and fingerprint tags, and fit together
    /// (the group runs the template and feeds the target group). A kill can land between
    /// any two calls, so the ledger record may lack IDs the tags still tell.
    async fn intact(
        &self,
        spec: &ReleaseSpec,
        f: &FleetRecord,
    ) -> EngineResult<Option<FleetRecord>> {
        if !spec.fleet.matches(&f.fingerprint) {
            return Ok(None);
        }
        let ours = |tags: &BTreeMap<String, String>| {
            tags.get(TAG_RELEASE_NAME) == Some(&spec.name)
                && tags
                    .get(TAG_FINGERPRINT)
                    .is_some_and(|t| spec.fleet.matches(t))
        };
        let Some(group) = self
            .cloud
            .fleets
            .describe_groups(std::slice::from_ref(&f.fleet_name))
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let Some((group_lt, group_version)) = group.launch_template.clone() else {
            return Ok(None);
        };
        if group.deleting || !ours(&group.tags) {
            return Ok(None);
        }
        let Some((lt_id, lt_tags)) = self
            .cloud
            .fleets
            .find_launch_template(&f.fleet_name)
            .await?
        else {
            return Ok(None);
        };
        let Some(tg) = self.cloud.fleets.find_target_group(&f.fleet_name).await? else {
            return Ok(None);
        };
        let Ok(version) = group_version.parse::<i64>() else {
            return Ok(None);
        };
        let fits = ours(&lt_tags)
            && ours(&tg.tags)
            && lt_id == group_lt
            && group.target_group_arns.contains(&tg.arn)
            && (f.launch_template_id.is_empty() || f.launch_template_id == lt_id)
            && (f.target_group_arn.is_empty() || f.target_group_arn == tg.arn);
        if !fits {
            return Ok(None);
        }
        let mut r = f.clone();
        r.launch_template_id = lt_id;
        r.launch_template_version = version;
        r.target_group_arn = tg.arn;
        Ok(Some(r))
    }

    /// Ends a release that did not finish: stopped (Ctrl-C, SIGINT, SIGTERM) → [`Self::halt`],
    /// anything else → [`Self::abort`].
    async fn fail(
        &self,
        spec: &ReleaseSpec,
        ledger: Ledger,
        record: &FleetRecord,
        previous: &RouteState,
        started_at: &str,
        reason: String,
    ) -> EngineError {
        match self.stop.requested() {
            Some(why) => {
                self.halt(spec, ledger, record, previous, &why, &reason)
                    .await
            }
            None => {
                self.abort(spec, ledger, record, previous, started_at, reason)
                    .await
            }
        }
    }

    /// A graceful stop: traffic back on the split that served before the release (verified),
    /// the new fleet kept out of traffic and recorded as stopped, so that the next apply
    /// finishes it (same arguments) or removes it. Nothing slow: no deletion waits.
    async fn halt(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        record: &FleetRecord,
        previous: &RouteState,
        why: &str,
        during: &str,
    ) -> EngineError {
        log::warn(format!("release {}: stopping: {why}", record.fleet_name));
        let restored = self.restore_action(spec, previous).await;
        let at = format!(
            "{} at {}",
            during.split(':').next().unwrap_or(during),
            now_rfc3339()
        );
        if let Some(f) = ledger
            .fleets
            .iter_mut()
            .find(|f| f.release == record.release)
        {
            *f = record.clone();
            f.stopped = Some(at.clone());
        }
        let saved = self
            .cloud
            .ledger
            .save(&ledger, &Self::ledger_tags(spec))
            .await;
        self.tag_phase(&record.fleet_name, "stopped").await;
        let mut traffic = match (ledger.active(), &restored) {
            (Some(a), Ok(())) => format!(
                "Traffic is back on release {} ({}).",
                current_release(&ledger).unwrap_or(a.release),
                a.fleet_name
            ),
            (None, Ok(())) => "The listener's default action is back as it was.".to_string(),
            (_, Err(e)) => format!("Putting the listener back failed: {e}."),
        };
        traffic.push_str(&format!(
            " Fleet {} was kept out of traffic: the next apply finishes this release if the configuration still asks for it, or removes it.",
            record.fleet_name
        ));
        if let Err(e) = saved {
            traffic.push_str(&format!(" Recording the stop failed: {e}."));
        }
        EngineError::Aborted {
            summary: format!("release {} stopped", record.fleet_name),
            reason: format!("{why}, {at}"),
            traffic,
        }
    }

    /// Puts the route back exactly as `previous` read it, whatever its final action
    /// (forward, fixed response, redirect), and reads it back: a mismatch is an error.
    async fn restore_action(&self, spec: &ReleaseSpec, previous: &RouteState) -> EngineResult<()> {
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

    async fn attach_for_health_checks(
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
                return self.set_traffic(&spec.route(), &attached).await;
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
    async fn sweep_health_rules(&self, listener_arn: &str, fleet_name: &str) -> EngineResult<()> {
        for (rule, token) in self.cloud.traffic.health_rules(listener_arn).await? {
            if crate::naming::is_health_token_of_fleet(&token, fleet_name) {
                self.cloud.traffic.delete_rule(&rule).await?;
            }
        }
        Ok(())
    }

    /// Removes a fleet's health-check rule once the default action routes to it (or the
    /// fleet goes away).
    async fn detach_health_rule(&self, record: &mut FleetRecord) -> EngineResult<()> {
        if let Some(rule) = record.health_rule_arn.take() {
            self.cloud.traffic.delete_rule(&rule).await?;
        }
        Ok(())
    }

    /// A fleet just left traffic: it keeps full capacity until `rollback_window` ends, then
    /// an Auto Scaling scheduled action scales it to zero, with no Terraform run needed. A
    /// failure here does not undo a finished release; it is logged.
    async fn start_rollback_window(&self, spec: &ReleaseSpec, fleet_name: &str) {
        let at = std::time::SystemTime::now() + spec.rollback_window;
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
    async fn retire(
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
                &spec.route(),
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
        }
        if !gone.is_empty() {
            self.cloud
                .ledger
                .save(ledger, &Self::ledger_tags(spec))
                .await?;
        }
        Ok(())
    }

    /// Rolls back to a retained fleet: no new fleet; scale it back if needed, wait for
    /// health, move all traffic, keep the replaced fleet as retained.
    async fn rollback(
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
        // It serves again: its window must not scale it to zero.
        self.cloud
            .fleets
            .cancel_scale_to_zero(&target.fleet_name)
            .await?;
        let group = self
            .cloud
            .fleets
            .describe_groups(std::slice::from_ref(&target.fleet_name))
            .await?
            .into_iter()
            .next();
        let Some(group) = group else {
            return Err(EngineError::Refused(format!(
                "retained fleet {} is gone from AWS; cannot roll back to it",
                target.fleet_name
            )));
        };
        let serving_group = match &serving {
            Some(s) => self
                .cloud
                .fleets
                .describe_groups(std::slice::from_ref(&s.fleet_name))
                .await?
                .into_iter()
                .next(),
            None => None,
        };
        let want = Self::new_capacity(spec, false, serving_group.as_ref());
        if group.capacity.desired < want.desired
            || group.capacity.min != want.min
            || group.capacity.max != want.max
        {
            self.cloud
                .fleets
                .set_capacity(&target.fleet_name, want)
                .await?;
        }
        match self
            .wait_healthy(&target, spec, spec.health.timeout.min(limit))
            .await?
        {
            Ok(_) => {}
            Err(reason) => {
                let traffic = match &serving {
                    Some(s) => format!(
                        "Traffic stayed on release {} ({}).",
                        current_release(&ledger).unwrap_or(s.release),
                        s.fleet_name
                    ),
                    None => "No release was serving.".to_string(),
                };
                return Err(EngineError::Aborted {
                    summary: format!("rollback to {} aborted", target.fleet_name),
                    reason,
                    traffic,
                });
            }
        }
        let others: Vec<String> = ledger
            .fleets
            .iter()
            .filter(|f| f.release != to)
            .map(|f| f.target_group_arn.clone())
            .collect();
        let before = self.cloud.traffic.action(&spec.route()).await?;
        self.set_traffic(
            &spec.route(),
            &decide::split(&target.target_group_arn, 100, None, &others),
        )
        .await?;
        let release = ledger
            .commit_rollback(to, &now_rfc3339(), spec.history_limit as usize)
            .expect("retained fleet exists");
        // The commit point: if the ledger cannot say so, traffic goes back.
        if let Err(e) = self
            .cloud
            .ledger
            .save(&ledger, &Self::ledger_tags(spec))
            .await
        {
            if let Some(ListenerAction::Forward(w)) = &before {
                let _ = self.set_traffic(&spec.route(), w).await;
            }
            return Err(e.into());
        }
        if let Some(s) = &serving {
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

    /// Aborts a release: traffic back where it was (verified), the new fleet deleted, the
    /// attempt recorded. Returns the error to report.
    async fn abort(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        record: &FleetRecord,
        previous: &RouteState,
        started_at: &str,
        reason: String,
    ) -> EngineError {
        log::warn(format!("release {}: aborting: {reason}", record.fleet_name));
        let mut problems = Vec::new();
        let restore = self.restore_action(spec, previous).await;
        if let Err(e) = restore {
            problems.push(format!("restoring the listener failed: {e}"));
        }
        if let Some(rule) = &record.health_rule_arn {
            if let Err(e) = self.cloud.traffic.delete_rule(rule).await {
                problems.push(format!("removing the health-check rule failed: {e}"));
            }
        }
        if let Err(e) = self
            .delete_fleet(
                &spec.route(),
                &record.fleet_name,
                Some(&record.target_group_arn),
            )
            .await
        {
            problems.push(format!("removing {} failed: {e}", record.fleet_name));
        } else {
            ledger.fleets.retain(|f| f.release != record.release);
        }
        ledger.push_history(
            HistoryEntry {
                release: record.release,
                image_id: record.image_id.clone(),
                fleet_name: record.fleet_name.clone(),
                status: Status::Aborted,
                started_at: started_at.to_string(),
                finished_at: Some(now_rfc3339()),
                reason: Some(crate::ledger::shorten(&reason)),
            },
            spec.history_limit as usize,
        );
        // A first release that never served leaves nothing behind, its ledger included.
        let saved = if ledger.fleets.is_empty() {
            self.cloud.ledger.delete(&spec.name).await
        } else {
            self.cloud
                .ledger
                .save(&ledger, &Self::ledger_tags(spec))
                .await
        };
        if let Err(e) = saved {
            problems.push(format!("recording the abort failed: {e}"));
        }
        let traffic = match (ledger.active(), &previous.last) {
            (Some(a), _) => format!(
                "Traffic stayed on release {} ({}).",
                current_release(&ledger).unwrap_or(a.release),
                a.fleet_name
            ),
            (None, ListenerAction::Fixed(code)) => format!(
                "No release was serving; the {} answers {code} as before.",
                if spec.rule_arn.is_some() {
                    "listener rule"
                } else {
                    "listener"
                }
            ),
            (None, _) => format!(
                "No release was serving; the {} is as it was.",
                if spec.rule_arn.is_some() {
                    "listener rule's action"
                } else {
                    "listener's default action"
                }
            ),
        };
        let traffic = if problems.is_empty() {
            traffic
        } else {
            format!("{traffic} Clean-up was incomplete: {}", problems.join("; "))
        };
        EngineError::Aborted {
            summary: format!("release {} aborted", record.fleet_name),
            reason,
            traffic,
        }
    }

    /// Scales the serving fleet in place and waits for the health gate.
    pub async fn scale(&self, spec: &ReleaseSpec, limit: Duration) -> EngineResult<()> {
        let ledger = self.cloud.ledger.load(&spec.name).await?.ok_or_else(|| {
            EngineError::Refused(format!("release {} has no ledger in AWS", spec.name))
        })?;
        let active = ledger.active().cloned().ok_or_else(|| {
            EngineError::Refused(format!("release {} has no serving fleet", spec.name))
        })?;
        log::info(format!(
            "release {}: scaling to min {} / desired {} / max {}",
            active.fleet_name, spec.capacity.min, spec.capacity.desired, spec.capacity.max
        ));
        self.cloud
            .fleets
            .set_capacity(&active.fleet_name, spec.capacity)
            .await?;
        match self
            .wait_healthy(&active, spec, spec.health.timeout.min(limit))
            .await?
        {
            Ok(_) => Ok(()),
            Err(reason) => Err(EngineError::Aborted {
                summary: format!("scaling {} did not become healthy", active.fleet_name),
                reason,
                traffic: "Traffic is unchanged.".into(),
            }),
        }
    }

    /// Puts traffic back on the serving fleet when the listener drifted.
    pub async fn restore_traffic(&self, spec: &ReleaseSpec) -> EngineResult<()> {
        let Some(ledger) = self.cloud.ledger.load(&spec.name).await? else {
            return Ok(());
        };
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

    /// Records the Terraform layer's snapshot of the applied arguments in `ledger` (as just
    /// observed), saving only when it changed.
    pub async fn record_settings(
        &self,
        spec: &ReleaseSpec,
        mut ledger: Ledger,
        settings: serde_json::Value,
    ) -> EngineResult<()> {
        if ledger.settings.as_ref() != Some(&settings) {
            ledger.settings = Some(settings);
            self.cloud
                .ledger
                .save(&ledger, &Self::ledger_tags(spec))
                .await?;
        }
        Ok(())
    }

    /// Saves settings that live in the ledger (history bound) and retires retained fleets
    /// beyond `retain_fleets`. `ledger` is the one an operation just returned, if any (else
    /// it is loaded).
    pub async fn save_settings(
        &self,
        spec: &ReleaseSpec,
        ledger: Option<Ledger>,
    ) -> EngineResult<Option<Ledger>> {
        let ledger = match ledger {
            Some(l) => Some(l),
            None => self.cloud.ledger.load(&spec.name).await?,
        };
        let Some(mut ledger) = ledger else {
            return Ok(None);
        };
        let before = ledger.clone();
        ledger.trim_history(spec.history_limit as usize);
        self.retag(spec, &mut ledger).await?;
        if ledger != before {
            self.cloud
                .ledger
                .save(&ledger, &Self::ledger_tags(spec))
                .await?;
        }
        if ledger.retained().len() > spec.retain_fleets.max(0) as usize {
            self.retire(spec, &mut ledger, None).await?;
        }
        Ok(Some(ledger))
    }

    /// Puts the configuration's tags (`tags` over `default_tags`) on every object the
    /// release owns — each live fleet's group, target group and launch template, and the
    /// ledger — and removes the keys dropped since the last time (recorded in the ledger,
    /// which the caller saves). Ownership tags are never touched.
    async fn retag(&self, spec: &ReleaseSpec, ledger: &mut Ledger) -> EngineResult<()> {
        let want = user_tags(&spec.tags);
        if ledger.tags == want {
            return Ok(());
        }
        let remove: Vec<String> = ledger
            .tags
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        let mut objects = Vec::new();
        for f in &ledger.fleets {
            objects.push(Owned::Group(f.fleet_name.clone()));
            if !f.target_group_arn.is_empty() {
                objects.push(Owned::TargetGroup(f.target_group_arn.clone()));
            }
            if !f.launch_template_id.is_empty() {
                objects.push(Owned::LaunchTemplate(f.launch_template_id.clone()));
            }
        }
        let record = format!("{}-ledger", spec.name);
        if let Some((id, _)) = self.cloud.fleets.find_launch_template(&record).await? {
            objects.push(Owned::LaunchTemplate(id));
        }
        for o in &objects {
            self.cloud.fleets.retag(o, &want, &remove).await?;
        }
        log::info(format!(
            "release {}: tags put on {} objects ({} removed)",
            spec.name,
            objects.len(),
            remove.len()
        ));
        ledger.tags = want;
        Ok(())
    }

    /// Destroys the release: the listener answers a fixed 503, then every fleet (and any
    /// group tagged as the release's), target group and launch template is deleted, and
    /// finally the ledger.
    pub async fn destroy(&self, name: &str, route: &Route) -> EngineResult<()> {
        let ledger = self.cloud.ledger.load(name).await?;
        let listener_arn = route.listener_arn.as_str();
        let route_exists = self.cloud.traffic.read(route).await?.is_some();
        if route_exists {
            self.cloud.traffic.fixed_response(route, 503).await?;
        }
        let listener_exists = match &route.rule_arn {
            None => route_exists,
            Some(_) => self
                .cloud
                .traffic
                .action(&Route::listener(listener_arn))
                .await?
                .is_some(),
        };
        let mut rules: Vec<String> = Vec::new();
        if let Some(l) = &ledger {
            for f in &l.fleets {
                if let Some(r) = &f.health_rule_arn {
                    rules.push(r.clone());
                }
            }
        }
        if listener_exists {
            rules.extend(
                self.cloud
                    .traffic
                    .health_rules(listener_arn)
                    .await?
                    .into_iter()
                    .filter(|(_, token)| crate::naming::is_health_token_of_release(token, name))
                    .map(|(rule, _)| rule),
            );
        }
        rules.sort();
        rules.dedup();
        for rule in rules {
            self.cloud.traffic.delete_rule(&rule).await?;
        }
        let mut fleets: Vec<(String, Option<String>)> = ledger
            .iter()
            .flat_map(|l| {
                l.fleets
                    .iter()
                    .map(|f| (f.fleet_name.clone(), Some(f.target_group_arn.clone())))
            })
            .collect();
        for g in self.cloud.fleets.groups_of_release(name).await? {
            if !fleets.iter().any(|(n, _)| n == &g.name) {
                fleets.push((g.name.clone(), None));
            }
        }
        for (fleet, arn) in fleets {
            log::info(format!("destroy {name}: deleting {fleet}"));
            self.delete_fleet(route, &fleet, arn.as_deref()).await?;
        }
        self.cloud.ledger.delete(name).await?;
        Ok(())
    }
}

/// The user's tags of a tag set: every key but the provider's own `immutable:*`.
fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("immutable:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The release number now serving: the newest `active` history line.
pub fn current_release(ledger: &Ledger) -> Option<u64> {
    ledger.serving_release()
}

/// Classifies a planned change of a release that exists. Recorded fingerprints are read
/// through [`FleetSpec::matches`], so fleets recorded by an earlier version still match.
pub fn classify(
    ledger: Option<&Ledger>,
    planned: &FleetSpec,
    capacity_changed: bool,
    settings_changed: bool,
) -> PlanKind {
    let planned_fingerprint = planned.fingerprint();
    let seen = |recorded: &str| {
        if planned.matches(recorded) {
            planned_fingerprint.clone()
        } else {
            recorded.to_string()
        }
    };
    let Some(ledger) = ledger else {
        return PlanKind::Release;
    };
    let Some(active) = ledger.active() else {
        return PlanKind::Release;
    };
    let retained: Vec<(u64, String)> = ledger
        .retained()
        .iter()
        .map(|f| (f.release, seen(&f.fingerprint)))
        .collect();
    decide::classify(
        &seen(&active.fingerprint),
        &planned_fingerprint,
        &retained,
        capacity_changed,
        settings_changed,
    )
}

mod release;
#[cfg(test)]
mod tests;
mod walk;
