//! Canary analysis: the new fleet judged on its own metrics, against the fleet that serves
//! beside it over the same minutes (`analysis`). Pure: the checks as the configuration
//! gives them ([`AnalysisSpec`]), the CloudWatch queries one judgement needs
//! ([`queries`]), and the judgement of their answers ([`judge`]): metrics in, a verdict and
//! its words out. The engine's watch asks; this module never calls AWS.

use std::collections::BTreeMap;
use std::time::Duration;

/// `analysis`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSpec {
    /// Time between two judgements.
    pub interval: Duration,
    /// Failed judgements tolerated in a release; one more aborts it.
    pub failure_limit: u32,
    /// The new fleet's 5xx share.
    pub error_rate: Option<ErrorRate>,
    /// The new fleet's response time.
    pub latency: Option<Latency>,
    /// Thresholds on any CloudWatch metric of the new fleet.
    pub metrics: Vec<MetricCheck>,
}

/// `analysis.error_rate`: percent of requests the targets answered 5xx.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRate {
    /// Highest rate allowed, in percent.
    pub max: Option<f64>,
    /// Highest rise over the serving fleet's rate allowed, in percentage points.
    pub max_increase: Option<f64>,
    /// Fewer requests than this: the judgement is inconclusive.
    pub min_requests: u64,
}

/// `analysis.latency`: the targets' response time.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// `Average`, `p50`, `p90`, `p95` or `p99`.
    pub statistic: String,
    /// Highest allowed.
    pub max: Option<Duration>,
    /// Highest rise over the serving fleet's allowed.
    pub max_increase: Option<Duration>,
}

/// `analysis.metric`: a threshold on any CloudWatch metric of the new fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricCheck {
    /// How messages name it.
    pub name: String,
    /// CloudWatch namespace.
    pub namespace: String,
    /// Metric name.
    pub metric_name: String,
    /// Dimensions; `{fleet}`, `{target_group}`, `{load_balancer}` in a value are the new
    /// fleet's.
    pub dimensions: BTreeMap<String, String>,
    /// `Sum`, `Average`, `Minimum`, `Maximum`, `SampleCount` or `pNN`.
    pub statistic: String,
    /// Highest allowed.
    pub max: Option<f64>,
    /// Lowest allowed.
    pub min: Option<f64>,
}

/// The statistics `latency.statistic` takes.
pub const LATENCY_STATISTICS: &[&str] = &["Average", "p50", "p90", "p95", "p99"];
/// The placeholders a metric's dimension value may hold.
pub const PLACEHOLDERS: &[&str] = &["{fleet}", "{target_group}", "{load_balancer}"];
/// ALB metrics' namespace.
pub const ALB_NAMESPACE: &str = "AWS/ApplicationELB";

/// One fleet as CloudWatch names it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetDims {
    /// The fleet (its Auto Scaling group), e.g. `web-r2`.
    pub fleet: String,
    /// The `TargetGroup` dimension: `targetgroup/<name>/<id>`.
    pub target_group: String,
    /// The `LoadBalancer` dimension: `app/<name>/<id>`.
    pub load_balancer: String,
}

impl FleetDims {
    /// From the fleet's name, its target group's ARN and the route's listener ARN; None
    /// when an ARN is not of the form AWS gives.
    pub fn of(fleet: &str, target_group_arn: &str, listener_arn: &str) -> Option<Self> {
        let target_group = target_group_arn
            .rsplit_once(':')
            .map(|(_, r)| r)
            .filter(|r| r.starts_with("targetgroup/"))?;
        // listener/app/<lb name>/<lb id>/<listener id> → app/<lb name>/<lb id>
        let listener = listener_arn.rsplit_once(":listener/").map(|(_, r)| r)?;
        let parts: Vec<&str> = listener.split('/').collect();
        if parts.len() < 3 {
            return None;
        }
        Some(Self {
            fleet: fleet.to_string(),
            target_group: target_group.to_string(),
            load_balancer: parts[..3].join("/"),
        })
    }

