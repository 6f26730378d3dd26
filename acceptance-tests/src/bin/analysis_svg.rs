//! `make analysis-svg`: draws `contributing/images/canary-analysis.svg` from a real run against the
//! local AWS — a canary that analysis aborted: both fleets' weights over time (sampled from
//! the listener), both fleets' error rates (as written to CloudWatch), each judgement (from
//! the provider's log) and the moment traffic went back.
//!
//! The run: release 1 serves; release 2 walks to 10 % for a 60 s pause judged every 3 s
//! (error rate at most +2 points over release 1). Its targets answer well for 6 s after
//! they take traffic, then 30 % 5xx; release 1 answers 0.5 % throughout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acceptance_tests::{Aws, Harness, ReleaseOpts};

/// What the run saw, in seconds since the release began.
#[derive(Debug, Default)]
struct Seen {
    /// (t, web-r1 %, web-r2 %), each change.
    weights: Vec<(f64, i64, i64)>,
    /// (t, fleet, error rate % written).
    rates: Vec<(f64, &'static str, f64)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(
        &h.release_hcl(&ReleaseOpts {
            extra: r#"  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "60s"
  }
  analysis {
    interval = "3s"
    error_rate {
      max_increase = 2
      min_requests = 50
    }
  }"#
            .into(),
            lb_extra: "    deregistration_delay = 1".into(),
            ..Default::default()
        }),
    )?;
    h.apply(&[]).await?;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(Mutex::new(false));
    let began = Instant::now();
    let secs = move || began.elapsed().as_secs_f64();
    // The listener, every 50 ms.
    let sampler = {
        let (aws, listener, seen, stop) = (
            h.aws.clone(),
            h.fx.listener_arn.clone(),
            seen.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !*stop.lock().unwrap() {
                if let Ok(w) = aws.listener_weights(&listener).await {
                    let (a, b) = (
                        w.get("web-r1").copied().unwrap_or(0),
                        w.get("web-r2").copied().unwrap_or(0),
                    );
                    let mut s = seen.lock().unwrap();
                    if s.weights.last().map(|l| (l.1, l.2)) != Some((a, b)) {
                        s.weights.push((secs(), a, b));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Both fleets' metrics, every 250 ms: web-r2 goes bad 6 s after it takes traffic.
    let writer = {
        let (direct, through_proxy) = (h.aws.clone(), Aws::new(&h.proxy.url).await);
        let lb =
            h.fx.load_balancer_arn
                .split_once(":loadbalancer/")
                .map(|(_, r)| r.to_string())
                .unwrap_or_default();
        let (listener, seen, stop) = (h.fx.listener_arn.clone(), seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut traffic_since: Option<Instant> = None;
            while !*stop.lock().unwrap() {
                let weights = direct.listener_weights(&listener).await.unwrap_or_default();
                if weights.get("web-r2").copied().unwrap_or(0) > 0 && traffic_since.is_none() {
                    traffic_since = Some(Instant::now());
                }
                let bad = traffic_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(6));
                for (arn, name) in direct.target_group_arns().await.unwrap_or_default() {
                    let tg = arn
                        .rsplit_once(':')
                        .map(|(_, r)| r.to_string())
                        .unwrap_or_default();
                    let (fleet, requests, errors) = match name.as_str() {
                        "web-r1" => ("web-r1", 90.0, 0.45),
                        "web-r2" if traffic_since.is_some() => {
                            ("web-r2", 10.0, if bad { 3.0 } else { 0.0 })
                        }
                        _ => continue,
                    };
                    if through_proxy
                        .put_alb_metrics(&tg, &lb, requests, errors, &[])
                        .await
                        .is_ok()
                    {
                        seen.lock()
                            .unwrap()
                            .rates
                            .push((secs(), fleet, 100.0 * errors / requests));
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let log = h.dir.0.join("provider.log");
    let var = format!("-var=image_id={}", h.fx.image_b);
    let wall_began = std::time::SystemTime::now();
    let run = h
        .terraform_env(
            &["apply", "-auto-approve", &var],
            &[
                ("TF_LOG_PROVIDER", "INFO"),
                ("TF_LOG_PATH", log.to_str().unwrap()),
            ],
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    *stop.lock().unwrap() = true;
    sampler.await?;
    writer.await?;
    anyhow::ensure!(
        run.code == 1,
        "analysis was to abort the release: {}",
        run.all()
    );
    let reason = acceptance_tests::fold(&run.all());
    let reason = reason
        .find("analysis error_rate")
        .map(|i| {
            reason[i..]
                .split(" during")
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default();

    // The judgements, from the provider's log: when, and what each came to.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut judgements: Vec<(f64, &str)> = Vec::new();
    for line in text.lines() {
        let verdict = if line.contains("analysis passed") {
            "pass"
        } else if line.contains("analysis inconclusive") {
            "inconclusive"
        } else {
            continue;
        };
        // Terraform's log: each line starts with its time.
        let Some(at) = line
            .split_whitespace()
            .next()
            .and_then(|t| {
                aws_sdk_cloudwatch::primitives::DateTime::from_str(
                    t,
                    aws_sdk_cloudwatch::primitives::DateTimeFormat::DateTime,
                )
                .ok()
            })
            .and_then(|d| std::time::SystemTime::try_from(d).ok())
        else {
            continue;
        };
        let t = at
            .duration_since(wall_began)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        judgements.push((t, verdict));
    }
    let seen = seen.lock().unwrap();
    // Traffic went back: the last change of the weights to web-r1 alone after web-r2 had
    // a share; the failed judgement is the one that sent it back.
    let back = seen
        .weights
        .iter()
        .skip_while(|w| w.2 == 0)
        .find(|w| w.2 == 0)
        .map(|w| w.0);
    if let Some(b) = back {
        judgements.push((b, "fail"));
    }
    let svg = draw(&seen, &judgements, back, &reason);
    let out = acceptance_tests::repo_root().join("contributing/images/canary-analysis.svg");
    std::fs::create_dir_all(out.parent().unwrap())?;
    std::fs::write(&out, svg)?;
    println!(
        "wrote {} ({} weight changes, {} rate points, {} judgements; traffic back at {:.1} s)",
        out.display(),
        seen.weights.len(),
        seen.rates.len(),
        judgements.len(),
        back.unwrap_or_default()
    );
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two panels over the same time axis: weights (%), then error rates (%).
fn draw(seen: &Seen, judgements: &[(f64, &str)], back: Option<f64>, reason: &str) -> String {
    let (w, left, right) = (900.0, 70.0, 30.0);
    let end = seen
        .weights
        .last()
        .map(|l| l.0)
        .unwrap_or(10.0)
        .max(back.unwrap_or(0.0))
        + 2.0;
    let start = seen
        .weights
        .iter()
        .find(|x| x.2 > 0)
        .map(|x| (x.0 - 3.0).max(0.0))
        .unwrap_or(0.0);
    let x = |t: f64| left + (t - start).max(0.0) / (end - start) * (w - left - right);
    let panel = |top: f64, height: f64, max: f64| move |v: f64| top + height - v / max * height;
    let wy = panel(60.0, 150.0, 100.0);
    let ey = panel(280.0, 120.0, 35.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"470\" viewBox=\"0 0 {w} 470\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">A canary aborted by analysis (a real run against the local AWS)</text>\n<text x=\"{left}\" y=\"42\" fill=\"#555\">{}</text>\n",
        esc(reason)
    );
    // Axes and grid.
    for (top, h, label, ticks, max) in [
        (60.0, 150.0, "traffic %", [0.0, 50.0, 100.0], 100.0),
        (280.0, 120.0, "5xx rate %", [0.0, 10.0, 30.0], 35.0),
    ] {
        let y = panel(top, h, max);
        s.push_str(&format!(
            "<text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\" fill=\"#333\">{label}</text>\n",
            top + h / 2.0,
            top + h / 2.0
        ));
        for t in ticks {
            s.push_str(&format!(
                "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0}\" y2=\"{y0}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#666\">{t}</text>\n",
                w - right,
                left - 6.0,
                y(t) + 4.0,
                y0 = y(t)
            ));
        }
    }
    let mut t = (start / 2.0).ceil() * 2.0;
    while t <= end {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"425\" text-anchor=\"middle\" fill=\"#666\">{}s</text>\n",
            x(t),
            (t - start).round()
        ));
        t += 2.0;
    }
    // Weights as steps.
    for (i, colour, name) in [
        (1, "#1f77b4", "web-r1 (serving)"),
        (2, "#ff7f0e", "web-r2 (canary)"),
    ] {
        let mut points = Vec::new();
        let mut last: Option<f64> = None;
        for &(t, a, b) in &seen.weights {
            let v = if i == 1 { a } else { b } as f64;
            if let Some(l) = last {
                points.push(format!("{:.1},{:.1}", x(t), wy(l)));
            }
            points.push(format!("{:.1},{:.1}", x(t), wy(v)));
            last = Some(v);
        }
        if let Some(l) = last {
            points.push(format!("{:.1},{:.1}", x(end), wy(l)));
        }
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" points=\"{}\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>\n",
            points.join(" "),
            w - right - 150.0,
            if i == 1 { 78.0 } else { 96.0 }
        ));
    }
    // Error rates as written.
    for (fleet, colour) in [("web-r1", "#1f77b4"), ("web-r2", "#ff7f0e")] {
        let points: Vec<String> = seen
            .rates
            .iter()
            .filter(|r| r.1 == fleet && r.0 >= start)
            .map(|r| format!("{:.1},{:.1}", x(r.0), ey(r.2)))
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
            points.join(" ")
        ));
    }
    // Judgements on the weights panel.
    for &(t, verdict) in judgements.iter().filter(|j| j.0 >= start) {
        let (mark, colour) = match verdict {
            "pass" => ("✓ pass", "#2ca02c"),
            "fail" => ("✗ fail", "#d62728"),
            _ => ("? inconclusive", "#999"),
        };
        s.push_str(&format!(
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"215\" y2=\"232\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{0:.1}\" y=\"248\" text-anchor=\"middle\" fill=\"{colour}\">{mark}</text>\n",
            x(t)
        ));
    }
    if let Some(b) = back {
        s.push_str(&format!(
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"55\" y2=\"405\" stroke=\"#d62728\" stroke-dasharray=\"5,4\"/><text x=\"{1:.1}\" y=\"270\" fill=\"#d62728\">traffic back on web-r1</text>\n",
            x(b),
            x(b) + 6.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{left}\" y=\"455\" fill=\"#555\">judged every 3 s over the step's window (whole minutes): error rate at most +2 points over the serving fleet; time from 3 s before the canary's first weight</text>\n</svg>\n"
    ));
    s
}
