//! What AWS refuses for a while, as the fault proxy reproduces it (`proxy::AwsRules`, on by
//! default): the proxy's refusals on their own, then a release that meets them — a group
//! whose instance profile IAM has not propagated yet, and a group deleted while its
//! scaling activity still runs — and gets through by retrying on AWS's error codes.

use std::time::Duration;

use acceptance_tests::proxy::{query, Faults, Outcome, TEST_AWS_RULES};
use acceptance_tests::{Harness, ReleaseOpts};

const IAM: (&str, &str) = ("iam", "2010-05-08");
const ASG: (&str, &str) = ("autoscaling", "2011-01-01");

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
        extra: "  timeouts {\n    delete = \"2s\"\n  }".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    // Deleting the group answers only after 5 s.
    h.proxy.set_faults(Faults {
        latency: Duration::from_secs(5),
        actions: vec!["DeleteAutoScalingGroup".into()],
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let run = h.terraform(&["destroy", "-auto-approve"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains("Destroy timed out"), "{}", run.all());
    assert!(
        run.all().contains("within timeouts.delete (2s)"),
        "{}",
        run.all()
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    h.proxy.set_faults(Faults::default());
    h.terraform(&["destroy", "-auto-approve"]).await?.ok()?;
    assert!(h.owned_objects("web").await?.is_empty());
    Ok(())
}
