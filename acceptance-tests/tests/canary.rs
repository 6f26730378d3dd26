//! Canary releases: the listener's weights change in order while a watcher samples them,
//! and an alarm in ALARM during a pause aborts the release with traffic back on the old
//! fleet.

use std::time::Duration;

use acceptance_tests::{watch_splits as watch, Aws, Harness, ReleaseOpts};

const CANARY: &str = acceptance_tests::CANARY_10_50;

#[tokio::test(flavor = "multi_thread")]
async fn canary_weights_change_in_order() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: CANARY.into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;

    let (stop, task) = watch(h.aws.clone(), h.fx.listener_arn.clone());
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    *stop.lock().unwrap() = true;
    let seen = task.await?;
    let new_weights: Vec<i64> = seen
        .iter()
        .filter_map(|w| w.get("web-r2").copied())
        .collect();
    // The new fleet may be seen at 0 first (attached for health checks before the gate).
    assert!(
        new_weights.windows(2).all(|w| w[0] <= w[1]),
        "weights went back: {seen:?}"
    );
    let moved: Vec<i64> = new_weights.into_iter().filter(|w| *w > 0).collect();
    assert_eq!(moved, vec![10, 50, 100], "splits seen: {seen:?}");
    for split in &seen {
        assert_eq!(split.values().sum::<i64>(), 100, "{split:?}");
    }
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn alarm_during_a_pause_aborts_and_restores_traffic() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: CANARY.into(),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;

    // When the canary reaches 10 %, the alarm fires.
    let firing = h.aws.fire_alarm_at(
        &h.fx.listener_arn,
        "web-r2",
        10,
        "web-5xx",
        Duration::from_secs(20),
    );
    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={}", h.fx.image_b),
        ])
        .await?;
    assert!(firing.await?, "the canary never reached 10 %");
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.says("alarm web-5xx is in ALARM during canary pause at 10 %"),
        "{}",
        run.all()
    );
    assert!(
        run.says("Traffic is back on release 1 (web-r1)"),
        "{}",
        run.all()
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);
    assert_eq!(
        h.owned_objects("web")
            .await?
            .iter()
            .filter(|o| o.contains("web-r2"))
            .count(),
        0
    );
    Ok(())
}

/// An alarm already in `ALARM` would abort the next release at its first pause (the
/// hotfix for what it sees included): the plan says so, and the way out it names — the
/// alarm left out of `alarm_names` for one apply — releases.
#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_already_firing_is_warned_of_at_plan_and_the_way_out_releases(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: CANARY.into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    let warning = "alarm web-5xx is in ALARM now: this release would abort at its first pause";
    let image_b = format!("-var=image_id={}", h.fx.image_b);
    let calm = h.terraform(&["plan", &image_b]).await?.ok()?;
    assert!(!calm.says(warning), "{}", calm.all());

    h.aws.fire_alarm("web-5xx").await?;
    let plan = h.terraform(&["plan", &image_b]).await?.ok()?;
    assert!(plan.says(warning), "{}", plan.all());
    assert!(
        plan.says("leave it out of alarm_names for this apply"),
        "{}",
        plan.all()
    );
    // A plan that releases nothing does not warn.
    let same = h.terraform(&["plan"]).await?.ok()?;
    assert!(!same.says(warning), "{}", same.all());

    // The way out: the same canary without that alarm, for one apply.
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: CANARY.replace("alarm_names = [\"web-5xx\"]", "alarm_names = []"),
        ..Default::default()
    }))?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    Ok(())
}

/// A composite alarm named in `alarm_names` aborts a canary when it goes to `ALARM`
/// (AWS's `DescribeAlarms` answers composite alarms only when `AlarmTypes` asks for them;
/// the proxy answers as AWS does, two alarms a page). The composite is the last of three
/// names, on the second page.
#[tokio::test(flavor = "multi_thread")]
async fn composite_alarm_during_a_pause_aborts_and_restores_traffic() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    for name in ["web-5xx", "web-latency", "web-cpu"] {
        h.aws.put_alarm(name).await?;
    }
    // Composite alarms live in the proxy (the emulator has none): made through it.
    let via_proxy = Aws::new(&h.proxy.url).await;
    via_proxy
        .cw
        .put_composite_alarm()
        .alarm_name("web-health")
        .alarm_rule("ALARM(\"web-5xx\") OR ALARM(\"web-latency\")")
        .send()
        .await?;
    h.write(
        &h.release_hcl(&ReleaseOpts {
            extra: r#"  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "30s"
  }
  alarm_names = ["web-cpu", "web-latency", "web-health"]"#
                .into(),
            lb_extra: "    deregistration_delay = 1".into(),
            ..Default::default()
        }),
    )?;
    h.apply(&[]).await?;

    // When the canary reaches 10 %, a child of the composite fires (not itself named).
    let aws = h.aws.clone();
    let listener = h.fx.listener_arn.clone();
    let firing = tokio::spawn(async move {
        for _ in 0..2400 {
            let w = aws.listener_weights(&listener).await.ok();
            if w.as_ref().and_then(|w| w.get("web-r2").copied()) == Some(10) {
                aws.fire_alarm("web-5xx").await.unwrap();
                let fired = std::time::Instant::now();
                // Until traffic is back on web-r1 alone (None: not within the 30 s pause).
                while fired.elapsed() < Duration::from_secs(30) {
                    let w = aws.listener_weights(&listener).await.ok();
                    if w == Some([("web-r1".to_string(), 100)].into()) {
                        return Some(Some(fired.elapsed()));
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                return Some(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    });
    let (stop, seen) = watch(h.aws.clone(), h.fx.listener_arn.clone());
    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={}", h.fx.image_b),
        ])
        .await?;
    *stop.lock().unwrap() = true;
    let seen = seen.await?;
    let back_after = firing.await?.expect("the canary never reached 10 %");
    eprintln!("traffic back on web-r1 {back_after:?} after the composite's child fired");
    assert_eq!(run.code, 1, "the release committed: {}", run.all());
    assert!(back_after.is_some(), "traffic not back within the pause");
    assert!(
        run.says("alarm web-health is in ALARM during canary pause at 10 %"),
        "{}",
        run.all()
    );
    assert!(
        run.says("Traffic is back on release 1 (web-r1)"),
        "{}",
        run.all()
    );
    assert!(
        seen.iter()
            .all(|w| w.get("web-r2").copied().unwrap_or(0) <= 10),
        "the canary went past 10 %: {seen:?}"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);
    Ok(())
}