    fn alb(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("TargetGroup".to_string(), self.target_group.clone()),
            ("LoadBalancer".to_string(), self.load_balancer.clone()),
        ])
    }
}

/// One CloudWatch query of a judgement (`GetMetricData`'s `MetricStat`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// Its ID in the call (`[a-z][a-zA-Z0-9_]*`), how [`judge`] finds its answer.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Metric name.
    pub metric_name: String,
    /// Dimensions.
    pub dimensions: BTreeMap<String, String>,
    /// Statistic.
    pub statistic: String,
}

/// The answers of a judgement's queries over one window: per query ID, the statistic over
/// the whole window (None: no data).
pub type Answers = BTreeMap<String, Option<f64>>;

/// Every query one judgement makes: the new fleet's figures, and the serving fleet's where
/// a `max_increase` asks for them (and a fleet serves).
pub fn queries(
    spec: &AnalysisSpec,
    new: &FleetDims,
    serving: Option<&FleetDims>,
) -> Vec<MetricQuery> {
    let mut out = Vec::new();
    let alb = |id: String, dims: &FleetDims, metric: &str, statistic: &str| MetricQuery {
        id,
        namespace: ALB_NAMESPACE.into(),
        metric_name: metric.into(),
        dimensions: dims.alb(),
        statistic: statistic.into(),
    };
    let fleets = |increase: bool| {
        let mut f = vec![("new", new)];
        if let (true, Some(s)) = (increase, serving) {
            f.push(("serving", s));
        }
        f
    };
    if let Some(e) = &spec.error_rate {
        for (who, dims) in fleets(e.max_increase.is_some()) {
            out.push(alb(format!("{who}_requests"), dims, "RequestCount", "Sum"));
            out.push(alb(
                format!("{who}_5xx"),
                dims,
                "HTTPCode_Target_5XX_Count",
                "Sum",
            ));
        }
    }
    if let Some(l) = &spec.latency {
        for (who, dims) in fleets(l.max_increase.is_some()) {
            out.push(alb(
                format!("{who}_latency"),
                dims,
                "TargetResponseTime",
                &l.statistic,
            ));
        }
    }
    for (i, m) in spec.metrics.iter().enumerate() {
        out.push(MetricQuery {
            id: format!("metric_{i}"),
            namespace: m.namespace.clone(),
            metric_name: m.metric_name.clone(),
            dimensions: m
                .dimensions
                .iter()
                .map(|(k, v)| (k.clone(), fill(v, new)))
                .collect(),
            statistic: m.statistic.clone(),
        });
    }
    out
}

/// A dimension value with the new fleet's placeholders filled in.
fn fill(value: &str, new: &FleetDims) -> String {
    value
        .replace("{fleet}", &new.fleet)
        .replace("{target_group}", &new.target_group)
        .replace("{load_balancer}", &new.load_balancer)
}

/// A judgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Every check passed.
    Pass(String),
    /// A check failed: what, with both fleets' figures and the threshold.
    Fail(String),
    /// Nothing failed, but a check could not judge (too few requests, no data).
    Inconclusive(String),
}

