//! Bad input is refused at `terraform plan`, with the attribute and what is allowed, and
//! nothing is created.

use acceptance_tests::{Harness, ReleaseOpts};

struct Case {
    extra: &'static str,
    lb_extra: &'static str,
    /// Text of the source line Terraform underlines (the attribute).
    line: &'static str,
    /// Part of the sentence that says what is allowed.
    says: &'static str,
}

const CASES: &[Case] = &[
    Case { extra: "", lb_extra: "", line: "name          = \"Web_1\"", says: "1 to 24 characters" },
    Case { extra: "  min_size = 3\n  desired_capacity = 2", lb_extra: "", line: "desired_capacity = 2", says: "at least min_size (3)" },
    Case { extra: "  desired_capacity = 5\n  max_size = 4", lb_extra: "", line: "desired_capacity = 5", says: "at most max_size (4)" },
    Case { extra: "  strategy = \"canary\"", lb_extra: "", line: "strategy = \"canary\"", says: "needs at least one canary_step" },
    Case { extra: "  strategy = \"rolling\"", lb_extra: "", line: "strategy = \"rolling\"", says: "\"blue_green\" or \"canary\"" },
    Case { extra: "  canary_step {\n    weight = 10\n  }", lb_extra: "", line: "weight = 10", says: "only allowed with strategy = \"canary\"" },
    Case { extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 50\n  }\n  canary_step {\n    weight = 50\n  }", lb_extra: "", line: "weight = 50", says: "increase strictly" },
    Case { extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 100\n  }", lb_extra: "", line: "weight = 100", says: "between 1 and 99" },
    Case { extra: "  retain_fleets = 4", lb_extra: "", line: "retain_fleets = 4", says: "between 0 and 3" },
    Case { extra: "  history_limit = 0", lb_extra: "", line: "history_limit = 0", says: "between 1 and 100" },
    Case { extra: "  bake_time = \"5 minutes\"", lb_extra: "", line: "bake_time = \"5 minutes\"", says: "must be a duration" },
    Case { extra: "  health {\n    min_healthy_percentage = 0\n  }", lb_extra: "", line: "min_healthy_percentage = 0", says: "between 1 and 100" },
    Case { extra: "  health {\n    timeout = \"soon\"\n  }", lb_extra: "", line: "timeout = \"soon\"", says: "must be a duration" },
    Case { extra: "  tags = { \"immutable:owner\" = \"me\" }", lb_extra: "", line: "tags = {", says: "reserved" },
    Case { extra: "  subnet_ids = []", lb_extra: "", line: "subnet_ids = []", says: "at least one subnet" },
    Case { extra: "", lb_extra: "    port = 70000", line: "port = 70000", says: "between 1 and 65535" },
    Case { extra: "", lb_extra: "    health_check {\n      interval = 5\n      timeout = 5\n    }", line: "timeout = 5", says: "less than interval" },
    Case { extra: "", lb_extra: "    health_check {\n      interval = 5\n    }", line: "interval = 5", says: "more than timeout (5, the default when unset)" },
    Case { extra: "  rollback_window = \"30s\"", lb_extra: "", line: "rollback_window = \"30s\"", says: "at least 1m" },
    Case { extra: "  desired_capacity = 0\n  min_size = 0", lb_extra: "", line: "desired_capacity = 0", says: "at least 1" },
    Case { extra: "  min_size = 0", lb_extra: "", line: "min_size = 0", says: "would launch no instance" },
    // Launch settings (issue 14).
    Case { extra: "  key_name = \"\"", lb_extra: "", line: "key_name = \"\"", says: "1–255 characters" },
    Case { extra: "  metadata_options {\n    http_tokens = \"v2\"\n  }", lb_extra: "", line: "http_tokens = \"v2\"", says: "\"required\" or \"optional\"" },
    Case { extra: "  metadata_options {\n    http_put_response_hop_limit = 65\n  }", lb_extra: "", line: "http_put_response_hop_limit = 65", says: "between 1 and 64" },
    Case { extra: "  block_device {\n    device_name = \"/dev/xvda\"\n    volume_type = \"gp4\"\n  }", lb_extra: "", line: "volume_type = \"gp4\"", says: "one of gp3, gp2, io1, io2, st1, sc1, standard" },
    Case { extra: "  block_device {\n    device_name = \"/dev/xvda\"\n    volume_size = 0\n  }", lb_extra: "", line: "volume_size = 0", says: "(gp3, GiB) must be between 1 and 16384" },
    Case { extra: "  block_device {\n    device_name = \"/dev/xvda\"\n    volume_type = \"gp2\"\n    iops = 3000\n  }", lb_extra: "", line: "iops = 3000", says: "only by volume types gp3, io1 and io2" },
    Case { extra: "  block_device {\n    device_name = \"/dev/xvda\"\n    volume_type = \"io1\"\n  }", lb_extra: "", line: "volume_type = \"io1\"", says: "iops is required" },
    Case { extra: "  block_device {\n    device_name = \"/dev/xvda\"\n    throughput = 2000\n  }", lb_extra: "", line: "throughput = 2000", says: "between 125 and 1000" },
    Case { extra: "  block_device {\n    device_name = \"/dev/xvda\"\n    encrypted = false\n    kms_key_id = \"alias/ebs\"\n  }", lb_extra: "", line: "kms_key_id = \"alias/ebs\"", says: "needs encrypted = true" },
    Case { extra: "  key_name = \"nobody\"", lb_extra: "", line: "key_name = \"nobody\"", says: "is not an EC2 key pair in this region" },
    // A base launch template (issue 14).
    Case { extra: "  launch_template {\n    id = \"platform-base\"\n  }", lb_extra: "", line: "id = \"platform-base\"", says: "a launch template ID (\"lt-\" and 17 hexadecimal digits), not a name" },
    Case { extra: "  launch_template {\n    id = \"lt-0123456789abcdef0\"\n    version = \"latest\"\n  }", lb_extra: "", line: "version = \"latest\"", says: "\"$Latest\", \"$Default\" or a version number from 1" },
    // Scaling policies (issue 14).
    Case { extra: "  target_tracking {\n    predefined_metric = \"RequestCount\"\n    target_value = 500\n  }", lb_extra: "", line: "predefined_metric = \"RequestCount\"", says: "must be one of ASGAverageCPUUtilization, ASGAverageNetworkIn, ASGAverageNetworkOut, ALBRequestCountPerTarget" },
    Case { extra: "  target_tracking {\n    predefined_metric = \"ALBRequestCountPerTarget\"\n    target_value = 0\n  }", lb_extra: "", line: "target_value = 0", says: "must be greater than 0" },
    Case { extra: "  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value = 150\n  }", lb_extra: "", line: "target_value = 150", says: "a percentage, at most 100" },
    Case { extra: "  target_tracking {\n    predefined_metric = \"ALBRequestCountPerTarget\"\n    target_value = 500\n  }\n  target_tracking {\n    predefined_metric = \"ALBRequestCountPerTarget\"\n    target_value = 800\n  }", lb_extra: "", line: "predefined_metric = \"ALBRequestCountPerTarget\"", says: "is given twice" },
    Case { extra: "  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value = 50\n  }\n  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value = 50\n  }\n  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value = 50\n  }\n  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value = 50\n  }\n  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value = 50\n  }\n  target_tracking {\n    predefined_metric = \"ASGAverageCPUUtilization\"\n    target_value = 50\n  }", lb_extra: "", line: "predefined_metric = \"ASGAverageCPUUtilization\"", says: "at most 5 blocks" },
    // Safe on real AWS, part 3 (issue 21): what AWS would refuse or silently undo.
    Case { extra: "", lb_extra: "    health_check {\n      matcher = \"200-600\"\n    }", line: "matcher = \"200-600\"", says: "HTTP codes from 200 to 499" },
    Case { extra: "", lb_extra: "    health_check {\n      matcher = \"2xx\"\n    }", line: "matcher = \"2xx\"", says: "a range (\"200-299\")" },
    Case { extra: "  tags = { role = \"api\" }\n  instance_tags = { role = \"web\" }", lb_extra: "", line: "instance_tags = { role = \"web\" }", says: "AWS puts the group's value (tags) over the launch template's" },
    Case { extra: "  tags = { for i in range(46) : \"k${i}\" => \"v\" }", lb_extra: "", line: "tags = { for i in range(46)", says: "at most 45 tags" },
];

