//! Sticky routes (`load_balancer.stickiness`): a write of the listener that leaves out the
//! forward's `TargetGroupStickinessConfig` switches stickiness off (AWS and the emulator
//! alike), so every weight change carries it; switched off by hand it is drift, put back; a
//! change of duration is a settings update, not a release; bad values are refused at plan.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acceptance_tests::{Harness, ReleaseOpts};

/// (web-r2's weight, the listener's stickiness in seconds), each change once.
type Samples = Vec<(i64, Option<i64>)>;

fn opts(duration: &str, extra: &str) -> ReleaseOpts {
    ReleaseOpts {
        extra: format!(
            "  strategy = \"canary\"\n  canary_step {{\n    weight = 10\n    pause  = \"2s\"\n  }}\n{extra}"
        ),
        lb_extra: format!(
            "    deregistration_delay = 1\n    stickiness {{\n      duration = \"{duration}\"\n    }}"
        ),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stickiness_holds_through_a_canary_comes_back_after_drift_and_changes_in_place(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&opts("1h", "  rollback_window = \"2h\"")))?;
    h.apply(&[]).await?;
    assert_eq!(
        h.aws.listener_stickiness(&h.fx.listener_arn).await?,
        Some(3600)
    );

    // Every split the canary sets keeps it.
    let seen: Arc<Mutex<Samples>> = Arc::default();
    let stop = Arc::new(Mutex::new(false));
    let sampler = {
        let (aws, listener, seen, stop) = (
            h.aws.clone(),
            h.fx.listener_arn.clone(),
            seen.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !*stop.lock().unwrap() {
                if let (Ok(w), Ok(s)) = (
                    aws.listener_weights(&listener).await,
                    aws.listener_stickiness(&listener).await,
                ) {
                    let new = w.get("web-r2").copied().unwrap_or(-1);
                    let mut v = seen.lock().unwrap();
                    if v.last() != Some(&(new, s)) {
                        v.push((new, s));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    *stop.lock().unwrap() = true;
    sampler.await?;
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(w, _)| *w == 10),
        "the canary's 10 % was never seen: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, s)| *s == Some(3600)),
        "a write dropped stickiness: {seen:?}"
    );
    assert_eq!(h.resource_values().await?["release"], 2);

    // Switched off by hand: drift the plan shows, put back by the apply, no release.
    h.aws.switch_stickiness_off(&h.fx.listener_arn).await?;
    assert_eq!(h.aws.listener_stickiness(&h.fx.listener_arn).await?, None);
    let plan = h
        .terraform(&["plan", &format!("-var=image_id={}", h.fx.image_b)])
        .await?;
    assert!(
        plan.stdout.contains("stickiness"),
        "the plan shows the drift: {}",
        plan.all()
    );
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(
        h.aws.listener_stickiness(&h.fx.listener_arn).await?,
        Some(3600)
    );
    let values = h.resource_values().await?;
    assert_eq!(values["release"], 2, "putting it back is no release");
    assert_eq!(values["fleet_name"], "web-r2");

    // A new duration is a settings update of the route.
    h.write(&h.release_hcl(&opts("2h", "  rollback_window = \"3h\"")))?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(
        h.aws.listener_stickiness(&h.fx.listener_arn).await?,
        Some(7200)
    );
    assert_eq!(h.resource_values().await?["release"], 2);
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_stickiness_is_refused_at_plan() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    for (duration, extra, says) in [
        ("0s", "", "from 1s to 7 days"),
        ("169h", "  rollback_window = \"200h\"", "from 1s to 7 days"),
        (
            "1h",
            "  rollback_window = \"30m\"",
            "must be longer than load_balancer.stickiness.duration",
        ),
        (
            "1h",
            "",
            "must be longer than load_balancer.stickiness.duration",
        ),
    ] {
        h.write(&h.release_hcl(&opts(duration, extra)))?;
        let run = h.terraform(&["plan"]).await?;
        assert_eq!(run.code, 1, "{duration} {extra}: {}", run.all());
        assert!(
            acceptance_tests::fold(&run.all()).contains(says),
            "{duration} {extra}: {}",
            run.all()
        );
    }
    Ok(())
}