/// Judges one window's answers. `new` and `serving` name the fleets in the words.
pub fn judge(
    spec: &AnalysisSpec,
    answers: &Answers,
    new: &str,
    serving: Option<&str>,
) -> Judgement {
    let get = |id: &str| answers.get(id).copied().flatten();
    let mut failed = Vec::new();
    let mut unsure = Vec::new();
    let mut passed = Vec::new();
    if let Some(e) = &spec.error_rate {
        let requests = get("new_requests").unwrap_or(0.0);
        if requests < e.min_requests.max(1) as f64 {
            unsure.push(format!(
                "error_rate: {new} had {} requests, fewer than min_requests ({})",
                count(requests),
                e.min_requests
            ));
        } else {
            let rate = 100.0 * get("new_5xx").unwrap_or(0.0) / requests;
            let base = serving.and_then(|s| {
                let r = get("serving_requests").filter(|r| *r > 0.0)?;
                Some((s, 100.0 * get("serving_5xx").unwrap_or(0.0) / r, r))
            });
            let figures = match base {
                Some((s, b, r)) => format!(
                    "{new} {} of {} requests answered 5xx against {s} {} of {}",
                    pct(rate),
                    count(requests),
                    pct(b),
                    count(r)
                ),
                None => format!(
                    "{new} {} of {} requests answered 5xx",
                    pct(rate),
                    count(requests)
                ),
            };
            let mut crossed = Vec::new();
            if let Some(max) = e.max.filter(|m| rate > *m) {
                crossed.push(format!("max {}", pct(max)));
            }
            match (e.max_increase, base) {
                (Some(inc), Some((_, b, _))) if rate - b > inc => {
                    crossed.push(format!("max increase {} points", num(inc)));
                }
                (Some(_), None) if serving.is_some() => unsure.push(format!(
                    "error_rate: the serving fleet had no requests to compare with ({figures})"
                )),
                _ => {}
            }
            if crossed.is_empty() {
                passed.push(format!("error_rate {}", pct(rate)));
            } else {
                failed.push(format!("error_rate: {figures} ({})", crossed.join(", ")));
            }
        }
    }
    if let Some(l) = &spec.latency {
        match get("new_latency") {
            None => unsure.push(format!(
                "latency: no {} response time of {new}",
                l.statistic
            )),
            Some(v) => {
                let base = serving.zip(get("serving_latency"));
                let figures = match base {
                    Some((s, b)) => {
                        format!("{new} {} {} against {s} {}", l.statistic, secs(v), secs(b))
                    }
                    None => format!("{new} {} {}", l.statistic, secs(v)),
                };
                let mut crossed = Vec::new();
                if let Some(max) = l.max.filter(|m| v > m.as_secs_f64()) {
                    crossed.push(format!("max {}", secs(max.as_secs_f64())));
                }
                match (l.max_increase, base) {
                    (Some(inc), Some((_, b))) if v - b > inc.as_secs_f64() => {
                        crossed.push(format!("max increase {}", secs(inc.as_secs_f64())));
                    }
                    (Some(_), None) if serving.is_some() => unsure.push(format!(
                        "latency: no response time of the serving fleet to compare with ({figures})"
                    )),
                    _ => {}
                }
                if crossed.is_empty() {
                    passed.push(format!("latency {} {}", l.statistic, secs(v)));
                } else {
                    failed.push(format!("latency: {figures} ({})", crossed.join(", ")));
                }
            }
        }
    }
    for (i, m) in spec.metrics.iter().enumerate() {
        match get(&format!("metric_{i}")) {
            None => unsure.push(format!(
                "metric {}: no data ({} {} of {new})",
                m.name, m.namespace, m.metric_name
            )),
            Some(v) => {
                let mut crossed = Vec::new();
                if let Some(max) = m.max.filter(|x| v > *x) {
                    crossed.push(format!("max {}", num(max)));
                }
                if let Some(min) = m.min.filter(|x| v < *x) {
                    crossed.push(format!("min {}", num(min)));
                }
                if crossed.is_empty() {
                    passed.push(format!("{} {}", m.name, num(v)));
                } else {
                    failed.push(format!(
                        "metric {}: {new} {} {} {} ({})",
                        m.name,
                        m.metric_name,
                        m.statistic,
                        num(v),
                        crossed.join(", ")
                    ));
                }
            }
        }
    }
    if !failed.is_empty() {
        Judgement::Fail(format!("analysis {}", failed.join("; ")))
    } else if !unsure.is_empty() {
        Judgement::Inconclusive(format!("analysis inconclusive: {}", unsure.join("; ")))
    } else {
        Judgement::Pass(format!("analysis passed: {}", passed.join(", ")))
    }
}

