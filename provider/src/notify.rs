//! Notifications: one JSON message per event of an apply to the SNS topic of
//! `notification` (contract v0.3, "Notifications"), with a one-line subject. Pure: what a
//! message says; the engine's outbox sends them in order beside the release, and a send
//! that fails is a warning, never a failed release.

use std::collections::BTreeMap;

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// A new fleet is being launched.
    Started,
    /// Its health gate passed.
    Healthy,
    /// A weight was reached.
    Traffic,
    /// The release stopped at `hold_at`.
    Held,
    /// The new fleet serves all traffic, committed.
    Committed,
    /// The release ended before its commit; traffic back where it was.
    Aborted,
    /// A retained fleet serves again.
    RolledBack,
    /// A fleet was deleted.
    Retired,
}

impl Event {
    /// Every event, in the order a release meets them.
    pub const ALL: [Event; 8] = [
        Event::Started,
        Event::Healthy,
        Event::Traffic,
        Event::Held,
        Event::Committed,
        Event::Aborted,
        Event::RolledBack,
        Event::Retired,
    ];

    /// The event's name in messages and in `events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Healthy => "healthy",
            Event::Traffic => "traffic",
            Event::Held => "held",
            Event::Committed => "committed",
            Event::Aborted => "aborted",
            Event::RolledBack => "rolled_back",
            Event::Retired => "retired",
        }
    }

    /// The event named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// `notification` of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSpec {
    /// The topic.
    pub sns_topic_arn: String,
    /// The events sent (none given: all).
    pub events: Vec<Event>,
}

impl NotificationSpec {
    /// Whether `event` is sent.
    pub fn wants(&self, event: Event) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// What is wrong with `notification`, if anything: (attribute, message).
pub fn check(topic: &str, events: &[String]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let parts: Vec<&str> = topic.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && !parts[5].is_empty()
        && !parts[5].contains(['/', ':']);
    if !ok {
        out.push((
            "sns_topic_arn",
            format!("notification.sns_topic_arn must be an SNS topic ARN, arn:aws:sns:<region>:<12-digit account>:<topic>; got {topic:?}"),
        ));
    }
    for e in events {
        if Event::parse(e).is_none() {
            out.push((
                "events",
                format!(
                    "notification.events: {e:?} is not an event; choose from {}",
                    Event::ALL.map(Event::as_str).join(", ")
                ),
            ));
        }
    }
    out
}

/// One message, as the topic's subscribers read it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The release's `name`.
    pub release_name: String,
    /// The release number the event is about.
    pub release: u64,
    /// The event.
    pub event: &'static str,
    /// The fleet the event is about.
    pub fleet_name: String,
    /// Its image.
    pub image_id: String,
    /// The fleet that served before (None: none did).
    pub previous_fleet_name: Option<String>,
    /// The route's split as the event leaves it: fleet (or target group ARN) → percent,
    /// those with traffic.
    pub traffic: BTreeMap<String, i64>,
    /// Why (`aborted`, `rolled_back`, `retired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When, RFC 3339.
    pub time: String,
}

/// SNS's limit on a subject: under 100 ASCII characters, no line breaks.
const SUBJECT_LIMIT: usize = 99;

impl Message {
    /// The one-line subject, e.g. "web: release 3 (ami-0abc) aborted; traffic on web-r2".
    pub fn subject(&self) -> String {
        let head = format!(
            "{}: release {} ({})",
            self.release_name, self.release, self.image_id
        );
        let on = self.serving();
        let text = match self.event {
            "started" => format!("{head} started"),
            "healthy" => format!("{head} healthy"),
            "traffic" => format!(
                "{head} at {} %",
                self.traffic.get(&self.fleet_name).copied().unwrap_or(0)
            ),
            "held" => format!(
                "{head} held at {} %",
                self.traffic.get(&self.fleet_name).copied().unwrap_or(0)
            ),
            "committed" => format!("{head} committed"),
            "aborted" => format!("{head} aborted"),
            "rolled_back" => format!("{head} rolled back to {}", self.fleet_name),
            "retired" => format!("{}: {} retired", self.release_name, self.fleet_name),
            other => format!("{head} {other}"),
        };
        let text = match on {
            Some(on) if self.event != "retired" => format!("{text}; traffic on {on}"),
            _ => text,
        };
        let clean: String = text
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if clean.len() <= SUBJECT_LIMIT {
            clean
        } else {
            format!("{}...", &clean[..SUBJECT_LIMIT - 3])
        }
    }

