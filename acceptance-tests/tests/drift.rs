//! Drift made outside Terraform: each case shows in `terraform plan`, `apply` puts it back,
//! and the plan after that is empty. (Capacity changed by hand is in `first_release.rs`.)

use aws_sdk_elasticloadbalancingv2 as elb;

use acceptance_tests::{Harness, ReleaseOpts};

/// Two releases: web-r2 serves, web-r1 is retained.
async fn two_releases() -> anyhow::Result<Harness> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        // A broken serving fleet drains a second before it is deleted.
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    Ok(h)
}

/// Sets the listener's default action, as someone in the console would.
async fn set_default_action(h: &Harness, action: elb::types::Action) -> anyhow::Result<()> {
    h.aws
        .elb
        .modify_listener()
        .listener_arn(&h.fx.listener_arn)
        .default_actions(action)
        .send()
        .await?;
    Ok(())
}

/// Plan shows changes, and (if given) says `text`; apply; plan is empty.
async fn plan_shows_then_apply_fixes(h: &Harness, texts: &[&str]) -> anyhow::Result<()> {
    let vars = [("image_id", h.fx.image_b.as_str())];
    let run = h
        .terraform(&[
            "plan",
            "-detailed-exitcode",
            &format!("-var=image_id={}", h.fx.image_b),
        ])
        .await?;
    assert_eq!(run.code, 2, "the plan shows the drift:\n{}", run.all());
    for t in texts {
        assert!(run.says(t), "the plan says {t:?}:\n{}", run.all());
    }
    h.apply(&vars).await?;
    assert!(h.plan_is_empty_with(&vars).await?, "plan after the fix");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_changed_by_hand_are_put_back() -> anyhow::Result<()> {
    let h = two_releases().await?;
    h.aws
        .set_forward(&h.fx.listener_arn, &[("web-r1", 50), ("web-r2", 50)])
        .await?;
    // The weights go back, and the plan's steps say so.
    plan_shows_then_apply_fixes(
        &h,
        &[
            "traffic",
            "put the release back in shape: listener weights back to web-r1 0 %, web-r2 100 %",
        ],
    )
    .await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_serving_group_is_replaced() -> anyhow::Result<()> {
    let h = two_releases().await?;
    h.aws
        .asg
        .delete_auto_scaling_group()
        .auto_scaling_group_name("web-r2")
        .force_delete(true)
        .send()
        .await?;
    plan_shows_then_apply_fixes(
        &h,
        &[
            "the Auto Scaling group of serving fleet web-r2 was deleted outside Terraform",
            "put the release back in shape: ",
        ],
    )
    .await?;
    // A new fleet of the same arguments serves; the broken one is gone; web-r1 retained.
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r3".to_string(), 100)].into()
    );
    let mut owned = h.owned_objects("web").await?;
    owned.sort();
    assert!(
        owned.iter().all(|o| !o.contains("web-r2")),
        "nothing of the broken fleet is left: {owned:?}"
    );
    let values = h.resource_values().await?;
    assert_eq!(values["fleet_name"], "web-r3");
    assert_eq!(values["image_id"], h.fx.image_b.as_str());
    let r2 = values["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["release"] == 2)
        .cloned()
        .unwrap();
    assert_eq!(r2["status"], "retired");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_serving_target_group_is_replaced() -> anyhow::Result<()> {
    let h = two_releases().await?;
    // AWS refuses to delete a target group a listener uses: someone repointed the listener
    // first, then deleted it.
    let fixed = elb::types::Action::builder()
        .r#type(elb::types::ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            elb::types::FixedResponseActionConfig::builder()
                .status_code("200")
                .build(),
        )
        .build();
    set_default_action(&h, fixed).await?;
    let arns = h.aws.target_group_arns().await?;
    let r2 = arns
        .iter()
        .find(|(_, n)| n.as_str() == "web-r2")
        .map(|(a, _)| a.clone())
        .unwrap();
    h.aws
        .elb
        .delete_target_group()
        .target_group_arn(r2)
        .send()
        .await?;
    plan_shows_then_apply_fixes(
        &h,
        &[
            "the target group of serving fleet web-r2 was deleted outside Terraform",
            "put the release back in shape: ",
        ],
    )
    .await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r3".to_string(), 100)].into()
    );
    assert!(h.aws.group_names().await?.iter().all(|g| g != "web-r2"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_not_from_the_serving_launch_template_are_replaced() -> anyhow::Result<()> {
    let h = two_releases().await?;
    // Someone made a new version of the fleet's launch template (another image) and
    // pointed the group at it.
    let lt = h
        .aws
        .ec2
        .create_launch_template_version()
        .launch_template_name("web-r2")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&h.fx.image_a)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await?;
    let version = lt
        .launch_template_version()
        .and_then(|v| v.version_number())
        .unwrap();
    h.aws
        .asg
        .update_auto_scaling_group()
        .auto_scaling_group_name("web-r2")
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name("web-r2")
                .version(version.to_string())
                .build(),
        )
        .send()
        .await?;
    plan_shows_then_apply_fixes(&h, &["was switched to launch template"]).await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r3".to_string(), 100)].into()
    );
    let g = h.aws.group("web-r3").await?;
    assert_eq!(
        g.launch_template().and_then(|l| l.version()),
        Some("1"),
        "the replacement pins its own template's version"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn setting_the_image_back_to_a_retained_fleet_deleted_outside_releases_a_new_fleet(
) -> anyhow::Result<()> {
    let h = two_releases().await?;
    h.aws
        .asg
        .delete_auto_scaling_group()
        .auto_scaling_group_name("web-r1")
        .force_delete(true)
        .send()
        .await?;
    let image_a = h.fx.image_a.clone();
    let plan = h
        .terraform(&["plan", &format!("-var=image_id={image_a}")])
        .await?;
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.all().contains("Rollback target is gone"),
        "{}",
        plan.all()
    );
    assert!(
        plan.all().contains("retained fleet web-r1 (image ami-"),
        "{}",
        plan.all()
    );
    // Not a refusal: a fresh release from that image, and the next plan is empty.
    h.apply(&[("image_id", &image_a)]).await?;
    let values = h.resource_values().await?;
    assert_eq!(values["fleet_name"], "web-r3", "{values}");
    assert_eq!(values["image_id"], image_a.as_str(), "{values}");
    assert!(h.plan_is_empty_with(&[("image_id", &image_a)]).await?);
    assert!(!h.aws.group_names().await?.contains(&"web-r1".to_string()));
    Ok(())
}