/// What a plan says of the checks, e.g. "analysis (error rate ≤ 2 %, ≤ +0.5 points over
/// web-r1; p99 ≤ 800ms, ≤ +100ms over web-r1; checkout-failures Sum ≤ 5) every 1m0s".
/// With no fleet to compare with (`serving` None: a first release, or the bake, where the
/// new fleet serves everything), increases are not judged and not said.
pub fn describe(spec: &AnalysisSpec, serving: Option<&str>, every: &str) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &spec.error_rate {
        let mut p = Vec::new();
        if let Some(m) = e.max {
            p.push(format!("≤ {}", pct(m)));
        }
        if let (Some(i), Some(over)) = (e.max_increase, serving) {
            p.push(format!("≤ +{} points over {over}", num(i)));
        }
        if !p.is_empty() {
            parts.push(format!("error rate {}", p.join(", ")));
        }
    }
    if let Some(l) = &spec.latency {
        let mut p = Vec::new();
        if let Some(m) = l.max {
            p.push(format!("≤ {}", secs(m.as_secs_f64())));
        }
        if let (Some(i), Some(over)) = (l.max_increase, serving) {
            p.push(format!("≤ +{} over {over}", secs(i.as_secs_f64())));
        }
        if !p.is_empty() {
            parts.push(format!("{} {}", l.statistic, p.join(", ")));
        }
    }
    for m in &spec.metrics {
        let mut p = Vec::new();
        if let Some(x) = m.min {
            p.push(format!("≥ {}", num(x)));
        }
        if let Some(x) = m.max {
            p.push(format!("≤ {}", num(x)));
        }
        parts.push(format!("{} {} {}", m.name, m.statistic, p.join(", ")));
    }
    format!("analysis ({}) every {every}", parts.join("; "))
}

/// Checks `analysis` as the configuration gives it: (attribute path, what is allowed).
pub fn check(spec: &AnalysisSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |at: &str, what: String| out.push((at.to_string(), what));
    if spec.interval < Duration::from_secs(1) {
        err(
            "analysis.interval",
            "analysis.interval must be at least 1s".into(),
        );
    }
    if spec.error_rate.is_none() && spec.latency.is_none() && spec.metrics.is_empty() {
        err(
            "analysis",
            "analysis has nothing to judge: give it an error_rate, a latency or a metric block"
                .into(),
        );
    }
    if let Some(e) = &spec.error_rate {
        if e.max.is_none() && e.max_increase.is_none() {
            err(
                "analysis.error_rate",
                "analysis.error_rate needs max (percent) or max_increase (percentage points), or both".into(),
            );
        }
        if let Some(m) = e.max.filter(|m| !(0.0..=100.0).contains(m)) {
            err(
                "analysis.error_rate.max",
                format!(
                    "analysis.error_rate.max is a percentage from 0 to 100; got {}",
                    num(m)
                ),
            );
        }
        if let Some(m) = e.max_increase.filter(|m| *m < 0.0 || m.is_nan()) {
            err(
                "analysis.error_rate.max_increase",
                format!(
                    "analysis.error_rate.max_increase is in percentage points, 0 or more; got {}",
                    num(m)
                ),
            );
        }
    }
    if let Some(l) = &spec.latency {
        if !LATENCY_STATISTICS.contains(&l.statistic.as_str()) {
            err(
                "analysis.latency.statistic",
                format!(
                    "analysis.latency.statistic must be one of {}; got {:?}",
                    LATENCY_STATISTICS.join(", "),
                    l.statistic
                ),
            );
        }
        if l.max.is_none() && l.max_increase.is_none() {
            err(
                "analysis.latency",
                "analysis.latency needs max or max_increase (durations), or both".into(),
            );
        }
    }
    for (i, m) in spec.metrics.iter().enumerate() {
        let at = |f: &str| format!("analysis.metric[{i}].{f}");
        if m.max.is_none() && m.min.is_none() {
            err(
                &at("max"),
                format!("analysis metric {:?} needs max or min, or both", m.name),
            );
        }
        if let (Some(lo), Some(hi)) = (m.min, m.max) {
            if lo > hi {
                err(
                    &at("min"),
                    format!(
                        "analysis metric {:?}: min ({}) is above max ({})",
                        m.name,
                        num(lo),
                        num(hi)
                    ),
                );
            }
        }
        if !statistic_ok(&m.statistic) {
            err(
                &at("statistic"),
                format!(
                    "analysis metric {:?}: statistic must be Sum, Average, Minimum, Maximum, SampleCount or a percentile such as p99 or p99.9; got {:?}",
                    m.name, m.statistic
                ),
            );
        }
        for (k, v) in &m.dimensions {
            if let Some(p) = unknown_placeholder(v) {
                err(
                    &at("dimensions"),
                    format!(
                        "analysis metric {:?}: dimension {k} holds {p}, which is not a placeholder; use {}",
                        m.name,
                        PLACEHOLDERS.join(", ")
                    ),
                );
            }
        }
        for (f, v) in [
            ("name", &m.name),
            ("namespace", &m.namespace),
            ("metric_name", &m.metric_name),
        ] {
            if v.trim().is_empty() {
                err(&at(f), format!("analysis metric {f} must not be empty"));
            }
        }
    }
    out
}

