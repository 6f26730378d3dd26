//! `planned_steps` and `planned_duration`: known at plan, in a reviewer's words, in
//! `terraform show -json` of a saved plan, and kept as planned in the state after the
//! apply — for a first release, a canary, a rollback and a scale.

use acceptance_tests::{Harness, ReleaseOpts};

const CANARY: &str = r#"  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "2s"
  }
  canary_step {
    weight = 50
    pause  = "3s"
  }
  alarm_names = ["web-5xx"]"#;

/// Plans into `file` and returns the release's planned (`after`) values from
/// `terraform show -json`.
async fn planned(h: &Harness, file: &str, vars: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = format!("-out={file}");
    let mut args = vec!["plan", out.as_str()];
    args.extend(vars);
    h.terraform(&args).await?.ok()?;
    let show = h.terraform(&["show", "-json", file]).await?.ok()?;
    let plan: serde_json::Value = serde_json::from_str(&show.stdout)?;
    let change = plan["resource_changes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["address"] == "immutable_release.web"))
        .ok_or_else(|| anyhow::anyhow!("no change of the release in {}", show.stdout))?;
    // Known: absent from `after_unknown`, or there as `false` for each element.
    let unknown = &change["change"]["after_unknown"]["planned_steps"];
    let known = match unknown {
        serde_json::Value::Null | serde_json::Value::Bool(false) => true,
        serde_json::Value::Array(a) => a.iter().all(|e| e == false),
        _ => false,
    };
    assert!(known, "planned_steps is known at plan: {unknown}");
    assert_ne!(change["change"]["after_unknown"]["planned_duration"], true);
    Ok(change["change"]["after"].clone())
}

fn steps(after: &serde_json::Value) -> Vec<String> {
    after["planned_steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_says_what_the_apply_will_do() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: CANARY.into(),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;
    let (a, b) = (h.fx.image_a.clone(), h.fx.image_b.clone());

    // A first release: launch, health gate, all traffic.
    let first = planned(&h, "first.plan", &[]).await?;
    let s = steps(&first);
    assert_eq!(s.len(), 3, "{s:#?}");
    assert!(
        s[0].starts_with("launch web-r1: ") && s[0].ends_with(&format!("× t3.micro from {a}")),
        "{s:#?}"
    );
    assert!(
        s[1].starts_with("health gate web-r1: 100 % of desired capacity healthy"),
        "{s:#?}"
    );
    assert_eq!(s[2], "traffic 100 % to web-r1");
    // The default health check: 3 checks 30 s apart.
    assert_eq!(first["planned_duration"], "1m30s");
    h.terraform(&["apply", "first.plan"]).await?.ok()?;
    let state = h.resource_values().await?;
    assert_eq!(
        state["planned_steps"], first["planned_steps"],
        "kept as planned"
    );
    assert!(h.plan_is_empty().await?, "no change after the apply");

    // A canary: every weight and watch, the alarms, what is retained.
    let image_b = format!("-var=image_id={b}");
    let canary = planned(&h, "canary.plan", &[&image_b]).await?;
    let s = steps(&canary);
    assert_eq!(
        s[2..].to_vec(),
        vec![
            "traffic 10 % to web-r2, 90 % to web-r1".to_string(),
            "watch 2s at 10 %: alarms web-5xx and the new fleet's health".into(),
            "traffic 50 % to web-r2, 50 % to web-r1".into(),
            "watch 3s at 50 %: alarms web-5xx and the new fleet's health".into(),
            "traffic 100 % to web-r2".into(),
            "retain web-r1 out of traffic for rollback; scaled to zero after 1h0m0s".into(),
        ],
        "{s:#?}"
    );
    assert!(
        s[0].starts_with("launch web-r2: ") && s[0].contains(&b),
        "{s:#?}"
    );
    assert_eq!(
        canary["planned_duration"], "1m35s",
        "90 s of checks + 2 s + 3 s"
    );
    h.terraform(&["apply", "canary.plan"]).await?.ok()?;
    assert!(h.plan_is_empty_with(&[("image_id", b.as_str())]).await?);

    // A rollback: no launch, the retained fleet back to all traffic.
    let rollback = planned(&h, "rollback.plan", &[&format!("-var=image_id={a}")]).await?;
    let s = steps(&rollback);
    assert!(!s.iter().any(|x| x.starts_with("launch")), "{s:#?}");
    assert_eq!(s[2], "traffic 100 % to web-r1", "{s:#?}");
    assert_eq!(
        s[3],
        "retain web-r2 out of traffic for rollback; scaled to zero after 1h0m0s"
    );
    assert_eq!(rollback["planned_duration"], "0s");

    // A scale of the serving fleet.
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: format!("{CANARY}\n  desired_capacity = 2\n  max_size = 3"),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;
    let scale = planned(&h, "scale.plan", &[&image_b]).await?;
    let s = steps(&scale);
    assert_eq!(
        s[0], "scale web-r2 in place: min 1, max 3, desired 2",
        "{s:#?}"
    );
    assert!(s[1].starts_with("health gate web-r2"), "{s:#?}");
    h.terraform(&["apply", "scale.plan"]).await?.ok()?;
    assert!(h.plan_is_empty_with(&[("image_id", b.as_str())]).await?);
    Ok(())
}
