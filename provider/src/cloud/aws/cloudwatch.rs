//! CloudWatch: the states of the release's alarms, metric and composite, and the metrics
//! canary analysis judges (`GetMetricData`).

use async_trait::async_trait;
use aws_sdk_cloudwatch as cw;

use super::errors::err;
use super::pages::every_page;
use super::*;

#[async_trait]
impl Alarms for AwsCloud {
    async fn metric_data(
        &self,
        queries: &[crate::analysis::MetricQuery],
        start: std::time::SystemTime,
        end: std::time::SystemTime,
    ) -> CloudResult<crate::analysis::Answers> {
        let mut answers: crate::analysis::Answers =
            queries.iter().map(|q| (q.id.clone(), None)).collect();
        if queries.is_empty() {
            return Ok(answers);
        }
        // One period spanning the window, in whole minutes: one value a query, the
        // statistic of the whole window as CloudWatch computes it.
        let secs = end
            .duration_since(start)
            .unwrap_or_default()
            .as_secs()
            .max(60);
        let period = secs.div_ceil(60) * 60;
        let data_queries: Vec<cw::types::MetricDataQuery> = queries
            .iter()
            .map(|q| {
                let metric = cw::types::Metric::builder()
                    .namespace(&q.namespace)
                    .metric_name(&q.metric_name)
                    .set_dimensions(Some(
                        q.dimensions
                            .iter()
                            .map(|(k, v)| cw::types::Dimension::builder().name(k).value(v).build())
                            .collect(),
                    ))
                    .build();
                cw::types::MetricDataQuery::builder()
                    .id(&q.id)
                    .metric_stat(
                        cw::types::MetricStat::builder()
                            .metric(metric)
                            .period(period as i32)
                            .stat(&q.statistic)
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let data_queries = &data_queries;
        let results = every_page(|token| async move {
            let page = self
                .cw
                .get_metric_data()
                .set_metric_data_queries(Some(data_queries.clone()))
                .start_time(aws_smithy_types::DateTime::from(start))
                .end_time(aws_smithy_types::DateTime::from(end))
                .set_next_token(token)
                .send()
                .await
                .map_err(err("reading CloudWatch metrics (GetMetricData)"))?;
            Ok((
                page.metric_data_results().to_vec(),
                page.next_token().map(String::from),
            ))
        })
        .await?;
        let stat_of: std::collections::BTreeMap<&str, &str> = queries
            .iter()
            .map(|q| (q.id.as_str(), q.statistic.as_str()))
            .collect();
        for r in results {
            let Some(id) = r.id() else { continue };
            let values = r.values();
            if values.is_empty() {
                continue;
            }
            // A window cut in two periods: counts add up, the rest takes the worse.
            let v = match stat_of.get(id).copied().unwrap_or("Sum") {
                "Sum" | "SampleCount" => values.iter().sum(),
                "Minimum" => values.iter().copied().fold(f64::INFINITY, f64::min),
                "Average" => values.iter().sum::<f64>() / values.len() as f64,
                _ => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            };
            let slot = answers.entry(id.to_string()).or_default();
            *slot = Some(match (*slot, stat_of.get(id).copied()) {
                (Some(before), Some("Sum" | "SampleCount")) => before + v,
                (Some(before), _) => before.max(v),
                (None, _) => v,
            });
        }
        Ok(answers)
    }

    async fn in_alarm(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let states = self
            .alarms
            .get(names, |all| async move {
                let firing = self.in_alarm_now(&all).await?;
                Ok(all
                    .into_iter()
                    .map(|n| {
                        let f = firing.contains(&n);
                        (n, f)
                    })
                    .collect())
            })
            .await?;
        Ok(states
            .into_iter()
            .filter(|(_, firing)| *firing)
            .map(|(n, _)| n)
            .collect())
    }

    async fn missing(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let found: std::collections::BTreeSet<String> = self
            .alarm_states(names, None)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        Ok(names
            .iter()
            .filter(|n| !found.contains(*n))
            .cloned()
            .collect())
    }
}

impl AwsCloud {
    pub(super) async fn in_alarm_now(&self, names: &[String]) -> CloudResult<Vec<String>> {
        let alarm = cw::types::StateValue::Alarm;
        let mut firing: Vec<String> = self
            .alarm_states(names, Some(alarm.clone()))
            .await?
            .into_iter()
            // The state is checked here too: the filter is a hint that not every endpoint
            // (emulators among them) applies.
            .filter(|(_, state)| state.as_ref() == Some(&alarm))
            .map(|(name, _)| name)
            .collect();
        firing.sort();
        firing.dedup();
        Ok(firing)
    }

    /// The named alarms that exist, metric and composite, with their states (optionally
    /// only those in `state`). `DescribeAlarms` without `AlarmTypes` answers metric alarms
    /// only, even where composite alarms of those names exist, so both types are asked for
    /// by name; AWS takes 100 names a call and answers in pages (`NextToken`), all read.
    pub(super) async fn alarm_states(
        &self,
        names: &[String],
        state: Option<cw::types::StateValue>,
    ) -> CloudResult<Vec<(String, Option<cw::types::StateValue>)>> {
        let mut out = Vec::new();
        for chunk in names.chunks(100) {
            let state = &state;
            out.extend(
                every_page(|token| async move {
                    let page = self
                        .cw
                        .describe_alarms()
                        .set_alarm_names(Some(chunk.to_vec()))
                        .alarm_types(cw::types::AlarmType::MetricAlarm)
                        .alarm_types(cw::types::AlarmType::CompositeAlarm)
                        .set_state_value(state.clone())
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(err("reading CloudWatch alarms"))?;
                    let metric = page.metric_alarms().iter().filter_map(|a| {
                        a.alarm_name()
                            .map(|n| (n.to_string(), a.state_value().cloned()))
                    });
                    let composite = page.composite_alarms().iter().filter_map(|a| {
                        a.alarm_name()
                            .map(|n| (n.to_string(), a.state_value().cloned()))
                    });
                    Ok((
                        metric.chain(composite).collect(),
                        page.next_token().map(String::from),
                    ))
                })
                .await?,
            );
        }
        Ok(out)
    }
}