/// Whether CloudWatch takes `s` as a statistic of `GetMetricData`.
pub fn statistic_ok(s: &str) -> bool {
    match s {
        "Sum" | "Average" | "Minimum" | "Maximum" | "SampleCount" => true,
        p => p
            .strip_prefix('p')
            .and_then(|n| n.parse::<f64>().ok())
            .is_some_and(|n| (0.0..=100.0).contains(&n)),
    }
}

/// The first `{...}` in `value` that is not one of [`PLACEHOLDERS`].
fn unknown_placeholder(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else {
            return Some(rest[i..].to_string());
        };
        let p = &rest[i..i + j + 1];
        if !PLACEHOLDERS.contains(&p) {
            return Some(p.to_string());
        }
        rest = &rest[i + j + 1..];
    }
    None
}

/// The statistic of `points` as CloudWatch computes it (percentiles by nearest rank); None
/// when there are none. The fake cloud and the fault proxy answer with it.
pub fn statistic_of(statistic: &str, points: &[f64]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    Some(match statistic {
        "Sum" => points.iter().sum(),
        "Average" => points.iter().sum::<f64>() / n,
        "Minimum" => points.iter().copied().fold(f64::INFINITY, f64::min),
        "Maximum" => points.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "SampleCount" => n,
        p => {
            let q: f64 = p.strip_prefix('p')?.parse().ok()?;
            let mut sorted = points.to_vec();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let rank = ((q / 100.0) * n).ceil().max(1.0) as usize;
            sorted[rank.min(sorted.len()) - 1]
        }
    })
}

