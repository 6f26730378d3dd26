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
    pub fn route(&self) -> crate::cloud::Route {
        crate::cloud::Route {
            listener_arn: self.listener_arn.clone(),
            rule_arn: self.rule_arn.clone(),
        }
    }

    /// The serving fleet.
    pub fn active(&self) -> Option<&FleetRecord> {
        self.fleets.iter().find(|f| f.role == Role::Active)
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

#[cfg(test)]
mod tests {
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
