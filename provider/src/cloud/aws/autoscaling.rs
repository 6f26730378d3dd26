//! Auto Scaling: the fleets' groups (made, read, sized, tagged, scheduled to zero,
//! deleted), their target-tracking policies and their failed launches.

use std::collections::BTreeMap;

use aws_sdk_autoscaling as asg;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::errors::{deleted, err, made_by_this_call};
use super::pages::every_page;
use super::*;

/// The name of the scheduled action that ends a retained fleet's rollback window.
pub const ROLLBACK_WINDOW_ACTION: &str = "immutable-rollback-window-end";

pub(super) fn asg_tags(name: &str, tags: &BTreeMap<String, String>) -> Vec<asg::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            asg::types::Tag::builder()
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                // The phase changes as the fleet moves on; on an instance it would stay
                // what it was at launch (`launching`) for ever.
                .propagate_at_launch(k != crate::naming::TAG_PHASE)
                .build()
        })
        .collect()
}

/// The groups of one page of `DescribeAutoScalingGroups`.
fn groups_of(
    page: &asg::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput,
) -> Vec<GroupStatus> {
    page.auto_scaling_groups()
        .iter()
        .map(group_status)
        .collect()
}

pub(super) fn group_status(g: &asg::types::AutoScalingGroup) -> GroupStatus {
    GroupStatus {
        name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
        capacity: Capacity {
            min: i64::from(g.min_size().unwrap_or(0)),
            max: i64::from(g.max_size().unwrap_or(0)),
            desired: i64::from(g.desired_capacity().unwrap_or(0)),
        },
        instances: g
            .instances()
            .iter()
            .map(|i| InstanceStatus {
                id: i.instance_id().unwrap_or_default().to_string(),
                lifecycle_state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                health_status: i.health_status().unwrap_or_default().to_string(),
                launch_template: i.launch_template().map(|lt| {
                    (
                        lt.launch_template_id().unwrap_or_default().to_string(),
                        lt.version().unwrap_or_default().to_string(),
                    )
                }),
            })
            .collect(),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        target_group_arns: g.target_group_arns().to_vec(),
        // A group with fallback types names its template in its mixed instances policy.
        launch_template: g
            .launch_template()
            .or_else(|| {
                g.mixed_instances_policy()?
                    .launch_template()?
                    .launch_template_specification()
            })
            .map(|lt| {
                (
                    lt.launch_template_id().unwrap_or_default().to_string(),
                    lt.version().unwrap_or_default().to_string(),
                )
            }),
        deleting: g.status().is_some_and(|s| s.contains("Delete")),
    }
}