fn pct(v: f64) -> String {
    format!("{v:.1} %")
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn count(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn secs(v: f64) -> String {
    if v < 1.0 {
        format!("{}ms", (v * 1000.0).round() as u64)
    } else {
        format!("{}s", num((v * 1000.0).round() / 1000.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(fleet: &str) -> FleetDims {
        FleetDims {
            fleet: fleet.into(),
            target_group: format!("targetgroup/{fleet}/0123"),
            load_balancer: "app/shop/4567".into(),
        }
    }

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            interval: Duration::from_secs(60),
            failure_limit: 0,
            error_rate: Some(ErrorRate {
                max: Some(2.0),
                max_increase: Some(0.5),
                min_requests: 100,
            }),
            latency: Some(Latency {
                statistic: "p99".into(),
                max: Some(Duration::from_millis(800)),
                max_increase: Some(Duration::from_millis(100)),
            }),
            metrics: vec![MetricCheck {
                name: "checkout-failures".into(),
                namespace: "Shop".into(),
                metric_name: "CheckoutFailed".into(),
                dimensions: BTreeMap::from([("AutoScalingGroupName".into(), "{fleet}".into())]),
                statistic: "Sum".into(),
                max: Some(5.0),
                min: None,
            }],
        }
    }

    fn answers(pairs: &[(&str, f64)]) -> Answers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(*v)))
            .collect()
    }

    #[test]
    fn fleet_dims_come_from_the_arns() {
        let d = FleetDims::of(
            "web-r2",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-r2/73e2d6bc24d8a067",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2",
        )
        .unwrap();
        assert_eq!(d.target_group, "targetgroup/web-r2/73e2d6bc24d8a067");
        assert_eq!(d.load_balancer, "app/shop/50dc6c495c0c9188");
        assert_eq!(FleetDims::of("x", "arn:bad", "arn:bad"), None);
    }

    #[test]
    fn one_query_per_figure_and_the_serving_fleet_only_where_an_increase_asks() {
        let q = queries(&spec(), &dims("web-r2"), Some(&dims("web-r1")));
        let ids: Vec<&str> = q.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "new_requests",
                "new_5xx",
                "serving_requests",
                "serving_5xx",
                "new_latency",
                "serving_latency",
                "metric_0"
            ]
        );
        assert_eq!(q[6].dimensions["AutoScalingGroupName"], "web-r2");
        assert_eq!(q[4].statistic, "p99");
        assert_eq!(q[0].dimensions["TargetGroup"], "targetgroup/web-r2/0123");
        let mut s = spec();
        s.error_rate.as_mut().unwrap().max_increase = None;
        s.latency = None;
        s.metrics.clear();
        assert_eq!(queries(&s, &dims("web-r2"), Some(&dims("web-r1"))).len(), 2);
        // Nothing serves (a first release): the new fleet alone.
        assert_eq!(queries(&spec(), &dims("web-r1"), None).len(), 4);
    }

    #[test]
    fn judgements() {
        let good = [
            ("new_requests", 1200.0),
            ("new_5xx", 6.0),
            ("serving_requests", 10800.0),
            ("serving_5xx", 54.0),
            ("new_latency", 0.31),
            ("serving_latency", 0.3),
            ("metric_0", 1.0),
        ];
        let with = |changes: &[(&str, f64)]| {
            let mut a = answers(&good);
            for (k, v) in changes {
                a.insert(k.to_string(), Some(*v));
            }
            a
        };
        let j = |a: &Answers| judge(&spec(), a, "web-r2", Some("web-r1"));
        assert!(
            matches!(j(&answers(&good)), Judgement::Pass(_)),
            "{:?}",
            j(&answers(&good))
        );
        for (changes, says) in [
            (
                vec![("new_5xx", 240.0)],
                "analysis error_rate: web-r2 20.0 % of 1,200 requests answered 5xx against web-r1 0.5 % of 10,800 (max 2.0 %, max increase 0.5 points)",
            ),
            // Under max, over the increase.
            (vec![("new_5xx", 14.0)], "(max increase 0.5 points)"),
            (
                vec![("new_latency", 0.9)],
                "latency: web-r2 p99 900ms against web-r1 300ms (max 800ms, max increase 100ms)",
            ),
            (vec![("new_latency", 0.45)], "(max increase 100ms)"),
            (
                vec![("metric_0", 9.0)],
                "metric checkout-failures: web-r2 CheckoutFailed Sum 9 (max 5)",
            ),
        ] {
            match j(&with(&changes)) {
                Judgement::Fail(why) => assert!(why.contains(says), "{changes:?}: {why}"),
                other => panic!("{changes:?}: {other:?}"),
            }
        }
        // Too few requests, or no data: inconclusive, never a failure.
        match j(&with(&[("new_requests", 40.0), ("new_5xx", 40.0)])) {
            Judgement::Inconclusive(why) => {
                assert!(
                    why.contains("web-r2 had 40 requests, fewer than min_requests (100)"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        let mut none = answers(&good);
        none.insert("metric_0".into(), None);
        assert!(
            matches!(j(&none), Judgement::Inconclusive(w) if w.contains("metric checkout-failures: no data"))
        );
        // A failure wins over an inconclusive check.
        none.insert("new_latency".into(), Some(2.0));
        assert!(matches!(j(&none), Judgement::Fail(_)));
        // No serving fleet: the increase is not judged; max still is.
        let alone = judge(&spec(), &with(&[("new_5xx", 12.0)]), "web-r1", None);
        assert!(matches!(alone, Judgement::Pass(_)), "{alone:?}");
    }

    #[test]
    fn statistics_as_cloudwatch_computes_them() {
        let p: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(statistic_of("Sum", &p), Some(5050.0));
        assert_eq!(statistic_of("Average", &p), Some(50.5));
        assert_eq!(statistic_of("Minimum", &p), Some(1.0));
        assert_eq!(statistic_of("Maximum", &p), Some(100.0));
        assert_eq!(statistic_of("SampleCount", &p), Some(100.0));
        assert_eq!(statistic_of("p99", &p), Some(99.0));
        assert_eq!(statistic_of("p50", &p), Some(50.0));
        assert_eq!(statistic_of("p99.9", &p), Some(100.0));
        assert_eq!(statistic_of("p99", &[]), None);
        assert_eq!(statistic_of("p99", &[0.2]), Some(0.2));
    }

    #[test]
    fn bad_analysis_is_refused_with_the_attribute() {
        assert!(check(&spec()).is_empty(), "{:?}", check(&spec()));
        type Change = Box<dyn Fn(&mut AnalysisSpec)>;
        let cases: Vec<(Change, &str, &str)> = vec![
            (
                Box::new(|s| s.interval = Duration::from_millis(500)),
                "analysis.interval",
                "at least 1s",
            ),
            (
                Box::new(|s| s.error_rate.as_mut().unwrap().max = Some(-1.0)),
                "analysis.error_rate.max",
                "from 0 to 100",
            ),
            (
                Box::new(|s| s.error_rate.as_mut().unwrap().max_increase = Some(-0.5)),
                "analysis.error_rate.max_increase",
                "0 or more",
            ),
            (
                Box::new(|s| {
                    let e = s.error_rate.as_mut().unwrap();
                    e.max = None;
                    e.max_increase = None;
                }),
                "analysis.error_rate",
                "needs max",
            ),
            (
                Box::new(|s| s.latency.as_mut().unwrap().statistic = "p42".into()),
                "analysis.latency.statistic",
                "Average, p50, p90, p95, p99",
            ),
            (
                Box::new(|s| {
                    s.metrics[0].max = None;
                }),
                "analysis.metric[0].max",
                "needs max or min",
            ),
            (
                Box::new(|s| s.metrics[0].statistic = "Median".into()),
                "analysis.metric[0].statistic",
                "statistic must be",
            ),
            (
                Box::new(|s| {
                    s.metrics[0]
                        .dimensions
                        .insert("X".into(), "{fleet_name}".into());
                }),
                "analysis.metric[0].dimensions",
                "{fleet_name}, which is not a placeholder",
            ),
            (
                Box::new(|s| {
                    s.metrics[0].min = Some(10.0);
                }),
                "analysis.metric[0].min",
                "is above max",
            ),
            (
                Box::new(|s| {
                    s.error_rate = None;
                    s.latency = None;
                    s.metrics.clear();
                }),
                "analysis",
                "nothing to judge",
            ),
        ];
        for (change, at, says) in cases {
            let mut s = spec();
            change(&mut s);
            let errors = check(&s);
            assert!(
                errors.iter().any(|(a, e)| a == at && e.contains(says)),
                "{at}: {errors:?}"
            );
        }
    }

    #[test]
    fn the_plan_names_the_checks() {
        assert_eq!(
            describe(&spec(), Some("web-r1"), "1m0s"),
            "analysis (error rate ≤ 2.0 %, ≤ +0.5 points over web-r1; p99 ≤ 800ms, ≤ +100ms over web-r1; checkout-failures Sum ≤ 5) every 1m0s"
        );
        // Nothing to compare with (the bake, a first release): the increases go unsaid.
        assert_eq!(
            describe(&spec(), None, "1m0s"),
            "analysis (error rate ≤ 2.0 %; p99 ≤ 800ms; checkout-failures Sum ≤ 5) every 1m0s"
        );
    }
}
