//! Hold and promote, as pipelines run them: an apply stops the release at `hold_at` and
//! ends successfully; the plan with the same configuration is empty; a split changed by
//! hand is put back to the held one; raising or removing `hold_at` promotes it from where it
//! is held (the listener sampled: never back to 0, no new fleet); setting the serving
//! arguments back abandons it; a second new image replaces it; destroy and import while
//! held.

use std::time::Duration;

use acceptance_tests::{wait_until, watch_splits, Harness, ReleaseOpts};

/// A canary 10 % → 50 %, held at `hold_at` (None: not held), on `image`.
fn config(h: &Harness, image: &str, hold_at: Option<i64>) -> String {
    config_with(h, image, hold_at, "1s", "")
}

/// [`config`] with the pause at 50 % and extra lines.
fn config_with(
    h: &Harness,
    image: &str,
    hold_at: Option<i64>,
    pause_50: &str,
    more: &str,
) -> String {
    let hold = hold_at
        .map(|w| format!("\n  hold_at = {w}"))
        .unwrap_or_default();
    h.release_hcl(&ReleaseOpts {
        image: Some(image.to_string()),
        extra: format!(
            r#"  strategy = "canary"
  canary_step {{
    weight = 10
    pause  = "1s"
  }}
  canary_step {{
    weight = 50
    pause  = "{pause_50}"
  }}{hold}{more}"#
        ),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    })
}

/// web-r1 serving, web-r2 held at `at`.
async fn held_at(at: i64) -> anyhow::Result<Harness> {
    let h = Harness::start().await?;
    h.write(&config(&h, &h.fx.image_a, None))?;
    h.apply(&[]).await?;
    h.write(&config(&h, &h.fx.image_b, Some(at)))?;
    let run = h.apply(&[]).await?;
    assert!(
        run.says(&format!("hold web-r2 at {at} %")) || run.all().contains("Apply complete"),
        "{}",
        run.all()
    );
    Ok(h)
}

