//! What the provider records in AWS: a ledger that another apply writes between this
//! apply's read and write is refused, never overwritten; sixty releases with long abort
//! reasons keep the ledger within AWS's 16 KB and its versions bounded; changed tags reach
//! every object the release owns.

use std::time::Duration;

use acceptance_tests::proxy::{AwsRules, Faults, TEST_AWS_RULES};
use acceptance_tests::{Harness, ReleaseOpts};
use aws_sdk_ec2 as ec2;

/// Every version of the ledger template: (number, user data length).
async fn ledger_versions(h: &Harness) -> anyhow::Result<Vec<(i64, usize)>> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = h
            .aws
            .ec2
            .describe_launch_template_versions()
            .launch_template_name("web-ledger")
            .set_next_token(token)
            .send()
            .await?;
        for v in page.launch_template_versions() {
            out.push((
                v.version_number().unwrap_or_default(),
                v.launch_template_data()
                    .and_then(|d| d.user_data())
                    .map(str::len)
                    .unwrap_or_default(),
            ));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_between_read_and_write_is_detected() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 20\n    pause  = \"4s\"\n  }"
            .into(),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    let image_b = format!("-var=image_id={}", h.fx.image_b);
    let args = ["apply", "-auto-approve", image_b.as_str()];
    let apply = h.terraform(&args);
    // During the canary's pause, another writer saves the ledger (a copy of its latest).
    let other = async {
        for _ in 0..300 {
            let weights = h.aws.listener_weights(&h.fx.listener_arn).await?;
            if weights.get("web-r2").is_some_and(|w| *w > 0) {
                let latest = h
                    .aws
                    .ec2
                    .describe_launch_template_versions()
                    .launch_template_name("web-ledger")
                    .versions("$Latest")
                    .send()
                    .await?;
                let data = latest.launch_template_versions()[0]
                    .launch_template_data()
                    .and_then(|d| d.user_data())
                    .unwrap_or_default()
                    .to_string();
                h.aws
                    .ec2
                    .create_launch_template_version()
                    .launch_template_name("web-ledger")
                    .launch_template_data(
                        ec2::types::RequestLaunchTemplateData::builder()
                            .user_data(data)
                            .build(),
                    )
                    .send()
                    .await?;
                return Ok::<bool, anyhow::Error>(true);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(false)
    };
    let (run, wrote) = tokio::join!(apply, other);
    let (run, wrote) = (run?, wrote?);
    assert!(wrote, "the canary never reached its pause");
    let all = run.all();
    assert_eq!(run.code, 1, "{all}");
    assert!(all.contains("written by another apply"), "{all}");
    assert!(
        all.contains("Traffic is back on release 1 (web-r1)"),
        "{all}"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    // The next apply reads the other's record and releases.
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(h.resource_values().await?["fleet_name"], "web-r3");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_releases_with_long_abort_reasons_stay_within_what_aws_holds() -> anyhow::Result<()> {
    // The record is the provider's alone: one Terraform version is enough to see it hold
    // (the suite's first run, on the oldest Terraform supported).
    if acceptance_tests::terraform_version()? > (1, 0, 99) {
        acceptance_tests::say_skipped(
            "skipped on this Terraform: sixty releases are run once, on Terraform 1.0",
        );
        return Ok(());
    }
    let h = Harness::start().await?;
    h.write(
        &h.release_hcl(&ReleaseOpts {
            extra:
                "  history_limit = 100\n  retain_fleets = 0\n  health {\n    timeout = \"1s\"\n  }"
                    .into(),
            // Checks of 6 s × 2 (0.12 s at the proxy's pace): the record is measured here,
            // not the health gate's wait.
            lb_extra: "    deregistration_delay = 0\n    health_check {\n      interval          = 6\n      timeout           = 2\n      healthy_threshold = 2\n    }".into(),
            ..Default::default()
        }),
    )?;
    let images = [&h.fx.image_a, &h.fx.image_b, &h.fx.image_c];
    let mut warned = false;
    for n in 1..=60usize {
        // Every third release aborts (its targets unhealthy), with a long reason.
        let abort = n % 3 == 0;
        h.proxy.set_faults(Faults {
            unhealthy_target_groups: if abort {
                vec![(format!("web-r{n}"), None)]
            } else {
                Vec::new()
            },
            // AWS's pace of reads and deletions is not what this test measures (other
            // tests do); its limit of template versions is.
            aws_rules: Some(AwsRules {
                visibility: Duration::ZERO,
                group_deletion: Duration::ZERO,
                activity: Duration::ZERO,
                ..TEST_AWS_RULES
            }),
            ..Faults::default()
        });
        // Images alternate among three, and retain_fleets = 0: never a rollback.
        let run = h
            .terraform(&[
                "apply",
                "-auto-approve",
                &format!("-var=image_id={}", images[n % 3]),
            ])
            .await?;
        assert_eq!(run.code, i32::from(abort), "release {n}: {}", run.all());
        warned |= run.all().contains("history entries were left out");
    }
    let versions = ledger_versions(&h).await?;
    let longest = versions.iter().map(|(_, len)| *len).max().unwrap_or(0);
    assert!(longest <= 16 * 1024, "{longest} bytes of user data");
    assert!(warned, "the trimming was never said");
    // Far more saves than the proxy lets a template hold (40), yet never refused: old
    // versions are pruned (the proxy counts; the emulator cannot delete versions).
    let made = h
        .proxy
        .log()
        .iter()
        .filter(|c| {
            c.action == "CreateLaunchTemplateVersion"
                && c.body.contains("LaunchTemplateName=web-ledger")
                && c.outcome == acceptance_tests::proxy::Outcome::Forwarded
        })
        .count();
    assert!(made > 40, "{made} versions made");
    let alive = h.proxy.template_versions("web-ledger");
    assert!(alive.is_some_and(|n| n <= 21), "{alive:?} versions kept");
    let values = h.resource_values().await?;
    let history = values["history"].as_array().cloned().unwrap_or_default();
    assert!(
        history.len() >= 20 && history.len() < 60,
        "{}",
        history.len()
    );
    assert_eq!(history[0]["fleet_name"], "web-r60", "{values}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_tags_reach_every_object_the_release_owns() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let tags = |t: &str| ReleaseOpts {
        extra: format!("  tags = {{ {t} }}"),
        ..Default::default()
    };
    h.write(&h.release_hcl(&tags("env = \"prod\"")))?;
    h.apply(&[]).await?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    h.write(&h.release_hcl(&tags("team = \"web\"")))?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;

    let groups = h.aws.asg.describe_auto_scaling_groups().send().await?;
    for g in groups.auto_scaling_groups() {
        let keys: Vec<&str> = g.tags().iter().filter_map(|t| t.key()).collect();
        assert!(keys.contains(&"team") && !keys.contains(&"env"), "{keys:?}");
    }
    let tgs = h.aws.target_group_arns().await?;
    let described = h
        .aws
        .elb
        .describe_tags()
        .set_resource_arns(Some(tgs.keys().cloned().collect()))
        .send()
        .await?;
    assert_eq!(described.tag_descriptions().len(), 2);
    for d in described.tag_descriptions() {
        let keys: Vec<&str> = d.tags().iter().filter_map(|t| t.key()).collect();
        assert!(keys.contains(&"team") && !keys.contains(&"env"), "{keys:?}");
    }
    // Launch templates: through DescribeTags (the emulator's DescribeLaunchTemplates keeps
    // the tags a template was made with; AWS's does not).
    let lts = h.aws.ec2.describe_launch_templates().send().await?;
    for t in lts.launch_templates() {
        let (name, id) = (
            t.launch_template_name().unwrap_or_default(),
            t.launch_template_id().unwrap_or_default(),
        );
        let tags = h
            .aws
            .ec2
            .describe_tags()
            .filters(
                ec2::types::Filter::builder()
                    .name("resource-id")
                    .values(id)
                    .build(),
            )
            .send()
            .await?;
        let keys: Vec<&str> = tags.tags().iter().filter_map(|t| t.key()).collect();
        assert!(
            keys.contains(&"team") && !keys.contains(&"env"),
            "{name}: {keys:?}"
        );
    }
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    Ok(())
}