impl AwsCloud {
    pub(super) async fn create_group(&self, r: &GroupRequest) -> CloudResult<()> {
        let template = asg::types::LaunchTemplateSpecification::builder()
            .launch_template_id(&r.launch_template.0)
            .version(r.launch_template.1.to_string())
            .build();
        let call = self
            .asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(&r.name);
        // Fallback types: a mixed instances policy over the same template, every instance
        // on-demand, the types tried in the order given.
        let call = if r.instance_types.len() > 1 {
            call.mixed_instances_policy(
                asg::types::MixedInstancesPolicy::builder()
                    .launch_template(
                        asg::types::LaunchTemplate::builder()
                            .launch_template_specification(template)
                            .set_overrides(Some(
                                r.instance_types
                                    .iter()
                                    .map(|t| {
                                        asg::types::LaunchTemplateOverrides::builder()
                                            .instance_type(t)
                                            .build()
                                    })
                                    .collect(),
                            ))
                            .build(),
                    )
                    .instances_distribution(
                        asg::types::InstancesDistribution::builder()
                            .on_demand_allocation_strategy("prioritized")
                            .on_demand_base_capacity(0)
                            .on_demand_percentage_above_base_capacity(100)
                            .build(),
                    )
                    .build(),
            )
        } else {
            call.launch_template(template)
        };
        let out = call
            .min_size(r.capacity.min as i32)
            .max_size(r.capacity.max as i32)
            .desired_capacity(r.capacity.desired as i32)
            .vpc_zone_identifier(r.subnet_ids.join(","))
            .target_group_arns(&r.target_group_arn)
            .health_check_type("ELB")
            .health_check_grace_period(r.grace_period.as_secs() as i32)
            .set_tags(Some(asg_tags(&r.name, &r.tags)))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("AlreadyExists") => {
                let found = self
                    .describe_groups_now(std::slice::from_ref(&r.name))
                    .await?;
                match found.first() {
                    Some(g) if made_by_this_call(&g.tags, &r.tags) => Ok(()),
                    _ => Err(err(format!("creating Auto Scaling group ({})", r.name))(e)),
                }
            }
            Err(e) => Err(err(format!("creating Auto Scaling group ({})", r.name))(e)),
        }
    }

    pub(super) async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<GroupStatus>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .groups
            .get(names, |all| async move {
                let mut out = BTreeMap::new();
                for chunk in all.chunks(100) {
                    for g in self.describe_groups_now(chunk).await? {
                        out.insert(g.name.clone(), g);
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(names.iter().filter_map(|n| found.get(n).cloned()).collect())
    }

    pub(super) async fn groups_of_release(
        &self,
        release_name: &str,
    ) -> CloudResult<Vec<GroupStatus>> {
        every_page(|token| async move {
            let page = self
                .asg
                .describe_auto_scaling_groups()
                .filters(
                    asg::types::Filter::builder()
                        .name(format!("tag:{}", crate::naming::TAG_RELEASE_NAME))
                        .values(release_name)
                        .build(),
                )
                .set_next_token(token)
                .send()
                .await
                .map_err(err(format!(
                    "listing Auto Scaling groups of release ({release_name})"
                )))?;
            Ok((groups_of(&page), page.next_token().map(String::from)))
        })
        .await
    }

    /// Every group of the region whose target groups include one of these (every page:
    /// Auto Scaling has no filter by target group).
    pub(super) async fn groups_behind(
        &self,
        target_group_arns: &[String],
    ) -> CloudResult<Vec<GroupStatus>> {
        let all = every_page(|token| async move {
            let page = self
                .asg
                .describe_auto_scaling_groups()
                .max_records(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(err(
                    "listing the Auto Scaling groups behind the route's target groups",
                ))?;
            Ok((groups_of(&page), page.next_token().map(String::from)))
        })
        .await?;
        Ok(all
            .into_iter()
            .filter(|g| {
                g.target_group_arns
                    .iter()
                    .any(|a| target_group_arns.contains(a))
            })
            .collect())
    }

    pub(super) async fn set_capacity(&self, name: &str, c: Capacity) -> CloudResult<()> {
        self.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(c.min as i32)
            .max_size(c.max as i32)
            .desired_capacity(c.desired as i32)
            .send()
            .await
            .map_err(err(format!("scaling Auto Scaling group ({name})")))?;
        Ok(())
    }

    pub(super) async fn tag_group(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<()> {
        self.asg
            .create_or_update_tags()
            .set_tags(Some(asg_tags(name, tags)))
            .send()
            .await
            .map_err(err(format!("tagging Auto Scaling group ({name})")))?;
        Ok(())
    }

    pub(super) async fn schedule_scale_to_zero(
        &self,
        name: &str,
        at: std::time::SystemTime,
    ) -> CloudResult<()> {
        self.asg
            .put_scheduled_update_group_action()
            .auto_scaling_group_name(name)
            .scheduled_action_name(ROLLBACK_WINDOW_ACTION)
            .start_time(aws_smithy_types::DateTime::from(at))
            .min_size(0)
            .max_size(0)
            .desired_capacity(0)
            .send()
            .await
            .map_err(err(format!(
                "scheduling the end of the rollback window of Auto Scaling group ({name})"
            )))?;
        Ok(())
    }

    pub(super) async fn cancel_scale_to_zero(&self, name: &str) -> CloudResult<()> {
        let out = self
            .asg
            .delete_scheduled_action()
            .auto_scaling_group_name(name)
            .scheduled_action_name(ROLLBACK_WINDOW_ACTION)
            .send()
            .await;
        deleted(
            out,
            |c, _| c == "ValidationError",
            format!("cancelling the end of the rollback window of Auto Scaling group ({name})"),
        )
    }

    pub(super) async fn delete_group(&self, name: &str) -> CloudResult<()> {
        let out = self
            .asg
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(true)
            .send()
            .await;
        deleted(
            out,
            |_, message| message.contains("not found"),
            format!("deleting Auto Scaling group ({name})"),
        )
    }

    pub(super) async fn put_scaling_policy(
        &self,
        group: &str,
        policy: &ScalingPolicy,
    ) -> CloudResult<()> {
        let what = format!(
            "putting scaling policy {} on Auto Scaling group ({group})",
            policy.name
        );
        let metric = asg::types::PredefinedMetricSpecification::builder()
            .predefined_metric_type(asg::types::MetricType::from(policy.metric.as_str()))
            .set_resource_label(policy.resource_label.clone())
            .build();
        let config = asg::types::TargetTrackingConfiguration::builder()
            .predefined_metric_specification(metric)
            .target_value(policy.target_value)
            .disable_scale_in(policy.disable_scale_in)
            .build();
        self.asg
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name(&policy.name)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(config)
            .send()
            .await
            .map_err(err(what))?;
        Ok(())
    }

    pub(super) async fn scaling_policies(&self, group: &str) -> CloudResult<Vec<ScalingPolicy>> {
        every_page(|token| async move {
            let page = self
                .asg
                .describe_policies()
                .auto_scaling_group_name(group)
                .policy_types("TargetTrackingScaling")
                .set_next_token(token)
                .send()
                .await
                .map_err(err(format!(
                    "reading scaling policies of Auto Scaling group ({group})"
                )))?;
            let policies = page
                .scaling_policies()
                .iter()
                // AWS filters by group; the emulator keeps a deleted group's policies.
                .filter(|p| p.auto_scaling_group_name() == Some(group))
                .filter_map(|p| {
                    let c = p.target_tracking_configuration()?;
                    let metric = c.predefined_metric_specification();
                    Some(ScalingPolicy {
                        name: p.policy_name().unwrap_or_default().to_string(),
                        metric: metric
                            .and_then(|m| m.predefined_metric_type())
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                        target_value: c.target_value().unwrap_or_default(),
                        disable_scale_in: c.disable_scale_in().unwrap_or(false),
                        resource_label: metric.and_then(|m| m.resource_label()).map(String::from),
                    })
                })
                .collect();
            Ok((policies, page.next_token().map(String::from)))
        })
        .await
    }

    pub(super) async fn delete_scaling_policy(&self, group: &str, name: &str) -> CloudResult<()> {
        let out = self
            .asg
            .delete_policy()
            .auto_scaling_group_name(group)
            .policy_name(name)
            .send()
            .await;
        deleted(
            out,
            |c, _| c == "ValidationError",
            format!("deleting scaling policy {name} of Auto Scaling group ({group})"),
        )
    }

    pub(super) async fn failed_activities(
        &self,
        name: &str,
        since: std::time::SystemTime,
    ) -> CloudResult<Vec<String>> {
        // Page one only, on purpose: AWS answers the newest first, and a wait for health
        // needs the group's recent failures, not its history.
        let out = self
            .asg
            .describe_scaling_activities()
            .auto_scaling_group_name(name)
            .max_records(20)
            .send()
            .await
            .map_err(err(format!(
                "reading scaling activities of Auto Scaling group ({name})"
            )))?;
        let since = aws_smithy_types::DateTime::from(since);
        Ok(out
            .activities()
            .iter()
            .filter(|a| a.status_code() == Some(&asg::types::ScalingActivityStatusCode::Failed))
            .filter(|a| a.start_time().is_some_and(|t| t.secs() >= since.secs()))
            .map(|a| {
                format!(
                    "{} ({})",
                    a.status_message().unwrap_or("no message"),
                    a.description().unwrap_or("scaling activity")
                )
            })
            .collect())
    }

    pub(super) async fn describe_groups_now(
        &self,
        names: &[String],
    ) -> CloudResult<Vec<GroupStatus>> {
        every_page(|token| async move {
            let page = self
                .asg
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(names.to_vec()))
                .set_next_token(token)
                .send()
                .await
                .map_err(err(format!(
                    "reading Auto Scaling groups ({})",
                    names.join(", ")
                )))?;
            Ok((groups_of(&page), page.next_token().map(String::from)))
        })
        .await
    }
}

impl AwsCloud {
    /// Sets and removes tags of a group (`Fleets::retag`).
    pub(super) async fn retag_group(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
        what: String,
    ) -> CloudResult<()> {
        if !set.is_empty() {
            self.tag_group(name, set).await?;
        }
        if !remove.is_empty() {
            let gone = remove.iter().map(|k| {
                asg::types::Tag::builder()
                    .resource_id(name)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .build()
            });
            self.asg
                .delete_tags()
                .set_tags(Some(gone.collect()))
                .send()
                .await
                .map_err(err(what))?;
        }
        Ok(())
    }
}
