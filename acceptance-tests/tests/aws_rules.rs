//! What AWS refuses for a while, as the fault proxy reproduces it (`proxy::AwsRules`, on by
//! default): the proxy's refusals on their own, then a release that meets them — a group
//! whose instance profile IAM has not propagated yet, and a group deleted while its
//! scaling activity still runs — and gets through by retrying on AWS's error codes. Then
//! AWS's lagging reads and slow deletions, its hard limits, and targets in an Availability
//! Zone the load balancer does not serve.

use std::time::Duration;

use acceptance_tests::proxy::{query, AwsRules, Faults, Outcome, TEST_AWS_RULES};
use acceptance_tests::{Harness, ReleaseOpts};

const IAM: (&str, &str) = ("iam", "2010-05-08");
const ASG: (&str, &str) = ("autoscaling", "2011-01-01");
const ELB: (&str, &str) = ("elasticloadbalancing", "2015-12-01");
const EC2: (&str, &str) = ("ec2", "2016-11-15");

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_refuses_a_group_while_a_new_profile_propagates() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let create_group = [
        ("Action", "CreateAutoScalingGroup"),
        ("AutoScalingGroupName", "probe"),
        ("MinSize", "0"),
        ("MaxSize", "0"),
    ];
    // Before any profile: forwarded (the emulator answers what it answers).
    let before = query(&h.proxy.url, ASG.0, ASG.1, &create_group)
        .await
        .unwrap_or_default();
    assert!(!before.contains("Invalid IAM Instance Profile"), "{before}");
    query(
        &h.proxy.url,
        IAM.0,
        IAM.1,
        &[
            ("Action", "CreateInstanceProfile"),
            ("InstanceProfileName", "fresh"),
        ],
    )
    .await;
    let refused = query(&h.proxy.url, ASG.0, ASG.1, &create_group)
        .await
        .unwrap_or_default();
    assert!(
        refused.contains("<Code>ValidationError</Code>"),
        "{refused}"
    );
    assert!(
        refused.contains("Invalid IAM Instance Profile name"),
        "{refused}"
    );
    tokio::time::sleep(TEST_AWS_RULES.profile_propagation + Duration::from_millis(200)).await;
    let after = query(&h.proxy.url, ASG.0, ASG.1, &create_group)
        .await
        .unwrap_or_default();
    assert!(!after.contains("Invalid IAM Instance Profile"), "{after}");
    // With the emulator's plain answers, never.
    h.proxy.set_faults(Faults::plain());
    query(
        &h.proxy.url,
        IAM.0,
        IAM.1,
        &[
            ("Action", "CreateInstanceProfile"),
            ("InstanceProfileName", "fresh2"),
        ],
    )
    .await;
    let plain = query(&h.proxy.url, ASG.0, ASG.1, &create_group)
        .await
        .unwrap_or_default();
    assert!(!plain.contains("Invalid IAM Instance Profile"), "{plain}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_gets_through_a_new_profile_and_an_abort_through_a_busy_group(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    // Windows long enough that the apply meets them however busy the machine is (the suite
    // runs tests side by side): a Terraform run that takes a few seconds to reach its
    // CreateAutoScalingGroup still finds the profile propagating.
    h.proxy.set_faults(Faults {
        aws_rules: Some(AwsRules {
            profile_propagation: Duration::from_secs(20),
            activity: Duration::from_secs(8),
            ..TEST_AWS_RULES
        }),
        ..Faults::default()
    });
    // The profile is made right before the apply, as a configuration that makes it in the
    // same apply would.
    query(
        &h.proxy.url,
        IAM.0,
        IAM.1,
        &[
            ("Action", "CreateInstanceProfile"),
            ("InstanceProfileName", "web-profile"),
        ],
    )
    .await;
    h.write(
        &h.release_hcl(&ReleaseOpts {
            extra:
                "  iam_instance_profile = \"web-profile\"\n  health {\n    timeout = \"1s\"\n  }"
                    .into(),
            ..Default::default()
        }),
    )?;
    let run = h.terraform(&["apply", "-auto-approve"]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    let refused_creates = h
        .proxy
        .log()
        .iter()
        .filter(|s| s.action == "CreateAutoScalingGroup" && s.outcome == Outcome::Refused)
        .count();
    assert!(refused_creates >= 1, "the profile was never refused");
    eprintln!("CreateAutoScalingGroup refused {refused_creates} time(s) while the profile propagated; the release went on");
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);

    // A release that aborts at once: its group is deleted while its launch still runs.
    h.proxy.set_faults(Faults {
        unhealthy_targets: true,
        aws_rules: Some(AwsRules {
            activity: Duration::from_secs(8),
            ..TEST_AWS_RULES
        }),
        ..Faults::default()
    });
    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={}", h.fx.image_b),
        ])
        .await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains("release web-r2 aborted"),
        "{}",
        run.all()
    );
    assert!(
        !run.all().contains("Clean-up was incomplete"),
        "{}",
        run.all()
    );
    let refused_deletes = h
        .proxy
        .log()
        .iter()
        .filter(|s| s.action == "DeleteAutoScalingGroup" && s.outcome == Outcome::Refused)
        .count();
    assert!(refused_deletes >= 1, "the busy group was never refused");
    eprintln!("DeleteAutoScalingGroup refused {refused_deletes} time(s) while the group's activity ran; the abort cleaned up");
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);
    assert_eq!(
        h.owned_objects("web").await?,
        vec![
            "group web-r1".to_string(),
            "target group web-r1".to_string(),
            "launch template web-ledger".to_string(),
            "launch template web-r1".to_string()
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroy_slower_than_timeouts_delete_stops_and_the_next_goes_on() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  timeouts {\n    delete = \"8s\"\n  }".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    // Deleting the group answers only after 15 s.
    h.proxy.set_faults(Faults {
        latency: Duration::from_secs(15),
        actions: vec!["DeleteAutoScalingGroup".into()],
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let run = h.terraform(&["destroy", "-auto-approve"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("Destroy timed out"), "{}", run.all());
    assert!(
        run.all().contains("within timeouts.delete (8s)"),
        "{}",
        run.all()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    h.proxy.set_faults(Faults::default());
    h.terraform(&["destroy", "-auto-approve"]).await?.ok()?;
    assert!(h.owned_objects("web").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_lags_reads_holds_deletions_and_enforces_limits() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let url = h.proxy.url.clone();
    let rules = TEST_AWS_RULES;
    // A new target group: not found by name for a moment, then found.
    let made = query(
        &url,
        ELB.0,
        ELB.1,
        &[
            ("Action", "CreateTargetGroup"),
            ("Name", "probe"),
            ("Protocol", "HTTP"),
            ("Port", "80"),
            ("VpcId", &h.fx.vpc_id),
        ],
    )
    .await
    .unwrap_or_default();
    assert!(made.contains("<TargetGroupArn>"), "{made}");
    let describe_tg = [
        ("Action", "DescribeTargetGroups"),
        ("Names.member.1", "probe"),
    ];
    let unseen = query(&url, ELB.0, ELB.1, &describe_tg)
        .await
        .unwrap_or_default();
    assert!(
        unseen.contains("<Code>TargetGroupNotFound</Code>"),
        "{unseen}"
    );
    // A new launch template: not found by name for a moment.
    let made = query(
        &url,
        EC2.0,
        EC2.1,
        &[
            ("Action", "CreateLaunchTemplate"),
            ("LaunchTemplateName", "probe"),
            ("LaunchTemplateData.ImageId", &h.fx.image_a),
        ],
    )
    .await
    .unwrap_or_default();
    assert!(made.contains("launchTemplateId"), "{made}");
    let unseen = query(
        &url,
        EC2.0,
        EC2.1,
        &[
            ("Action", "DescribeLaunchTemplates"),
            ("LaunchTemplateName.1", "probe"),
        ],
    )
    .await
    .unwrap_or_default();
    assert!(
        unseen.contains("InvalidLaunchTemplateName.NotFoundException"),
        "{unseen}"
    );
    // A new group: an empty answer for a moment.
    let create_group = [
        ("Action", "CreateAutoScalingGroup"),
        ("AutoScalingGroupName", "probe"),
        ("MinSize", "0"),
        ("MaxSize", "0"),
        ("LaunchTemplate.LaunchTemplateName", "probe"),
        ("VPCZoneIdentifier", &h.fx.subnet_ids[0]),
    ];
    let made = query(&url, ASG.0, ASG.1, &create_group)
        .await
        .unwrap_or_default();
    assert!(!made.contains("<Error>"), "{made}");
    let describe_group = [
        ("Action", "DescribeAutoScalingGroups"),
        ("AutoScalingGroupNames.member.1", "probe"),
    ];
    let unseen = query(&url, ASG.0, ASG.1, &describe_group)
        .await
        .unwrap_or_default();
    assert!(!unseen.contains("<AutoScalingGroupName>probe"), "{unseen}");
    tokio::time::sleep(rules.visibility + Duration::from_millis(200)).await;
    let seen = query(&url, ELB.0, ELB.1, &describe_tg)
        .await
        .unwrap_or_default();
    assert!(
        seen.contains("<TargetGroupName>probe</TargetGroupName>"),
        "{seen}"
    );
    let seen = query(&url, ASG.0, ASG.1, &describe_group)
        .await
        .unwrap_or_default();
    assert!(
        seen.contains("<AutoScalingGroupName>probe</AutoScalingGroupName>"),
        "{seen}"
    );
    // A live group's name is taken (the emulator would overwrite the group).
    let taken = query(&url, ASG.0, ASG.1, &create_group)
        .await
        .unwrap_or_default();
    assert!(taken.contains("<Code>AlreadyExists</Code>"), "{taken}");
    // A deleted group (once its creation's activity is over): accepted, `Delete in
    // progress` (its name taken) for a while, then gone.
    tokio::time::sleep(rules.activity).await;
    let deleted = query(
        &url,
        ASG.0,
        ASG.1,
        &[
            ("Action", "DeleteAutoScalingGroup"),
            ("AutoScalingGroupName", "probe"),
            ("ForceDelete", "true"),
        ],
    )
    .await
    .unwrap_or_default();
    assert!(!deleted.contains("<Error>"), "{deleted}");
    let deleting = query(&url, ASG.0, ASG.1, &describe_group)
        .await
        .unwrap_or_default();
    assert!(
        deleting.contains("<Status>Delete in progress</Status>"),
        "{deleting}"
    );
    let again = query(&url, ASG.0, ASG.1, &create_group)
        .await
        .unwrap_or_default();
    assert!(again.contains("AlreadyExists"), "{again}");
    tokio::time::sleep(rules.group_deletion + Duration::from_millis(500)).await;
    let gone = query(&url, ASG.0, ASG.1, &describe_group)
        .await
        .unwrap_or_default();
    assert!(!gone.contains("<AutoScalingGroupName>probe"), "{gone}");
    // Limits: six target groups in a forward action, a weight of 1000, 16 KB + 1 of user data.
    let arn = |i: usize| {
        format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/t{i}/1")
    };
    let arns: Vec<String> = (1..=6).map(arn).collect();
    let mut six = vec![
        ("Action".to_string(), "ModifyListener".to_string()),
        ("ListenerArn".to_string(), h.fx.listener_arn.clone()),
        (
            "DefaultActions.member.1.Type".to_string(),
            "forward".to_string(),
        ),
    ];
    for (i, a) in arns.iter().enumerate() {
        let k = format!(
            "DefaultActions.member.1.ForwardConfig.TargetGroups.member.{}",
            i + 1
        );
        six.push((format!("{k}.TargetGroupArn"), a.clone()));
        six.push((format!("{k}.Weight"), "0".into()));
    }
    let params: Vec<(&str, &str)> = six.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = query(&url, ELB.0, ELB.1, &params).await.unwrap_or_default();
    assert!(refused.contains("at most 5 target groups"), "{refused}");
    let heavy = [
        ("Action", "ModifyListener"),
        ("ListenerArn", h.fx.listener_arn.as_str()),
        ("DefaultActions.member.1.Type", "forward"),
        (
            "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn",
            arns[0].as_str(),
        ),
        (
            "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight",
            "1000",
        ),
    ];
    let refused = query(&url, ELB.0, ELB.1, &heavy).await.unwrap_or_default();
    assert!(refused.contains("between 0 and 999"), "{refused}");
    use base64::Engine as _;
    let big = base64::engine::general_purpose::STANDARD.encode("#".repeat(16 * 1024 + 1));
    let refused = query(
        &url,
        EC2.0,
        EC2.1,
        &[
            ("Action", "CreateLaunchTemplate"),
            ("LaunchTemplateName", "probe"),
            ("LaunchTemplateData.UserData", big.as_str()),
        ],
    )
    .await
    .unwrap_or_default();
    assert!(
        refused.contains("<Code>InvalidParameterValue</Code>"),
        "{refused}"
    );
    assert!(refused.contains("16384"), "{refused}");
    Ok(())
}

/// Reads lag for 3 s and deleted groups stay `Delete in progress` for 4 s: a release that
/// retires its predecessor (`retain_fleets = 0`) returns only once that group is really
/// gone, and a destroy likewise.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_meets_lagging_reads_and_slow_deletions() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.proxy.set_faults(Faults {
        aws_rules: Some(AwsRules {
            visibility: Duration::from_secs(3),
            group_deletion: Duration::from_secs(4),
            ..TEST_AWS_RULES
        }),
        ..Faults::default()
    });
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  retain_fleets = 0".into(),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    // The apply returned: web-r1 is gone from the emulator, not `Delete in progress`.
    assert_eq!(h.aws.group_names().await?, vec!["web-r2".to_string()]);
    let outcomes = h.proxy.outcomes();
    let unseen = outcomes.get(&Outcome::NotYetVisible).copied().unwrap_or(0);
    let held = outcomes.get(&Outcome::DeleteHeld).copied().unwrap_or(0);
    eprintln!("describes that did not see a new object yet: {unseen}; deletions held: {held}");
    assert!(unseen >= 1, "the release never met a lagging read");
    assert!(held >= 1, "no deletion was held");
    let deleting_seen = h
        .proxy
        .log()
        .iter()
        .filter(|s| s.action == "DescribeAutoScalingGroups" && s.body.contains("web-r1"))
        .count();
    assert!(deleting_seen >= 2, "the deletion was not waited for");
    h.terraform(&["destroy", "-auto-approve"]).await?.ok()?;
    assert!(h.aws.group_names().await?.is_empty());
    assert!(h.owned_objects("web").await?.is_empty());
    Ok(())
}

/// Targets in an Availability Zone the load balancer does not serve stay `unused`
/// (`Target.NotInUse`) although routed: the release aborts after the grace (two health
/// check intervals, at least 10 s) rather than at the 10-minute health timeout, says why,
/// and traffic stays where it was.
#[tokio::test(flavor = "multi_thread")]
async fn targets_in_a_zone_the_load_balancer_does_not_serve_abort_fast() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        lb_extra:
            "    deregistration_delay = 1\n    health_check {\n      interval = 5\n      timeout  = 2\n    }"
                .into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    h.proxy.set_faults(Faults {
        zone_not_served: vec!["web-r2".into()],
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={}", h.fx.image_b),
        ])
        .await?;
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.all());
    let text = run.all();
    assert!(text.contains("Target.NotInUse"), "{text}");
    assert!(text.contains("Availability Zone"), "{text}");
    assert!(
        text.contains("Traffic stayed on release 1 (web-r1)"),
        "{text}"
    );
    eprintln!("aborted after {took:?} (health timeout 10m)");
    assert!(took < Duration::from_secs(120), "{took:?}");
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);
    Ok(())
}
