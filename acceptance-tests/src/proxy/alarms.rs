//! CloudWatch alarms as AWS answers for them. The emulator has no composite alarms (no
//! `PutCompositeAlarm`), ignores `AlarmTypes`, ignores `StateValue` when `AlarmNames` is
//! given, and never pages. AWS (`DescribeAlarms`): "If you omit this parameter, only metric
//! alarms are returned, even if composite alarms exist"; at most `MaxRecords` (default 50)
//! alarms a page, the rest behind `NextToken`.
//!
//! The proxy keeps the composite alarms itself, each with its rule; a composite's state is
//! its rule evaluated over the metric alarms' states in the emulator (`ALARM(x)`, `OK(x)`,
//! `INSUFFICIENT_DATA(x)`, `TRUE`, `FALSE`, `AND`, `OR`, `NOT`, parentheses), or the state
//! a `SetAlarmState` gave it until a child's state changes it.

use std::collections::BTreeMap;

use super::{form_field, form_list, xml_values};

/// The composite alarms the proxy holds.
#[derive(Debug, Default, Clone)]
pub(super) struct Composites {
    /// Name → rule, and a state set by `SetAlarmState` with the children's states then.
    alarms: BTreeMap<String, Composite>,
}

#[derive(Debug, Clone)]
struct Composite {
    rule: String,
    set: Option<(String, BTreeMap<String, String>)>,
}

const NS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

fn ok(action: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NS}\"><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></{action}Response>"
    )
}

fn escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Composites {
    /// Whether the proxy holds no composite alarm.
    pub(super) fn is_empty(&self) -> bool {
        self.alarms.is_empty()
    }

    /// Whether `name` is a composite alarm the proxy holds.
    pub(super) fn has(&self, name: &str) -> bool {
        self.alarms.contains_key(name)
    }

    /// `PutCompositeAlarm`, answered by the proxy.
    pub(super) fn put(&mut self, body: &str) -> String {
        if let Some(name) = form_field(body, "AlarmName") {
            let rule = form_field(body, "AlarmRule").unwrap_or_default();
            self.alarms.insert(name, Composite { rule, set: None });
        }
        ok("PutCompositeAlarm")
    }

    /// `DeleteAlarms` of composite alarms: forgotten here. The caller forwards the call
    /// when metric alarms are named too.
    pub(super) fn delete(&mut self, body: &str) -> bool {
        let names = form_list(body, "AlarmNames.member.", "");
        let all_ours = !names.is_empty() && names.iter().all(|n| self.has(n));
        for n in names {
            self.alarms.remove(&n);
        }
        all_ours
    }

    /// `SetAlarmState` of a composite alarm: it holds until a child's state changes.
    pub(super) fn set_state(&mut self, body: &str, metric: &BTreeMap<String, String>) -> String {
        if let (Some(name), Some(state)) = (
            form_field(body, "AlarmName"),
            form_field(body, "StateValue"),
        ) {
            if let Some(c) = self.alarms.get_mut(&name) {
                c.set = Some((state, metric.clone()));
            }
        }
        ok("SetAlarmState")
    }

    fn state(&self, name: &str, metric: &BTreeMap<String, String>) -> String {
        let Some(c) = self.alarms.get(name) else {
            return "INSUFFICIENT_DATA".into();
        };
        if let Some((state, then)) = &c.set {
            let children = rule_children(&c.rule);
            if children.iter().all(|n| then.get(n) == metric.get(n)) {
                return state.clone();
            }
        }
        let mut all = metric.clone();
        for other in self.alarms.keys().filter(|n| *n != name) {
            if c.rule.contains(other.as_str()) {
                all.insert(other.clone(), self.state(other, metric));
            }
        }
        if Rule::new(&c.rule, &all).eval() {
            "ALARM".into()
        } else {
            "OK".into()
        }
    }
}

/// The alarm names a rule refers to.
fn rule_children(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = rule;
    while let Some(i) = rest.find('(') {
        rest = &rest[i + 1..];
        let end = rest.find(')').unwrap_or(rest.len());
        let inner = rest[..end].trim().trim_matches('"').to_string();
        if !inner.is_empty() && !inner.contains('(') {
            out.push(inner);
        }
    }
    out
}

/// A recursive-descent evaluation of an alarm rule.
struct Rule<'a> {
    tokens: Vec<String>,
    at: usize,
    states: &'a BTreeMap<String, String>,
}

