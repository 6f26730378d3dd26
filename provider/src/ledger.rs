//! The ledger: what a release records in AWS about itself — its live fleets and its history.
//! It lives in AWS (not only in the Terraform state) so that import, the data source, a lost
//! state file and an interrupted apply all see the same truth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a live fleet is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Being released: created, not yet given all traffic.
    Launching,
    /// Serving traffic.
    Active,
    /// Out of traffic, kept for rollback.
    Retained,
}

/// How a past or present release ended up (the contract's `history.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Serving.
    Active,
    /// Out of traffic, kept for rollback.
    Retained,
    /// Its fleet was deleted.
    Retired,
    /// Never served; removed.
    Aborted,
    /// Served until a rollback replaced it.
    RolledBack,
    /// Launched and given part of the traffic, held there (`hold_at`) until a later apply
    /// promotes or abandons it.
    Holding,
}

impl Status {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Retained => "retained",
            Status::Retired => "retired",
            Status::Aborted => "aborted",
            Status::RolledBack => "rolled_back",
            Status::Holding => "holding",
        }
    }
}

/// A fleet that exists in AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetRecord {
    /// Release number.
    pub release: u64,
    /// Group name, also the launch template's and target group's name.
    pub fleet_name: String,
    /// Launch template ID.
    pub launch_template_id: String,
    /// The exact launch template version the group pins.
    pub launch_template_version: i64,
    /// Target group ARN.
    pub target_group_arn: String,
    /// Image the fleet runs.
    pub image_id: String,
    /// Fingerprint of the fleet-shaping arguments.
    pub fingerprint: String,
    /// What it is for.
    pub role: Role,
    /// The release number under which it last served (a rollback serves an old fleet under
    /// a new number); retention keeps the most recently serving fleets.
    #[serde(default)]
    pub last_served: u64,
    /// A never-matching listener rule that routes to this fleet's target group so that the
    /// ALB health-checks it while the listener's default action does not forward to it.
    #[serde(default)]
    pub health_rule_arn: Option<String>,
    /// Where a gracefully stopped release stopped (e.g. "stopped during canary pause at
    /// 10 % at 2026-11-27T12:00:00Z"); the next apply finishes or removes the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// How far a release still launching got through its traffic steps, so that the next
    /// apply resumes there instead of walking every step again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The fleet may carry the provider's scaling policies (`target_tracking`): put on it,
    /// or not known (a rebuilt record). False only when it carries none, so that a fleet
    /// leaving traffic without any is not read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scaling: bool,
    /// Where a release still launching is held (`hold_at`): the apply that got it there
    /// ended successfully, and the next one promotes it, abandons it, or leaves it held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

/// A release held part-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The percent of the route's traffic it holds (0: healthy, no traffic).
    pub weight: i64,
    /// Since when, RFC 3339.
    pub since: String,
}

/// How far a release's walk through its traffic steps got: `done` steps of the list `of`
/// (see [`crate::decide::walk_key`]; a changed list starts afresh).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The steps, as [`crate::decide::walk_key`] writes them.
    pub of: String,
    /// How many of them are done.
    pub done: usize,
}

/// One line of history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Release number.
    pub release: u64,
    /// Image.
    pub image_id: String,
    /// Fleet name.
    pub fleet_name: String,
    /// Status now.
    pub status: Status,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, None while in flight.
    pub finished_at: Option<String>,
    /// Why it aborted, was rolled back or retired.
    pub reason: Option<String>,
}

/// The whole record of one release name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Release name.
    pub name: String,
    /// The listener the release owns.
    pub listener_arn: String,
    /// The rule of that listener the release owns, None for the default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    /// The number the next release gets.
    pub next_release: u64,
    /// Live fleets.
    pub fleets: Vec<FleetRecord>,
    /// Newest first.
    pub history: Vec<HistoryEntry>,
    /// The arguments of the last successful apply, as the Terraform layer recorded them
    /// (without user data), so that import can rebuild the configuration.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    /// The user's tags (`tags` over the provider's `default_tags`) last put on every object
    /// the release owns, so that a key dropped from the configuration is removed too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Reasons are kept short so that the ledger stays within AWS's size limits.
const MAX_REASON: usize = 200;

/// The error code of a ledger that exists but cannot be read (not the provider's JSON):
/// it is rebuilt from the fleets' tags, as a lost one is.
pub const UNREADABLE: &str = "LedgerUnreadable";

