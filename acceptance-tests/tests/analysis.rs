//! Canary analysis (`analysis`): the new fleet judged on its own ALB metrics against the
//! fleet that serves beside it. A writer puts both fleets' `RequestCount`,
//! `HTTPCode_Target_5XX_Count` and `TargetResponseTime` through the fault proxy (which keeps
//! CloudWatch's metrics and answers `GetMetricData` with percentiles, as CloudWatch does)
//! every 250 ms while the release runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use acceptance_tests::{Aws, Harness, ReleaseOpts};
use aws_sdk_cloudwatch as cw;

/// One fleet's traffic every 250 ms: requests, 5xx answers, response times (seconds).
#[derive(Clone)]
struct Load {
    requests: f64,
    errors: f64,
    latency: Vec<f64>,
}

fn load(requests: f64, errors: f64, latency: &[f64]) -> Load {
    Load {
        requests,
        errors,
        latency: latency.to_vec(),
    }
}

/// Writes web-r2's and web-r1's metrics until dropped (web-r2's once its target group
/// exists).
struct Writer {
    stop: Arc<AtomicBool>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn write(h: &Harness, new: Load, serving: Load) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let through_proxy = Aws::new(&h.proxy.url).await;
    let (direct, lb) = (h.aws.clone(), h.fx.load_balancer_arn.clone());
    let lb = lb
        .split_once(":loadbalancer/")
        .map(|(_, r)| r.to_string())
        .unwrap();
    let s2 = stop.clone();
    tokio::spawn(async move {
        while !s2.load(Ordering::SeqCst) {
            if let Ok(arns) = direct.target_group_arns().await {
                for (arn, name) in arns {
                    let l = match name.as_str() {
                        "web-r2" => &new,
                        "web-r1" => &serving,
                        _ => continue,
                    };
                    let tg = arn.rsplit_once(':').map(|(_, r)| r.to_string()).unwrap();
                    let _ = through_proxy
                        .put_alb_metrics(&tg, &lb, l.requests, l.errors, &l.latency)
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    Writer { stop }
}

/// `terraform apply` of image B, as it ends (the harness's `apply` fails on an exit code).
async fn release_b(h: &Harness) -> anyhow::Result<acceptance_tests::Run> {
    let var = format!("-var=image_id={}", h.fx.image_b);
    h.terraform(&["apply", "-auto-approve", &var]).await
}

/// A canary at 10 % for `pause`, judged every 2 s: error rate at most +2 points over the
/// serving fleet (at least `min_requests`), p99 at most +100ms.
fn judged(h: &Harness, pause: &str, min_requests: u32) -> String {
    h.release_hcl(&ReleaseOpts {
        extra: format!(
            r#"  strategy = "canary"
  canary_step {{
    weight = 10
    pause  = "{pause}"
  }}
  analysis {{
    interval = "2s"
    error_rate {{
      max_increase = 2
      min_requests = {min_requests}
    }}
    latency {{
      statistic    = "p99"
      max_increase = "100ms"
    }}
  }}"#
        ),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_far_worse_than_the_serving_fleet_aborts_within_its_pause() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&judged(&h, "40s", 50))?;
    h.apply(&[]).await?;
    // web-r2 answers 20 % 5xx, web-r1 0.5 %.
    let _writer = write(&h, load(10.0, 2.0, &[0.1]), load(90.0, 0.45, &[0.1])).await;
    let t = std::time::Instant::now();
    let run = release_b(&h).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        t.elapsed() < Duration::from_secs(40),
        "within the pause: {:?}",
        t.elapsed()
    );
    let text = acceptance_tests::fold(&run.all());
    assert!(
        text.contains("analysis error_rate: web-r2 20.0 % of")
            && text.contains("requests answered 5xx against web-r1 0.5 % of")
            && text.contains("(max increase 2 points) during canary pause at 10 %"),
        "{}",
        run.all()
    );
    assert!(
        text.contains("Traffic is back on release 1 (web-r1)"),
        "{}",
        run.all()
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(h.resource_values().await?["release"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_as_good_as_the_serving_fleet_is_released_and_the_plan_names_the_checks(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&judged(&h, "8s", 50))?;
    h.apply(&[]).await?;
    let plan = h
        .terraform(&["plan", &format!("-var=image_id={}", h.fx.image_b)])
        .await?
        .ok()?;
    assert!(
        acceptance_tests::fold(&plan.stdout).contains(
            "watch 8s at 10 %: the new fleet's health, analysis (error rate ≤ +2 points over web-r1; p99 ≤ +100ms over web-r1) every 2s"
        ),
        "{}",
        plan.all()
    );
    let _writer = write(&h, load(10.0, 0.05, &[0.1]), load(90.0, 0.45, &[0.1])).await;
    h.proxy.reset_counts();
    let t = std::time::Instant::now();
    let run = release_b(&h).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        t.elapsed() >= Duration::from_secs(8),
        "the pause was watched to its end"
    );
    assert_eq!(h.resource_values().await?["release"], 2);
    let judgements = h.proxy.calls().get("GetMetricData").copied().unwrap_or(0);
    assert!(
        (3..=4).contains(&judgements),
        "one GetMetricData a judgement, every 2 s of an 8 s pause: {judgements}"
    );
    // The one-line rollback goes back to a fleet that served: not judged, no metric read.
    h.proxy.reset_counts();
    h.apply(&[("image_id", &h.fx.image_a)]).await?;
    let values = h.resource_values().await?;
    assert_eq!(
        (values["release"].clone(), values["fleet_name"].clone()),
        (3.into(), "web-r1".into())
    );
    assert_eq!(
        h.proxy.calls().get("GetMetricData"),
        None,
        "a rollback is not judged"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_canary_aborts_on_its_p99() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&judged(&h, "40s", 50))?;
    h.apply(&[]).await?;
    // 5 % of web-r2's answers take 2 s: its p99 is 2 s, its average barely moves.
    let mut slow = vec![0.1; 19];
    slow.push(2.0);
    let _writer = write(&h, load(10.0, 0.0, &slow), load(90.0, 0.0, &[0.1; 20])).await;
    let run = release_b(&h).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        acceptance_tests::fold(&run.all())
            .contains("analysis latency: web-r2 p99 2s against web-r1 100ms (max increase 100ms)"),
        "{}",
        run.all()
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn too_few_requests_is_inconclusive_and_the_release_goes_on_with_a_warning(
) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    // Far more requests needed than a 6 s step gets.
    h.write(&judged(&h, "6s", 100_000))?;
    h.apply(&[]).await?;
    let _writer = write(&h, load(10.0, 5.0, &[0.1]), load(90.0, 0.0, &[0.1])).await;
    let run = release_b(&h).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    let text = acceptance_tests::fold(&run.all());
    assert!(text.contains("Warning:"), "{}", run.all());
    assert!(
        text.contains("canary pause at 10 % of web-r2 ended with only inconclusive judgements")
            && text.contains("fewer than min_requests (100000)"),
        "{}",
        run.all()
    );
    assert_eq!(h.resource_values().await?["release"], 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_analysis_is_refused_at_plan_and_a_short_pause_is_warned_of() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let with = |analysis: &str, pause: &str| {
        h.release_hcl(&ReleaseOpts {
            extra: format!(
                "  strategy = \"canary\"\n  canary_step {{\n    weight = 10\n    pause  = \"{pause}\"\n  }}\n  analysis {{\n{analysis}\n  }}"
            ),
            ..Default::default()
        })
    };
    for (analysis, says) in [
        ("    interval = \"500ms\"\n    error_rate {\n      max = 2\n    }", "analysis.interval must be at least 1s"),
        ("    error_rate {\n      max = -1\n    }", "percentage from 0 to 100"),
        ("    error_rate {\n      max_increase = -0.5\n    }", "0 or more"),
        ("    latency {\n      statistic = \"p42\"\n      max = \"1s\"\n    }", "must be one of Average, p50, p90, p95, p99"),
        ("    metric {\n      name = \"x\"\n      namespace = \"Shop\"\n      metric_name = \"Failed\"\n      statistic = \"Sum\"\n    }", "needs max or min"),
        ("    metric {\n      name = \"x\"\n      namespace = \"Shop\"\n      metric_name = \"Failed\"\n      statistic = \"Sum\"\n      max = 1\n      dimensions = { AutoScalingGroupName = \"{fleet_name}\" }\n    }", "{fleet_name}, which is not a placeholder"),
        ("    interval = \"1m\"", "nothing to judge"),
    ] {
        h.write(&with(analysis, "2m"))?;
        let run = h.terraform(&["plan"]).await?;
        assert_eq!(run.code, 1, "{analysis}: {}", run.all());
        assert!(
            acceptance_tests::fold(&run.all()).contains(says),
            "{analysis}: {}",
            run.all()
        );
    }
    h.write(&with(
        "    interval = \"1m\"\n    error_rate {\n      max = 2\n    }",
        "30s",
    ))?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        acceptance_tests::fold(&run.all()).contains("analysis never judges this release"),
        "{}",
        run.all()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_metric_aborts_once_failure_limit_is_spent() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(
        &h.release_hcl(&ReleaseOpts {
            extra: r#"  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "40s"
  }
  analysis {
    interval      = "2s"
    failure_limit = 1
    metric {
      name        = "checkout-failures"
      namespace   = "Shop"
      metric_name = "CheckoutFailed"
      dimensions  = { AutoScalingGroupName = "{fleet}" }
      statistic   = "Sum"
      max         = 5
    }
  }"#
            .into(),
            lb_extra: "    deregistration_delay = 1".into(),
            ..Default::default()
        }),
    )?;
    h.apply(&[]).await?;
    // web-r2's checkouts fail from the start: 10 a write.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cw, stop) = (Aws::new(&h.proxy.url).await.cw, stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let _ = cw
                    .put_metric_data()
                    .namespace("Shop")
                    .metric_data(
                        cw::types::MetricDatum::builder()
                            .metric_name("CheckoutFailed")
                            .dimensions(
                                cw::types::Dimension::builder()
                                    .name("AutoScalingGroupName")
                                    .value("web-r2")
                                    .build(),
                            )
                            .timestamp(cw::primitives::DateTime::from(std::time::SystemTime::now()))
                            .value(10.0)
                            .build(),
                    )
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    h.proxy.reset_counts();
    let run = release_b(&h).await?;
    stop.store(true, Ordering::SeqCst);
    writer.await?;
    assert_eq!(run.code, 1, "{}", run.all());
    let text = acceptance_tests::fold(&run.all());
    assert!(
        text.contains("analysis metric checkout-failures: web-r2 CheckoutFailed Sum")
            && text.contains("(max 5) during canary pause at 10 %"),
        "{}",
        run.all()
    );
    // The first failed judgement is tolerated (a warning would say so), the second aborts.
    assert_eq!(
        h.proxy.calls().get("GetMetricData").copied(),
        Some(2),
        "{}",
        run.all()
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    Ok(())
}