impl<'a> Rule<'a> {
    fn new(rule: &str, states: &'a BTreeMap<String, String>) -> Self {
        let mut tokens = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for ch in rule.chars() {
            match ch {
                '"' => quoted = !quoted,
                '(' | ')' if !quoted => {
                    if !cur.trim().is_empty() {
                        tokens.push(cur.trim().to_string());
                    }
                    cur.clear();
                    tokens.push(ch.to_string());
                }
                c if c.is_whitespace() && !quoted => {
                    if !cur.trim().is_empty() {
                        tokens.push(cur.trim().to_string());
                    }
                    cur.clear();
                }
                c => cur.push(c),
            }
        }
        if !cur.trim().is_empty() {
            tokens.push(cur.trim().to_string());
        }
        Self {
            tokens,
            at: 0,
            states,
        }
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eval(&mut self) -> bool {
        let mut v = self.and();
        while self.peek() == Some("OR") {
            self.next();
            let r = self.and();
            v = v || r;
        }
        v
    }

    fn and(&mut self) -> bool {
        let mut v = self.not();
        while self.peek() == Some("AND") {
            self.next();
            let r = self.not();
            v = v && r;
        }
        v
    }

    fn not(&mut self) -> bool {
        if self.peek() == Some("NOT") {
            self.next();
            return !self.not();
        }
        self.atom()
    }

    fn atom(&mut self) -> bool {
        match self.next().as_deref() {
            Some("TRUE") => true,
            Some("FALSE") => false,
            Some("(") => {
                let v = self.eval();
                self.next(); // ")"
                v
            }
            Some(state @ ("ALARM" | "OK" | "INSUFFICIENT_DATA")) => {
                let state = state.to_string();
                self.next(); // "("
                let mut name = String::new();
                while let Some(t) = self.next() {
                    if t == ")" {
                        break;
                    }
                    if !name.is_empty() {
                        name.push(' ');
                    }
                    name.push_str(&t);
                }
                self.states
                    .get(&name)
                    .map(String::as_str)
                    .unwrap_or("INSUFFICIENT_DATA")
                    == state
            }
            _ => false,
        }
    }
}

/// The top-level `<member>…</member>` elements of `inner`.
fn members(inner: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (open, close) = ("<member>", "</member>");
    let mut depth = 0usize;
    let mut start = 0usize;
    let mut i = 0usize;
    while i < inner.len() {
        if inner[i..].starts_with(open) {
            if depth == 0 {
                start = i;
            }
            depth += 1;
            i += open.len();
        } else if inner[i..].starts_with(close) {
            depth = depth.saturating_sub(1);
            i += close.len();
            if depth == 0 {
                out.push(&inner[start..i]);
            }
        } else {
            i += inner[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// What is between `<tag>` and `</tag>` (empty for `<tag/>` or none).
fn section<'a>(xml: &'a str, tag: &str) -> &'a str {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    match (xml.find(&open), xml.find(&close)) {
        (Some(i), Some(j)) if j > i => &xml[i + open.len()..j],
        _ => "",
    }
}

/// Every metric alarm's state in an emulator's `DescribeAlarms` answer.
pub(super) fn metric_states(answer: &str) -> BTreeMap<String, String> {
    members(section(answer, "MetricAlarms"))
        .into_iter()
        .filter_map(|m| {
            let name = xml_values(m, "AlarmName").into_iter().next()?;
            let state = xml_values(m, "StateValue").into_iter().next()?;
            Some((name, state))
        })
        .collect()
}

/// `DescribeAlarms` as AWS answers it, from the emulator's answer to the same request and
/// every metric alarm's state: the types asked for (metric only when none is named), the
/// `StateValue` filter, composite alarms by name or prefix, and pages of at most
/// `MaxRecords` (default 50) and `page_size`, the rest behind a `NextToken`.
pub(super) fn describe(
    composites: &Composites,
    body: &str,
    answer: &str,
    metric: &BTreeMap<String, String>,
    page_size: usize,
) -> String {
    let types = form_list(body, "AlarmTypes.member.", "");
    let names = form_list(body, "AlarmNames.member.", "");
    let prefix = form_field(body, "AlarmNamePrefix");
    let want_state = form_field(body, "StateValue");
    let max: usize = form_field(body, "MaxRecords")
        .and_then(|m| m.parse().ok())
        .unwrap_or(50);
    let offset: usize = form_field(body, "NextToken")
        .and_then(|t| t.strip_prefix("fault-proxy-").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let state_ok = |s: &str| want_state.as_deref().is_none_or(|w| w == s);
    let named = |n: &str| {
        (names.is_empty() || names.iter().any(|x| x == n))
            && prefix.as_deref().is_none_or(|p| n.starts_with(p))
    };
    // (is composite, member XML)
    let mut all: Vec<(bool, String)> = Vec::new();
    if types.is_empty() || types.iter().any(|t| t == "MetricAlarm") {
        for m in members(section(answer, "MetricAlarms")) {
            let name = xml_values(m, "AlarmName")
                .into_iter()
                .next()
                .unwrap_or_default();
            let state = xml_values(m, "StateValue")
                .into_iter()
                .next()
                .unwrap_or_default();
            if named(&name) && state_ok(&state) {
                all.push((false, m.to_string()));
            }
        }
    }
    if types.iter().any(|t| t == "CompositeAlarm") {
        for (name, c) in &composites.alarms {
            let state = composites.state(name, metric);
            if named(name) && state_ok(&state) {
                all.push((
                    true,
                    format!(
                        "<member><AlarmName>{n}</AlarmName><AlarmArn>arn:aws:cloudwatch:us-east-1:123456789012:alarm:{n}</AlarmArn><AlarmRule>{r}</AlarmRule><ActionsEnabled>true</ActionsEnabled><StateValue>{state}</StateValue><StateReason>fault proxy</StateReason></member>",
                        n = escape(name),
                        r = escape(&c.rule),
                    ),
                ));
            }
        }
    }
    let size = max.min(page_size).max(1);
    let page: Vec<&(bool, String)> = all.iter().skip(offset).take(size).collect();
    let next = if offset + size < all.len() {
        format!("<NextToken>fault-proxy-{}</NextToken>", offset + size)
    } else {
        String::new()
    };
    let metric_xml: String = page
        .iter()
        .filter(|(c, _)| !c)
        .map(|(_, m)| m.as_str())
        .collect();
    let composite_xml: String = page
        .iter()
        .filter(|(c, _)| *c)
        .map(|(_, m)| m.as_str())
        .collect();
    format!(
        "<DescribeAlarmsResponse xmlns=\"{NS}\"><DescribeAlarmsResult><MetricAlarms>{metric_xml}</MetricAlarms><CompositeAlarms>{composite_xml}</CompositeAlarms>{next}</DescribeAlarmsResult><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></DescribeAlarmsResponse>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn rules_evaluate_as_cloudwatch_does() {
        let s = states(&[("a", "ALARM"), ("b", "OK"), ("c d", "INSUFFICIENT_DATA")]);
        for (rule, want) in [
            ("ALARM(a)", true),
            ("ALARM(\"a\")", true),
            ("ALARM(b)", false),
            ("ALARM(a) AND ALARM(b)", false),
            ("ALARM(a) OR ALARM(b)", true),
            ("NOT ALARM(b)", true),
            ("(ALARM(b) OR OK(b)) AND NOT ALARM(a)", false),
            ("INSUFFICIENT_DATA(\"c d\")", true),
            ("ALARM(missing)", false),
            ("TRUE", true),
            ("FALSE OR OK(b)", true),
        ] {
            assert_eq!(Rule::new(rule, &s).eval(), want, "{rule}");
        }
    }

    #[test]
    fn describe_answers_types_states_and_pages_as_aws() {
        let mut c = Composites::default();
        c.put("Action=PutCompositeAlarm&AlarmName=svc&AlarmRule=ALARM%28m1%29+OR+ALARM%28m2%29");
        let answer = "<X><MetricAlarms><member><AlarmName>m1</AlarmName><Dimensions><member><Name>a</Name></member></Dimensions><StateValue>OK</StateValue></member><member><AlarmName>m2</AlarmName><StateValue>ALARM</StateValue></member></MetricAlarms></X>";
        let metric = metric_states(answer);
        assert_eq!(metric, states(&[("m1", "OK"), ("m2", "ALARM")]));
        // No AlarmTypes: metric alarms only.
        let out = describe(
            &c,
            "AlarmNames.member.1=svc&AlarmNames.member.2=m1",
            answer,
            &metric,
            50,
        );
        assert!(!out.contains("svc") && out.contains("m1"), "{out}");
        // Both types, in ALARM: the composite (its child m2 fires), not m1.
        let body = "AlarmNames.member.1=svc&AlarmNames.member.2=m1&AlarmTypes.member.1=MetricAlarm&AlarmTypes.member.2=CompositeAlarm&StateValue=ALARM";
        let out = describe(&c, body, answer, &metric, 50);
        assert!(
            out.contains("<AlarmName>svc</AlarmName>") && !out.contains(">m1<"),
            "{out}"
        );
        // Pages of one: a NextToken, then the rest.
        let body = "AlarmTypes.member.1=MetricAlarm&AlarmTypes.member.2=CompositeAlarm";
        let first = describe(&c, body, answer, &metric, 1);
        assert!(
            first.contains("<NextToken>fault-proxy-1</NextToken>"),
            "{first}"
        );
        assert_eq!(members(section(&first, "MetricAlarms")).len(), 1, "{first}");
        let third = describe(
            &c,
            &format!("{body}&NextToken=fault-proxy-2"),
            answer,
            &metric,
            1,
        );
        assert!(
            third.contains("<AlarmName>svc</AlarmName>") && !third.contains("NextToken"),
            "{third}"
        );
        // A state set by hand holds until a child changes.
        c.set_state("AlarmName=svc&StateValue=OK", &metric);
        assert_eq!(c.state("svc", &metric), "OK");
        assert_eq!(
            c.state("svc", &states(&[("m1", "ALARM"), ("m2", "ALARM")])),
            "ALARM"
        );
        assert!(c.delete("AlarmNames.member.1=svc"));
        assert!(!c.has("svc"));
    }
}