    /// The fleets that have traffic, most first ("web-r2", or "web-r3 10 %, web-r2 90 %").
    fn serving(&self) -> Option<String> {
        let mut with: Vec<(&String, &i64)> = self.traffic.iter().filter(|(_, w)| **w > 0).collect();
        with.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        match with.as_slice() {
            [] => None,
            [(f, _)] => Some((*f).clone()),
            many => Some(
                many.iter()
                    .map(|(f, w)| format!("{f} {w} %"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }

    /// The message body (JSON).
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a message serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(event: Event, traffic: &[(&str, i64)], reason: Option<&str>) -> Message {
        Message {
            release_name: "web".into(),
            release: 3,
            event: event.as_str(),
            fleet_name: "web-r3".into(),
            image_id: "ami-0abc".into(),
            previous_fleet_name: Some("web-r2".into()),
            traffic: traffic.iter().map(|(f, w)| (f.to_string(), *w)).collect(),
            reason: reason.map(String::from),
            time: "2026-12-06T18:00:00Z".into(),
        }
    }

    #[test]
    fn each_event_has_a_one_line_subject() {
        let cases = [
            (
                Event::Started,
                vec![("web-r2", 100)],
                "web: release 3 (ami-0abc) started; traffic on web-r2",
            ),
            (
                Event::Healthy,
                vec![("web-r2", 100), ("web-r3", 0)],
                "web: release 3 (ami-0abc) healthy; traffic on web-r2",
            ),
            (
                Event::Traffic,
                vec![("web-r2", 90), ("web-r3", 10)],
                "web: release 3 (ami-0abc) at 10 %; traffic on web-r2 90 %, web-r3 10 %",
            ),
            (
                Event::Held,
                vec![("web-r2", 90), ("web-r3", 10)],
                "web: release 3 (ami-0abc) held at 10 %; traffic on web-r2 90 %, web-r3 10 %",
            ),
            (
                Event::Committed,
                vec![("web-r3", 100)],
                "web: release 3 (ami-0abc) committed; traffic on web-r3",
            ),
            (
                Event::Aborted,
                vec![("web-r2", 100)],
                "web: release 3 (ami-0abc) aborted; traffic on web-r2",
            ),
            (
                Event::RolledBack,
                vec![("web-r3", 100)],
                "web: release 3 (ami-0abc) rolled back to web-r3; traffic on web-r3",
            ),
            (Event::Retired, vec![("web-r2", 100)], "web: web-r3 retired"),
            (Event::Started, vec![], "web: release 3 (ami-0abc) started"),
        ];
        for (event, traffic, want) in cases {
            assert_eq!(message(event, &traffic, None).subject(), want);
        }
    }

    #[test]
    fn a_subject_stays_within_what_sns_takes() {
        let mut m = message(Event::Aborted, &[("web-r2", 100)], None);
        m.release_name = "a-very-long-release-name-".repeat(6);
        m.fleet_name = "é".into();
        let s = m.subject();
        assert!(s.len() < 100 && s.is_ascii() && s.ends_with("..."), "{s}");
    }

    #[test]
    fn the_body_is_json_with_the_contracts_fields() {
        let m = message(
            Event::Aborted,
            &[("web-r2", 100)],
            Some("alarm web-5xx is in ALARM"),
        );
        let v: serde_json::Value = serde_json::from_str(&m.body()).unwrap();
        for field in [
            "release_name",
            "release",
            "event",
            "fleet_name",
            "image_id",
            "previous_fleet_name",
            "traffic",
            "reason",
            "time",
        ] {
            assert!(v.get(field).is_some(), "{field}: {v}");
        }
        assert_eq!(v["traffic"]["web-r2"], 100);
        assert_eq!(v["event"], "aborted");
        let started = message(Event::Started, &[], None);
        let v: serde_json::Value = serde_json::from_str(&started.body()).unwrap();
        assert!(
            v.get("reason").is_none(),
            "no reason where there is none: {v}"
        );
    }

    #[test]
    fn notification_arguments_are_checked() {
        assert!(check(
            "arn:aws:sns:us-east-1:123456789012:releases",
            &["started".into(), "rolled_back".into()]
        )
        .is_empty());
        let bad = check("arn:aws:sqs:us-east-1:123456789012:q", &["begun".into()]);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].0, "sns_topic_arn");
        assert!(bad[1].1.contains("\"begun\" is not an event; choose from started, healthy, traffic, held, committed, aborted, rolled_back, retired"), "{bad:?}");
        let spec = NotificationSpec {
            sns_topic_arn: String::new(),
            events: vec![],
        };
        assert!(Event::ALL.iter().all(|e| spec.wants(*e)), "none given: all");
        let some = NotificationSpec {
            sns_topic_arn: String::new(),
            events: vec![Event::Aborted],
        };
        assert!(some.wants(Event::Aborted) && !some.wants(Event::Traffic));
    }
}
