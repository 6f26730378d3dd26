//! A fleet's launch template data started from the user's base template
//! (`launch_template`): what the base version holds is carried over, and the release's own
//! arguments win. Carried: network interfaces (without subnet, interface ID or private
//! addresses — the fleet's subnets are the release's), placement (without the zone),
//! tags of instances and volumes, instance profile, key pair, user data, monitoring, EBS
//! optimisation, credit and CPU options, volumes (by device name), security groups.
//! Always the release's: image, instance type and the metadata options (IMDSv2 required
//! unless it says otherwise).

use aws_sdk_ec2 as ec2;
use ec2::types::builders::RequestLaunchTemplateDataBuilder;
use ec2::types::{
    CreditSpecificationRequest, LaunchTemplateBlockDeviceMapping,
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateCpuOptionsRequest,
    LaunchTemplateEbsBlockDeviceRequest, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceNetworkInterfaceSpecification,
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest, LaunchTemplatePlacementRequest,
    LaunchTemplateTagSpecificationRequest, LaunchTemplatesMonitoringRequest,
    ResponseLaunchTemplateData, Tag,
};

/// `data` (the release's own arguments) with what it leaves unset taken from `base`.
pub(super) fn merge(
    mut data: RequestLaunchTemplateDataBuilder,
    base: &ResponseLaunchTemplateData,
) -> RequestLaunchTemplateDataBuilder {
    if data.get_key_name().is_none() {
        data = data.set_key_name(base.key_name().map(String::from));
    }
    if data.get_user_data().is_none() {
        data = data.set_user_data(base.user_data().map(String::from));
    }
    if data.get_iam_instance_profile().is_none() {
        if let Some(p) = base.iam_instance_profile() {
            // One of the two: AWS refuses both.
            let req = LaunchTemplateIamInstanceProfileSpecificationRequest::builder();
            data = data.iam_instance_profile(match p.arn() {
                Some(arn) => req.arn(arn).build(),
                None => req.set_name(p.name().map(String::from)).build(),
            });
        }
    }
    if data.get_monitoring().is_none() {
        if let Some(m) = base.monitoring() {
            data = data.monitoring(
                LaunchTemplatesMonitoringRequest::builder()
                    .set_enabled(m.enabled())
                    .build(),
            );
        }
    }
    if data.get_ebs_optimized().is_none() {
        data = data.set_ebs_optimized(base.ebs_optimized());
    }
    if let Some(c) = base.credit_specification() {
        data = data.credit_specification(
            CreditSpecificationRequest::builder()
                .set_cpu_credits(c.cpu_credits().map(String::from))
                .build(),
        );
    }
    if let Some(c) = base.cpu_options() {
        data = data.cpu_options(
            LaunchTemplateCpuOptionsRequest::builder()
                .set_core_count(c.core_count())
                .set_threads_per_core(c.threads_per_core())
                .build(),
        );
    }
    if let Some(p) = base.placement() {
        data = data.placement(
            LaunchTemplatePlacementRequest::builder()
                .set_affinity(p.affinity().map(String::from))
                .set_group_name(p.group_name().map(String::from))
                .set_group_id(p.group_id().map(String::from))
                .set_host_id(p.host_id().map(String::from))
                .set_tenancy(p.tenancy().cloned())
                .set_spread_domain(p.spread_domain().map(String::from))
                .set_host_resource_group_arn(p.host_resource_group_arn().map(String::from))
                .set_partition_number(p.partition_number())
                .build(),
        );
    }
    data = merge_volumes(data, base.block_device_mappings());
    data = merge_tags(data, base);
    merge_network(data, base)
}

/// The release's volumes, then the base's on other devices.
fn merge_volumes(
    mut data: RequestLaunchTemplateDataBuilder,
    base: &[LaunchTemplateBlockDeviceMapping],
) -> RequestLaunchTemplateDataBuilder {
    let ours: Vec<String> = data
        .get_block_device_mappings()
        .iter()
        .flatten()
        .filter_map(|m| m.device_name().map(String::from))
        .collect();
    for m in base {
        if m.device_name().is_some_and(|d| ours.iter().any(|o| o == d)) {
            continue;
        }
        let ebs = m.ebs().map(|e| {
            LaunchTemplateEbsBlockDeviceRequest::builder()
                .set_encrypted(e.encrypted())
                .set_delete_on_termination(e.delete_on_termination())
                .set_iops(e.iops())
                .set_kms_key_id(e.kms_key_id().map(String::from))
                .set_snapshot_id(e.snapshot_id().map(String::from))
                .set_volume_size(e.volume_size())
                .set_volume_type(e.volume_type().cloned())
                .set_throughput(e.throughput())
                .build()
        });
        data = data.block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .set_device_name(m.device_name().map(String::from))
                .set_virtual_name(m.virtual_name().map(String::from))
                .set_no_device(m.no_device().map(String::from))
                .set_ebs(ebs)
                .build(),
        );
    }
    data
}

