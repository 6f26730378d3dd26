//! EC2: the fleets' launch templates (made from the release's arguments over the user's
//! base template, read, deleted), the records' templates, images and key pairs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2 as ec2;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use base64::Engine;

use super::errors::{deleted, err, made_by_this_call};
use super::*;

pub(super) fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<ec2::types::Tag> {
    tags.iter()
        .map(|(k, v)| ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// A fleet's launch settings in its template: key pair, monitoring, the metadata service
/// (IMDSv2 required unless said otherwise) and EBS volumes.
pub(super) fn launch_settings(
    mut data: ec2::types::builders::RequestLaunchTemplateDataBuilder,
    spec: &FleetSpec,
) -> ec2::types::builders::RequestLaunchTemplateDataBuilder {
    if let Some(key) = &spec.key_name {
        data = data.key_name(key);
    }
    if spec.monitoring {
        data = data.monitoring(
            ec2::types::LaunchTemplatesMonitoringRequest::builder()
                .enabled(true)
                .build(),
        );
    }
    let m = &spec.metadata;
    data = data.metadata_options(
        ec2::types::LaunchTemplateInstanceMetadataOptionsRequest::builder()
            .http_tokens(ec2::types::LaunchTemplateHttpTokensState::from(
                m.http_tokens.as_str(),
            ))
            .http_put_response_hop_limit(m.http_put_response_hop_limit as i32)
            .http_endpoint(
                ec2::types::LaunchTemplateInstanceMetadataEndpointState::from(
                    m.http_endpoint.as_str(),
                ),
            )
            .instance_metadata_tags(ec2::types::LaunchTemplateInstanceMetadataTagsState::from(
                m.instance_metadata_tags.as_str(),
            ))
            .build(),
    );
    for d in &spec.block_devices {
        let ebs = ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder()
            .set_volume_size(d.volume_size.map(|n| n as i32))
            .volume_type(ec2::types::VolumeType::from(d.volume_type.as_str()))
            .set_iops(d.iops.map(|n| n as i32))
            .set_throughput(d.throughput.map(|n| n as i32))
            .encrypted(d.encrypted)
            .set_kms_key_id(d.kms_key_id.clone())
            .delete_on_termination(d.delete_on_termination)
            .build();
        data = data.block_device_mappings(
            ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(&d.device_name)
                .ebs(ebs)
                .build(),
        );
    }
    data
}

pub(super) type CreateTemplateError = aws_sdk_ec2::error::SdkError<
    ec2::operation::create_launch_template::CreateLaunchTemplateError,
    aws_smithy_runtime_api::client::orchestrator::HttpResponse,
>;

impl AwsCloud {
    /// The launch template data of version `version` of template `id` (a fleet's, or the
    /// user's base template).
    pub(super) async fn template_data(
        &self,
        id: &str,
        version: i64,
    ) -> CloudResult<ec2::types::ResponseLaunchTemplateData> {
        let what = format!("reading version {version} of launch template ({id})");
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions(version.to_string())
            .send()
            .await
            .map_err(err(what.clone()))?;
        out.launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .cloned()
            .ok_or_else(|| CloudError::Api {
                action: what,
                code: "InvalidLaunchTemplateId.VersionNotFound".into(),
                message: format!("launch template {id} has no version {version}"),
            })
    }

    pub(super) async fn create_launch_template(
        &self,
        name: &str,
        spec: &FleetSpec,
        tags: &BTreeMap<String, String>,
        instance_tags: &BTreeMap<String, String>,
    ) -> CloudResult<(String, i64)> {
        let mut data = ec2::types::RequestLaunchTemplateData::builder()
            .image_id(&spec.image_id)
            .instance_type(ec2::types::InstanceType::from(spec.instance_type.as_str()))
            .set_security_group_ids(if spec.security_group_ids.is_empty() {
                None
            } else {
                Some(spec.security_group_ids.iter().cloned().collect())
            });
        if let Some(profile) = &spec.iam_instance_profile {
            let p = ec2::types::LaunchTemplateIamInstanceProfileSpecificationRequest::builder();
            let p = if profile.starts_with("arn:") {
                p.arn(profile)
            } else {
                p.name(profile)
            };
            data = data.iam_instance_profile(p.build());
        }
        if let Some(ud) = &spec.user_data {
            data = data.user_data(base64::engine::general_purpose::STANDARD.encode(ud));
        }
        data = launch_settings(data, spec);
        if !instance_tags.is_empty() {
            for rt in [
                ec2::types::ResourceType::Instance,
                ec2::types::ResourceType::Volume,
            ] {
                data = data.tag_specifications(
                    ec2::types::LaunchTemplateTagSpecificationRequest::builder()
                        .resource_type(rt)
                        .set_tags(Some(ec2_tags(instance_tags)))
                        .build(),
                );
            }
        }
        if let Some(b) = &spec.base {
            data = base::merge(data, &self.template_data(&b.id, b.version).await?);
        }
        let out = self
            .ec2
            .create_launch_template()
            .launch_template_name(name)
            .version_description("immutable_release fleet")
            .launch_template_data(data.build())
            .tag_specifications(
                ec2::types::TagSpecification::builder()
                    .resource_type(ec2::types::ResourceType::LaunchTemplate)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if e.code().is_some_and(|c| c.contains("AlreadyExists")) => {
                if let Some((id, found)) = self.find_launch_template(name).await? {
                    if made_by_this_call(&found, tags) {
                        // A fleet's template is created with one version and never changed.
                        return Ok((id, 1));
                    }
                }
                return Err(err(format!("creating launch template ({name})"))(e));
            }
            Err(e) => return Err(err(format!("creating launch template ({name})"))(e)),
        };
        let lt = out.launch_template();
        Ok((
            lt.and_then(|l| l.launch_template_id())
                .unwrap_or_default()
                .to_string(),
            lt.and_then(|l| l.latest_version_number()).unwrap_or(1),
        ))
    }

    pub(super) async fn resolve_launch_template(
        &self,
        id: &str,
        version: &str,
    ) -> CloudResult<BaseVersion> {
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions(version)
            .send()
            .await;
        match out {
            Ok(o) => Ok(o
                .launch_template_versions()
                .first()
                .and_then(|v| v.version_number())
                .map_or(BaseVersion::NoVersion, BaseVersion::Number)),
            Err(e) => match e.code() {
                Some("InvalidLaunchTemplateId.NotFound" | "InvalidLaunchTemplateId.Malformed") => {
                    Ok(BaseVersion::NoTemplate)
                }
                Some("InvalidLaunchTemplateId.VersionNotFound") => Ok(BaseVersion::NoVersion),
                _ => Err(err(format!(
                    "reading version {version} of launch template ({id})"
                ))(e)),
            },
        }
    }

    pub(super) async fn find_launch_template(
        &self,
        name: &str,
    ) -> CloudResult<Option<(String, BTreeMap<String, String>)>> {
        let out = self
            .ec2
            .describe_launch_templates()
            .filters(
                ec2::types::Filter::builder()
                    .name("launch-template-name")
                    .values(name)
                    .build(),
            )
            .send()
            .await
            .map_err(err(format!("reading launch template ({name})")))?;
        Ok(out
            .launch_templates()
            .iter()
            .find(|t| t.launch_template_name() == Some(name))
            .map(|t| {
                (
                    t.launch_template_id().unwrap_or_default().to_string(),
                    t.tags()
                        .iter()
                        .filter_map(|t| {
                            Some((
                                t.key()?.to_string(),
                                t.value().unwrap_or_default().to_string(),
                            ))
                        })
                        .collect(),
                )
            }))
    }

    pub(super) async fn launch_template_user_data(
        &self,
        id: &str,
        version: i64,
    ) -> CloudResult<Option<String>> {
        let data = self.template_data(id, version).await?;
        Ok(data
            .user_data()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub(super) async fn delete_launch_template(&self, name: &str) -> CloudResult<()> {
        // By name, in one call; absent is fine. (moto answers MissingParameter for an
        // unknown name where AWS answers InvalidLaunchTemplateName.NotFoundException.)
        let out = self
            .ec2
            .delete_launch_template()
            .launch_template_name(name)
            .send()
            .await;
        deleted(
            out,
            |c, _| c.contains("NotFound") || c == "MissingParameter",
            format!("deleting launch template ({name})"),
        )
    }

    /// Creates a launch template that records something (the ledger, the lease) and never
    /// launches anything, with the release's tags.
    pub(super) async fn create_record_template(
        &self,
        name: &str,
        what: &str,
        data: ec2::types::RequestLaunchTemplateData,
        tags: &BTreeMap<String, String>,
    ) -> Result<(String, i64), CreateTemplateError> {
        self.ec2
            .create_launch_template()
            .launch_template_name(name)
            .version_description(format!("immutable_release {what}: not for launching"))
            .launch_template_data(data)
            .tag_specifications(
                ec2::types::TagSpecification::builder()
                    .resource_type(ec2::types::ResourceType::LaunchTemplate)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await
            .map(|o| {
                let t = o.launch_template();
                (
                    t.and_then(|t| t.launch_template_id())
                        .unwrap_or_default()
                        .to_string(),
                    t.and_then(|t| t.latest_version_number()).unwrap_or(1),
                )
            })
    }
}

impl AwsCloud {
    /// Sets and removes tags of a launch template (`Fleets::retag`).
    pub(super) async fn retag_template(
        &self,
        id: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
        what: String,
    ) -> CloudResult<()> {
        if !set.is_empty() {
            self.ec2
                .create_tags()
                .resources(id)
                .set_tags(Some(ec2_tags(set)))
                .send()
                .await
                .map_err(err(what.clone()))?;
        }
        if !remove.is_empty() {
            let gone = remove
                .iter()
                .map(|k| ec2::types::Tag::builder().key(k).build());
            self.ec2
                .delete_tags()
                .resources(id)
                .set_tags(Some(gone.collect()))
                .send()
                .await
                .map_err(err(what))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Images for AwsCloud {
    async fn image_state(&self, image_id: &str) -> CloudResult<Option<String>> {
        match self.ec2.describe_images().image_ids(image_id).send().await {
            Ok(out) => Ok(out.images().first().map(|i| {
                i.state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default()
            })),
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidAMIID")) => Ok(None),
            Err(e) => Err(err(format!("reading image ({image_id})"))(e)),
        }
    }

    async fn key_pair_exists(&self, name: &str) -> CloudResult<bool> {
        match self.ec2.describe_key_pairs().key_names(name).send().await {
            Ok(out) => Ok(!out.key_pairs().is_empty()),
            Err(e) if e.code() == Some("InvalidKeyPair.NotFound") => Ok(false),
            Err(e) => Err(err(format!("reading key pair ({name})"))(e)),
        }
    }
}
