//! The engine: runs releases, rollbacks, scaling and destroys against a [`Cloud`], looping
//! observe → decide → act with the pure functions of [`crate::decide`], and writing its
//! progress to AWS (ownership tags, the ledger) after every step.
//!
//! One room per concern: [`release`] (a release from record to commit), [`walk`] (the
//! executor of the traffic steps, with the progress it records), [`health`] (the health
//! gate), [`traffic`] (weights set and checked, routes put back), [`watch`] (pauses and
//! bake), [`launch`] (a new fleet's objects), [`rollback`], [`retention`] (retained fleets,
//! retirement, deletion) and [`recovery`] (interrupted applies, lost records, aborts).
//! This file holds the engine itself, what it observes, its entry points and its pace.
//!
//! Time is tokio's, so tests drive it with `tokio::time::pause()`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::cloud::{
    Cloud, CloudError, GroupRequest, GroupStatus, ListenerAction, Owned, Route, RouteState,
};
use crate::decide::{self, Gate, PlanKind, Verdict};
use crate::duration::format as fmt_duration;
use crate::ledger::{FleetRecord, Ledger, Role};
use crate::log;
use crate::spec::{Capacity, FleetSpec, ReleaseSpec};
use crate::stop::Stop;

pub use crate::naming::{
    fleet_name, TAG_FINGERPRINT, TAG_IMAGE, TAG_PHASE, TAG_RELEASE, TAG_RELEASE_NAME,
};

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

impl From<crate::lease::LeaseError> for EngineError {
    fn from(e: crate::lease::LeaseError) -> Self {
        match e {
            crate::lease::LeaseError::Held(why) => Self::Refused(why),
            crate::lease::LeaseError::Cloud(e) => Self::Cloud(e),
        }
    }
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
    /// The route's group stickiness as read, in seconds (None: off).
    pub sticky: Option<u64>,
    /// The live groups of the ledger's fleets.
    pub groups: Vec<GroupStatus>,
    /// Why the serving fleet cannot serve as it is (see [`decide::serving_faults`]).
    pub serving_faults: Vec<String>,
    /// The serving fleet's own scaling policies as found, when its record says it may carry
    /// some (None: it carries none, and none was read).
    pub scaling: Option<Vec<crate::cloud::ScalingPolicy>>,
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
            .filter(|f| f.role == Role::Launching && f.held.is_none())
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

/// The split with the serving fleet alone at 100 % (empty: none serves).
pub(crate) fn serving_alone(ledger: &Ledger) -> BTreeMap<String, i64> {
    ledger
        .active()
        .map(|a| BTreeMap::from([(a.fleet_name.clone(), 100)]))
        .unwrap_or_default()
}

/// What a notification is about (see [`Engine::notify`]).
pub(crate) struct Note {
    pub event: crate::notify::Event,
    pub release: u64,
    pub fleet_name: String,
    pub image_id: String,
    pub previous_fleet_name: Option<String>,
    pub traffic: BTreeMap<String, i64>,
    pub reason: Option<String>,
}

impl Note {
    /// `event` of fleet `f`, with the split `traffic`.
    pub(crate) fn of(
        event: crate::notify::Event,
        f: &FleetRecord,
        previous: Option<&str>,
        traffic: BTreeMap<String, i64>,
    ) -> Self {
        Self {
            event,
            release: f.release,
            fleet_name: f.fleet_name.clone(),
            image_id: f.image_id.clone(),
            previous_fleet_name: previous.map(String::from),
            traffic,
            reason: None,
        }
    }