#[tokio::test(flavor = "multi_thread")]
async fn bad_configurations_are_refused_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    for case in CASES {
        let mut hcl = h.release_hcl(&ReleaseOpts {
            extra: case.extra.to_string(),
            lb_extra: case.lb_extra.to_string(),
            ..Default::default()
        });
        if case.line.starts_with("name ") {
            hcl = hcl.replace("name          = \"web\"", case.line);
        }
        if case.line.starts_with("subnet_ids") {
            let start = hcl.find("  subnet_ids    = [").unwrap();
            let end = start + hcl[start..].find('\n').unwrap();
            hcl.replace_range(start..end, "");
        }
        h.write(&hcl)?;
        let run = h.terraform(&["plan"]).await?;
        let all = run.all();
        assert_eq!(
            run.code, 1,
            "case {:?} should fail at plan:\n{all}",
            case.line
        );
        assert!(
            run.says(case.says),
            "case {:?}: missing {:?} in:\n{all}",
            case.line,
            case.says
        );
        assert!(
            run.says(case.line),
            "case {:?}: the attribute's line is not shown:\n{all}",
            case.line
        );
        assert!(!all.contains("TERRAFORM CRASH"), "{all}");
    }
    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    Ok(())
}

/// An alarm that does not exist: the plan warns on `alarm_names` (the configuration may be
/// about to create it); the apply refuses before it changes anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_alarm_is_a_warning_at_plan_and_refused_at_apply() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  alarm_names = [\"web-no-such-alarm\"]".into(),
        ..Default::default()
    }))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("Warning: Alarm not found") && plan.says("web-no-such-alarm"),
        "{}",
        plan.all()
    );
    let run = h.terraform(&["apply", "-auto-approve"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.says("no CloudWatch alarm named web-no-such-alarm") && run.says("Nothing was changed"),
        "{}",
        run.all()
    );
    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn checks_that_need_aws_run_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    // An image ID of the right form that does not exist.
    h.write(&h.release_hcl(&ReleaseOpts {
        image: Some("ami-0123456789abcdef0".into()),
        ..Default::default()
    }))?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.says("ami-0123456789abcdef0 does not exist"),
        "{}",
        run.all()
    );
    assert!(run.says("image_id      = var.image_id"), "{}", run.all());

    // A malformed image ID is refused before AWS is asked.
    let run = h.terraform(&["plan", "-var=image_id=ami-123"]).await?;
    assert_eq!(run.code, 1);
    assert!(run.says("8 or 17 hexadecimal digits"), "{}", run.all());

    // A listener that does not exist.
    let hcl = h
        .release_hcl(&Default::default())
        .replace(&h.fx.listener_arn, "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/nope/0123456789abcdef/0123456789abcdef");
    h.write(&hcl)?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all()
            .contains("does not exist: create the listener first"),
        "{}",
        run.all()
    );
    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    Ok(())
}

