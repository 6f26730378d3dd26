//! A release whose fleet never becomes healthy fails with the figures, leaves traffic where
//! it was, and leaves nothing behind.

use acceptance_tests::proxy::{FaultProxy, Faults, Outcome};
use acceptance_tests::{Harness, ReleaseOpts};

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_first_release_fails_with_figures_and_leaves_nothing() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let proxy = FaultProxy::start(&h.emulator.url).await?;
    proxy.set_faults(Faults {
        unhealthy_targets: true,
        ..Default::default()
    });
    h.write(&h.release_hcl(&ReleaseOpts {
        endpoint: Some(proxy.url.clone()),
        extra: "  min_size = 2\n  health {\n    timeout = \"3s\"\n  }".into(),
        ..Default::default()
    }))?;

    let run = h.terraform(&["apply", "-auto-approve"]).await?;
    let all = run.all();
    assert_eq!(run.code, 1, "{all}");
    assert!(all.contains("release web-r1 aborted"), "{all}");
    assert!(all.contains("need 2 healthy targets, have 0"), "{all}");
    // Terraform wraps long lines: the reason is checked with white space folded.
    assert!(
        acceptance_tests::fold(&all).contains("2 `unhealthy` (Target.FailedHealthChecks"),
        "{all}"
    );
    assert!(all.contains("after 3s"), "{all}");
    assert!(
        all.contains("No release was serving; the listener answers 404 as before"),
        "{all}"
    );
    assert!(
        proxy
            .calls()
            .get("DescribeTargetHealth")
            .copied()
            .unwrap_or(0)
            >= 2,
        "the wait polled"
    );

    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    assert_eq!(
        h.aws.rules(&h.fx.listener_arn).await?,
        0,
        "no health-check rule left"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("fixed-response".to_string(), 404)].into()
    );
    // Nothing in the state: the next plan proposes the release again.
    let plan = h.terraform(&["plan"]).await?;
    assert!(plan.stdout.contains("1 to add"), "{}", plan.all());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unhealthy_release_keeps_traffic_on_the_serving_fleet() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let proxy = FaultProxy::start(&h.emulator.url).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        endpoint: Some(proxy.url.clone()),
        extra: "  health {\n    timeout = \"2s\"\n  }".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;

    proxy.set_faults(Faults {
        unhealthy_targets: true,
        ..Default::default()
    });
    let image_b = h.fx.image_b.clone();
    // A watcher samples the listener through the whole failed release.
    let (aws, listener) = (h.aws.clone(), h.fx.listener_arn.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(w) = aws.listener_weights(&listener).await {
                if seen.last() != Some(&w) {
                    seen.push(w);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        seen
    });
    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={image_b}"),
        ])
        .await?;
    let all = run.all();
    assert_eq!(run.code, 1, "{all}");
    assert!(all.contains("release web-r2 aborted"), "{all}");
    assert!(
        all.contains("Traffic stayed on release 1 (web-r1)"),
        "{all}"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.await?;
    // The unhealthy fleet was attached at weight 0 (so the ALB health-checks it) and never
    // got traffic.
    assert!(
        seen.iter().any(|w| w.get("web-r2") == Some(&0)),
        "web-r2 never attached: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|w| w.get("web-r2").copied().unwrap_or(0) == 0),
        "an unhealthy fleet got traffic: {seen:?}"
    );

    // The failed apply's state already holds the aborted attempt and why, with no refresh.
    let values = h.resource_values().await?;
    assert_eq!(values["release"], 1, "{values}");
    assert_eq!(values["image_id"], h.fx.image_a, "{values}");
    assert_eq!(values["history"][0]["status"], "aborted", "{values}");
    assert_eq!(values["history"][0]["fleet_name"], "web-r2", "{values}");
    assert!(
        values["history"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("healthy")),
        "{values}"
    );
    eprintln!("outputs after the failed apply: {}", h.outputs().await?);

    // The state still describes release 1, and the next plan proposes the release again.
    proxy.set_faults(Faults::default());
    assert!(!h.plan_is_empty_with(&[("image_id", &image_b)]).await?);
    let values = h.resource_values().await?;
    assert_eq!(values["release"], 1);
    h.apply(&[("image_id", &image_b)]).await?;
    let values = h.resource_values().await?;
    assert_eq!(values["history"][1]["status"], "aborted", "{values}");
    assert_eq!(values["history"][0]["fleet_name"], "web-r3");
    Ok(())
}

/// An alarm fires at 10 % and, at that moment, AWS throttles every change of the listener
/// for 8 s — longer than the SDK's own retries last (`max_retries = 3`): the abort keeps
/// putting the listener back on its own schedule until it reads back as it was, says so,
/// and only then removes the new fleet.
#[tokio::test(flavor = "multi_thread")]
async fn an_abort_puts_traffic_back_through_a_throttling_storm() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    h.write(
        &h.release_hcl(&ReleaseOpts {
            extra: r#"  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "30s"
  }
  alarm_names = ["web-5xx"]"#
                .into(),
            lb_extra: "    deregistration_delay = 1".into(),
            ..Default::default()
        }),
    )?;
    h.apply(&[]).await?;

    let (aws, listener, proxy) = (&h.aws, &h.fx.listener_arn, &h.proxy);
    let storm = async {
        for _ in 0..2400 {
            let w = aws.listener_weights(listener).await.ok();
            if w.as_ref().and_then(|w| w.get("web-r2").copied()) == Some(10) {
                proxy.set_faults(Faults {
                    throttle: 1.0,
                    actions: vec!["ModifyListener".into(), "ModifyRule".into()],
                    ..Default::default()
                });
                aws.fire_alarm("web-5xx").await.unwrap();
                tokio::time::sleep(std::time::Duration::from_secs(8)).await;
                proxy.set_faults(Faults::default());
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        false
    };
    let image_b = format!("-var=image_id={}", h.fx.image_b);
    let args = ["apply", "-auto-approve", image_b.as_str()];
    let (run, stormed) = tokio::join!(h.terraform(&args), storm);
    let run = run?;
    assert!(stormed, "the canary never reached 10 %");
    let all = run.all();
    assert_eq!(run.code, 1, "{all}");
    assert!(all.contains("alarm web-5xx is in ALARM"), "{all}");
    assert!(
        all.contains("Traffic is back on release 1 (web-r1)"),
        "{all}"
    );
    assert!(!all.contains("Clean-up was incomplete"), "{all}");
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);
    let throttled = h
        .proxy
        .log()
        .iter()
        .filter(|s| s.action == "ModifyListener" && s.outcome == Outcome::Throttled)
        .count();
    eprintln!("ModifyListener throttled {throttled} times before the restore went through");
    assert!(
        throttled > 4,
        "more refusals than the SDK's 4 attempts of one call: {throttled}"
    );
    Ok(())
}