/// The most a stored ledger's JSON takes: AWS caps a launch template's user data at 16 KB
/// once base64-encoded, which 12 KB of text becomes.
pub const MAX_STORED: usize = 12 * 1024;

impl Ledger {
    /// An empty ledger for a new release name.
    pub fn new(name: &str, listener_arn: &str) -> Self {
        Self {
            name: name.into(),
            listener_arn: listener_arn.into(),
            rule_arn: None,
            next_release: 1,
            fleets: Vec::new(),
            history: Vec::new(),
            settings: None,
            tags: BTreeMap::new(),
        }
    }

    /// The route the release owns.
    pub fn route(&self) -> crate::route::Route {
        crate::route::Route {
            listener_arn: self.listener_arn.clone(),
            rule_arn: self.rule_arn.clone(),
        }
    }

    /// The serving fleet.
    pub fn active(&self) -> Option<&FleetRecord> {
        self.fleets.iter().find(|f| f.role == Role::Active)
    }

    /// The release held part-way (`hold_at`), if one is.
    pub fn held(&self) -> Option<&FleetRecord> {
        self.fleets
            .iter()
            .find(|f| f.role == Role::Launching && f.held.is_some())
    }

    /// Retained fleets, newest first.
    pub fn retained(&self) -> Vec<&FleetRecord> {
        let mut v: Vec<&FleetRecord> = self
            .fleets
            .iter()
            .filter(|f| f.role == Role::Retained)
            .collect();
        v.sort_by_key(|f| std::cmp::Reverse((f.last_served, f.release)));
        v
    }

    /// Target groups of the retained fleets, newest first (weight 0 in the listener).
    pub fn retained_target_groups(&self) -> Vec<String> {
        self.retained()
            .iter()
            .map(|f| f.target_group_arn.clone())
            .collect()
    }

    /// Image of the newest retained fleet: the one-line rollback target.
    pub fn previous_image_id(&self) -> Option<String> {
        self.retained().first().map(|f| f.image_id.clone())
    }

    /// Adds a history line at the top and keeps at most `limit` lines.
    pub fn push_history(&mut self, entry: HistoryEntry, limit: usize) {
        self.history.retain(|h| h.release != entry.release);
        self.history.insert(0, entry);
        self.trim_history(limit);
    }

    /// Keeps at most `limit` lines (at least one).
    pub fn trim_history(&mut self, limit: usize) {
        self.history.truncate(limit.max(1));
    }

    /// Changes the status of a release's history line, if it is still kept.
    pub fn set_status(
        &mut self,
        release: u64,
        status: Status,
        reason: Option<String>,
        at: Option<String>,
    ) {
        if let Some(h) = self.history.iter_mut().find(|h| h.release == release) {
            h.status = status;
            if reason.is_some() {
                h.reason = reason.map(|r| shorten(&r));
            }
            if at.is_some() && h.finished_at.is_none() {
                h.finished_at = at;
            }
        }
    }

    /// Marks every line of a deleted fleet that still says it is kept as retired.
    pub fn retire_fleet(&mut self, fleet_name: &str, reason: &str) {
        for h in self
            .history
            .iter_mut()
            .filter(|h| h.fleet_name == fleet_name)
        {
            if matches!(
                h.status,
                Status::Retained | Status::RolledBack | Status::Active
            ) {
                h.status = Status::Retired;
                h.reason = Some(shorten(reason));
            }
        }
    }

    /// The release that serves (its history line says `active`).
    pub fn serving_release(&self) -> Option<u64> {
        self.history
            .iter()
            .find(|h| h.status == Status::Active)
            .map(|h| h.release)
    }

    /// Commits a release (`entry`: its number, image, fleet and times): its fleet serves,
    /// the fleet that served until now is retained and its line says by which release it
    /// was replaced, and the release's line goes on top.
    pub fn commit_release(&mut self, entry: HistoryEntry, history_limit: usize) {
        for f in self.fleets.iter_mut() {
            if f.release == entry.release {
                f.role = Role::Active;
                f.progress = None;
                f.stopped = None;
            } else if f.role == Role::Active {
                f.role = Role::Retained;
            }
        }
        if let Some(serving) = self.serving_release() {
            self.set_status(
                serving,
                Status::Retained,
                Some(format!("replaced by release {}", entry.release)),
                entry.finished_at.clone(),
            );
        }
        self.push_history(entry, history_limit);
    }

