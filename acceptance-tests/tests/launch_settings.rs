//! A fleet's launch settings (issue 14): key pair, detailed monitoring, the metadata service
//! (IMDSv2 required by default) and EBS volumes, read back from the launch template
//! version the fleet's group runs; a change of one is a release, setting it back a
//! rollback to the retained fleet that has it.

use acceptance_tests::{Harness, ReleaseOpts};
use aws_sdk_ec2 as ec2;

const SETTINGS: &str = r#"  key_name   = "ops"
  monitoring = true
  metadata_options {
    http_put_response_hop_limit = 3
  }
  block_device {
    device_name = "/dev/xvda"
    volume_size = 30
    volume_type = "gp3"
    iops        = 4000
    throughput  = 250
  }
  block_device {
    device_name           = "/dev/xvdb"
    volume_size           = 125
    volume_type           = "st1"
    encrypted             = true
    kms_key_id            = "alias/ebs-web"
    delete_on_termination = false
  }"#;

fn volume<'a>(
    data: &'a ec2::types::ResponseLaunchTemplateData,
    device: &str,
) -> &'a ec2::types::LaunchTemplateEbsBlockDevice {
    data.block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(device))
        .and_then(|m| m.ebs())
        .unwrap_or_else(|| panic!("no volume {device} in {data:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_launch_setting_is_in_the_fleets_template() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.ec2.create_key_pair().key_name("ops").send().await?;

    // Unset: IMDSv2 required, hop limit 2; no key, no detailed monitoring, the image's
    // own volumes.
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;
    let plain = h.aws.fleet_template_data("web-r1").await?;
    let m = plain
        .metadata_options()
        .expect("metadata options are always set");
    assert_eq!(
        m.http_tokens(),
        Some(&ec2::types::LaunchTemplateHttpTokensState::Required),
        "IMDSv2 is required by default: {m:?}"
    );
    assert_eq!(m.http_put_response_hop_limit(), Some(2));
    assert_eq!(plain.key_name(), None);
    assert!(plain.block_device_mappings().is_empty());

    // Every setting: a release (fleet-shaping), web-r2 carries them.
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: SETTINGS.into(),
        ..Default::default()
    }))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("launch web-r2"),
        "a change of launch settings is a release: {}",
        plan.all()
    );
    h.apply(&[]).await?;
    let data = h.aws.fleet_template_data("web-r2").await?;
    assert_eq!(data.key_name(), Some("ops"));
    assert_eq!(data.monitoring().and_then(|m| m.enabled()), Some(true));
    let m = data.metadata_options().expect("metadata options");
    assert_eq!(
        m.http_tokens(),
        Some(&ec2::types::LaunchTemplateHttpTokensState::Required),
        "an unset http_tokens stays required: {m:?}"
    );
    assert_eq!(m.http_put_response_hop_limit(), Some(3));
    let root = volume(&data, "/dev/xvda");
    assert_eq!(root.volume_size(), Some(30));
    assert_eq!(root.volume_type(), Some(&ec2::types::VolumeType::Gp3));
    assert_eq!(root.iops(), Some(4000));
    assert_eq!(root.throughput(), Some(250));
    assert_eq!(root.encrypted(), Some(true), "encrypted by default");
    assert_eq!(root.delete_on_termination(), Some(true));
    let logs = volume(&data, "/dev/xvdb");
    assert_eq!(logs.volume_size(), Some(125));
    assert_eq!(logs.volume_type(), Some(&ec2::types::VolumeType::St1));
    assert_eq!(logs.kms_key_id(), Some("alias/ebs-web"));
    assert_eq!(logs.delete_on_termination(), Some(false));
    assert!(h.plan_is_empty().await?, "no change after the apply");

    // Setting them back is a rollback to web-r1, which has none of them.
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        // A new step reads `+ "…"` (Terraform 1.0) or `"old" -> "…"` (1.11).
        plan.says("\"traffic 100 % to web-r1\"")
            && !plan.says("+ \"launch web-r")
            && !plan.says("-> \"launch web-r"),
        "setting them back is a rollback: {}",
        plan.all()
    );
    h.apply(&[]).await?;
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r2".to_string()],
        "no third fleet"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100), ("web-r2".to_string(), 0)].into()
    );
    Ok(())
}
