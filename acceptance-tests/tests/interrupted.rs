//! An apply killed in the middle of a canary (Terraform and the provider, SIGKILL) leaves a
//! half-made release; the next apply converges: one serving fleet with all the traffic, no
//! leftover, an empty plan.

use std::time::Duration;

use acceptance_tests::{Harness, ReleaseOpts};

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_a_canary_pause_the_next_apply_converges() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"60s\"\n  }".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;

    let var = format!("-var=image_id={}", h.fx.image_b);
    let mut child = h.spawn_terraform(&["apply", "-auto-approve", "-input=false", &var])?;
    let pgid = child.id().expect("terraform runs");
    let mut reached = false;
    for _ in 0..400 {
        if h.aws
            .listener_weights(&h.fx.listener_arn)
            .await?
            .get("web-r2")
            == Some(&10)
        {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reached, "the canary never reached 10 %");
    // Terraform and the provider it started, at once.
    Harness::kill_group(pgid)?;
    let _ = child.wait().await;
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r2".to_string()]
    );

    // The next apply (without the pause, to keep the test short) converges.
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r3".to_string()]
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r3".to_string(), 100)].into()
    );
    assert!(h
        .owned_objects("web")
        .await?
        .iter()
        .all(|o| !o.contains("web-r2")));
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    let values = h.resource_values().await?;
    let r2 = values["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["release"] == 2)
        .cloned();
    assert_eq!(
        r2.map(|e| e["status"].clone()),
        Some(serde_json::json!("aborted"))
    );
    Ok(())
}
