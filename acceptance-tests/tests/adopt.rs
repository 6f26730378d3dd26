//! Adopting a running service: the listener already forwards all traffic to a target group
//! and Auto Scaling group made outside the release (as hashicorp/aws makes them). The
//! first release launches as many instances as that group has, walks the canary steps
//! from it (never sending traffic to an unhealthy fleet), and on commit takes the
//! service's target group out of the route without touching it; an aborted one puts the
//! service's forward back exactly.

use std::time::Duration;

use acceptance_tests::{Harness, ReleaseOpts, TrafficWatcher};
use aws_sdk_autoscaling as asg;
use aws_sdk_elasticloadbalancingv2 as elb;

/// The service as it ran before: target group `app-tg`, group `app-asg` of `desired`
/// instances in it, the listener forwarding everything to it. Returns the target group's
/// ARN.
async fn running_service(h: &Harness, desired: i32) -> anyhow::Result<String> {
    let tg = h
        .aws
        .elb
        .create_target_group()
        .name("app-tg")
        .protocol(elb::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(&h.fx.vpc_id)
        .health_check_path("/")
        .send()
        .await?
        .target_groups()[0]
        .target_group_arn()
        .unwrap_or_default()
        .to_string();
    h.aws
        .ec2
        .create_launch_template()
        .launch_template_name("app-lt")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&h.fx.image_a)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await?;
    h.aws
        .asg
        .create_auto_scaling_group()
        .auto_scaling_group_name("app-asg")
        .launch_template(
            asg::types::LaunchTemplateSpecification::builder()
                .launch_template_name("app-lt")
                .version("$Latest")
                .build(),
        )
        .min_size(desired)
        .max_size(desired)
        .desired_capacity(desired)
        .vpc_zone_identifier(h.fx.subnet_ids.join(","))
        .target_group_arns(&tg)
        .send()
        .await?;
    h.aws
        .elb
        .modify_listener()
        .listener_arn(&h.fx.listener_arn)
        .default_actions(
            elb::types::Action::builder()
                .r#type(elb::types::ActionTypeEnum::Forward)
                .target_group_arn(&tg)
                .build(),
        )
        .send()
        .await?;
    Ok(tg)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_release_adopts_the_running_service_step_by_step() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    running_service(&h, 5).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: format!("{}\n  max_size = 8", acceptance_tests::CANARY_10_50),
        ..Default::default()
    }))?;
    let run = h.terraform(&["plan"]).await?;
    assert!(
        run.says("shift from the existing target group app-tg: 10 %, 50 %, 100 %"),
        "{}",
        run.all()
    );
    let watcher = TrafficWatcher::start(h.aws.clone(), h.fx.listener_arn.clone());
    let (stop, seen) = acceptance_tests::watch_splits(h.aws.clone(), h.fx.listener_arn.clone());
    h.apply(&[]).await?;
    *stop.lock().unwrap() = true;
    let seen = seen.await?;
    let (samples, violations) = watcher.finish().await;
    assert!(samples > 0);
    assert!(
        violations.is_empty(),
        "traffic on an unhealthy fleet: {violations:?}"
    );
    let mut new: Vec<i64> = seen
        .iter()
        .filter_map(|s| s.get("web-r1").copied())
        .filter(|w| *w > 0)
        .collect();
    // At 100 % twice: beside app-tg at 0, then alone once it leaves the route.
    new.dedup();
    assert_eq!(new, [10, 50, 100], "step by step: {seen:?}");
    // The service's capacity, and its target group out of the route, untouched.
    assert_eq!(h.aws.group("web-r1").await?.desired_capacity(), Some(5));
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(h.aws.group("app-asg").await?.desired_capacity(), Some(5));
    assert!(h
        .aws
        .target_group_names()
        .await?
        .contains(&"app-tg".to_string()));
    assert!(h.plan_is_empty().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_adoption_puts_the_services_forward_back() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    running_service(&h, 2).await?;
    let before = h.aws.listener_weights(&h.fx.listener_arn).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: format!("{}\n  max_size = 8", acceptance_tests::CANARY_10_50),
        ..Default::default()
    }))?;
    let firing = h.aws.fire_alarm_at(
        &h.fx.listener_arn,
        "web-r1",
        10,
        "web-5xx",
        Duration::from_secs(120),
    );
    let run = h.terraform(&["apply", "-auto-approve"]).await?;
    assert!(firing.await?, "the adoption never reached 10 %");
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.says("Traffic is back on target group app-tg as it was"),
        "{}",
        run.all()
    );
    assert_eq!(h.aws.listener_weights(&h.fx.listener_arn).await?, before);
    assert!(before.contains_key("app-tg"), "{before:?}");
    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    Ok(())
}

/// A route that forwards to two target groups of the service's (its own canary, say) cannot
/// be adopted step by step: the plan says what the first release would do instead — take
/// all traffic at once with a fleet of `min_size` — and how to avoid it.
#[tokio::test(flavor = "multi_thread")]
async fn a_route_to_several_target_groups_is_warned_of_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    running_service(&h, 5).await?;
    h.aws
        .elb
        .create_target_group()
        .name("app-canary-tg")
        .protocol(elb::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(&h.fx.vpc_id)
        .send()
        .await?;
    h.aws
        .set_forward(&h.fx.listener_arn, &[("app-tg", 90), ("app-canary-tg", 10)])
        .await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: format!("{}\n  max_size = 8", acceptance_tests::CANARY_10_50),
        ..Default::default()
    }))?;
    let run = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        run.says("the route forwards to 2 target groups that are not this release's (app-tg, app-canary-tg)")
            || run.says("the route forwards to 2 target groups that are not this release's (app-canary-tg, app-tg)"),
        "{}",
        run.all()
    );
    assert!(
        run.says("this first release will take all of its traffic at once, with a fleet of min_size (desired_capacity is unset)"),
        "{}",
        run.all()
    );
    assert!(
        !run.says("shift from the existing target group"),
        "{}",
        run.all()
    );
    // Nothing was touched by the plan.
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [
            ("app-canary-tg".to_string(), 10),
            ("app-tg".to_string(), 90)
        ]
        .into()
    );
    Ok(())
}
