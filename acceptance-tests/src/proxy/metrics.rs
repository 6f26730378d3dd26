//! CloudWatch metrics as CloudWatch keeps them (the emulator has no percentiles): the proxy
//! holds every point `PutMetricData` gives it (namespace, name, dimensions, time, value) and
//! answers `GetMetricData` itself, each query's statistic per period from the query's
//! start, empty periods left out, percentiles by nearest rank — as CloudWatch computes them.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_cloudwatch::primitives::{DateTime, DateTimeFormat};

use super::form_field;

/// One metric: namespace, name, dimensions (sorted).
type Key = (String, String, BTreeMap<String, String>);

/// Every point put, by metric.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    points: BTreeMap<Key, Vec<(SystemTime, f64)>>,
}

fn time(v: &str) -> Option<SystemTime> {
    DateTime::from_str(v, DateTimeFormat::DateTime)
        .ok()
        .and_then(|d| SystemTime::try_from(d).ok())
}

fn dims(body: &str, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for j in 1.. {
        let Some(name) = form_field(body, &format!("{prefix}Dimensions.member.{j}.Name")) else {
            break;
        };
        let value =
            form_field(body, &format!("{prefix}Dimensions.member.{j}.Value")).unwrap_or_default();
        out.insert(name, value);
    }
    out
}

impl Metrics {
    /// Records a `PutMetricData` and answers it.
    pub fn put(&mut self, body: &str) -> String {
        let namespace = form_field(body, "Namespace").unwrap_or_default();
        for i in 1.. {
            let p = format!("MetricData.member.{i}.");
            let Some(name) = form_field(body, &format!("{p}MetricName")) else {
                break;
            };
            let at = form_field(body, &format!("{p}Timestamp"))
                .and_then(|t| time(&t))
                .unwrap_or_else(SystemTime::now);
            let key = (namespace.clone(), name, dims(body, &p));
            let list = self.points.entry(key).or_default();
            if let Some(v) = form_field(body, &format!("{p}Value")).and_then(|v| v.parse().ok()) {
                list.push((at, v));
            }
            // Values with their counts (a count of n is n points of that value).
            for k in 1.. {
                let Some(v) = form_field(body, &format!("{p}Values.member.{k}"))
                    .and_then(|v| v.parse::<f64>().ok())
                else {
                    break;
                };
                let n = form_field(body, &format!("{p}Counts.member.{k}"))
                    .and_then(|c| c.parse::<f64>().ok())
                    .unwrap_or(1.0)
                    .clamp(1.0, 10_000.0) as usize;
                list.extend(std::iter::repeat_n((at, v), n));
            }
        }
        "<PutMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></PutMetricDataResponse>".to_string()
    }

    /// Answers a `GetMetricData`.
    pub fn get(&self, body: &str) -> String {
        let start = form_field(body, "StartTime").and_then(|t| time(&t));
        let end = form_field(body, "EndTime").and_then(|t| time(&t));
        let mut results = String::new();
        for i in 1.. {
            let p = format!("MetricDataQueries.member.{i}.");
            let Some(id) = form_field(body, &format!("{p}Id")) else {
                break;
            };
            let m = format!("{p}MetricStat.Metric.");
            let key = (
                form_field(body, &format!("{m}Namespace")).unwrap_or_default(),
                form_field(body, &format!("{m}MetricName")).unwrap_or_default(),
                dims(body, &m),
            );
            let period = form_field(body, &format!("{p}MetricStat.Period"))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(60)
                .max(1);
            let stat = form_field(body, &format!("{p}MetricStat.Stat")).unwrap_or_default();
            let (mut stamps, mut values) = (String::new(), String::new());
            if let (Some(start), Some(end)) = (start, end) {
                let points = self.points.get(&key).cloned().unwrap_or_default();
                let mut from = start;
                while from < end {
                    let to = (from + std::time::Duration::from_secs(period)).min(end);
                    let inside: Vec<f64> = points
                        .iter()
                        .filter(|(t, _)| *t >= from && *t < to)
                        .map(|(_, v)| *v)
                        .collect();
                    if let Some(v) = statistic_of(&stat, &inside) {
                        let at = DateTime::from(from)
                            .fmt(DateTimeFormat::DateTime)
                            .unwrap_or_default();
                        stamps.push_str(&format!("<member>{at}</member>"));
                        values.push_str(&format!("<member>{v}</member>"));
                    }
                    from = to;
                }
            }
            results.push_str(&format!(
                "<member><Id>{id}</Id><Label>{}</Label><StatusCode>Complete</StatusCode><Timestamps>{stamps}</Timestamps><Values>{values}</Values></member>",
                key.1
            ));
        }
        format!(
            "<GetMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><GetMetricDataResult><MetricDataResults>{results}</MetricDataResults><Messages/></GetMetricDataResult><ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></GetMetricDataResponse>"
        )
    }
}

/// A statistic over points, as CloudWatch computes it (percentiles by nearest rank). Kept
/// apart from the provider's own `analysis::statistic_of` on purpose: the test world is an
/// oracle of AWS's behaviour, and must not share a bug with the code it tests.
fn statistic_of(statistic: &str, points: &[f64]) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_get_per_period_with_percentiles() {
        let mut m = Metrics::default();
        let body = "Action=PutMetricData&Namespace=AWS%2FApplicationELB&MetricData.member.1.MetricName=TargetResponseTime&MetricData.member.1.Dimensions.member.1.Name=TargetGroup&MetricData.member.1.Dimensions.member.1.Value=targetgroup%2Fweb-r2%2F1&MetricData.member.1.Timestamp=2026-12-06T15%3A00%3A10Z&MetricData.member.1.Values.member.1=0.1&MetricData.member.1.Counts.member.1=98&MetricData.member.1.Values.member.2=2.0&MetricData.member.1.Counts.member.2=2";
        assert!(m.put(body).contains("PutMetricDataResponse"));
        let q = |stat: &str, start: &str, end: &str| {
            format!("Action=GetMetricData&StartTime={start}&EndTime={end}&MetricDataQueries.member.1.Id=new_latency&MetricDataQueries.member.1.MetricStat.Metric.Namespace=AWS%2FApplicationELB&MetricDataQueries.member.1.MetricStat.Metric.MetricName=TargetResponseTime&MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name=TargetGroup&MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value=targetgroup%2Fweb-r2%2F1&MetricDataQueries.member.1.MetricStat.Period=120&MetricDataQueries.member.1.MetricStat.Stat={stat}")
        };
        let window = ("2026-12-06T15%3A00%3A00Z", "2026-12-06T15%3A02%3A00Z");
        let p99 = m.get(&q("p99", window.0, window.1));
        assert!(p99.contains("<Id>new_latency</Id>"), "{p99}");
        assert!(p99.contains("<Values><member>2</member></Values>"), "{p99}");
        let p50 = m.get(&q("p50", window.0, window.1));
        assert!(
            p50.contains("<Values><member>0.1</member></Values>"),
            "{p50}"
        );
        let count = m.get(&q("SampleCount", window.0, window.1));
        assert!(count.contains("<member>100</member>"), "{count}");
        // Another window: no data, no value.
        let none = m.get(&q(
            "p99",
            "2026-12-06T16%3A00%3A00Z",
            "2026-12-06T16%3A02%3A00Z",
        ));
        assert!(none.contains("<Values></Values>"), "{none}");
    }
}