/// Per resource type, the base's tags with the release's over them.
fn merge_tags(
    data: RequestLaunchTemplateDataBuilder,
    base: &ResponseLaunchTemplateData,
) -> RequestLaunchTemplateDataBuilder {
    let mut specs: Vec<LaunchTemplateTagSpecificationRequest> =
        data.get_tag_specifications().clone().unwrap_or_default();
    for b in base.tag_specifications() {
        let Some(rt) = b.resource_type() else {
            continue;
        };
        match specs.iter_mut().find(|s| s.resource_type() == Some(rt)) {
            Some(ours) => {
                let mut tags: Vec<Tag> = b
                    .tags()
                    .iter()
                    .filter(|t| !ours.tags().iter().any(|o| o.key() == t.key()))
                    .cloned()
                    .collect();
                tags.extend(ours.tags().iter().cloned());
                *ours = LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(rt.clone())
                    .set_tags(Some(tags))
                    .build();
            }
            None => specs.push(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(rt.clone())
                    .set_tags(Some(b.tags().to_vec()))
                    .build(),
            ),
        }
    }
    data.set_tag_specifications(if specs.is_empty() { None } else { Some(specs) })
}

/// The base's network interfaces, with the release's security groups on the primary one
/// (AWS refuses groups both on the instance and on an interface); without interfaces, the
/// release's groups, else the base's.
fn merge_network(
    mut data: RequestLaunchTemplateDataBuilder,
    base: &ResponseLaunchTemplateData,
) -> RequestLaunchTemplateDataBuilder {
    let ours = data.get_security_group_ids().clone().unwrap_or_default();
    if base.network_interfaces().is_empty() {
        if ours.is_empty() && !base.security_group_ids().is_empty() {
            data = data.set_security_group_ids(Some(base.security_group_ids().to_vec()));
        }
        return data;
    }
    data = data.set_security_group_ids(None);
    for n in base.network_interfaces() {
        let primary = n.device_index().unwrap_or(0) == 0;
        let groups = if primary && !ours.is_empty() {
            ours.clone()
        } else if primary && n.groups().is_empty() {
            base.security_group_ids().to_vec()
        } else {
            n.groups().to_vec()
        };
        data = data.network_interfaces(interface(n, groups));
    }
    data
}

fn interface(
    n: &LaunchTemplateInstanceNetworkInterfaceSpecification,
    groups: Vec<String>,
) -> LaunchTemplateInstanceNetworkInterfaceSpecificationRequest {
    LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
        .set_associate_public_ip_address(n.associate_public_ip_address())
        .set_delete_on_termination(n.delete_on_termination())
        .set_description(n.description().map(String::from))
        .set_device_index(n.device_index())
        .set_groups(if groups.is_empty() {
            None
        } else {
            Some(groups)
        })
        .set_interface_type(n.interface_type().map(String::from))
        .set_ipv6_address_count(n.ipv6_address_count())
        .set_secondary_private_ip_address_count(n.secondary_private_ip_address_count())
        .set_network_card_index(n.network_card_index())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ec2::types::{LaunchTemplateTagSpecification, ResourceType};

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build()
    }

    #[test]
    fn the_release_wins_and_the_rest_comes_from_the_base() {
        let base = ResponseLaunchTemplateData::builder()
            .key_name("platform")
            .user_data("YmFzZQ==")
            .security_group_ids("sg-base")
            .network_interfaces(
                LaunchTemplateInstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .associate_public_ip_address(false)
                    .subnet_id("subnet-pinned")
                    .groups("sg-nic")
                    .build(),
            )
            .tag_specifications(
                LaunchTemplateTagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag("team", "platform"))
                    .tags(tag("role", "base"))
                    .build(),
            )
            .block_device_mappings(
                LaunchTemplateBlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .build(),
            )
            .block_device_mappings(
                LaunchTemplateBlockDeviceMapping::builder()
                    .device_name("/dev/xvdf")
                    .build(),
            )
            .build();
        let ours = ec2::types::RequestLaunchTemplateData::builder()
            .image_id("ami-1")
            .key_name("ops")
            .security_group_ids("sg-web")
            .block_device_mappings(
                LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name("/dev/xvda")
                    .build(),
            )
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag("role", "web"))
                    .build(),
            );
        let merged = merge(ours, &base).build();
        assert_eq!(merged.key_name(), Some("ops"), "the release's key wins");
        assert_eq!(merged.user_data(), Some("YmFzZQ=="), "the base's user data");
        assert!(
            merged.security_group_ids().is_empty(),
            "groups move to the interface"
        );
        let nic = &merged.network_interfaces()[0];
        assert_eq!(nic.groups(), ["sg-web".to_string()]);
        assert_eq!(nic.associate_public_ip_address(), Some(false));
        let devices: Vec<_> = merged
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.device_name())
            .collect();
        assert_eq!(devices, ["/dev/xvda", "/dev/xvdf"]);
        let tags: Vec<(&str, &str)> = merged.tag_specifications()[0]
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(tags, [("team", "platform"), ("role", "web")]);

        // No interfaces: the release's groups, else the base's.
        let base = ResponseLaunchTemplateData::builder()
            .security_group_ids("sg-base")
            .build();
        let none = ec2::types::RequestLaunchTemplateData::builder();
        assert_eq!(
            merge(none, &base).build().security_group_ids(),
            ["sg-base".to_string()]
        );
    }
}
