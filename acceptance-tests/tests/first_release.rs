//! The first release end to end: create, an empty plan, import, scale in place, destroy.

use acceptance_tests::{Harness, ReleaseOpts};

#[tokio::test(flavor = "multi_thread")]
async fn create_plan_import_destroy() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(
        &h.release_hcl(&ReleaseOpts {
            extra: r##"  user_data = "#!/bin/sh\necho hello"
  instance_tags = { role = "web" }
  tags = { team = "web" }
  min_size = 2"##
                .into(),
            ..Default::default()
        }),
    )?;

    // 1. Create: one fleet, healthy, given all of the listener's traffic.
    let run = h.apply(&[]).await?;
    assert!(run.stdout.contains("Creation complete"), "{}", run.stdout);
    assert!(!run.says("TERRAFORM CRASH"));
    let out = h.outputs().await?;
    assert_eq!(out["release"]["value"], 1);
    assert_eq!(out["fleet_name"]["value"], "web-r1");
    assert_eq!(out["traffic"]["value"], serde_json::json!({"web-r1": 100}));
    assert!(out["previous_image_id"]["value"].is_null());

    let group = h.aws.group("web-r1").await?;
    assert_eq!(group.health_check_type(), Some("ELB"));
    assert_eq!(group.desired_capacity(), Some(2));
    let lt = group
        .launch_template()
        .expect("group uses a launch template");
    assert!(
        lt.version().unwrap().parse::<i64>().is_ok(),
        "pinned to a version number, got {:?}",
        lt.version()
    );
    let tags: std::collections::BTreeMap<&str, &str> = group
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("immutable:release-name"), Some(&"web"));
    assert_eq!(tags.get("immutable:release"), Some(&"1"));
    assert_eq!(tags.get("immutable:image-id"), Some(&h.fx.image_a.as_str()));
    assert_eq!(tags.get("team"), Some(&"web"));
    assert_eq!(group.target_group_arns().len(), 1);
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(
        h.aws.rules(&h.fx.listener_arn).await?,
        0,
        "the health-check rule is gone"
    );
    assert!(h
        .aws
        .target_group_names()
        .await?
        .contains(&"web-r1".to_string()));
    assert!(h
        .aws
        .launch_template_names()
        .await?
        .contains(&"web-r1".to_string()));

    // 2. Nothing changed: the plan is empty.
    assert!(h.plan_is_empty().await?);

    // 3. Import from AWS alone rebuilds a state whose plan is empty.
    std::fs::remove_file(h.dir.0.join("terraform.tfstate"))?;
    h.terraform(&["import", "immutable_release.web", "web"])
        .await?
        .ok()?;
    // Outputs are not part of an import; a refresh-only apply records them, nothing else.
    h.terraform(&["apply", "-refresh-only", "-auto-approve"])
        .await?
        .ok()?;
    assert!(h.plan_is_empty().await?);
    let values = h.resource_values().await?;
    assert_eq!(values["user_data"], "#!/bin/sh\necho hello");
    assert_eq!(values["history"][0]["status"], "active");

    // 4. Destroy: the listener answers 503, nothing of the release is left.
    h.terraform(&["destroy", "-auto-approve"]).await?.ok()?;
    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("fixed-response".to_string(), 503)].into()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_change_scales_in_place() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  min_size = 1".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    assert_eq!(h.aws.group("web-r1").await?.desired_capacity(), Some(1));

    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  min_size = 1\n  desired_capacity = 3\n  max_size = 4".into(),
        ..Default::default()
    }))?;
    let run = h.apply(&[]).await?;
    assert!(run.stdout.contains("1 changed"), "{}", run.stdout);
    let g = h.aws.group("web-r1").await?;
    assert_eq!(
        (g.min_size(), g.desired_capacity(), g.max_size()),
        (Some(1), Some(3), Some(4))
    );
    assert_eq!(g.instances().len(), 3);
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string()],
        "no new fleet for a capacity change"
    );
    assert_eq!(h.outputs().await?["release"]["value"], 1);
    assert!(h.plan_is_empty().await?);

    // Capacity changed by hand shows in the plan and is put back.
    h.aws.set_desired("web-r1", 2).await?;
    assert!(!h.plan_is_empty().await?);
    h.apply(&[]).await?;
    assert_eq!(h.aws.group("web-r1").await?.desired_capacity(), Some(3));
    assert!(h.plan_is_empty().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn release_deleted_outside_terraform_leaves_the_state_with_a_warning() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;

    // Someone deletes everything by hand: the listener first, then the objects.
    h.aws
        .elb
        .modify_listener()
        .listener_arn(&h.fx.listener_arn)
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder()
                        .status_code("404")
                        .build(),
                )
                .build(),
        )
        .send()
        .await?;
    h.aws
        .asg
        .delete_auto_scaling_group()
        .auto_scaling_group_name("web-r1")
        .force_delete(true)
        .send()
        .await?;
    for (arn, name) in h.aws.target_group_arns().await? {
        if name.starts_with("web-") {
            h.aws
                .elb
                .delete_target_group()
                .target_group_arn(arn)
                .send()
                .await?;
        }
    }
    for name in h.aws.launch_template_names().await? {
        h.aws
            .ec2
            .delete_launch_template()
            .launch_template_name(name)
            .send()
            .await?;
    }

    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.says("Release no longer exists"), "{}", run.all());
    assert!(run.says("1 to add"), "{}", run.all());
    h.apply(&[]).await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert!(h.plan_is_empty().await?);
    Ok(())
}
