//! ELB v2 target groups: made with their health check and deregistration delay, found by
//! name, deleted, and their targets' health (reads at about the same time share one call).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2 as elb;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::{deleted, err, made_by_this_call};
use super::*;

pub(super) fn elb_tags(tags: &BTreeMap<String, String>) -> Vec<elb::types::Tag> {
    tags.iter()
        .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build())
        .collect()
}

impl AwsCloud {
    pub(super) async fn create_target_group(
        &self,
        name: &str,
        vpc_id: &str,
        spec: &TargetGroupSpec,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<String> {
        let hc = &spec.health_check;
        let out = self
            .elb
            .create_target_group()
            .name(name)
            .protocol(elb::types::ProtocolEnum::from(spec.protocol.as_str()))
            .port(spec.port as i32)
            .vpc_id(vpc_id)
            .target_type(elb::types::TargetTypeEnum::Instance)
            .health_check_enabled(true)
            .health_check_path(&hc.path)
            .health_check_port(&hc.port)
            .health_check_protocol(elb::types::ProtocolEnum::from(hc.protocol.as_str()))
            .health_check_interval_seconds(hc.interval as i32)
            .health_check_timeout_seconds(hc.timeout as i32)
            .healthy_threshold_count(hc.healthy_threshold as i32)
            .unhealthy_threshold_count(hc.unhealthy_threshold as i32)
            .matcher(
                elb::types::Matcher::builder()
                    .http_code(&hc.matcher)
                    .build(),
            )
            .set_tags(Some(elb_tags(tags)))
            .send()
            .await;
        let arn = match out {
            Ok(out) => out
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .unwrap_or_default()
                .to_string(),
            Err(e) if e.code() == Some("DuplicateTargetGroupName") => {
                match self.find_target_group(name).await? {
                    Some(tg) if made_by_this_call(&tg.tags, tags) => tg.arn,
                    _ => return Err(err(format!("creating target group ({name})"))(e)),
                }
            }
            Err(e) => return Err(err(format!("creating target group ({name})"))(e)),
        };
        self.elb
            .modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(
                elb::types::TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(spec.deregistration_delay.to_string())
                    .build(),
            )
            .send()
            .await
            .map_err(err(format!(
                "setting deregistration delay of target group ({name})"
            )))?;
        Ok(arn)
    }

    pub(super) async fn find_target_group(
        &self,
        name: &str,
    ) -> CloudResult<Option<TargetGroupInfo>> {
        let out = match self.elb.describe_target_groups().names(name).send().await {
            Ok(o) => o,
            Err(e) if e.code() == Some("TargetGroupNotFound") => return Ok(None),
            Err(e) => return Err(err(format!("reading target group ({name})"))(e)),
        };
        let Some(arn) = out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
        else {
            return Ok(None);
        };
        let tags = self
            .elb
            .describe_tags()
            .resource_arns(arn)
            .send()
            .await
            .map_err(err(format!("reading tags of target group ({name})")))?;
        Ok(Some(TargetGroupInfo {
            arn: arn.to_string(),
            name: name.to_string(),
            tags: tags
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
        }))
    }

    pub(super) async fn delete_target_group(&self, arn: &str) -> CloudResult<()> {
        let out = self
            .elb
            .delete_target_group()
            .target_group_arn(arn)
            .send()
            .await;
        deleted(
            out,
            |c, _| c == "TargetGroupNotFound",
            format!("deleting target group ({arn})"),
        )
    }

    pub(super) async fn target_health(&self, arn: &str) -> CloudResult<Vec<TargetHealth>> {
        let batch = self
            .health
            .lock()
            .unwrap()
            .entry(arn.to_string())
            .or_insert_with(|| Arc::new(Batch::new(SHARE_WINDOW)))
            .clone();
        let key = [arn.to_string()];
        let found = batch
            .get(&key, |_| async {
                let health = self.target_health_now(arn).await?;
                Ok(BTreeMap::from([(arn.to_string(), health)]))
            })
            .await?;
        Ok(found.into_values().next().unwrap_or_default())
    }

    pub(super) async fn target_health_now(&self, arn: &str) -> CloudResult<Vec<TargetHealth>> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(err(format!("reading target health ({arn})")))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .map(|d| TargetHealth {
                id: d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string(),
                state: d
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                reason: d
                    .target_health()
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
                description: d
                    .target_health()
                    .and_then(|h| h.description())
                    .map(String::from),
            })
            .collect())
    }
}

impl AwsCloud {
    /// Sets and removes tags of a target group (`Fleets::retag`).
    pub(super) async fn retag_target_group(
        &self,
        arn: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
        what: String,
    ) -> CloudResult<()> {
        if !set.is_empty() {
            let tags = set
                .iter()
                .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build());
            self.elb
                .add_tags()
                .resource_arns(arn)
                .set_tags(Some(tags.collect()))
                .send()
                .await
                .map_err(err(what.clone()))?;
        }
        if !remove.is_empty() {
            self.elb
                .remove_tags()
                .resource_arns(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
                .await
                .map_err(err(what))?;
        }
        Ok(())
    }
}
