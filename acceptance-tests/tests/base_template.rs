//! A base launch template (`launch_template`, issue 14): each fleet's template starts from
//! the data of the user's template version — its settings appear in the fleet's template,
//! the release's own arguments win —, `$Latest` is resolved to a number at plan, a new
//! version plans as a release showing the number, and setting the version back rolls back.

use acceptance_tests::{Harness, ReleaseOpts};
use aws_sdk_ec2 as ec2;

fn tag(k: &str, v: &str) -> ec2::types::Tag {
    ec2::types::Tag::builder().key(k).value(v).build()
}

/// A security group of the fixtures' VPC.
async fn security_group(h: &Harness, name: &str) -> anyhow::Result<String> {
    Ok(h.aws
        .ec2
        .create_security_group()
        .group_name(name)
        .description(name)
        .vpc_id(&h.fx.vpc_id)
        .send()
        .await?
        .group_id()
        .unwrap_or_default()
        .to_string())
}

/// The platform team's template: a network interface without public addresses, placement,
/// instance tags, a key pair, user data, monitoring and a logs volume.
async fn platform_template(h: &Harness) -> anyhow::Result<String> {
    let sg = security_group(h, "platform").await?;
    let data = ec2::types::RequestLaunchTemplateData::builder()
        .key_name("platform")
        .user_data("IyEvYmluL3NoCmVjaG8gcGxhdGZvcm0K")
        .monitoring(
            ec2::types::LaunchTemplatesMonitoringRequest::builder()
                .enabled(true)
                .build(),
        )
        .network_interfaces(
            ec2::types::LaunchTemplateInstanceNetworkInterfaceSpecificationRequest::builder()
                .device_index(0)
                .associate_public_ip_address(false)
                .groups(&sg)
                .build(),
        )
        .placement(
            ec2::types::LaunchTemplatePlacementRequest::builder()
                .tenancy(ec2::types::Tenancy::Default)
                .build(),
        )
        .tag_specifications(
            ec2::types::LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(ec2::types::ResourceType::Instance)
                .tags(tag("team", "platform"))
                .tags(tag("cost-center", "42"))
                .build(),
        )
        .block_device_mappings(
            ec2::types::LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name("/dev/xvdf")
                .ebs(
                    ec2::types::LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(50)
                        .build(),
                )
                .build(),
        )
        .build();
    let out = h
        .aws
        .ec2
        .create_launch_template()
        .launch_template_name("platform-base")
        .launch_template_data(data)
        .send()
        .await?;
    Ok(out
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn fleets_start_from_the_base_template_and_follow_its_versions() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws
        .ec2
        .create_key_pair()
        .key_name("platform")
        .send()
        .await?;
    h.aws.ec2.create_key_pair().key_name("ops").send().await?;
    let base = platform_template(&h).await?;
    let web_sg = security_group(&h, "web").await?;
    let hcl = |version: &str| {
        h.release_hcl(&ReleaseOpts {
            extra: format!(
                r#"  key_name           = "ops"
  security_group_ids = ["{sg}"]
  instance_tags      = {{ role = "web", team = "web" }}
  launch_template {{
    id      = "{base}"
    version = "{version}"
  }}"#,
                sg = web_sg,
            ),
            ..Default::default()
        })
    };
    h.write(&hcl("$Latest"))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says(&format!("on launch template {base} version 1")) && plan.says("resolved_version"),
        "$Latest is resolved to 1 at plan: {}",
        plan.all()
    );
    h.apply(&[]).await?;

    let data = h.aws.fleet_template_data("web-r1").await?;
    // The release's arguments win: its key, its security group on the interface.
    assert_eq!(data.key_name(), Some("ops"));
    let nic = data
        .network_interfaces()
        .first()
        .expect("the base's interface");
    assert_eq!(
        nic.associate_public_ip_address(),
        Some(false),
        "from the base"
    );
    assert_eq!(nic.groups(), std::slice::from_ref(&web_sg));
    assert!(
        nic.subnet_id().is_none(),
        "the fleet's subnets are the release's"
    );
    // The rest comes from the base: user data, monitoring, its volume, its tags under ours.
    assert_eq!(data.user_data(), Some("IyEvYmluL3NoCmVjaG8gcGxhdGZvcm0K"));
    assert_eq!(data.monitoring().and_then(|m| m.enabled()), Some(true));
    assert!(data
        .block_device_mappings()
        .iter()
        .any(|m| m.device_name() == Some("/dev/xvdf")
            && m.ebs().and_then(|e| e.volume_size()) == Some(50)));
    let instance_tags = acceptance_tests::Aws::instance_tags(&data);
    assert_eq!(
        instance_tags.get("team").map(String::as_str),
        Some("web"),
        "ours win"
    );
    assert_eq!(
        instance_tags.get("cost-center").map(String::as_str),
        Some("42")
    );
    assert_eq!(instance_tags.get("role").map(String::as_str), Some("web"));
    // IMDSv2 stays the release's.
    assert_eq!(
        data.metadata_options().and_then(|m| m.http_tokens()),
        Some(&ec2::types::LaunchTemplateHttpTokensState::Required)
    );
    assert!(h.plan_is_empty().await?, "no change after the apply");

    // A new version of the base: $Latest resolves to 2 at plan, a release.
    h.aws
        .ec2
        .create_launch_template_version()
        .launch_template_id(&base)
        .source_version("1")
        .launch_template_data(
            ec2::types::RequestLaunchTemplateData::builder()
                .key_name("platform")
                .build(),
        )
        .send()
        .await?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("resolved_version") && plan.says(&format!("on launch template {base} version 2")),
        "a new base version is a release, with its number: {}",
        plan.all()
    );
    h.apply(&[]).await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );

    // Version 1 again: a rollback to web-r1, no third fleet.
    h.write(&hcl("1"))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("\"traffic 100 % to web-r1\"") && !plan.says("launch web-r3"),
        "setting the version back is a rollback: {}",
        plan.all()
    );
    h.apply(&[]).await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100), ("web-r2".to_string(), 0)].into()
    );
    assert_eq!(h.aws.group_names().await?, vec!["web-r1", "web-r2"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_base_template_or_version_is_refused_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let base = platform_template(&h).await?;
    for (id, version, line, says) in [
        (
            "lt-0123456789abcdef0",
            "$Default",
            "25: id = \"lt-0123456789abcdef0\"",
            "does not exist in this region",
        ),
        (base.as_str(), "7", "26: version = \"7\"", "version 7 of"),
    ] {
        h.write(&h.release_hcl(&ReleaseOpts {
            extra: format!(
                "  launch_template {{\n    id      = \"{id}\"\n    version = \"{version}\"\n  }}"
            ),
            ..Default::default()
        }))?;
        let plan = h.terraform(&["plan"]).await?;
        assert_ne!(plan.code, 0, "refused at plan");
        let all = plan.all().split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(all.contains(line), "the attribute's line is shown: {all}");
        assert!(all.contains(says), "{says}: {all}");
        assert!(h.aws.group_names().await?.is_empty(), "nothing created");
    }
    Ok(())
}
