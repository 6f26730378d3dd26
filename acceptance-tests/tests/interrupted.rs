//! Interrupted applies. The crash matrix kills Terraform and the provider (SIGKILL, the
//! whole process group) at each phase of a canary release, then applies again and checks
//! that the release converged: one serving fleet with all the traffic, the desired image,
//! the retained fleets the settings ask for (none here), nothing else owned by the release,
//! an empty plan. A watcher samples the listener throughout and checks that traffic never
//! pointed at a fleet that was not healthy at that moment. Then Ctrl-C (SIGINT to
//! Terraform) during a canary pause.

use std::time::{Duration, Instant};

use acceptance_tests::proxy::{FaultProxy, Faults};
use acceptance_tests::{wait_until, Aws, Harness, ReleaseOpts, TrafficWatcher};

/// Canary 10 % → 50 % with 2 s pauses, a 2 s bake, no retained fleet (so retirement
/// deletes the previous fleet), everything through the fault proxy.
fn canary_opts(proxy: &FaultProxy) -> ReleaseOpts {
    ReleaseOpts {
        endpoint: Some(proxy.url.clone()),
        extra: "  strategy      = \"canary\"\n  retain_fleets = 0\n  bake_time     = \"2s\"\n  canary_step {\n    weight = 10\n    pause  = \"2s\"\n  }\n  canary_step {\n    weight = 50\n    pause  = \"2s\"\n  }".into(),
        // The replaced fleet drains a second before it is deleted (retain_fleets = 0).
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    FleetCreated,
    HealthWait,
    Step10,
    Step50,
    Bake,
    Retirement,
}

async fn weight_of(aws: &Aws, listener: &str, fleet: &str) -> anyhow::Result<Option<i64>> {
    Ok(aws.listener_weights(listener).await?.get(fleet).copied())
}

/// Runs one cell of the crash matrix; returns a line for the report.
async fn crash_at(phase: Phase) -> anyhow::Result<String> {
    let h = Harness::start().await?;
    let proxy = FaultProxy::start(&h.emulator.url).await?;
    h.write(&h.release_hcl(&canary_opts(&proxy)))?;
    h.apply(&[]).await?;
    let watched = Aws::new(&proxy.url).await;
    let watcher = TrafficWatcher::start(watched, h.fx.listener_arn.clone());

    // Faults that hold the release in the phase long enough to be hit.
    match phase {
        Phase::FleetCreated | Phase::HealthWait => proxy.set_faults(Faults {
            unhealthy_target_groups: vec![("web-r2".into(), None)],
            ..Default::default()
        }),
        Phase::Retirement => proxy.set_faults(Faults {
            latency: Duration::from_secs(3),
            actions: vec!["DeleteAutoScalingGroup".into()],
            ..Default::default()
        }),
        _ => {}
    }
    // Only what the killed apply does counts below.
    proxy.reset_counts();
    let var = format!("-var=image_id={}", h.fx.image_b);
    let mut child = h.spawn_terraform(&["apply", "-auto-approve", "-input=false", &var])?;
    let pgid = child.id().expect("terraform runs");
    let _guard = acceptance_tests::GroupGuard(pgid);
    let (aws, listener) = (&h.aws, h.fx.listener_arn.as_str());
    let limit = Duration::from_secs(60);
    let reached = match phase {
        Phase::FleetCreated => {
            wait_until(limit, || async {
                Ok(proxy.saw("CreateAutoScalingGroup", "AutoScalingGroupName=web-r2&"))
            })
            .await?
        }
        Phase::HealthWait => {
            wait_until(limit, || async {
                Ok(proxy
                    .log()
                    .iter()
                    .filter(|s| {
                        s.action == "DescribeTargetHealth"
                            && acceptance_tests::proxy::names_target_group(&s.body, "web-r2")
                    })
                    .count()
                    >= 3)
            })
            .await?
        }
        Phase::Step10 => {
            wait_until(limit, || async {
                Ok(weight_of(aws, listener, "web-r2").await? == Some(10))
            })
            .await?
        }
        Phase::Step50 => {
            wait_until(limit, || async {
                Ok(weight_of(aws, listener, "web-r2").await? == Some(50))
            })
            .await?
        }
        Phase::Bake => {
            wait_until(limit, || async {
                Ok(weight_of(aws, listener, "web-r2").await? == Some(100)
                    && weight_of(aws, listener, "web-r1").await? == Some(0))
            })
            .await?
        }
        Phase::Retirement => {
            wait_until(limit, || async {
                Ok(proxy.saw("DeleteAutoScalingGroup", "AutoScalingGroupName=web-r1&"))
            })
            .await?
        }
    };
    assert!(reached, "{phase:?}: the release never reached the phase");
    Harness::kill_group(pgid)?;
    let _ = child.wait().await;
    let left = h.aws.listener_weights(listener).await?;
    let groups_left = h.aws.group_names().await?;
    proxy.set_faults(Faults::default());

    // The next apply, same configuration, converges.
    let started = Instant::now();
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    let converge_s = started.elapsed().as_secs_f64();
    let (samples, violations) = watcher.finish().await;
    assert!(
        violations.is_empty(),
        "{phase:?}: traffic pointed at an unhealthy fleet: {violations:?}"
    );
    assert!(
        samples > 20,
        "{phase:?}: the watcher sampled {samples} times"
    );

    let groups = h.aws.group_names().await?;
    assert_eq!(groups.len(), 1, "{phase:?}: one fleet, got {groups:?}");
    let serving = groups[0].clone();
    // A fleet whose objects were all made is finished, never launched twice; one killed
    // before its record was complete is removed and released anew as web-r3.
    if phase != Phase::FleetCreated {
        assert_eq!(
            serving, "web-r2",
            "{phase:?}: the half-made fleet was finished"
        );
    }
    assert_eq!(
        h.aws.listener_weights(listener).await?,
        [(serving.clone(), 100)].into(),
        "{phase:?}"
    );
    let group = h.aws.group(&serving).await?;
    let image = group
        .tags()
        .iter()
        .find(|t| t.key() == Some("immutable:image-id"))
        .and_then(|t| t.value());
    assert_eq!(image, Some(h.fx.image_b.as_str()), "{phase:?}");
    let mut want = vec![
        format!("group {serving}"),
        format!("target group {serving}"),
        "launch template web-ledger".to_string(),
        format!("launch template {serving}"),
    ];
    want.sort();
    let mut owned = h.owned_objects("web").await?;
    owned.sort();
    assert_eq!(owned, want, "{phase:?}: nothing else is left");
    assert_eq!(h.aws.rules(listener).await?, 0, "{phase:?}: no rule left");
    assert!(
        h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?,
        "{phase:?}: plan after converging"
    );
    Ok(format!(
        "{phase:?}: killed with listener {left:?}, groups {groups_left:?} → converged on {serving} (100 %) in one apply of {converge_s:.1} s; {samples} listener samples, 0 unhealthy"
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_the_fleet_is_created() -> anyhow::Result<()> {
    eprintln!("MATRIX {}", crash_at(Phase::FleetCreated).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_during_the_health_wait() -> anyhow::Result<()> {
    eprintln!("MATRIX {}", crash_at(Phase::HealthWait).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_at_the_first_canary_step() -> anyhow::Result<()> {
    eprintln!("MATRIX {}", crash_at(Phase::Step10).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_at_the_second_canary_step() -> anyhow::Result<()> {
    eprintln!("MATRIX {}", crash_at(Phase::Step50).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_during_the_bake() -> anyhow::Result<()> {
    eprintln!("MATRIX {}", crash_at(Phase::Bake).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_during_retirement() -> anyhow::Result<()> {
    eprintln!("MATRIX {}", crash_at(Phase::Retirement).await?);
    Ok(())
}

/// How the interrupt arrives.
#[derive(Debug, Clone, Copy)]
enum Interrupt {
    /// Ctrl-C in a terminal: SIGINT to the whole process group, provider included.
    Terminal,
    /// SIGINT to the Terraform process doing the work only: Terraform asks the provider to
    /// stop (StopProvider), which is all the provider hears.
    TerraformOnly,
    /// SIGTERM to the provider alone (a supervisor ending it): it stops the release,
    /// answers, and exits.
    ProviderSigterm,
}

/// Ctrl-C during a canary pause: traffic goes back on the serving fleet, the apply exits
/// promptly with an error that says where it stopped, and the next apply finishes the
/// release.
async fn ctrl_c_during_a_canary_pause(how: Interrupt) -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let opts = ReleaseOpts {
        extra:
            "  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"5m\"\n  }"
                .into(),
        ..Default::default()
    };
    h.write(&h.release_hcl(&opts))?;
    h.apply(&[]).await?;

    let var = format!("-var=image_id={}", h.fx.image_b);
    let child =
        h.spawn_terraform_in(&h.dir.0, &["apply", "-auto-approve", "-input=false", &var])?;
    let pid = child.id().expect("terraform runs");
    let _guard = acceptance_tests::GroupGuard(pid);
    let (aws, listener) = (&h.aws, h.fx.listener_arn.as_str());
    assert!(
        wait_until(Duration::from_secs(60), || async {
            Ok(weight_of(aws, listener, "web-r2").await? == Some(10))
        })
        .await?,
        "the canary never reached 10 %"
    );
    // The weight is in AWS a moment before its answer is back in the provider: Ctrl-C in
    // the pause, not during that write.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = Instant::now();
    match how {
        Interrupt::Terminal => Harness::interrupt_group(pid)?,
        Interrupt::TerraformOnly => Harness::interrupt(Harness::terraform_worker(pid)?)?,
        Interrupt::ProviderSigterm => Harness::terminate(Harness::provider_process(pid)?)?,
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("terraform did not exit within 60 s of Ctrl-C"))??;
    let took = asked.elapsed();
    let text = acceptance_tests::fold(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    assert!(!out.status.success(), "the apply reports the stop: {text}");
    assert!(
        took < Duration::from_secs(15),
        "exited {took:?} after Ctrl-C"
    );
    assert!(text.contains("release web-r2 stopped"), "{text}");
    assert!(text.contains("canary pause at 10 %"), "{text}");
    assert!(
        text.contains("Traffic is back on release 1 (web-r1)"),
        "{text}"
    );
    if let Interrupt::TerraformOnly = how {
        assert!(
            text.contains("Terraform asked the provider to stop"),
            "{text}"
        );
    }
    assert_eq!(
        h.aws.listener_weights(listener).await?,
        [("web-r1".to_string(), 100)].into()
    );
    eprintln!(
        "Interrupt ({how:?}): apply exited {} ms after the signal",
        took.as_millis()
    );

    // The next apply (a short pause this time; same fleet arguments) finishes web-r2.
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"1s\"\n  }".into(),
        ..Default::default()
    }))?;
    assert!(!h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(
        h.aws.listener_weights(listener).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r2".to_string()]
    );
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_in_a_terminal_during_a_canary_pause() -> anyhow::Result<()> {
    ctrl_c_during_a_canary_pause(Interrupt::Terminal).await
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_provider_during_a_canary_pause() -> anyhow::Result<()> {
    ctrl_c_during_a_canary_pause(Interrupt::TerraformOnly).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_to_the_provider_during_a_canary_pause() -> anyhow::Result<()> {
    ctrl_c_during_a_canary_pause(Interrupt::ProviderSigterm).await
}

/// A canary killed (SIGKILL, the whole process group) during its last pause resumes there:
/// the plan says so in `planned_steps`, and the next apply puts traffic back on the serving
/// fleet, passes the health gate, then gives the half-made fleet 50 % and watches that pause
/// again — a watcher of the listener proves 10 % (whose pause was watched to its end) is not
/// walked again and that no unhealthy fleet got traffic.
#[tokio::test(flavor = "multi_thread")]
async fn a_canary_killed_in_its_last_pause_resumes_there() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let proxy = FaultProxy::start(&h.emulator.url).await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        endpoint: Some(proxy.url.clone()),
        extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"2s\"\n  }\n  canary_step {\n    weight = 50\n    pause  = \"6s\"\n  }".into(),
        ..Default::default()
    }))?;
    h.apply(&[]).await?;
    let var = format!("-var=image_id={}", h.fx.image_b);
    let mut child = h.spawn_terraform(&["apply", "-auto-approve", "-input=false", &var])?;
    let pgid = child.id().expect("terraform runs");
    let _guard = acceptance_tests::GroupGuard(pgid);
    let (aws, listener) = (&h.aws, h.fx.listener_arn.as_str());
    assert!(
        wait_until(Duration::from_secs(90), || async {
            Ok(weight_of(aws, listener, "web-r2").await? == Some(50))
        })
        .await?,
        "the canary never reached 50 %"
    );
    Harness::kill_group(pgid)?;
    let _ = child.wait().await;

    // The plan: finish web-r2 from 50 %.
    h.terraform(&["plan", "-out=resume.plan", &var])
        .await?
        .ok()?;
    let show = h.terraform(&["show", "-json", "resume.plan"]).await?.ok()?;
    let plan: serde_json::Value = serde_json::from_str(&show.stdout)?;
    let steps: Vec<String> = plan["resource_changes"][0]["change"]["after"]["planned_steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // (The refresh saw the half-made fleet and the split it left: the first step puts
    // the listener back.)
    let finish = steps
        .iter()
        .position(|s| {
            s == "finish web-r2, left half-made by an interrupted apply: traffic back to web-r1 first"
        })
        .unwrap_or_else(|| panic!("no finish step: {steps:#?}"));
    assert!(
        steps[finish + 1].starts_with("health gate web-r2: "),
        "{steps:#?}"
    );
    assert_eq!(
        steps[finish + 2],
        "traffic 50 % to web-r2, 50 % to web-r1",
        "{steps:#?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("traffic 10 %")),
        "{steps:#?}"
    );

    // The apply of that plan, watched.
    let sampler = {
        let (aws, listener) = (h.aws.clone(), h.fx.listener_arn.clone());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen: Vec<Option<i64>> = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(w) = weight_of(&aws, &listener, "web-r2").await {
                    if seen.last() != Some(&w) {
                        seen.push(w);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        });
        (stop, task)
    };
    let traffic = TrafficWatcher::start(Aws::new(&proxy.url).await, h.fx.listener_arn.clone());
    let started = Instant::now();
    h.terraform(&["apply", "resume.plan"]).await?.ok()?;
    let took = started.elapsed();
    let (samples, violations) = traffic.finish().await;
    sampler.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = sampler.1.await?;
    assert!(
        violations.is_empty(),
        "traffic to an unhealthy fleet: {violations:?}"
    );
    // It sampled through the apply (how often depends on the machine's load; the splits
    // it saw are checked below).
    assert!(samples >= 5, "the watcher sampled {samples} times");
    assert!(!seen.contains(&Some(10)), "10 % walked again: {seen:?}");
    assert!(seen.contains(&Some(50)), "50 % given again: {seen:?}");
    assert_eq!(seen.last(), Some(&Some(100)), "{seen:?}");
    assert_eq!(
        h.aws.listener_weights(listener).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r2".to_string()],
        "web-r2 finished, no third fleet"
    );
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_b)]).await?);
    eprintln!(
        "resumed at 50 % and finished in {:.1} s; web-r2's weights seen: {seen:?}",
        took.as_secs_f64()
    );
    Ok(())
}

/// Ctrl-C while an AWS call hangs (the proxy holds the first target-health read for a
/// minute): the call in flight is abandoned at once, not after its timeout, and the apply
/// stops as at any other moment — traffic where it was, the fleet kept for the next apply.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_interrupts_a_call_in_flight() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;
    let var = format!("-var=image_id={}", h.fx.image_b);
    let child =
        h.spawn_terraform_in(&h.dir.0, &["apply", "-auto-approve", "-input=false", &var])?;
    let pid = child.id().expect("terraform runs");
    let _guard = acceptance_tests::GroupGuard(pid);
    let proxy = &h.proxy;
    let count = |a: &str| proxy.calls().get(a).copied().unwrap_or(0);
    let groups_before = count("CreateAutoScalingGroup");
    // Once the apply has launched web-r2, its health gate's next read hangs.
    assert!(
        wait_until(Duration::from_secs(60), || async {
            Ok(count("CreateAutoScalingGroup") > groups_before)
        })
        .await?,
        "the apply never launched web-r2"
    );
    let reads = count("DescribeTargetHealth");
    proxy.set_faults(Faults {
        hold_first: vec![("DescribeTargetHealth".into(), Duration::from_secs(60))],
        ..Faults::default()
    });
    assert!(
        wait_until(Duration::from_secs(60), || async {
            Ok(count("DescribeTargetHealth") > reads)
        })
        .await?,
        "the health gate never read target health"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    Harness::interrupt_group(pid)?;
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .map_err(|_| anyhow::anyhow!("terraform did not exit within 90 s of Ctrl-C"))??;
    let took = asked.elapsed();
    let text = acceptance_tests::fold(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    eprintln!(
        "Ctrl-C during a held call: apply exited {} ms after the signal",
        took.as_millis()
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("release web-r2 stopped"), "{text}");
    assert!(
        took < Duration::from_secs(15),
        "exited {took:?} after Ctrl-C (the held call lasts 60 s, an attempt 20 s)"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    Ok(())
}