/// A load balancer holds at most 100 target groups: a release that would add the 101st is
/// refused at plan with the count; nothing changes, and one fewer makes room.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_load_balancer_is_refused_at_plan_with_the_count() -> anyhow::Result<()> {
    use aws_sdk_elasticloadbalancingv2 as elb;
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    // 99 target groups of another service, behind rules of another listener: 100 with
    // web-r1's.
    let other = h.aws.add_listener(&h.fx.load_balancer_arn, 8080).await?;
    let mut rules = Vec::new();
    for i in 1..=99 {
        let tg = h
            .aws
            .elb
            .create_target_group()
            .name(format!("other-{i}"))
            .protocol(elb::types::ProtocolEnum::Http)
            .port(80)
            .vpc_id(&h.fx.vpc_id)
            .send()
            .await?;
        let arn = tg.target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        let rule = h
            .aws
            .elb
            .create_rule()
            .listener_arn(&other)
            .priority(i)
            .conditions(
                elb::types::RuleCondition::builder()
                    .field("path-pattern")
                    .path_pattern_config(
                        elb::types::PathPatternConditionConfig::builder()
                            .values(format!("/svc{i}/*"))
                            .build(),
                    )
                    .build(),
            )
            .actions(
                elb::types::Action::builder()
                    .r#type(elb::types::ActionTypeEnum::Forward)
                    .target_group_arn(&arn)
                    .build(),
            )
            .send()
            .await?;
        rules.push(rule.rules()[0].rule_arn().unwrap().to_string());
    }
    let image_b = format!("-var=image_id={}", h.fx.image_b);
    let run = h.terraform(&["plan", &image_b]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    let text = acceptance_tests::fold(&run.all());
    assert!(text.contains("holds 100 target groups"), "{}", run.all());
    assert!(
        text.contains("limit for an Application Load Balancer is 100"),
        "{}",
        run.all()
    );
    assert!(
        text.contains("holds 3 at most (2 + retain_fleets)"),
        "{}",
        run.all()
    );
    assert!(
        run.says("listener_arn"),
        "the attribute is named: {}",
        run.all()
    );
    assert_eq!(h.resource_values().await?["release"], 1);
    // One target group fewer: room for the release's.
    h.aws.elb.delete_rule().rule_arn(&rules[0]).send().await?;
    let run = h.terraform(&["plan", &image_b]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    Ok(())
}

/// A change of `tags` alone (a settings update, no release) that would take the objects
/// past AWS's 50 tags with the provider's `default_tags` is refused at plan, as a release
/// would be.
#[tokio::test(flavor = "multi_thread")]
async fn a_tags_only_update_past_the_limit_is_refused_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let with = |n: usize| {
        h.release_hcl(&ReleaseOpts {
            extra: format!("  tags = {{ for i in range({n}) : \"k${{i}}\" => \"v\" }}"),
            ..Default::default()
        })
        .replace(
            "  endpoint_url  =",
            "  default_tags  = { for i in range(10) : \"d${i}\" => \"v\" }\n  endpoint_url  =",
        )
    };
    h.write(&with(30))?;
    h.apply(&[]).await?;
    h.write(&with(40))?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        acceptance_tests::fold(&run.all()).contains("at most 45 tags (default_tags included)"),
        "{}",
        run.all()
    );
    h.write(&with(35))?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 0, "45 in all is allowed: {}", run.all());
    Ok(())
}
