//! Scaling policies (`target_tracking`, issue 14): they are on the serving fleet only —
//! a request-count policy bound to that fleet's own target group and the load balancer —,
//! move with a release, come back with a rollback, and change in place on a settings
//! update without a release.

use acceptance_tests::{Harness, ReleaseOpts};

fn policies(requests: u32) -> String {
    format!(
        r#"  max_size = 4
  target_tracking {{
    predefined_metric = "ALBRequestCountPerTarget"
    target_value      = {requests}
  }}
  target_tracking {{
    predefined_metric = "ASGAverageCPUUtilization"
    target_value      = 60
    disable_scale_in  = true
  }}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_are_on_the_serving_fleet_only() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (a, b) = (h.fx.image_a.clone(), h.fx.image_b.clone());
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: policies(500),
        ..Default::default()
    }))?;
    let lb =
        h.fx.load_balancer_arn
            .split_once(":loadbalancer/")
            .map(|(_, l)| l.to_string())
            .expect("a load balancer ARN");
    let want = |fleet: &str, tgs: &std::collections::BTreeMap<String, String>, requests: f64| {
        let arn = tgs
            .iter()
            .find(|(_, name)| name.as_str() == fleet)
            .unwrap()
            .0;
        let tg = arn.split_once(":targetgroup/").unwrap().1.to_string();
        vec![
            (
                "ALBRequestCountPerTarget".to_string(),
                requests,
                Some(format!("{lb}/targetgroup/{tg}")),
            ),
            ("ASGAverageCPUUtilization".to_string(), 60.0, None),
        ]
    };

    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("scaling policies on web-r1 before it takes traffic: ALBRequestCountPerTarget at 500, ASGAverageCPUUtilization at 60 (scale-out only)"),
        "the plan says which policies: {}",
        plan.all()
    );
    h.apply(&[("image_id", &a)]).await?;
    let tgs = h.aws.target_group_arns().await?;
    assert_eq!(
        h.aws.scaling_policies("web-r1").await?,
        want("web-r1", &tgs, 500.0)
    );
    assert!(
        h.plan_is_empty_with(&[("image_id", &a)]).await?,
        "no change after the apply"
    );

    // The policies scale the serving fleet out: with desired_capacity unset, no change to
    // plan (nothing is put back), and the next release carries that capacity over.
    h.aws.set_desired("web-r1", 2).await?;
    assert!(
        h.plan_is_empty_with(&[("image_id", &a)]).await?,
        "a desired capacity the policies set is theirs"
    );

    // A release: on web-r2, off web-r1 (retained, it holds its capacity).
    h.apply(&[("image_id", &b)]).await?;
    let tgs = h.aws.target_group_arns().await?;
    assert_eq!(
        h.aws.scaling_policies("web-r2").await?,
        want("web-r2", &tgs, 500.0)
    );
    assert_eq!(h.aws.scaling_policies("web-r1").await?, vec![]);
    assert_eq!(
        h.aws.group("web-r2").await?.desired_capacity(),
        Some(2),
        "the serving fleet's desired capacity at that moment"
    );

    // A rollback: back on web-r1, off web-r2.
    h.apply(&[("image_id", &a)]).await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100), ("web-r2".to_string(), 0)].into()
    );
    assert_eq!(
        h.aws.scaling_policies("web-r1").await?,
        want("web-r1", &tgs, 500.0)
    );
    assert_eq!(h.aws.scaling_policies("web-r2").await?, vec![]);

    // A new target: a settings update of the serving fleet, no release.
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: policies(800),
        ..Default::default()
    }))?;
    let plan = h
        .terraform(&["plan", &format!("-var=image_id={a}")])
        .await?
        .ok()?;
    assert!(
        plan.says("scaling policies of web-r1: ALBRequestCountPerTarget at 800")
            && !plan.says("launch web-r"),
        "a settings update, no release: {}",
        plan.all()
    );
    h.apply(&[("image_id", &a)]).await?;
    assert_eq!(
        h.aws.scaling_policies("web-r1").await?,
        want("web-r1", &tgs, 800.0)
    );
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r2".to_string()],
        "no fleet made"
    );

    // Drift: a policy deleted outside Terraform shows in the plan and is put back.
    h.aws
        .asg
        .delete_policy()
        .auto_scaling_group_name("web-r1")
        .policy_name("web-r1-ASGAverageCPUUtilization")
        .send()
        .await?;
    let plan = h
        .terraform(&["plan", &format!("-var=image_id={a}")])
        .await?
        .ok()?;
    assert!(
        plan.says("target_tracking") && plan.says("ASGAverageCPUUtilization"),
        "the plan shows the missing policy: {}",
        plan.all()
    );
    h.apply(&[("image_id", &a)]).await?;
    assert_eq!(
        h.aws.scaling_policies("web-r1").await?,
        want("web-r1", &tgs, 800.0)
    );
    assert!(h.plan_is_empty_with(&[("image_id", &a)]).await?);

    // Removed from the configuration: off the serving fleet.
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[("image_id", &a)]).await?;
    assert_eq!(h.aws.scaling_policies("web-r1").await?, vec![]);
    assert!(h.plan_is_empty_with(&[("image_id", &a)]).await?);
    Ok(())
}

