//! Transient faults: with a fifth of all AWS calls throttled and one in twenty failing with
//! HTTP 500 (through the fault proxy), a canary release and a rollback both complete. The
//! provider's retries (SDK standard mode: exponential backoff with jitter, up to
//! `max_retries`) and its waits (a bad poll never fails a wait) absorb them. Prints the
//! figures (`-- --nocapture`).

use std::time::{Duration, Instant};

use acceptance_tests::proxy::{FaultProxy, Faults, Outcome};
use acceptance_tests::{Harness, ReleaseOpts, TrafficWatcher};

#[tokio::test(flavor = "multi_thread")]
async fn canary_release_and_rollback_complete_through_throttling_and_5xx() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let proxy = FaultProxy::start(&h.emulator.url).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        endpoint: Some(proxy.url.clone()),
        max_retries: 10,
        extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"1s\"\n  }\n  canary_step {\n    weight = 50\n    pause  = \"1s\"\n  }".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    let watcher = TrafficWatcher::start(
        acceptance_tests::Aws::new(&h.emulator.url).await,
        h.fx.listener_arn.clone(),
    );

    proxy.set_faults(Faults {
        throttle: 0.20,
        error_5xx: 0.05,
        ..Default::default()
    });
    let mut report = Vec::new();
    for (what, image) in [
        ("canary release", h.fx.image_b.clone()),
        ("rollback", h.fx.image_a.clone()),
    ] {
        proxy.reset_counts();
        let t = Instant::now();
        let run = h
            .terraform(&["apply", "-auto-approve", &format!("-var=image_id={image}")])
            .await?;
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(run.code, 0, "{what} failed under faults:\n{}", run.all());
        let outcomes = proxy.outcomes();
        let calls: u64 = outcomes.values().sum();
        let faulted = outcomes.get(&Outcome::Throttled).copied().unwrap_or(0)
            + outcomes.get(&Outcome::Failed).copied().unwrap_or(0);
        assert!(faulted > 0, "{what}: the proxy injected no fault");
        let line = format!(
            "{what}: terraform apply {secs:.1} s, {calls} AWS call attempts, {} throttled + {} HTTP 500 (each retried), {} forwarded",
            outcomes.get(&Outcome::Throttled).copied().unwrap_or(0),
            outcomes.get(&Outcome::Failed).copied().unwrap_or(0),
            outcomes.get(&Outcome::Forwarded).copied().unwrap_or(0),
        );
        eprintln!("FAULTS {line}");
        report.push(line);
    }
    proxy.set_faults(Faults::default());
    let (_, violations) = watcher.finish().await;
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100), ("web-r2".to_string(), 0)].into(),
        "rolled back to web-r1, web-r2 retained"
    );
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_a)]).await?);
    Ok(())
}

/// Connection resets and latency on the calls that move traffic: the release still
/// completes, and the weights it reads back are the ones it set.
#[tokio::test(flavor = "multi_thread")]
async fn resets_and_latency_on_listener_calls_are_survived() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let proxy = FaultProxy::start(&h.emulator.url).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        endpoint: Some(proxy.url.clone()),
        max_retries: 10,
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    proxy.set_faults(Faults {
        reset: 0.4,
        latency: Duration::from_millis(200),
        // A fixed seed: the first rolls, hence the resets, are the same on every run.
        seed: 42,
        actions: vec![
            "ModifyListener".into(),
            "DescribeListeners".into(),
            "DescribeTargetHealth".into(),
        ],
        ..Default::default()
    });
    proxy.reset_counts();
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    let resets = proxy.outcomes().get(&Outcome::Reset).copied().unwrap_or(0);
    eprintln!("FAULTS resets: {resets} connections reset during a blue/green release");
    assert!(resets > 0, "the proxy reset no connection");
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    Ok(())
}

/// Creates whose answer is lost after AWS acted (a timeout, a reset): the SDK retries, meets
/// the object it made, and the provider adopts it — never a second one, nothing orphaned.
#[tokio::test(flavor = "multi_thread")]
async fn creates_whose_answer_was_lost_are_adopted_not_doubled() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let proxy = FaultProxy::start(&h.emulator.url).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        endpoint: Some(proxy.url.clone()),
        ..Default::default()
    }))?;
    proxy.set_faults(Faults {
        lose_first_answer: [
            ("CreateLaunchTemplate", "LaunchTemplateName=web-lease&"),
            ("CreateLaunchTemplate", "LaunchTemplateName=web-r1&"),
            ("CreateTargetGroup", ""),
            ("CreateAutoScalingGroup", ""),
            ("CreateRule", ""),
        ]
        .iter()
        .map(|(a, n)| (a.to_string(), n.to_string()))
        .collect(),
        ..Default::default()
    });
    h.apply(&[]).await?;
    let lost = proxy
        .outcomes()
        .get(&Outcome::AnswerLost)
        .copied()
        .unwrap_or(0);
    assert_eq!(lost, 5, "each create lost its first answer");
    let mut owned = h.owned_objects("web").await?;
    owned.sort();
    assert_eq!(
        owned,
        vec![
            "group web-r1".to_string(),
            "launch template web-ledger".to_string(),
            "launch template web-r1".to_string(),
            "target group web-r1".to_string(),
        ]
    );
    assert_eq!(
        h.aws.rules(&h.fx.listener_arn).await?,
        0,
        "no rule left behind"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert!(h.plan_is_empty().await?);
    Ok(())
}

/// A call whose answer never comes (the proxy holds the first target-health read for a
/// minute) is abandoned after one attempt's timeout and retried: the release goes on and
/// commits, not held for the minute.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_call_is_abandoned_after_its_attempt_timeout() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;
    h.proxy.set_faults(Faults {
        hold_first: vec![("DescribeTargetHealth".into(), Duration::from_secs(60))],
        ..Faults::default()
    });
    let started = Instant::now();
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    let took = started.elapsed();
    eprintln!("release through a held call: {took:?}");
    assert_eq!(h.resource_values().await?["release"], 2);
    assert!(
        took < Duration::from_secs(50),
        "held {took:?}: the hung attempt was not abandoned after 20 s"
    );
    assert!(
        h.proxy
            .calls()
            .get("DescribeTargetHealth")
            .copied()
            .unwrap_or(0)
            >= 2,
        "the held read was tried again"
    );
    Ok(())
}