    /// Commits a rollback to the retained fleet of release `to`: it serves again under
    /// the next release number (returned), the fleet that served is retained and its line
    /// says `rolled_back`.
    pub fn commit_rollback(&mut self, to: u64, at: &str, history_limit: usize) -> Option<u64> {
        let target = self.fleets.iter().find(|f| f.release == to)?.clone();
        let release = self.next_release;
        self.next_release += 1;
        for f in self.fleets.iter_mut() {
            if f.release == to {
                f.role = Role::Active;
                f.last_served = release;
            } else if f.role == Role::Active {
                f.role = Role::Retained;
            }
        }
        if let Some(serving) = self.serving_release() {
            self.set_status(
                serving,
                Status::RolledBack,
                Some(format!(
                    "rolled back by release {release} to {}",
                    target.fleet_name
                )),
                Some(at.to_string()),
            );
        }
        // The rolled-back-to release keeps its line; its fleet now serves as the new number.
        for h in self.history.iter_mut().filter(|h| h.release == to) {
            h.reason = Some(format!(
                "its fleet serves again as release {release} (rollback)"
            ));
        }
        self.push_history(
            HistoryEntry {
                release,
                image_id: target.image_id,
                fleet_name: target.fleet_name,
                status: Status::Active,
                started_at: at.to_string(),
                finished_at: Some(at.to_string()),
                reason: Some(format!("rollback to release {to}")),
            },
            history_limit,
        );
        Some(release)
    }

    /// Replaces the record of a live fleet (same release number) with `record`; a fleet the
    /// ledger does not hold is left out.
    pub fn update_fleet(&mut self, record: &FleetRecord) {
        if let Some(f) = self.fleets.iter_mut().find(|f| f.release == record.release) {
            *f = record.clone();
        }
    }

    /// Says whether the fleet of `release` may carry the provider's scaling policies.
    pub fn set_scaling(&mut self, release: u64, carries: bool) {
        if let Some(f) = self.fleets.iter_mut().find(|f| f.release == release) {
            f.scaling = carries;
        }
    }

    /// A release that never served and was taken down: its line says `aborted`, with why.
    pub fn record_aborted(
        &mut self,
        fleet: &FleetRecord,
        started_at: String,
        finished_at: String,
        reason: &str,
        history_limit: usize,
    ) {
        self.push_history(
            HistoryEntry {
                release: fleet.release,
                image_id: fleet.image_id.clone(),
                fleet_name: fleet.fleet_name.clone(),
                status: Status::Aborted,
                started_at,
                finished_at: Some(finished_at),
                reason: Some(shorten(reason)),
            },
            history_limit,
        );
    }

    /// A fleet deleted (retired): out of the live fleets, and every line of it that still
    /// says it is kept says `retired` with `reason`.
    pub fn retire(&mut self, release: u64, reason: &str) {
        let Some(i) = self.fleets.iter().position(|f| f.release == release) else {
            return;
        };
        let fleet = self.fleets.remove(i);
        self.retire_fleet(&fleet.fleet_name, reason);
    }

    /// A ledger rebuilt from the fleets' tags learns who serves from the route (`weights`:
    /// target group ARN → weight): the fleet with the most weight is active — an older one
    /// serving means a rollback gave it a number of its own, which is taken —, and every
    /// active or retained fleet gets a history line saying it was rebuilt (`at`).
    pub fn roles_from_route(&mut self, weights: &BTreeMap<String, i64>, at: &str) {
        let serving = self
            .fleets
            .iter()
            .filter_map(|f| weights.get(&f.target_group_arn).map(|w| (*w, f.release)))
            .filter(|(w, _)| *w > 0)
            .max()
            .map(|(_, r)| r);
        self.fleets.sort_by_key(|f| f.release);
        let newest = self.next_release - 1;
        for f in self.fleets.iter_mut() {
            if Some(f.release) == serving {
                f.role = Role::Active;
                if f.release < newest {
                    f.last_served = newest + 1;
                    self.next_release = newest + 2;
                }
            }
        }
        for f in self.fleets.clone() {
            let status = match f.role {
                Role::Active => Status::Active,
                Role::Retained => Status::Retained,
                Role::Launching => continue,
            };
            self.push_history(
                HistoryEntry {
                    release: f.release,
                    image_id: f.image_id.clone(),
                    fleet_name: f.fleet_name.clone(),
                    status,
                    started_at: at.to_string(),
                    finished_at: Some(at.to_string()),
                    reason: Some("rebuilt from the fleet's tags after the ledger was lost".into()),
                },
                usize::MAX,
            );
        }
    }