/// Metric → whether its policy on `group` may scale in.
async fn scale_in(aws: &acceptance_tests::Aws, group: &str) -> anyhow::Result<Vec<(String, bool)>> {
    let out = aws
        .asg
        .describe_policies()
        .auto_scaling_group_name(group)
        .send()
        .await?;
    let mut v: Vec<(String, bool)> = out
        .scaling_policies()
        .iter()
        .filter(|p| p.auto_scaling_group_name() == Some(group))
        .filter_map(|p| {
            let c = p.target_tracking_configuration()?;
            let m = c
                .predefined_metric_specification()?
                .predefined_metric_type()?;
            Some((
                m.as_str().to_string(),
                !c.disable_scale_in().unwrap_or(false),
            ))
        })
        .collect();
    v.sort();
    Ok(v)
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_canary_neither_fleet_scales_in() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let (a, b) = (h.fx.image_a.clone(), h.fx.image_b.clone());
    let canary = r#"  strategy = "canary"
  canary_step {
    weight = 50
    pause  = "4s"
  }
  target_tracking {
    predefined_metric = "ALBRequestCountPerTarget"
    target_value      = 500
  }"#;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: canary.into(),
        ..Default::default()
    }))?;
    h.apply(&[("image_id", &a)]).await?;
    let metric = "ALBRequestCountPerTarget".to_string();
    assert_eq!(
        scale_in(&h.aws, "web-r1").await?,
        vec![(metric.clone(), true)]
    );

    let var = format!("-var=image_id={b}");
    let mut child = h.spawn_terraform(&["apply", "-auto-approve", "-input=false", &var])?;
    let listener = h.fx.listener_arn.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let w = h.aws.listener_weights(&listener).await?;
        if w.get("web-r2") == Some(&50) {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "never at 50 %: {w:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // In the pause at 50 %: both carry their policy, neither scales in.
    assert_eq!(
        scale_in(&h.aws, "web-r1").await?,
        vec![(metric.clone(), false)]
    );
    assert_eq!(
        scale_in(&h.aws, "web-r2").await?,
        vec![(metric.clone(), false)]
    );
    let status = child.wait().await?;
    assert!(status.success(), "the canary apply ends well");
    assert_eq!(scale_in(&h.aws, "web-r2").await?, vec![(metric, true)]);
    assert_eq!(scale_in(&h.aws, "web-r1").await?, vec![]);
    assert!(h.plan_is_empty_with(&[("image_id", &b)]).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn target_tracking_without_room_to_scale_out_is_warned_of_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let policy = "  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value      = 60\n  }";
    for (lines, warned) in [
        // max_size unset: the larger of min_size and desired_capacity.
        (policy.to_string(), true),
        (format!("{policy}\n  max_size = 6"), false),
    ] {
        h.write(&h.release_hcl(&ReleaseOpts {
            extra: lines.clone(),
            ..Default::default()
        }))?;
        let run = h.terraform(&["plan"]).await?.ok()?;
        assert_eq!(
            run.says("target_tracking cannot scale out")
                && run.says("(unset, it defaults to the larger of min_size and desired_capacity)"),
            warned,
            "{lines}: {}",
            run.all()
        );
    }
    Ok(())
}
