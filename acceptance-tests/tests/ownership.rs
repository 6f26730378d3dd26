//! Ownership and concurrency: the provider never adopts or deletes what it does not own,
//! and two applies on one release at once: the second is refused while the first completes.

use std::time::Duration;

use acceptance_tests::{wait_until, GroupGuard, Harness, ReleaseOpts};

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_group_with_the_release_name_is_refused_and_untouched() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;

    // Someone else's group, named as the next fleet would be, without ownership tags.
    h.aws
        .ec2
        .create_launch_template()
        .launch_template_name("someone-elses")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&h.fx.image_a)
                .build(),
        )
        .send()
        .await?;
    h.aws
        .asg
        .create_auto_scaling_group()
        .auto_scaling_group_name("web-r2")
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name("someone-elses")
                .version("1")
                .build(),
        )
        .min_size(1)
        .max_size(1)
        .desired_capacity(1)
        .vpc_zone_identifier(h.fx.subnet_ids[0].clone())
        .send()
        .await?;
    let before = h.aws.group("web-r2").await?;

    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={}", h.fx.image_b),
        ])
        .await?;
    assert_ne!(run.code, 0);
    assert!(
        run.says(
            "an Auto Scaling group named web-r2 already exists and is not owned by release web"
        ),
        "{}",
        run.all()
    );
    assert!(run.says("never adopts or deletes objects it does not own"));
    let after = h.aws.group("web-r2").await?;
    assert_eq!(before.launch_template(), after.launch_template());
    assert_eq!(before.desired_capacity(), after.desired_capacity());
    assert_eq!(before.tags(), after.tags(), "not even tagged");
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_concurrent_apply_is_refused_while_the_first_completes() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    // A pause long enough that the second apply meets the first in it however busy the
    // machine is (a second Terraform run takes a few seconds to reach its apply).
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"20s\"\n  }".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    // A second runner with the same configuration and state (e.g. another pipeline).
    let other = h.copy_workdir()?;

    let var = format!("-var=image_id={}", h.fx.image_b);
    let first =
        h.spawn_terraform_in(&h.dir.0, &["apply", "-auto-approve", "-input=false", &var])?;
    let _guard = GroupGuard(first.id().expect("terraform runs"));
    let (aws, listener) = (&h.aws, h.fx.listener_arn.as_str());
    assert!(
        wait_until(Duration::from_secs(60), || async {
            Ok(aws.listener_weights(listener).await?.get("web-r2") == Some(&10))
        })
        .await?,
        "the first apply never reached its canary step"
    );

    let second = h
        .command_in(&other.0)
        .args(["apply", "-auto-approve", "-input=false", "-no-color", &var])
        .output()
        .await?;
    let text = acceptance_tests::fold(&format!(
        "{}{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    ));
    assert!(
        !second.status.success(),
        "the second apply is refused: {text}"
    );
    assert!(
        text.contains("release web is being changed by another apply"),
        "{text}"
    );
    assert!(text.contains("launch template web-lease"), "{text}");

    let out = tokio::time::timeout(Duration::from_secs(60), first.wait_with_output()).await??;
    assert!(
        out.status.success(),
        "the first apply completes: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        h.aws.listener_weights(listener).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    assert!(
        !h.aws
            .launch_template_names()
            .await?
            .contains(&"web-lease".to_string()),
        "the lease is given back"
    );
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    Ok(())
}