    /// With `reason`.
    pub(crate) fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
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
    /// The wall clock written into the record.
    clock: Clock,
    /// Notifications on their way, per release, in order (see [`Engine::notify`]).
    outbox: Arc<std::sync::Mutex<BTreeMap<String, Outbox>>>,
}

/// One release's notifications on their way: sent one after the other, beside the release,
/// by a task of their own; what could not be sent, said when the outbox is flushed.
struct Outbox {
    tx: tokio::sync::mpsc::UnboundedSender<(String, String, String)>,
    worker: tokio::task::JoinHandle<Vec<String>>,
}

/// How long an apply waits at its end for its notifications still on their way.
const NOTIFICATION_FLUSH_LIMIT: Duration = Duration::from_secs(30);

/// The wall clock the engine writes into AWS (history times, the end of a rollback window,
/// the look-back for scaling activities), passed in: the system's, or in tests one that
/// follows tokio's paused time. Waits themselves run on tokio's time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemTime::now))
    }

    /// A clock that reads `at` now and moves with tokio's time (paused in tests).
    pub fn following_tokio(at: SystemTime) -> Self {
        let start = Instant::now();
        Self(Arc::new(move || at + start.elapsed()))
    }

    /// Now.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }

    /// Now in RFC 3339, to the millisecond (notifications: several a second).
    pub fn rfc3339_millis(&self) -> String {
        let t = time::OffsetDateTime::from(self.now());
        t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
            .unwrap_or(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// Now in RFC 3339, to the second (the history's format).
    pub fn rfc3339(&self) -> String {
        let t = time::OffsetDateTime::from(self.now());
        t.replace_nanosecond(0)
            .unwrap_or(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
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

impl Engine {
    /// An engine whose waits poll no slower than `poll_ceiling`.
    pub fn new(cloud: Cloud, poll_ceiling: Duration) -> Self {
        Self {
            cloud,
            poll_ceiling,
            stop: Stop::new(),
            epoch: Instant::now(),
            clock: Clock::system(),
            outbox: Arc::default(),
        }
    }

    /// Sends `event` of `spec`'s release to its `notification` topic, if it has one and
    /// wants that event: queued, sent in order by the release's outbox without holding the
    /// release up; a send that fails is a warning when the outbox is flushed.
    pub(crate) fn notify(&self, spec: &ReleaseSpec, note: Note) {
        let Some(n) = &spec.notification else {
            return;
        };
        if !n.wants(note.event) {
            return;
        }
        let message = crate::notify::Message {
            release_name: spec.name.clone(),
            release: note.release,
            event: note.event.as_str(),
            fleet_name: note.fleet_name,
            image_id: note.image_id,
            previous_fleet_name: note.previous_fleet_name,
            // Who has traffic: retained fleets at 0 are not news.
            traffic: note.traffic.into_iter().filter(|(_, w)| *w > 0).collect(),
            reason: note.reason,
            time: self.clock.rfc3339_millis(),
        };
        let mut outboxes = self.outbox.lock().unwrap();
        let outbox = outboxes.entry(spec.name.clone()).or_insert_with(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, String)>();
            let notifier = self.cloud.notifier.clone();
            let worker = tokio::spawn(async move {
                let mut failed = Vec::new();
                while let Some((topic, subject, body)) = rx.recv().await {
                    if let Err(e) = notifier.publish(&topic, &subject, &body).await {
                        failed.push(format!("notification \"{subject}\" was not sent: {e}"));
                    }
                }
                failed
            });
            Outbox { tx, worker }
        });
        log::debug(format!("notification: {}", message.subject()));
        let _ = outbox
            .tx
            .send((n.sns_topic_arn.clone(), message.subject(), message.body()));
    }

    /// Waits (at most 30 s) for release `name`'s notifications still on their way; what
    /// could not be sent becomes the release's warnings.
    pub async fn flush_notifications(&self, name: &str) {
        let Some(Outbox { tx, worker }) = self.outbox.lock().unwrap().remove(name) else {
            return;
        };
        drop(tx);
        let abort = worker.abort_handle();
        match tokio::time::timeout(NOTIFICATION_FLUSH_LIMIT, worker).await {
            Ok(Ok(failed)) => {
                for f in failed {
                    log::notice(name, f);
                }
            }
            Ok(Err(e)) => log::notice(name, format!("notifications were not all sent: {e}")),
            Err(_) => {
                abort.abort();
                log::notice(
                    name,
                    format!(
                        "notifications still unsent after {} were dropped",
                        fmt_duration(NOTIFICATION_FLUSH_LIMIT)
                    ),
                );
            }
        }
    }

    /// The route's split by fleet name (a target group the ledger does not know, by ARN).
    pub(crate) fn named(ledger: &Ledger, split: &[(String, i64)]) -> BTreeMap<String, i64> {
        split
            .iter()
            .map(|(arn, w)| {
                let name = ledger
                    .fleets
                    .iter()
                    .find(|f| &f.target_group_arn == arn)
                    .map(|f| f.fleet_name.clone())
                    .unwrap_or_else(|| crate::naming::target_group_name(arn).to_string());
                (name, *w)
            })
            .collect()
    }

    /// The same engine, writing the time `clock` tells.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now_rfc3339(&self) -> String {
        self.clock.rfc3339()
    }

    /// The same engine, stopping when `stop` is requested (the provider passes
    /// [`crate::stop::global`]).
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// Reads everything a release is in AWS. None when no ledger exists for the name.
    pub async fn observe(&self, name: &str) -> EngineResult<Option<Observed>> {
        let Some(ledger) = self.load_readable(name).await? else {
            return Ok(None);
        };
        self.observe_with(ledger).await.map(Some)
    }

    /// The ledger as stored (None: there is none). Errors as AWS gave them.
    pub async fn ledger(&self, name: &str) -> EngineResult<Option<Ledger>> {
        Ok(self.cloud.ledger.load(name).await?)
    }

    /// The state of an image (`available`, …), None when this account cannot see it.
    pub async fn image_state(&self, image_id: &str) -> EngineResult<Option<String>> {
        Ok(self.cloud.images.image_state(image_id).await?)
    }

    /// What version `version` of launch template `id` resolves to.
    pub async fn base_template_version(
        &self,
        id: &str,
        version: &str,
    ) -> EngineResult<crate::cloud::BaseVersion> {
        Ok(self
            .cloud
            .fleets
            .resolve_launch_template(id, version)
            .await?)
    }

    /// Whether an EC2 key pair of that name exists.
    pub async fn key_pair_exists(&self, name: &str) -> EngineResult<bool> {
        Ok(self.cloud.images.key_pair_exists(name).await?)
    }

    /// The alarms of `names` now in `ALARM`.
    pub async fn alarms_firing(&self, names: &[String]) -> EngineResult<Vec<String>> {
        Ok(self.cloud.alarms.in_alarm(names).await?)
    }

    /// The alarms of `names` that do not exist.
    pub async fn missing_alarms(&self, names: &[String]) -> EngineResult<Vec<String>> {
        Ok(self.cloud.alarms.missing(names).await?)
    }

    /// The user data a fleet's launch template version holds (for import).
    pub async fn fleet_user_data(&self, fleet: &FleetRecord) -> EngineResult<Option<String>> {
        Ok(self
            .cloud
            .fleets
            .launch_template_user_data(&fleet.launch_template_id, fleet.launch_template_version)
            .await?)
    }

    /// A route's final action; None when the route does not exist.
    pub async fn route_action(&self, route: &Route) -> EngineResult<Option<ListenerAction>> {
        Ok(self.cloud.traffic.action(route).await?)
    }

    /// Whether `rule_arn` is a rule of listener `listener_arn`.
    pub async fn rule_of_listener(&self, listener_arn: &str, rule_arn: &str) -> EngineResult<bool> {
        Ok(self
            .cloud
            .traffic
            .rule_of_listener(listener_arn, rule_arn)
            .await?)
    }

    /// How many target groups the listener's load balancer holds (None: no such listener).
    pub async fn target_groups_on_load_balancer(
        &self,
        listener_arn: &str,
    ) -> EngineResult<Option<usize>> {
        Ok(self
            .cloud
            .traffic
            .target_groups_on_load_balancer(listener_arn)
            .await?)
    }

    /// Holds release `name`'s lease (one apply at a time), or says who does.
    pub async fn lease(&self, name: &str) -> EngineResult<crate::lease::Lease> {
        Ok(crate::lease::acquire(&self.cloud, name, &self.stop).await?)
    }

    /// This engine, stopping when `lease`'s release is asked to (its lease lost) as well as
    /// when the process is: the work done under one lease.
    pub fn under(&self, lease: &crate::lease::Lease) -> Self {
        self.clone().with_stop(lease.stop())
    }

    /// Reads everything a release is in AWS, its ledger given (e.g. just rebuilt: a read of
    /// a ledger written moments ago may not find it yet).
    pub async fn observe_with(&self, ledger: Ledger) -> EngineResult<Observed> {
        let route = self.cloud.traffic.read(&ledger.route()).await?;
        let sticky = route.as_ref().and_then(|r| r.sticky);
        let listener = route.map(|r| r.last);
        let names: Vec<String> = ledger.fleets.iter().map(|f| f.fleet_name.clone()).collect();
        let groups = self.cloud.fleets.describe_groups(&names).await?;
        let serving_faults = self
            .serving_faults(&ledger, Some(&groups), listener.as_ref())
            .await?;
        let scaling = match ledger.active().filter(|a| a.scaling) {
            Some(a) => Some(self.own_policies(&a.fleet_name).await?),
            None => None,
        };
        Ok(Observed {
            ledger,
            listener,
            sticky,
            groups,
            serving_faults,
            scaling,
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

    fn ledger_tags(spec: &ReleaseSpec) -> BTreeMap<String, String> {
        let mut tags = spec.tags.clone();
        tags.insert(TAG_RELEASE_NAME.into(), spec.name.clone());
        tags.insert(TAG_PHASE.into(), "ledger".into());
        tags
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

    /// Saves settings that live in the ledger (history bound), puts the tags on every owned
    /// object, makes the serving fleet's scaling policies the configured ones (unless a
    /// release or rollback `just_released`: it set them), and retires retained fleets beyond
    /// `retain_fleets`. `ledger`: as the operation before left it (else it is loaded).
    pub async fn save_settings(
        &self,
        spec: &ReleaseSpec,
        ledger: Option<Ledger>,
        just_released: bool,
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
        // The serving fleet's scaling policies as configured.
        if let Some(active) = ledger.active().cloned().filter(|_| !just_released) {
            if !spec.scaling.is_empty() || active.scaling {
                let carries = self
                    .scale_with_policies(spec, &active, !active.scaling)
                    .await?;
                ledger.set_scaling(active.release, carries);
            }
        }
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
/// The release held part-way that `spec` keeps held: the same fleet arguments, and
/// `hold_at` at or below the weight it holds (raising or removing `hold_at` promotes it).
pub fn kept_held<'a>(ledger: &'a Ledger, spec: &ReleaseSpec) -> Option<&'a FleetRecord> {
    let f = ledger.held()?;
    let held = f.held.as_ref()?;
    (spec.fleet.matches(&f.fingerprint) && spec.hold_at.is_some_and(|h| h <= held.weight))
        .then_some(f)
}

/// What a plan is while a release is held that the configuration keeps held: never a
/// release (its fleet arguments differ from the serving fleet's, but nothing is to be
/// launched or promoted); None otherwise.
pub fn held_kind(
    ledger: Option<&Ledger>,
    spec: &ReleaseSpec,
    capacity_changed: bool,
    settings_changed: bool,
) -> Option<PlanKind> {
    kept_held(ledger?, spec)?;
    Some(if capacity_changed {
        PlanKind::Scale
    } else if settings_changed {
        PlanKind::Settings
    } else {
        PlanKind::NoChange
    })
}

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

mod health;
mod launch;
mod recovery;
mod release;
mod retention;
mod rollback;
mod scaling;
#[cfg(test)]
mod tests;
mod traffic;
mod walk;
mod watch;
