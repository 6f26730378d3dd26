//! CloudWatch: the states of the release's alarms, metric and composite.

use async_trait::async_trait;
use aws_sdk_cloudwatch as cw;

use super::errors::err;
use super::pages::every_page;
use super::*;

#[async_trait]
impl Alarms for AwsCloud {
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
