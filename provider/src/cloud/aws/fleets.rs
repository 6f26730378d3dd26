//! The `Fleets` trait, each call handled by the room of the AWS service it belongs to:
//! launch templates in `templates.rs` (EC2), target groups and their health in
//! `target_groups.rs` (ELB v2), groups, policies and activities in `autoscaling.rs`.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::*;

#[async_trait]
impl Fleets for AwsCloud {
    async fn create_group(&self, r: &GroupRequest) -> CloudResult<()> {
        AwsCloud::create_group(self, r).await
    }

    async fn describe_groups(&self, names: &[String]) -> CloudResult<Vec<GroupStatus>> {
        AwsCloud::describe_groups(self, names).await
    }

    async fn groups_of_release(&self, release_name: &str) -> CloudResult<Vec<GroupStatus>> {
        AwsCloud::groups_of_release(self, release_name).await
    }

    async fn groups_behind(&self, target_group_arns: &[String]) -> CloudResult<Vec<GroupStatus>> {
        AwsCloud::groups_behind(self, target_group_arns).await
    }

    async fn set_capacity(&self, name: &str, c: Capacity) -> CloudResult<()> {
        AwsCloud::set_capacity(self, name, c).await
    }

    async fn tag_group(&self, name: &str, tags: &BTreeMap<String, String>) -> CloudResult<()> {
        AwsCloud::tag_group(self, name, tags).await
    }

    async fn schedule_scale_to_zero(
        &self,
        name: &str,
        at: std::time::SystemTime,
    ) -> CloudResult<()> {
        AwsCloud::schedule_scale_to_zero(self, name, at).await
    }

    async fn cancel_scale_to_zero(&self, name: &str) -> CloudResult<()> {
        AwsCloud::cancel_scale_to_zero(self, name).await
    }

    async fn delete_group(&self, name: &str) -> CloudResult<()> {
        AwsCloud::delete_group(self, name).await
    }

    async fn put_scaling_policy(&self, group: &str, policy: &ScalingPolicy) -> CloudResult<()> {
        AwsCloud::put_scaling_policy(self, group, policy).await
    }

    async fn scaling_policies(&self, group: &str) -> CloudResult<Vec<ScalingPolicy>> {
        AwsCloud::scaling_policies(self, group).await
    }

    async fn delete_scaling_policy(&self, group: &str, name: &str) -> CloudResult<()> {
        AwsCloud::delete_scaling_policy(self, group, name).await
    }

    async fn failed_activities(
        &self,
        name: &str,
        since: std::time::SystemTime,
    ) -> CloudResult<Vec<String>> {
        AwsCloud::failed_activities(self, name, since).await
    }

    async fn create_launch_template(
        &self,
        name: &str,
        spec: &FleetSpec,
        tags: &BTreeMap<String, String>,
        instance_tags: &BTreeMap<String, String>,
    ) -> CloudResult<(String, i64)> {
        AwsCloud::create_launch_template(self, name, spec, tags, instance_tags).await
    }

    async fn resolve_launch_template(&self, id: &str, version: &str) -> CloudResult<BaseVersion> {
        AwsCloud::resolve_launch_template(self, id, version).await
    }

    async fn find_launch_template(
        &self,
        name: &str,
    ) -> CloudResult<Option<(String, BTreeMap<String, String>)>> {
        AwsCloud::find_launch_template(self, name).await
    }

    async fn launch_template_user_data(
        &self,
        id: &str,
        version: i64,
    ) -> CloudResult<Option<String>> {
        AwsCloud::launch_template_user_data(self, id, version).await
    }

    async fn delete_launch_template(&self, name: &str) -> CloudResult<()> {
        AwsCloud::delete_launch_template(self, name).await
    }

    async fn create_target_group(
        &self,
        name: &str,
        vpc_id: &str,
        spec: &TargetGroupSpec,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<String> {
        AwsCloud::create_target_group(self, name, vpc_id, spec, tags).await
    }

    async fn find_target_group(&self, name: &str) -> CloudResult<Option<TargetGroupInfo>> {
        AwsCloud::find_target_group(self, name).await
    }

    async fn delete_target_group(&self, arn: &str) -> CloudResult<()> {
        AwsCloud::delete_target_group(self, arn).await
    }

    async fn target_health(&self, arn: &str) -> CloudResult<Vec<TargetHealth>> {
        AwsCloud::target_health(self, arn).await
    }

    async fn retag(
        &self,
        object: &Owned,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> CloudResult<()> {
        let what = format!("tagging {object:?}");
        match object {
            Owned::Group(name) => self.retag_group(name, set, remove, what).await,
            Owned::TargetGroup(arn) => self.retag_target_group(arn, set, remove, what).await,
            Owned::LaunchTemplate(id) => self.retag_template(id, set, remove, what).await,
        }
    }
}