fn split(pairs: &[(&str, i64)]) -> std::collections::BTreeMap<String, i64> {
    pairs.iter().map(|(f, w)| (f.to_string(), *w)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn held_at_ten_percent_then_promoted_from_there() -> anyhow::Result<()> {
    let h = held_at(10).await?;

    // 1. Held: the serving fleet still serves 90 %, the new one 10 %, and the state says so.
    let v = h.resource_values().await?;
    assert_eq!(v["release"], 1);
    assert_eq!(v["fleet_name"], "web-r1");
    assert_eq!(v["holding"]["fleet_name"], "web-r2");
    assert_eq!(v["holding"]["weight"], 10);
    assert_eq!(v["holding"]["image_id"], h.fx.image_b.as_str());
    assert!(
        v["holding"]["since"]
            .as_str()
            .is_some_and(|s| s.contains('T')),
        "{v}"
    );
    assert_eq!(v["history"][0]["status"], "holding");
    assert_eq!(
        v["traffic"],
        serde_json::json!({"web-r1": 90, "web-r2": 10})
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        split(&[("web-r1", 90), ("web-r2", 10)])
    );

    // 2. The same configuration: an empty plan. The data source sees the hold too.
    assert!(h.plan_is_empty().await?, "nothing to do while held");
    let with_data = format!(
        "{}\ndata \"immutable_release\" \"seen\" {{\n  name = \"web\"\n}}\n\noutput \"seen_holding\" {{ value = data.immutable_release.seen.holding }}\n",
        config(&h, &h.fx.image_b, Some(10))
    );
    h.write(&with_data)?;
    h.apply(&[]).await?;
    let out = h.outputs().await?;
    assert_eq!(
        out["seen_holding"]["value"]["fleet_name"], "web-r2",
        "{out}"
    );
    assert_eq!(out["seen_holding"]["value"]["weight"], 10, "{out}");
    h.write(&config(&h, &h.fx.image_b, Some(10)))?;

    // 3. The split changed by hand is drift, put back to the held split.
    h.aws
        .set_forward(&h.fx.listener_arn, &[("web-r1", 100), ("web-r2", 0)])
        .await?;
    let run = h.terraform(&["plan", "-detailed-exitcode"]).await?;
    assert_eq!(run.code, 2, "the plan shows the drift: {}", run.all());
    h.apply(&[]).await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        split(&[("web-r1", 90), ("web-r2", 10)])
    );
    assert!(h.plan_is_empty().await?);

    // 4. Promoted (hold_at removed): the plan says so; the walk goes on from 10 %.
    h.write(&config(&h, &h.fx.image_b, None))?;
    let run = h.terraform(&["plan"]).await?;
    assert!(run.says("promote web-r2 from 10 %"), "{}", run.all());
    let (stop, seen) = watch_splits(h.aws.clone(), h.fx.listener_arn.clone());
    h.apply(&[]).await?;
    *stop.lock().unwrap() = true;
    let seen = seen.await?;
    let new: Vec<i64> = seen
        .iter()
        .filter_map(|s| s.get("web-r2").copied())
        .collect();
    assert_eq!(new.first(), Some(&10), "from the held weight: {seen:?}");
    assert!(!new.contains(&0), "never taken off its share: {seen:?}");
    assert!(new.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(new.last(), Some(&100), "{seen:?}");
    let v = h.resource_values().await?;
    assert_eq!(v["release"], 2);
    assert_eq!(v["fleet_name"], "web-r2");
    assert!(v["holding"].is_null(), "{v}");
    let mut groups = h.aws.group_names().await?;
    groups.sort();
    assert_eq!(groups, ["web-r1", "web-r2"], "no new fleet");
    assert!(h.plan_is_empty().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn held_at_zero_abandoned_then_replaced_by_a_second_image() -> anyhow::Result<()> {
    let h = held_at(0).await?;
    let v = h.resource_values().await?;
    assert_eq!(v["holding"]["weight"], 0);
    assert_eq!(
        h.aws
            .listener_weights(&h.fx.listener_arn)
            .await?
            .get("web-r1"),
        Some(&100)
    );
    assert!(h.plan_is_empty().await?);

    // 1. The serving fleet's image back: the held release is abandoned, nothing launched.
    h.write(&config(&h, &h.fx.image_a, Some(0)))?;
    let run = h.terraform(&["plan"]).await?;
    assert!(run.says("abandon web-r2, held at 0 %"), "{}", run.all());
    h.apply(&[]).await?;
    let v = h.resource_values().await?;
    assert!(v["holding"].is_null());
    assert_eq!(v["fleet_name"], "web-r1");
    let r2 = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["release"] == 2)
        .unwrap()
        .clone();
    assert_eq!(r2["status"], "aborted");
    assert_eq!(r2["reason"], "abandoned while held at 0 %");
    assert_eq!(h.aws.group_names().await?, ["web-r1"]);
    assert!(h.plan_is_empty().await?);

    // 2. Held again (image B at 10 %), then a second new image while held: the held one is
    // abandoned, the new one released and held in its place.
    h.write(&config(&h, &h.fx.image_b, Some(10)))?;
    h.apply(&[]).await?;
    h.write(&config(&h, &h.fx.image_c, Some(10)))?;
    h.apply(&[]).await?;
    let v = h.resource_values().await?;
    assert_eq!(v["holding"]["fleet_name"], "web-r4");
    assert_eq!(v["holding"]["image_id"], h.fx.image_c.as_str());
    let r3 = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["release"] == 3)
        .unwrap()
        .clone();
    assert_eq!(r3["reason"], "abandoned while held at 10 %");
    let mut groups = h.aws.group_names().await?;
    groups.sort();
    assert_eq!(groups, ["web-r1", "web-r4"]);
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        split(&[("web-r1", 90), ("web-r4", 10)])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn import_and_destroy_while_held() -> anyhow::Result<()> {
    let h = held_at(10).await?;
    // Import from AWS alone: the held release is found, and the plan is empty.
    std::fs::remove_file(h.dir.0.join("terraform.tfstate"))?;
    h.terraform(&["import", "immutable_release.web", "web"])
        .await?
        .ok()?;
    let v = h.resource_values().await?;
    assert_eq!(v["holding"]["fleet_name"], "web-r2");
    assert_eq!(v["hold_at"], 10);
    // Outputs are not part of an import; a refresh-only apply records them, nothing else.
    h.terraform(&["apply", "-refresh-only", "-auto-approve"])
        .await?
        .ok()?;
    assert!(h.plan_is_empty().await?, "import while held");
    // Destroy: both fleets gone, the listener answers 503.
    h.terraform(&["destroy", "-auto-approve"]).await?.ok()?;
    assert_eq!(h.owned_objects("web").await?, Vec::<String>::new());
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        split(&[("fixed-response", 503)])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_at_is_checked_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&config(&h, &h.fx.image_a, Some(20)))?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 1);
    assert!(
        run.says("hold_at must be 0 or one of the canary_step weights (10, 50); got 20"),
        "{}",
        run.all()
    );
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  hold_at = 10".into(),
        ..Default::default()
    }))?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 1);
    assert!(
        run.says("hold_at must be 0 with strategy \"blue_green\""),
        "{}",
        run.all()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_and_a_kill_while_promoting_then_the_next_apply_finishes() -> anyhow::Result<()> {
    let h = held_at(10).await?;
    let (aws, listener) = (&h.aws, h.fx.listener_arn.as_str());
    let at_50 = || async { Ok(aws.listener_weights(listener).await?.get("web-r2") == Some(&50)) };
    // 1. Ctrl-C in the pause at 50 % of the promotion: traffic back on the serving fleet
    // alone (the held share too), the apply says where it stopped.
    h.write(&config_with(&h, &h.fx.image_b, None, "5m", ""))?;
    let child = h.spawn_terraform_in(&h.dir.0, &["apply", "-auto-approve", "-input=false"])?;
    let pid = child.id().expect("terraform runs");
    let _guard = acceptance_tests::GroupGuard(pid);
    assert!(
        wait_until(Duration::from_secs(60), at_50).await?,
        "the promotion never reached 50 %"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    Harness::interrupt_group(pid)?;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    let text = acceptance_tests::fold(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("release web-r2 stopped"), "{text}");
    assert!(
        text.contains("Traffic is back on release 1 (web-r1)"),
        "{text}"
    );
    assert_eq!(
        aws.listener_weights(listener).await?,
        split(&[("web-r1", 100)])
    );

    // 2. The promotion again, killed outright at 50 %: the traffic stays split.
    let child = h.spawn_terraform_in(&h.dir.0, &["apply", "-auto-approve", "-input=false"])?;
    let pid = child.id().expect("terraform runs");
    let _guard2 = acceptance_tests::GroupGuard(pid);
    assert!(
        wait_until(Duration::from_secs(60), at_50).await?,
        "the promotion never reached 50 %"
    );
    Harness::kill_group(pid)?;
    let _ = child.wait_with_output().await;

    // 3. The next apply finishes the promotion: the same fleet, committed.
    h.write(&config(&h, &h.fx.image_b, None))?;
    h.apply(&[]).await?;
    let v = h.resource_values().await?;
    assert_eq!(v["fleet_name"], "web-r2");
    assert_eq!(v["release"], 2);
    assert!(v["holding"].is_null());
    let mut groups = h.aws.group_names().await?;
    groups.sort();
    assert_eq!(groups, ["web-r1", "web-r2"], "no new fleet");
    assert!(h.plan_is_empty().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_while_held_is_warned_of_and_aborts_the_promotion() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    let alarms = "\n  alarm_names = [\"web-5xx\"]";
    h.write(&config_with(&h, &h.fx.image_a, None, "1s", alarms))?;
    h.apply(&[]).await?;
    h.write(&config_with(&h, &h.fx.image_b, Some(10), "1s", alarms))?;
    h.apply(&[]).await?;
    // Nobody watches alarms between applies: the plan says what the promotion would meet.
    h.aws.fire_alarm("web-5xx").await?;
    h.write(&config_with(&h, &h.fx.image_b, None, "1s", alarms))?;
    let run = h.terraform(&["plan"]).await?;
    assert!(
        run.says("alarm web-5xx is in ALARM while the release is held at 10 %: promoting it now would abort it"),
        "{}",
        run.all()
    );
    let run = h.terraform(&["apply", "-auto-approve"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.says("release web-r2 aborted"), "{}", run.all());
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        split(&[("web-r1", 100)])
    );
    assert_eq!(h.aws.group_names().await?, ["web-r1"]);
    Ok(())
}
