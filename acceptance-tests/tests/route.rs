//! The route the release owns: authentication in front of it is kept through every step;
//! a release on a listener rule and one on the default action never touch each other's
//! route; a lost ledger is rebuilt from the fleets' tags and never costs the serving fleet.

use std::time::Duration;

use acceptance_tests::proxy::Faults;
use acceptance_tests::{config_head, Harness, ReleaseOpts, RouteWatcher};

const EVERY: Duration = Duration::from_millis(100);

const CANARY: &str = r#"  strategy = "canary"
  canary_step {
    weight = 25
    pause  = "1s"
  }
  health {
    timeout = "5s"
  }"#;

#[tokio::test(flavor = "multi_thread")]
async fn authentication_stands_first_through_create_canary_abort_rollback_and_destroy(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_oidc_in_front(&h.fx.listener_arn).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: CANARY.into(),
        ..Default::default()
    }))?;
    let watcher = RouteWatcher::start(h.aws.clone(), &h.fx.listener_arn, None, EVERY);

    h.apply(&[]).await?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    // A release whose fleet never becomes healthy: aborted, the route put back.
    h.proxy.set_faults(Faults {
        unhealthy_targets: true,
        ..Default::default()
    });
    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={}", h.fx.image_c),
        ])
        .await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains("release web-r3 aborted"),
        "{}",
        run.all()
    );
    h.proxy.set_faults(Faults::default());
    // Rollback to the first image.
    h.apply(&[("image_id", &h.fx.image_a)]).await?;
    h.terraform(&["destroy", "-auto-approve"]).await?.ok()?;
    let samples = watcher.stop().await?;

    assert!(samples.len() > 20, "{} samples", samples.len());
    eprintln!(
        "{} samples of the listener every 100 ms through create, canary, abort, rollback, destroy",
        samples.len()
    );
    let bare: Vec<&Vec<String>> = samples
        .iter()
        .filter(|s| s.first().map(String::as_str) != Some("authenticate-oidc") || s.len() != 2)
        .collect();
    assert!(
        bare.is_empty(),
        "{} of {} samples had no authentication in front: {:?}",
        bare.len(),
        samples.len(),
        &bare[..bare.len().min(5)]
    );
    // Every step was seen behind the authentication: the canary's split, and at the end the
    // fixed 503 of destroy.
    assert!(
        samples.iter().any(|s| s[1].contains("web-r2=25")),
        "{samples:?}"
    );
    assert_eq!(
        samples.last().unwrap(),
        &vec![
            "authenticate-oidc".to_string(),
            "fixed-response:503".to_string()
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_behind_a_host_rule_and_one_on_the_default_action_never_touch_each_other(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let rule = h
        .aws
        .add_host_rule(&h.fx.listener_arn, "api.example.com", 10)
        .await?;
    let subnets = serde_json::to_string(&h.fx.subnet_ids)?;
    let release = |resource: &str, image: &str, rule: &str| {
        format!(
            r#"
resource "immutable_release" "{resource}" {{
  name          = "{resource}"
  image_id      = var.{image}
  instance_type = "t3.micro"
  subnet_ids    = {subnets}
  load_balancer {{
    listener_arn = "{listener}"
    vpc_id       = "{vpc}"
{rule}
  }}
}}
"#,
            listener = h.fx.listener_arn,
            vpc = h.fx.vpc_id,
        )
    };
    let both = format!(
        "{}\nvariable \"api_image\" {{\n  type    = string\n  default = \"{}\"\n}}\n{}{}",
        config_head(&h.proxy.url, "  poll_interval = \"100ms\"\n", &h.fx.image_a),
        h.fx.image_a,
        release("web", "image_id", ""),
        release(
            "api",
            "api_image",
            &format!("    rule_arn     = \"{rule}\"")
        ),
    );
    h.write(&both)?;
    h.apply(&[]).await?;
    assert_eq!(
        h.aws.route_actions(&h.fx.listener_arn, Some(&rule)).await?,
        ["forward:api-r1=100"]
    );
    assert_eq!(
        h.aws.route_actions(&h.fx.listener_arn, None).await?,
        ["forward:web-r1=100"]
    );

    // api: released and rolled back while the default action is watched.
    let default = RouteWatcher::start(h.aws.clone(), &h.fx.listener_arn, None, EVERY);
    h.apply(&[("api_image", &h.fx.image_b)]).await?;
    assert_eq!(
        h.aws.route_actions(&h.fx.listener_arn, Some(&rule)).await?,
        ["forward:api-r2=100,api-r1=0"]
    );
    h.apply(&[("api_image", &h.fx.image_a)]).await?;
    let seen = default.stop().await?;
    assert!(
        seen.iter()
            .all(|s| s == &["forward:web-r1=100".to_string()]),
        "the default action changed while api released: {seen:?}"
    );

    // web: released while the rule is watched.
    let api = RouteWatcher::start(h.aws.clone(), &h.fx.listener_arn, Some(&rule), EVERY);
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    let seen = api.stop().await?;
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|s| s == &["forward:api-r1=100,api-r2=0".to_string()]),
        "the rule changed while web released: {seen:?}"
    );

    // api destroyed alone: its rule answers 503, web's route is as it was.
    let default = RouteWatcher::start(h.aws.clone(), &h.fx.listener_arn, None, EVERY);
    h.terraform(&["destroy", "-auto-approve", "-target=immutable_release.api"])
        .await?
        .ok()?;
    let seen = default.stop().await?;
    assert!(
        seen.iter()
            .all(|s| s == &["forward:web-r2=100,web-r1=0".to_string()]),
        "{seen:?}"
    );
    assert_eq!(
        h.aws.route_actions(&h.fx.listener_arn, Some(&rule)).await?,
        ["fixed-response:503"]
    );
    assert_eq!(h.owned_objects("api").await?, Vec::<String>::new());
    assert!(!h.owned_objects("web").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_deleted_by_hand_is_rebuilt_and_the_serving_fleet_is_never_lost(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    h.aws
        .ec2
        .delete_launch_template()
        .launch_template_name("web-ledger")
        .send()
        .await?;
    let watcher = RouteWatcher::start(h.aws.clone(), &h.fx.listener_arn, None, EVERY);

    // Nothing else changed: the plan says so, with a warning that the record was rebuilt.
    let plan = h
        .terraform(&[
            "plan",
            "-detailed-exitcode",
            &format!("-var=image_id={}", h.fx.image_b),
        ])
        .await?;
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.all().contains("Release ledger rebuilt"),
        "{}",
        plan.all()
    );
    assert!(plan.all().contains("web-r2 serves"), "{}", plan.all());

    // The next release numbers on from the fleets found, and keeps web-r2 for rollback.
    h.apply(&[("image_id", &h.fx.image_c)]).await?;
    let out = h.outputs().await?;
    assert_eq!(out["release"]["value"], 3, "{out}");
    assert_eq!(out["fleet_name"]["value"], "web-r3", "{out}");
    let samples = watcher.stop().await?;
    let groups = h.aws.group_names().await?;
    assert!(groups.contains(&"web-r2".to_string()), "{groups:?}");
    assert!(groups.contains(&"web-r3".to_string()), "{groups:?}");
    // Traffic was never lost: every sample forwards all of it to web-r2 or web-r3.
    assert!(!samples.is_empty());
    for s in &samples {
        let serving: Vec<&str> = s[0]
            .trim_start_matches("forward:")
            .split(',')
            .filter(|t| !t.ends_with("=0"))
            .collect();
        assert!(
            s[0].starts_with("forward:")
                && !serving.is_empty()
                && serving
                    .iter()
                    .all(|t| t.starts_with("web-r2=") || t.starts_with("web-r3=")),
            "{s:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_that_is_not_the_listeners_is_refused_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let other = h.aws.add_listener(&h.fx.load_balancer_arn, 8080).await?;
    let foreign = h.aws.add_host_rule(&other, "api.example.com", 10).await?;
    let missing = format!(
        "{}/0123456789abcdef",
        h.fx.listener_arn
            .replacen(":listener/", ":listener-rule/", 1)
    );
    for (rule, says) in [
        (
            foreign.as_str(),
            "must be the ARN of a rule of listener_arn",
        ),
        (missing.as_str(), "is not a rule of listener"),
    ] {
        h.write(&h.release_hcl(&ReleaseOpts {
            lb_extra: format!("    rule_arn     = \"{rule}\""),
            ..Default::default()
        }))?;
        let plan = h.terraform(&["plan"]).await?;
        let all = plan.all();
        assert_eq!(plan.code, 1, "{all}");
        assert!(all.contains(says), "{all}");
        assert!(all.contains("rule_arn"), "{all}");
        assert!(h.owned_objects("web").await?.is_empty());
    }
    Ok(())
}

/// A listener with more rules than a page (the proxy answers two a page): a health-check
/// rule an interrupted apply left behind, on the last page, is found and removed by the
/// destroy, whose target group it would otherwise keep in use.
#[tokio::test(flavor = "multi_thread")]
async fn a_leftover_health_check_rule_on_a_later_page_is_swept() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;
    for (i, host) in ["a.example.com", "b.example.com", "c.example.com"]
        .into_iter()
        .enumerate()
    {
        h.aws
            .add_host_rule(&h.fx.listener_arn, host, 10 + i as i32)
            .await?;
    }
    let tg = h
        .aws
        .target_group_arns()
        .await?
        .into_iter()
        .find(|(_, name)| name == "web-r1")
        .map(|(arn, _)| arn)
        .expect("web-r1's target group");
    // What an apply killed during a health gate leaves: the rule that attaches the fleet.
    h.aws
        .elb
        .create_rule()
        .listener_arn(&h.fx.listener_arn)
        .priority(40_000)
        .conditions(
            aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
                .field("http-header")
                .http_header_config(
                    aws_sdk_elasticloadbalancingv2::types::HttpHeaderConditionConfig::builder()
                        .http_header_name("X-Immutable-Health-Attach")
                        .values("web-r1-5eed")
                        .build(),
                )
                .build(),
        )
        .actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&tg)
                .build(),
        )
        .send()
        .await?;
    assert_eq!(h.aws.rules(&h.fx.listener_arn).await?, 4);

    let run = h.terraform(&["destroy", "-auto-approve"]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        h.proxy
            .log()
            .iter()
            .any(|s| s.action == "DescribeRules" && s.body.contains("Marker=")),
        "the rules were read past their first page"
    );
    assert_eq!(
        h.aws.rules(&h.fx.listener_arn).await?,
        3,
        "the user's rules stay"
    );
    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    Ok(())
}