    /// Serialises for storage.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ledger serialises")
    }

    /// The ledger as it is stored: JSON of at most [`MAX_STORED`] bytes, the oldest history
    /// lines left out when it would not fit (the newest always stays), and the recorded
    /// arguments too if still needed. Returns the text and the number of history lines left
    /// out.
    pub fn to_stored_json(&self) -> (String, usize) {
        let text = self.to_json();
        if text.len() <= MAX_STORED {
            return (text, 0);
        }
        let mut fitted = self.clone();
        while fitted.history.len() > 1 {
            fitted.history.pop();
            let text = fitted.to_json();
            if text.len() <= MAX_STORED {
                return (text, self.history.len() - fitted.history.len());
            }
        }
        fitted.settings = None;
        (fitted.to_json(), self.history.len() - fitted.history.len())
    }

    /// Parses stored text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("the release ledger is not readable: {e}"))
    }
}

/// Cuts a reason to the stored length, on a character boundary.
pub fn shorten(reason: &str) -> String {
    if reason.len() <= MAX_REASON {
        return reason.to_string();
    }
    let mut end = MAX_REASON - 1;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

/// Records for tests.
#[cfg(test)]
pub(crate) mod examples {
    use super::*;

    /// Fleet `web-r<release>` with the given role: template `lt-<release>`, target group
    /// `tg-<release>`, image `ami-<release>`, no fingerprint.
    pub fn fleet(release: u64, role: Role) -> FleetRecord {
        FleetRecord {
            release,
            fleet_name: format!("web-r{release}"),
            launch_template_id: format!("lt-{release}"),
            launch_template_version: 1,
            target_group_arn: format!("tg-{release}"),
            image_id: format!("ami-{release}"),
            fingerprint: String::new(),
            role,
            last_served: release,
            health_rule_arn: None,
            stopped: None,
            progress: None,
            held: None,
            scaling: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::examples::fleet;
    use super::*;

    fn entry(release: u64) -> HistoryEntry {
        HistoryEntry {
            release,
            image_id: "ami-1234abcd".into(),
            fleet_name: format!("web-r{release}"),
            status: Status::Active,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            reason: None,
        }
    }

    fn line(release: u64, fleet: u64, status: Status) -> HistoryEntry {
        HistoryEntry {
            fleet_name: format!("web-r{fleet}"),
            status,
            finished_at: Some("t0".into()),
            ..entry(release)
        }
    }

    /// (release, role) of the live fleets and (release, status, reason) of the history.
    type Shape = (Vec<(u64, Role)>, Vec<(u64, Status, Option<String>)>);

    fn shape(l: &Ledger) -> Shape {
        (
            l.fleets.iter().map(|f| (f.release, f.role)).collect(),
            l.history
                .iter()
                .map(|h| (h.release, h.status, h.reason.clone()))
                .collect(),
        )
    }

    #[test]
    fn ledger_changes_as_a_table() {
        use Role::*;
        use Status as S;
        let launching = |release: u64| -> Ledger {
            let mut l = Ledger::new("web", "arn");
            l.next_release = release + 1;
            let mut f = fleet(release, Launching);
            f.progress = Some(Progress {
                of: "w10 p1s w100".into(),
                done: 2,
            });
            f.stopped = Some("stopped during canary pause".into());
            l.fleets.push(f);
            l
        };
        let serving_1_retained_none = || {
            let mut l = launching(2);
            l.fleets.insert(0, fleet(1, Active));
            l.history.push(line(1, 1, S::Active));
            l
        };
        let commit = |release: u64| {
            move |l: &mut Ledger| {
                l.commit_release(
                    HistoryEntry {
                        fleet_name: format!("web-r{release}"),
                        finished_at: Some("t1".into()),
                        ..entry(release)
                    },
                    10,
                )
            }
        };
        type Change = Box<dyn Fn(&mut Ledger)>;
        let cases: Vec<(&str, Ledger, Change, Shape)> = vec![
            (
                "a first release commits: its fleet serves, one line",
                launching(1),
                Box::new(commit(1)),
                (vec![(1, Active)], vec![(1, S::Active, None)]),
            ),
            (
                "a release replaces the serving fleet, which is retained",
                serving_1_retained_none(),
                Box::new(commit(2)),
                (
                    vec![(1, Retained), (2, Active)],
                    vec![
                        (2, S::Active, None),
                        (1, S::Retained, Some("replaced by release 2".into())),
                    ],
                ),
            ),
            (
                "a rollback serves the retained fleet under the next number",
                {
                    let mut l = serving_1_retained_none();
                    commit(2)(&mut l);
                    l.next_release = 3;
                    l
                },
                Box::new(|l: &mut Ledger| {
                    assert_eq!(l.commit_rollback(1, "t2", 10), Some(3));
                }),
                (
                    vec![(1, Active), (2, Retained)],
                    vec![
                        (3, S::Active, Some("rollback to release 1".into())),
                        (
                            2,
                            S::RolledBack,
                            Some("rolled back by release 3 to web-r1".into()),
                        ),
                        (
                            1,
                            S::Retained,
                            Some("its fleet serves again as release 3 (rollback)".into()),
                        ),
                    ],
                ),
            ),
            (
                "a rollback to a fleet the record does not hold changes nothing",
                serving_1_retained_none(),
                Box::new(|l: &mut Ledger| assert_eq!(l.commit_rollback(7, "t2", 10), None)),
                shape(&serving_1_retained_none()),
            ),
            (
                "retiring a retained fleet removes it and retires its line",
                {
                    let mut l = serving_1_retained_none();
                    commit(2)(&mut l);
                    l
                },
                Box::new(|l: &mut Ledger| l.retire(1, "beyond retain_fleets = 0")),
                (
                    vec![(2, Active)],
                    vec![
                        (2, S::Active, None),
                        (1, S::Retired, Some("beyond retain_fleets = 0".into())),
                    ],
                ),
            ),
            (
                "a fleet's record is replaced by its release number; the others stay",
                serving_1_retained_none(),
                Box::new(|l: &mut Ledger| l.update_fleet(&fleet(2, Retained))),
                (vec![(1, Active), (2, Retained)], vec![(1, S::Active, None)]),
            ),
            (
                "a record the ledger does not hold is not added",
                serving_1_retained_none(),
                Box::new(|l: &mut Ledger| l.update_fleet(&fleet(7, Active))),
                shape(&serving_1_retained_none()),
            ),
            (
                "an aborted release gets its line on top, with why",
                serving_1_retained_none(),
                Box::new(|l: &mut Ledger| {
                    l.fleets.retain(|f| f.release != 2);
                    l.record_aborted(
                        &fleet(2, Launching),
                        "t0".into(),
                        "t1".into(),
                        "unhealthy",
                        10,
                    )
                }),
                (
                    vec![(1, Active)],
                    vec![
                        (2, S::Aborted, Some("unhealthy".into())),
                        (1, S::Active, None),
                    ],
                ),
            ),
            (
                "history stays bounded by the limit",
                {
                    let mut l = serving_1_retained_none();
                    l.history.push(line(0, 0, S::Retired));
                    l
                },
                Box::new(|l: &mut Ledger| {
                    l.commit_release(
                        HistoryEntry {
                            fleet_name: "web-r2".into(),
                            ..entry(2)
                        },
                        2,
                    )
                }),
                (
                    vec![(1, Retained), (2, Active)],
                    vec![
                        (2, S::Active, None),
                        (1, S::Retained, Some("replaced by release 2".into())),
                    ],
                ),
            ),
        ];
        for (what, mut ledger, change, want) in cases {
            change(&mut ledger);
            assert_eq!(shape(&ledger), want, "{what}");
            // A committed fleet carries no walk in progress and no stop.
            if let Some(a) = ledger.active() {
                assert_eq!((&a.progress, &a.stopped), (&None, &None), "{what}");
            }
        }
    }

    #[test]
    fn a_rebuilt_ledger_learns_who_serves_from_the_route() {
        // Fleets 1–3 from their tags (next release 4); 2 tagged retained.
        let rebuilt = || {
            let mut l = Ledger::new("web", "arn");
            l.fleets = vec![
                fleet(3, Role::Launching),
                fleet(1, Role::Launching),
                fleet(2, Role::Retained),
            ];
            l.next_release = 4;
            l
        };
        let w = |pairs: &[(u64, i64)]| -> BTreeMap<String, i64> {
            pairs.iter().map(|(r, w)| (format!("tg-{r}"), *w)).collect()
        };
        /// What, the route's weights, the roles after, the next release number.
        type Case = (&'static str, BTreeMap<String, i64>, Vec<(u64, Role)>, u64);
        let cases: &[Case] = &[
            (
                "the newest serves",
                w(&[(3, 100), (2, 0)]),
                vec![(1, Role::Launching), (2, Role::Retained), (3, Role::Active)],
                4,
            ),
            (
                "an older fleet serves: a rollback numbered it 4",
                w(&[(1, 100), (3, 0)]),
                vec![(1, Role::Active), (2, Role::Retained), (3, Role::Launching)],
                5,
            ),
            (
                "mid-canary: the one with the most weight serves",
                w(&[(3, 10), (2, 90)]),
                vec![
                    (1, Role::Launching),
                    (2, Role::Active),
                    (3, Role::Launching),
                ],
                5,
            ),
            (
                "nothing routed: nothing serves",
                w(&[]),
                vec![
                    (1, Role::Launching),
                    (2, Role::Retained),
                    (3, Role::Launching),
                ],
                4,
            ),
        ];
        for (what, weights, roles, next) in cases {
            let mut l = rebuilt();
            l.roles_from_route(weights, "t0");
            let got: Vec<(u64, Role)> = l.fleets.iter().map(|f| (f.release, f.role)).collect();
            assert_eq!(&got, roles, "{what}");
            assert_eq!(l.next_release, *next, "{what}");
            let lines: Vec<u64> = l.history.iter().map(|h| h.release).collect();
            let kept: Vec<u64> = roles
                .iter()
                .filter(|(_, r)| *r != Role::Launching)
                .map(|(n, _)| *n)
                .rev()
                .collect();
            assert_eq!(lines, kept, "{what}: a line per active or retained fleet");
        }
    }

    #[test]
    fn a_record_without_progress_reads_as_before() {
        let f = fleet(1, Role::Launching);
        let text = serde_json::to_string(&f).unwrap();
        assert!(!text.contains("progress"), "{text}");
        let mut g = f.clone();
        g.progress = Some(Progress {
            of: "w10 p2s w100".into(),
            done: 2,
        });
        let back: FleetRecord = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn history_is_newest_first_and_bounded() {
        let mut l = Ledger::new("web", "arn");
        for r in 1..=5 {
            l.push_history(entry(r), 3);
        }
        let releases: Vec<u64> = l.history.iter().map(|h| h.release).collect();
        assert_eq!(releases, vec![5, 4, 3]);
    }

    #[test]
    fn round_trips_through_json() {
        let mut l = Ledger::new("web", "arn");
        l.push_history(entry(1), 10);
        l.set_status(
            1,
            Status::Aborted,
            Some("x".repeat(500)),
            Some("2026-01-01T00:01:00Z".into()),
        );
        let back = Ledger::from_json(&l.to_json()).unwrap();
        assert_eq!(back, l);
        assert!(back.history[0].reason.as_ref().unwrap().len() <= MAX_REASON + 3);
    }

    #[test]
    fn a_long_history_is_trimmed_oldest_first_to_fit_what_aws_holds() {
        let mut l = Ledger::new("web", "arn");
        for r in 1..=100 {
            let mut e = entry(r);
            e.reason = Some(shorten(&"x".repeat(1000)));
            l.push_history(e, 100);
        }
        assert_eq!(l.history.len(), 100);
        let (text, trimmed) = l.to_stored_json();
        assert!(text.len() <= MAX_STORED, "{}", text.len());
        assert!(trimmed > 0);
        let back = Ledger::from_json(&text).unwrap();
        assert_eq!(back.history.len(), 100 - trimmed);
        assert_eq!(back.history[0].release, 100, "the newest stays");
        // Base64 of the stored text fits AWS's 16 KB.
        assert!(text.len().div_ceil(3) * 4 <= 16 * 1024);
        // A small ledger is stored as it is.
        let small = Ledger::new("web", "arn");
        assert_eq!(small.to_stored_json(), (small.to_json(), 0));
    }
}
