//! Engine tests against the in-memory cloud, with tokio's clock paused: every path of a
//! release, abort and rollback, in virtual time.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cloud::fake::{FakeCloud, HealthScript};
use crate::ledger::Status;
use crate::spec::*;

const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2";
const IMAGE_A: &str = "ami-0000000a";
const IMAGE_B: &str = "ami-0000000b";

fn spec(image: &str) -> ReleaseSpec {
    crate::spec::examples::release(image, LISTENER)
}

fn canary(image: &str) -> ReleaseSpec {
    let mut s = spec(image);
    s.strategy = Strategy::Canary;
    s.canary_steps = [10, 20, 50]
        .into_iter()
        .map(|w| CanaryStep {
            weight: w,
            pause: Duration::from_secs(60),
        })
        .collect();
    s.alarm_names = ["web-5xx".to_string()].into();
    s
}

/// Sets alarm `web-5xx` in ALARM `secs` seconds (tokio's time) from now.
fn alarm_after(fake: &Arc<FakeCloud>, secs: u64) {
    let f2 = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        f2.set_alarm("web-5xx", true);
    });
}

/// A fake that behaves as AWS does (instances `Pending` for a while, lagging reads of new
/// objects, groups `Delete in progress`): most tests run here.
fn world() -> (Arc<FakeCloud>, Engine) {
    world_of(FakeCloud::new(LISTENER, IMAGE_A))
}

/// A fake with AWS's lag off: for tests that count polls exactly.
fn plain_world() -> (Arc<FakeCloud>, Engine) {
    world_of(FakeCloud::new(LISTENER, IMAGE_A).plain())
}

fn world_of(fake: FakeCloud) -> (Arc<FakeCloud>, Engine) {
    let fake = Arc::new(fake);
    fake.add_image(IMAGE_B);
    let engine = Engine::new(Cloud::from_one(fake.clone()), Duration::from_secs(5))
        .with_clock(Clock::following_tokio(start()));
    (fake, engine)
}

/// The wall clock's reading when a test starts (2026-01-01T00:00:00Z); it moves with
/// tokio's paused time.
fn start() -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn tg(name: &str) -> String {
    format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/0001")
}

const LIMIT: Duration = Duration::from_secs(1800);

#[tokio::test(start_paused = true)]
async fn first_release_waits_for_health_then_takes_all_traffic() {
    // Exact poll counts: AWS's lag off (`a_release_meets_aws_lagging_reads` has it on).
    let (fake, engine) = plain_world();
    fake.script_health("web-r1", HealthScript::AfterPolls(3));
    let started = tokio::time::Instant::now();
    let ledger = engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    assert_eq!(
        fake.calls("DescribeTargetHealth"),
        4,
        "three unhealthy polls, then healthy"
    );
    // Back-off 1 s, 2 s, 4 s: the release went on within one poll of becoming healthy.
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
    assert_eq!(
        fake.calls("CreateRule"),
        1,
        "a first release is health-checked through a rule"
    );
    assert!(
        fake.rules().is_empty(),
        "the rule is gone once the default action routes to the fleet"
    );
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
    assert_eq!(ledger.history[0].status, Status::Active);
    assert_eq!(current_release(&ledger), Some(1));
}

#[tokio::test(start_paused = true)]
async fn never_healthy_first_release_aborts_and_leaves_nothing() {
    let (fake, engine) = world();
    fake.script_health("web-r1", HealthScript::Never);
    let mut s = spec(IMAGE_A);
    s.health.timeout = Duration::from_secs(60);
    let err = engine.release(&s, true, LIMIT).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("need 2 healthy targets, have 0"), "{text}");
    // The targets' state and the load balancer's reason, as AWS gives them.
    assert!(
        text.contains("2 `unhealthy` (Target.ResponseCodeMismatch: Health checks failed with these codes: [502])"),
        "{text}"
    );
    assert!(text.contains("after 1m0s"), "{text}");
    assert!(text.contains("listener answers 404 as before"), "{text}");
    assert!(fake.group_names().is_empty());
    assert!(fake.target_group_names().is_empty());
    assert!(fake.template_names().is_empty());
    assert!(fake.rules().is_empty(), "no health-check rule left behind");
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Fixed("404".into()))
    );
    assert!(
        engine.observe("web").await.unwrap().is_none(),
        "no ledger left behind"
    );
}

#[tokio::test(start_paused = true)]
async fn blue_green_release_retains_the_previous_fleet() {
    let test_started = Instant::now();
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let ledger = engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![
            (tg("web-r2"), 100),
            (tg("web-r1"), 0)
        ]))
    );
    assert_eq!(ledger.previous_image_id().as_deref(), Some(IMAGE_A));
    assert_eq!(fake.group_names(), vec!["web-r1", "web-r2"]);
    let window_end = fake
        .schedule("web-r1")
        .expect("the retained fleet's window is scheduled");
    // The engine's clock started at `start()` with the test and moved with tokio's time.
    let now = start() + test_started.elapsed();
    let from_now = window_end.duration_since(now).unwrap();
    assert!(
        from_now > Duration::from_secs(3590) && from_now <= Duration::from_secs(3600),
        "{from_now:?}"
    );
    assert_eq!(
        fake.schedule("web-r2"),
        None,
        "the serving fleet has no window"
    );
    let statuses: Vec<Status> = ledger.history.iter().map(|h| h.status).collect();
    assert_eq!(statuses, vec![Status::Active, Status::Retained]);
}

#[tokio::test(start_paused = true)]
async fn canary_walks_its_steps_in_order() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let started = tokio::time::Instant::now();
    engine.release(&canary(IMAGE_B), true, LIMIT).await.unwrap();
    let new_weights: Vec<i64> = fake
        .listener_log()
        .iter()
        .skip(1)
        .map(|split| {
            split
                .iter()
                .find(|(a, _)| a == &tg("web-r2"))
                .map(|(_, w)| *w)
                .unwrap()
        })
        .collect();
    assert_eq!(
        new_weights,
        vec![0, 10, 20, 50, 100],
        "attached at 0 for health checks, the steps, 100 % (which is already the retirement split)"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(180),
        "three pauses of 60 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(190),
        "no pause overshoots by more than a poll"
    );
    // The record's times are the clock the engine was given, which moved with the walk.
    let line = &fake.ledger("web").unwrap().history[0];
    assert_eq!(line.release, 2);
    let at = |t: &Option<String>| {
        time::OffsetDateTime::parse(
            t.as_deref().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let took = at(&line.finished_at) - at(&Some(line.started_at.clone()));
    assert!(
        took.whole_seconds() >= 180 && line.started_at.starts_with("2026-01-01T00:0"),
        "{line:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn alarm_during_step_two_aborts_and_restores_traffic() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let before = fake.listener(LISTENER);
    alarm_after(&fake, 90);
    let err = engine
        .release(&canary(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("alarm web-5xx is in ALARM during canary pause at 20 %"),
        "{err}"
    );
    // Web-r2 had a share: traffic is back, read back.
    assert!(
        err.contains("Traffic is back on release 1 (web-r1)"),
        "{err}"
    );
    assert_eq!(
        fake.listener(LISTENER),
        before,
        "traffic is back where it was"
    );
    assert_eq!(fake.group_names(), vec!["web-r1"]);
    let ledger = engine.observe("web").await.unwrap().unwrap().ledger;
    assert_eq!(ledger.history[0].status, Status::Aborted);
    assert_eq!(ledger.history[0].release, 2);
    assert_eq!(current_release(&ledger), Some(1));
}

/// The route's write refused six times in a row when the alarm fires (the SDK's retries,
/// its quota drained, gave up each time): the abort keeps trying on its own schedule until
/// the route reads back as it was, says so, and drains the fleet that had a share before
/// deleting it.
#[tokio::test(start_paused = true)]
async fn an_abort_keeps_putting_traffic_back_until_it_reads_back() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let before = fake.listener(LISTENER);
    let f2 = fake.clone();
    let fired = Arc::new(std::sync::Mutex::new(None));
    let fired2 = fired.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(90)).await;
        f2.set_alarm("web-5xx", true);
        f2.fail("ModifyListener", 6);
        *fired2.lock().unwrap() = Some(tokio::time::Instant::now());
    });
    let err = engine
        .release(&canary(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    let ended = tokio::time::Instant::now();
    assert!(err.contains("alarm web-5xx is in ALARM"), "{err}");
    assert!(
        err.contains("Traffic is back on release 1 (web-r1)"),
        "{err}"
    );
    assert!(!err.contains("Clean-up was incomplete"), "{err}");
    assert_eq!(fake.listener(LISTENER), before, "traffic is back");
    assert_eq!(fake.group_names(), vec!["web-r1"]);
    // Six refusals: 1 + 2 + 4 + 8 + 10 + 10 s of waits, then the 30 s drain.
    let took = ended - fired.lock().unwrap().unwrap();
    assert!(took >= Duration::from_secs(35 + 30), "{took:?}");
}

/// A route AWS never lets be put back: the abort gives up after its bound and says what
/// the listener forwards as read, not that traffic stayed; the new fleet is kept (it has
/// weight), and the next apply puts traffic back before anything else.
#[tokio::test(start_paused = true)]
async fn an_abort_that_cannot_put_traffic_back_says_what_it_read() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let f2 = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(90)).await;
        f2.set_alarm("web-5xx", true);
        f2.fail("ModifyListener", 1000);
    });
    let err = engine
        .release(&canary(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Traffic could NOT be put back on release 1 (web-r1)"),
        "{err}"
    );
    assert!(
        err.contains("the listener forwards to web-r2 20, web-r1 80 as last read"),
        "{err}"
    );
    assert!(!err.contains("Clean-up was incomplete"), "{err}");
    assert!(!err.contains("Traffic stayed"), "{err}");
    assert!(!err.contains("Traffic is back"), "{err}");
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![
            (tg("web-r2"), 20),
            (tg("web-r1"), 80)
        ]))
    );
    assert_eq!(
        fake.group_names(),
        vec!["web-r1", "web-r2"],
        "a routed fleet is kept"
    );
    // AWS takes writes again: the next apply puts traffic back first, then finishes the
    // release it left.
    fake.fail("ModifyListener", 0);
    fake.set_alarm("web-5xx", false);
    let writes = fake.listener_log().len();
    engine.release(&canary(IMAGE_B), true, LIMIT).await.unwrap();
    let first = &fake.listener_log()[writes];
    assert!(
        first.contains(&(tg("web-r1"), 100))
            && first.iter().all(|(g, w)| g == &tg("web-r1") || *w == 0),
        "traffic back on the serving fleet first: {first:?}"
    );
    // Then the release it left is finished: web-r2 serves, web-r1 retained at weight 0.
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![
            (tg("web-r2"), 100),
            (tg("web-r1"), 0)
        ]))
    );
}

/// `load_balancer.stickiness` rides every write of the route (a write without it would
/// switch it off): through a canary's steps, the abort's put-back, and a repair of drift.
#[tokio::test(start_paused = true)]
async fn stickiness_rides_every_write_of_the_route() {
    let (fake, engine) = world();
    let hour = Some(Duration::from_secs(3600));
    let mut first = spec(IMAGE_A);
    first.stickiness = hour;
    engine.release(&first, true, LIMIT).await.unwrap();
    assert_eq!(fake.sticky(LISTENER), Some(3600));
    let mut c = canary(IMAGE_B);
    c.stickiness = hour;
    let f2 = fake.clone();
    let during = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(90)).await;
        let at_20 = (f2.listener_log().last().cloned(), f2.sticky(LISTENER));
        f2.set_alarm("web-5xx", true);
        at_20
    });
    let err = engine
        .release(&c, true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    let (split, sticky) = during.await.unwrap();
    assert!(
        split.is_some_and(|w| w.contains(&(tg("web-r2"), 20))),
        "the alarm came at 20 %"
    );
    assert_eq!(sticky, Some(3600), "the canary's writes kept it");
    assert!(err.contains("Traffic is back on release 1"), "{err}");
    assert_eq!(fake.sticky(LISTENER), Some(3600), "the abort put it back");
    // Switched off by hand: a read sees it, the repair puts it back.
    fake.set_sticky_outside(LISTENER, None);
    let seen = engine.observe("web").await.unwrap().unwrap();
    assert_eq!(seen.sticky, None);
    engine.restore_traffic(&first, &seen.ledger).await.unwrap();
    assert_eq!(fake.sticky(LISTENER), Some(3600));
    // Removed from the configuration: the next write leaves it out.
    engine
        .restore_traffic(&spec(IMAGE_A), &seen.ledger)
        .await
        .unwrap();
    assert_eq!(fake.sticky(LISTENER), None);
}

#[tokio::test(start_paused = true)]
async fn alarm_during_bake_aborts() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let before = fake.listener(LISTENER);
    let mut s = spec(IMAGE_B);
    s.bake_time = Duration::from_secs(300);
    s.alarm_names = ["web-5xx".to_string()].into();
    alarm_after(&fake, 100);
    let err = engine
        .release(&s, true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("during bake"), "{err}");
    assert_eq!(fake.listener(LISTENER), before);
    assert_eq!(fake.group_names(), vec!["web-r1"]);
}

#[tokio::test(start_paused = true)]
async fn fleet_turning_unhealthy_during_a_pause_aborts() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.script_health("web-r2", HealthScript::HealthyForPolls(3));
    let err = engine
        .release(&canary(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("fleet web-r2 became unhealthy"), "{err}");
    assert!(err.contains("have 0"), "{err}");
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
}

#[tokio::test(start_paused = true)]
async fn api_error_mid_shift_aborts_and_restores() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.fail("ModifyListener", 1);
    let err = engine
        .release(&canary(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("injected failure"), "{err}");
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
    assert_eq!(fake.group_names(), vec!["web-r1"], "{err}");
}

#[tokio::test(start_paused = true)]
async fn rollback_inside_the_window_launches_nothing() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&canary(IMAGE_B), true, LIMIT).await.unwrap();
    let groups_created = fake.calls("CreateAutoScalingGroup");
    let started = tokio::time::Instant::now();
    // Canary settings do not matter: a rollback goes straight to 100 %.
    let ledger = engine.release(&canary(IMAGE_A), true, LIMIT).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no canary pauses on rollback"
    );
    assert_eq!(fake.calls("CreateAutoScalingGroup"), groups_created);
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
    assert_eq!(current_release(&ledger), Some(3));
    assert_eq!(ledger.previous_image_id().as_deref(), Some(IMAGE_B));
    assert_eq!(ledger.history[1].status, Status::RolledBack);
    assert_eq!(
        fake.schedule("web-r1"),
        None,
        "the fleet serving again lost its window"
    );
    assert!(
        fake.schedule("web-r2").is_some(),
        "the replaced fleet got one"
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_outside_the_window_scales_the_fleet_back() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    // The window ended: the retained fleet was scaled to zero.
    crate::cloud::Fleets::set_capacity(
        &*fake,
        "web-r1",
        Capacity {
            min: 0,
            max: 0,
            desired: 0,
        },
    )
    .await
    .unwrap();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let g = engine
        .cloud
        .fleets
        .describe_groups(&["web-r1".to_string()])
        .await
        .unwrap();
    assert_eq!(
        g[0].capacity,
        Capacity {
            min: 2,
            max: 4,
            desired: 2
        }
    );
    assert_eq!(g[0].instances.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn foreign_group_with_the_name_is_refused_and_untouched() {
    let (fake, engine) = world();
    fake.add_foreign_group("web-r1");
    let err = engine
        .release(&spec(IMAGE_A), true, LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Refused(_)), "{err}");
    assert!(
        err.to_string().contains("not owned by release web"),
        "{err}"
    );
    assert_eq!(fake.group_names(), vec!["web-r1"]);
    assert_eq!(fake.calls("DeleteAutoScalingGroup"), 0);
}

#[tokio::test(start_paused = true)]
async fn destroy_removes_everything_and_answers_503() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    engine
        .destroy("web", &Route::listener(LISTENER))
        .await
        .unwrap();
    assert!(fake.group_names().is_empty());
    assert!(fake.target_group_names().is_empty());
    assert!(fake.template_names().is_empty());
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Fixed("503".into()))
    );
}

/// Properties over every single failure point of a canary release: whatever call fails,
/// the release aborts with traffic exactly where it was, nothing of the new fleet remains,
/// every split ever set sums to 100, and the new fleet never got traffic while unhealthy.
#[tokio::test(start_paused = true)]
async fn any_single_failure_aborts_cleanly() {
    let actions = [
        "CreateLaunchTemplate",
        "CreateTargetGroup",
        "CreateAutoScalingGroup",
        "DescribeAutoScalingGroups",
        "DescribeTargetHealth",
        "ModifyListener",
        "DescribeListeners",
        "DescribeAlarms",
        "SaveLedger",
    ];
    let mut aborted = 0;
    for action in actions {
        for skip in 0..6 {
            let (fake, engine) = world();
            engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
            let before = fake.listener(LISTENER);
            fake.fail_after(action, skip, 1);
            let result = engine.release(&canary(IMAGE_B), true, LIMIT).await;
            for split in fake.listener_log() {
                assert_eq!(
                    split.iter().map(|(_, w)| w).sum::<i64>(),
                    100,
                    "{action} #{skip}: {split:?}"
                );
            }
            match result {
                Ok(ledger) => {
                    assert_eq!(
                        ledger.active().unwrap().fleet_name,
                        "web-r2",
                        "{action} #{skip}"
                    );
                    assert_eq!(
                        fake.listener(LISTENER),
                        Some(ListenerAction::Forward(vec![
                            (tg("web-r2"), 100),
                            (tg("web-r1"), 0)
                        ]))
                    );
                }
                Err(EngineError::Aborted { .. }) | Err(EngineError::Cloud(_)) => {
                    let ledger = engine.observe("web").await.unwrap().unwrap().ledger;
                    if ledger.active().unwrap().fleet_name == "web-r2" {
                        // The release committed; only its retirement failed. Traffic is on
                        // the new fleet, as the ledger says, and the next apply finishes.
                        let Some(ListenerAction::Forward(split)) = fake.listener(LISTENER) else {
                            panic!("{action} #{skip}: no forward action")
                        };
                        assert!(
                            split.contains(&(tg("web-r2"), 100)),
                            "{action} #{skip}: {split:?}"
                        );
                        continue;
                    }
                    aborted += 1;
                    assert_eq!(
                        fake.listener(LISTENER),
                        before,
                        "{action} #{skip}: traffic moved"
                    );
                    assert_eq!(fake.group_names(), vec!["web-r1"], "{action} #{skip}");
                    assert!(
                        !fake.target_group_names().contains(&"web-r2".to_string()),
                        "{action} #{skip}"
                    );
                }
                Err(e) => panic!("{action} #{skip}: {e}"),
            }
        }
    }
    assert!(
        aborted >= actions.len(),
        "every action failed at least once: {aborted}"
    );
}

/// A rollback never launches a fleet, whichever retained fleet it goes back to.
#[tokio::test(start_paused = true)]
async fn rollback_never_launches() {
    let (fake, engine) = world();
    let mut s = spec(IMAGE_A);
    s.retain_fleets = 3;
    let images = [
        "ami-0000000a",
        "ami-0000000b",
        "ami-0000000c",
        "ami-0000000d",
    ];
    for image in images {
        fake.add_image(image);
        s.fleet.image_id = image.into();
        engine.release(&s, true, LIMIT).await.unwrap();
    }
    for image in [
        "ami-0000000b",
        "ami-0000000a",
        "ami-0000000d",
        "ami-0000000c",
    ] {
        let launched = fake.calls("CreateAutoScalingGroup");
        s.fleet.image_id = image.into();
        let ledger = engine.release(&s, true, LIMIT).await.unwrap();
        assert_eq!(
            fake.calls("CreateAutoScalingGroup"),
            launched,
            "rollback to {image} launched a fleet"
        );
        assert_eq!(ledger.active().unwrap().image_id, image);
    }
}

#[tokio::test(start_paused = true)]
async fn failed_scaling_activity_aborts_at_once() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.script_health("web-r2", HealthScript::Never);
    fake.fail_activity(
        "web-r2",
        "The image id 'ami-0000000b' does not exist. Launching EC2 instance failed.",
    );
    let started = tokio::time::Instant::now();
    let err = engine
        .release(&spec(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    // Seen within seconds of the third failed launch; the clean-up then waits for the
    // group's deletion (`Delete in progress` for a few reads, gone two reads in a row).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed fast once AWS's own retries failed too, not at the timeout: {:?}",
        started.elapsed()
    );
    assert!(err.contains("(3 failed launches)"), "{err}");
    assert!(
        err.contains("failed to launch instances: The image id"),
        "{err}"
    );
    assert!(err.contains("have 0"), "{err}");
    assert!(
        err.contains("Traffic stayed on release 1 (web-r1)"),
        "{err}"
    );
    assert_eq!(fake.group_names(), vec!["web-r1"]);
}

/// Two subnets in two zones; the new fleet's instances stay `Pending` for `pending_reads`
/// reads of their group.
fn two_zones(image: &str) -> ReleaseSpec {
    let mut s = spec(image);
    s.fleet.subnet_ids = ["subnet-a".to_string(), "subnet-b".to_string()].into();
    s
}

#[tokio::test(start_paused = true)]
async fn no_capacity_in_one_zone_is_aws_to_work_around_not_an_abort() {
    let (fake, engine) = world();
    engine
        .release(&two_zones(IMAGE_A), true, LIMIT)
        .await
        .unwrap();
    // Zone a has no t3.micro: AWS fails there on every try and launches in zone b, whose
    // instances take a while to come up.
    fake.set_capacity_out("t3.micro", "subnet-a", true);
    fake.set_pending_reads(12);
    let mut s = two_zones(IMAGE_B);
    s.capacity = Capacity {
        min: 4,
        max: 4,
        desired: 4,
    };
    let ledger = engine.release(&s, true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    let placed = fake.placements("web-r2");
    assert_eq!(placed.len(), 4, "{placed:?}");
    assert!(
        placed
            .iter()
            .all(|(t, n)| t == "t3.micro" && n == "subnet-b"),
        "{placed:?}"
    );
    // More failed launches than a lasting cause is allowed (before: an abort at the third).
    let failed = crate::cloud::Fleets::failed_activities(&*fake, "web-r2", start())
        .await
        .unwrap();
    assert!(
        failed.len() > LAUNCH_FAILURES_TOLERATED + 1,
        "the test world failed too few launches to tell: {failed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_capacity_in_any_zone_waits_for_the_health_timeout_and_says_why() {
    let (fake, engine) = world();
    engine
        .release(&two_zones(IMAGE_A), true, LIMIT)
        .await
        .unwrap();
    for subnet in ["subnet-a", "subnet-b"] {
        fake.set_capacity_out("t3.micro", subnet, true);
    }
    let mut s = two_zones(IMAGE_B);
    s.health.timeout = Duration::from_secs(120);
    let started = tokio::time::Instant::now();
    let err = engine
        .release(&s, true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() >= Duration::from_secs(120),
        "waited for capacity until health.timeout: {:?}",
        started.elapsed()
    );
    assert!(
        err.contains("healthy capacity: need 2 healthy targets, have 0"),
        "{err}"
    );
    assert!(err.contains("after 2m0s"), "{err}");
    assert!(
        err.contains("launches failed for lack of capacity"),
        "the cause is in the message: {err}"
    );
    assert!(
        err.contains("We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1"),
        "{err}"
    );
    assert!(
        err.contains("Traffic stayed on release 1 (web-r1)"),
        "{err}"
    );
    assert_eq!(fake.group_names(), vec!["web-r1"]);
}

#[tokio::test(start_paused = true)]
async fn fallback_types_launch_in_order_when_the_first_has_no_capacity() {
    let (fake, engine) = world();
    engine
        .release(&two_zones(IMAGE_A), true, LIMIT)
        .await
        .unwrap();
    for subnet in ["subnet-a", "subnet-b"] {
        fake.set_capacity_out("t3.micro", subnet, true);
        fake.set_capacity_out("t3a.micro", subnet, true);
    }
    let mut s = two_zones(IMAGE_B);
    s.fleet.fallback_instance_types = vec!["t3a.micro".into(), "m5.large".into()];
    let ledger = engine.release(&s, true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    let placed = fake.placements("web-r2");
    assert_eq!(placed.len(), 2, "{placed:?}");
    assert!(placed.iter().all(|(t, _)| t == "m5.large"), "{placed:?}");
    let zones: std::collections::BTreeSet<_> = placed.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(zones.len(), 2, "balanced over both zones: {placed:?}");
    // A fleet of the first type has nothing to fall back on: the same image with another
    // list of types is another fleet (a release, not a rollback).
    s.fleet.fallback_instance_types = vec!["m5.large".into()];
    let launched = fake.calls("CreateAutoScalingGroup");
    engine.release(&s, true, LIMIT).await.unwrap();
    assert_eq!(fake.calls("CreateAutoScalingGroup"), launched + 1);
}

#[tokio::test(start_paused = true)]
async fn a_lasting_failure_beside_capacity_failures_still_aborts_fast() {
    let (fake, engine) = world();
    engine
        .release(&two_zones(IMAGE_A), true, LIMIT)
        .await
        .unwrap();
    fake.set_capacity_out("t3.micro", "subnet-a", true);
    fake.script_health("web-r2", HealthScript::Never);
    fake.fail_activity(
        "web-r2",
        "Invalid IAM Instance Profile name. Launching EC2 instance failed.",
    );
    let started = tokio::time::Instant::now();
    let err = engine
        .release(&two_zones(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.contains("failed to launch instances: Invalid IAM Instance Profile name"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn one_bad_poll_never_fails_a_release() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.script_health("web-r2", HealthScript::AfterPolls(2));
    // One failure in the health wait, one in a canary pause.
    fake.fail_after("DescribeTargetHealth", 1, 1);
    fake.fail_after("DescribeAlarms", 2, 1);
    let ledger = engine.release(&canary(IMAGE_B), true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
}

#[tokio::test(start_paused = true)]
async fn a_persistent_failure_aborts_the_release() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.script_health("web-r2", HealthScript::AfterPolls(2));
    fake.fail_after("DescribeTargetHealth", 1, 10);
    let err = engine
        .release(&spec(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("injected failure"), "{err}");
    assert!(err.contains("Traffic stayed on release 1"), "{err}");
    assert_eq!(fake.group_names(), vec!["web-r1"]);
}

/// Starts a canary release of image B and kills it (the task, as a SIGKILL would) during
/// its first pause, at 10 %.
async fn killed_at_ten_percent(fake: &FakeCloud, engine: &Engine) {
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let e2 = engine.clone();
    let task = tokio::spawn(async move { e2.release(&canary(IMAGE_B), true, LIMIT).await });
    tokio::time::sleep(Duration::from_secs(30)).await;
    task.abort();
    let _ = task.await;
    assert_eq!(fake.group_names(), vec!["web-r1", "web-r2"]);
    let Some(ListenerAction::Forward(split)) = fake.listener(LISTENER) else {
        panic!()
    };
    assert!(
        split.contains(&(tg("web-r2"), 10)),
        "killed at 10 %: {split:?}"
    );
}

/// The next apply with the same arguments finishes the half-made release: traffic first
/// back on the serving fleet, then the same fleet (no second one) through the steps.
#[tokio::test(start_paused = true)]
async fn a_half_made_release_that_matches_is_finished_not_relaunched() {
    let (fake, engine) = world();
    killed_at_ten_percent(&fake, &engine).await;
    let before = fake.listener_log().len();
    let ledger = engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    assert_eq!(fake.group_names(), vec!["web-r1", "web-r2"]);
    assert_eq!(fake.calls("CreateAutoScalingGroup"), 2, "no third fleet");
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    assert_eq!(ledger.retained()[0].fleet_name, "web-r1");
    let log = fake.listener_log()[before..].to_vec();
    assert_eq!(
        log[0],
        vec![(tg("web-r1"), 100), (tg("web-r2"), 0)],
        "the half-way split is put back first"
    );
    assert!(log.last().unwrap().contains(&(tg("web-r2"), 100)));
    assert_eq!(ledger.history.iter().filter(|h| h.release == 2).count(), 1);
    assert_eq!(ledger.history[0].status, Status::Active);
}

/// Starts the canary (10 %, 20 %, 50 %, each paused 60 s) and kills it during its last
/// pause, at 50 %; returns the listener log's length at the kill.
async fn killed_in_the_last_pause(fake: &FakeCloud, engine: &Engine) -> usize {
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let e2 = engine.clone();
    let task = tokio::spawn(async move { e2.release(&canary(IMAGE_B), true, LIMIT).await });
    let at_fifty = |fake: &FakeCloud| matches!(fake.listener(LISTENER), Some(ListenerAction::Forward(s)) if s.contains(&(tg("web-r2"), 50)));
    while !at_fifty(fake) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    task.abort();
    let _ = task.await;
    fake.listener_log().len()
}

/// The weights web-r2 was given in listener changes from `from` on.
fn weights_given(fake: &FakeCloud, from: usize) -> Vec<i64> {
    fake.listener_log()[from..]
        .iter()
        .filter_map(|s| s.iter().find(|(a, _)| a == &tg("web-r2")).map(|(_, w)| *w))
        .collect()
}

/// A canary killed in its last pause resumes there: traffic back on the serving fleet, the
/// health gate, then 50 % and that pause again — never 10 % or 20 %, whose pauses were
/// watched to their end — then 100 %.
#[tokio::test(start_paused = true)]
async fn a_canary_killed_in_its_last_pause_resumes_there() {
    let (fake, engine) = world();
    let before = killed_in_the_last_pause(&fake, &engine).await;
    let progress = fake.ledger("web").unwrap().fleets[1]
        .progress
        .clone()
        .unwrap();
    assert_eq!(
        (progress.of.as_str(), progress.done),
        ("w10 p1m0s w20 p1m0s w50 p1m0s w100", 4),
        "two pauses watched to their end"
    );
    let started = Instant::now();
    let ledger = engine.release(&canary(IMAGE_B), true, LIMIT).await.unwrap();
    let took = started.elapsed();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    assert_eq!(ledger.active().unwrap().progress, None, "committed");
    assert_eq!(fake.calls("CreateAutoScalingGroup"), 2, "no third fleet");
    // The first change puts the serving split back; then the walk from 50 %.
    assert_eq!(weights_given(&fake, before), vec![0, 50, 100]);
    // One pause (60 s) and health checks, not three pauses.
    assert!(took < Duration::from_secs(120), "resumed in {took:?}");
}

/// The recorded progress belongs to a list of steps: with other canary steps (not
/// fleet-shaping, so the same fleet is finished) the walk starts afresh.
#[tokio::test(start_paused = true)]
async fn a_resumed_canary_with_other_steps_walks_them_all() {
    let (fake, engine) = world();
    let before = killed_in_the_last_pause(&fake, &engine).await;
    let mut other = canary(IMAGE_B);
    other.canary_steps.truncate(2);
    let ledger = engine.release(&other, true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    assert_eq!(weights_given(&fake, before), vec![0, 10, 20, 100]);
}

/// With other arguments, the half-made fleet is removed and a new one released.
#[tokio::test(start_paused = true)]
async fn a_half_made_release_that_does_not_match_is_removed() {
    let (fake, engine) = world();
    killed_at_ten_percent(&fake, &engine).await;
    let mut other = spec(IMAGE_B);
    other.fleet.instance_type = "t3.small".into();
    let ledger = engine.release(&other, true, LIMIT).await.unwrap();
    assert_eq!(fake.group_names(), vec!["web-r1", "web-r3"]);
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r3");
    let r2 = ledger.history.iter().find(|h| h.release == 2).unwrap();
    assert_eq!(r2.status, Status::Aborted);
    // Before the new fleet got traffic, the leftover was out of the listener.
    let log = fake.listener_log();
    let restored = log
        .iter()
        .position(|s| s == &vec![(tg("web-r1"), 100)])
        .expect("restored");
    let r3_first = log
        .iter()
        .position(|s| s.iter().any(|(a, w)| a == &tg("web-r3") && *w > 0))
        .unwrap();
    assert!(restored < r3_first);
}

/// A stop (Ctrl-C) during a canary pause: traffic back on the serving fleet within one
/// poll, the new fleet kept and marked stopped, a clear error; the next apply finishes it.
#[tokio::test(start_paused = true)]
async fn a_stop_during_a_pause_puts_traffic_back_and_the_next_apply_finishes() {
    let (fake, engine) = world();
    let stop = crate::stop::Stop::new();
    let engine = engine.with_stop(stop.clone());
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let e2 = engine.clone();
    let task = tokio::spawn(async move { e2.release(&canary(IMAGE_B), true, LIMIT).await });
    tokio::time::sleep(Duration::from_secs(30)).await;
    let asked = tokio::time::Instant::now();
    stop.request("Ctrl-C");
    let err = task.await.unwrap().unwrap_err().to_string();
    assert!(
        asked.elapsed() < Duration::from_millis(100),
        "stopped at once, not at the end of the pause"
    );
    assert!(err.contains("release web-r2 stopped"), "{err}");
    assert!(err.contains("canary pause at 10 %"), "{err}");
    assert!(
        err.contains("Traffic is back on release 1 (web-r1)"),
        "{err}"
    );
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
    let ledger = fake.ledger("web").unwrap();
    let r2 = ledger.fleets.iter().find(|f| f.release == 2).unwrap();
    assert_eq!(r2.role, Role::Launching);
    assert!(r2
        .stopped
        .as_deref()
        .unwrap()
        .contains("canary pause at 10 %"));

    let engine = engine.with_stop(crate::stop::Stop::new());
    let ledger = engine.release(&canary(IMAGE_B), true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    assert_eq!(fake.group_names(), vec!["web-r1", "web-r2"]);
}

/// A serving fleet whose group was deleted outside Terraform is replaced by a new fleet of
/// the same arguments, which takes all traffic; the broken fleet is deleted, not retained.
#[tokio::test(start_paused = true)]
async fn a_deleted_serving_group_is_replaced() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.delete_group_outside("web-r1");
    let obs = engine.observe("web").await.unwrap().unwrap();
    assert!(obs.drift(Some(1))[0].contains("was deleted outside Terraform"));
    engine
        .repair(&canary(IMAGE_A), None, true, LIMIT)
        .await
        .unwrap();
    assert_eq!(fake.group_names(), vec!["web-r2"]);
    let ledger = fake.ledger("web").unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    assert!(ledger.retained().is_empty());
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r2"), 100)])),
        "all at once, whatever the strategy"
    );
    let r1 = ledger.history.iter().find(|h| h.release == 1).unwrap();
    assert_eq!(r1.status, Status::Retired);
    assert!(engine
        .observe("web")
        .await
        .unwrap()
        .unwrap()
        .drift(Some(1))
        .is_empty());
}

/// Detection: while targets register, the wait sleeps until the health checks could have
/// passed (not a blind back-off), then looks every second: the gate opens within a second
/// of the targets turning healthy, with few reads.
#[tokio::test(start_paused = true)]
async fn registering_targets_are_seen_healthy_within_a_second() {
    // With AWS's lag on too: a first look that does not see the new group or target group
    // yet must not push the prediction late (it counts from the wait's start).
    for aws_lag in [false, true] {
        let (fake, engine) = if aws_lag { world() } else { plain_world() };
        let mut s = spec(IMAGE_A);
        s.fleet.target_group.health_check.interval = 5;
        s.fleet.target_group.health_check.healthy_threshold = 2;
        let started = tokio::time::Instant::now();
        let healthy_at = started + Duration::from_millis(5_500);
        fake.script_health("web-r1", HealthScript::RegisteringUntil(healthy_at));
        engine.release(&s, true, LIMIT).await.unwrap();
        let shifted = tokio::time::Instant::now();
        assert!(
            shifted >= healthy_at,
            "never before the targets are healthy"
        );
        assert!(
            shifted - healthy_at <= Duration::from_secs(1),
            "AWS lag {aws_lag}: seen {:?} after turning healthy",
            shifted - healthy_at
        );
        if !aws_lag {
            assert_eq!(
                fake.calls("DescribeTargetHealth"),
                3,
                "at 0 s (registering), at 5 s (the earliest two checks could pass), at 6 s"
            );
        }
    }
}

/// A create (Terraform's) meets a live release of its name: refused, nothing touched. An
/// interrupted create of its own (no serving fleet yet) is resumed instead.
#[tokio::test(start_paused = true)]
async fn a_create_refuses_a_live_release_and_resumes_its_own() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let before = fake.listener_log().len();
    let e = engine
        .create(&spec(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("already exists") && e.to_string().contains("terraform import"),
        "{e}"
    );
    assert_eq!(fake.group_names(), vec!["web-r1"]);
    assert_eq!(fake.listener_log().len(), before, "traffic untouched");

    let (fake, engine) = world();
    // Killed while the first fleet waits for health.
    fake.script_health("web-r1", HealthScript::Never);
    let e2 = engine.clone();
    let task = tokio::spawn(async move { e2.create(&spec(IMAGE_A), true, LIMIT).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    task.abort();
    let _ = task.await;
    fake.script_health("web-r1", HealthScript::Healthy);
    let ledger = engine.create(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
    assert_eq!(
        fake.calls("CreateAutoScalingGroup"),
        1,
        "resumed, not relaunched"
    );
}

/// An apply killed between CreateRule's answer and the ledger write leaves a health-check
/// rule no record names: the next apply that removes (or resumes) that fleet finds it by
/// its token, and so does a destroy. Another release's rule is left alone.
#[tokio::test(start_paused = true)]
async fn a_health_rule_no_record_names_does_not_outlive_its_fleet() {
    let (fake, engine) = world();
    killed_at_ten_percent(&fake, &engine).await;
    fake.add_unrecorded_rule("web-r2-1a2b", &tg("web-r2"));
    fake.add_unrecorded_rule("web-r20-1a2b", &tg("web-r20"));
    fake.add_unrecorded_rule("api-r2-1a2b", &tg("api-r2"));
    // Other arguments: the half-made web-r2 is removed, its unrecorded rule with it.
    let mut other = spec(IMAGE_B);
    other.fleet.instance_type = "t3.small".into();
    engine.release(&other, true, LIMIT).await.unwrap();
    let left: Vec<String> = fake.rules().into_keys().collect();
    assert!(
        !left.iter().any(|r| r.ends_with("/web-r2-1a2b")),
        "{left:?}"
    );
    assert!(
        left.iter().any(|r| r.ends_with("/web-r20-1a2b")),
        "{left:?}"
    );

    // A destroy removes every rule of the release's fleets, and nobody else's.
    fake.add_unrecorded_rule("web-r3-ff", &tg("web-r3"));
    engine
        .destroy("web", &Route::listener(LISTENER))
        .await
        .unwrap();
    let left: Vec<String> = fake.rules().into_keys().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with("/api-r2-1a2b"), "{left:?}");
}

/// `timeouts` bound the whole release, pauses included: a canary whose pauses outlast the
/// limit aborts when it runs out, traffic back on the serving fleet, and says why.
#[tokio::test(start_paused = true)]
async fn the_time_limit_bounds_pauses_too() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let started = tokio::time::Instant::now();
    // Three pauses of 60 s; a limit of 100 s runs out during the second.
    let err = engine
        .release(&canary(IMAGE_B), true, Duration::from_secs(100))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("time limit (1m40s, `timeouts`) ran out during canary pause at 20 %"),
        "{err}"
    );
    // The limit ends the pause; the clean-up after it (traffic back first, the new fleet
    // drained for its 30 s `deregistration_delay` — it had a share —, then its group's
    // deletion, `Delete in progress` for a few reads) takes seconds more.
    assert!(
        started.elapsed() <= Duration::from_secs(140),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)])),
        "traffic back on the serving fleet"
    );
}

const RULE: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/2/77";
const OIDC: &str = "authenticate-oidc";

fn oidc_in_front(fake: &FakeCloud, key: &str) -> bool {
    let actions = fake.route_actions(key).unwrap();
    actions.len() == 2 && actions[0] == ListenerAction::Other(OIDC.into())
}

#[tokio::test(start_paused = true)]
async fn authentication_in_front_stays_through_release_abort_rollback_and_destroy() {
    let (fake, engine) = world();
    fake.set_route_actions(
        LISTENER,
        vec![
            ListenerAction::Other(OIDC.into()),
            ListenerAction::Fixed("404".into()),
        ],
    );
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    assert!(
        oidc_in_front(&fake, LISTENER),
        "{:?}",
        fake.route_actions(LISTENER)
    );
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
    // An aborted release puts back exactly what was there, authentication first.
    let before = fake.route_actions(LISTENER);
    fake.script_health("web-r2", HealthScript::Never);
    let mut s = spec(IMAGE_B);
    s.health.timeout = Duration::from_secs(60);
    engine.release(&s, true, LIMIT).await.unwrap_err();
    assert_eq!(fake.route_actions(LISTENER), before);
    // Released, then rolled back.
    fake.script_health("web-r3", HealthScript::Healthy);
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    assert!(oidc_in_front(&fake, LISTENER));
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    assert!(oidc_in_front(&fake, LISTENER));
    engine
        .destroy("web", &Route::listener(LISTENER))
        .await
        .unwrap();
    assert_eq!(
        fake.route_actions(LISTENER),
        Some(vec![
            ListenerAction::Other(OIDC.into()),
            ListenerAction::Fixed("503".into())
        ]),
        "destroy leaves a fixed 503 behind the authentication"
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_puts_back_a_redirect() {
    let (fake, engine) = world();
    fake.set_route_actions(LISTENER, vec![ListenerAction::Other("redirect".into())]);
    fake.script_health("web-r1", HealthScript::Never);
    let mut s = spec(IMAGE_A);
    s.health.timeout = Duration::from_secs(60);
    let err = engine.release(&s, true, LIMIT).await.unwrap_err();
    assert_eq!(
        fake.route_actions(LISTENER),
        Some(vec![ListenerAction::Other("redirect".into())]),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_release_on_a_rule_leaves_the_default_action_alone_and_the_other_way_round() {
    let (fake, engine) = world();
    fake.add_user_rule(LISTENER, RULE, vec![ListenerAction::Fixed("404".into())]);
    let mut api = spec(IMAGE_A);
    api.name = "api".into();
    api.rule_arn = Some(RULE.into());
    engine.release(&api, true, LIMIT).await.unwrap();
    assert_eq!(
        fake.listener(RULE),
        Some(ListenerAction::Forward(vec![(tg("api-r1"), 100)]))
    );
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Fixed("404".into())),
        "the default action is not the rule's release's"
    );
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let default = fake.route_actions(LISTENER);
    api.fleet.image_id = IMAGE_B.into();
    engine.release(&api, true, LIMIT).await.unwrap();
    assert_eq!(
        fake.listener(RULE),
        Some(ListenerAction::Forward(vec![
            (tg("api-r2"), 100),
            (tg("api-r1"), 0)
        ]))
    );
    assert_eq!(fake.route_actions(LISTENER), default);
    engine.destroy("api", &api.route()).await.unwrap();
    assert_eq!(
        fake.listener(RULE),
        Some(ListenerAction::Fixed("503".into()))
    );
    assert_eq!(fake.route_actions(LISTENER), default);
    assert_eq!(fake.group_names(), vec!["web-r1".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_fleet_the_route_sends_traffic_to_is_never_deleted() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let err = engine
        .delete_fleet(&Route::listener(LISTENER), "web-r1", None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not deleting fleet web-r1"),
        "{err}"
    );
    assert_eq!(fake.group_names(), vec!["web-r1".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_ledger_is_rebuilt_from_tags_and_numbering_goes_on() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    // Rolled back: web-r1 serves as release 3.
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.delete_ledger_outside("web");
    assert!(engine.observe("web").await.unwrap().is_none());
    let ledger = engine
        .rebuild("web", &Route::listener(LISTENER))
        .await
        .unwrap()
        .expect("rebuilt");
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
    assert_eq!(
        ledger
            .retained()
            .iter()
            .map(|f| f.fleet_name.as_str())
            .collect::<Vec<_>>(),
        ["web-r2"]
    );
    assert_eq!(ledger.next_release, 4, "release 3 was the rollback's");
    assert!(engine.observe("web").await.unwrap().is_some(), "saved");
    let route = fake.route_actions(LISTENER);
    // Nothing changed in the configuration: no plan (classify), no traffic change.
    assert_eq!(
        classify(Some(&ledger), &spec(IMAGE_A).fleet, false, false),
        PlanKind::NoChange
    );
    // A new image: the next release is web-r4; the fleet that served is kept for rollback.
    let mut c = spec("ami-0000000c");
    fake.add_image("ami-0000000c");
    c.fleet.image_id = "ami-0000000c".into();
    let ledger = engine.release(&c, true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r4");
    assert_ne!(fake.route_actions(LISTENER), route);
    assert_eq!(ledger.retained()[0].fleet_name, "web-r1");
}

#[tokio::test(start_paused = true)]
async fn a_lost_ledger_is_rebuilt_by_the_next_release_too() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.delete_ledger_outside("web");
    let ledger = engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    assert_eq!(ledger.retained()[0].fleet_name, "web-r1");
    // A create (no state, name taken) is refused rather than starting again at 1.
    fake.delete_ledger_outside("web");
    let err = engine
        .create(&spec(IMAGE_B), true, LIMIT)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already serves from web-r2"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn setting_the_image_back_to_a_retained_fleet_deleted_outside_is_a_fresh_release() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    fake.delete_group_outside("web-r1");
    let ledger = engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r3");
    assert_eq!(ledger.active().unwrap().image_id, IMAGE_A);
    assert_eq!(ledger.retained()[0].fleet_name, "web-r2");
    let r1 = ledger.history.iter().find(|h| h.release == 1).unwrap();
    assert_eq!(r1.status, Status::Retired);
    assert!(!fake.target_group_names().contains(&"web-r1".to_string()));
    // The next plan has nothing to do: no refusal on every later apply.
    assert_eq!(
        classify(Some(&ledger), &spec(IMAGE_A).fleet, false, false),
        PlanKind::NoChange
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_instance_profile_refused_for_a_while_is_waited_for() {
    let (fake, engine) = world();
    let mut s = spec(IMAGE_A);
    s.fleet.iam_instance_profile = Some("web".into());
    // CreateAutoScalingGroup refuses the profile until IAM has propagated it, then the
    // first launches fail and AWS gets past them by itself.
    fake.fail_with(
        "CreateAutoScalingGroup",
        "ValidationError",
        "You must use a valid fully-formed launch template. Value (web) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
        3,
    );
    fake.fail_activity_transient(
        "web-r1",
        "Invalid IAM Instance Profile name. Launching EC2 instance failed.",
        2,
    );
    let ledger = engine.release(&s, true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
    assert_eq!(fake.calls("CreateAutoScalingGroup"), 4);
}

#[tokio::test(start_paused = true)]
async fn a_validation_error_without_a_profile_fails_at_once() {
    let (fake, engine) = world();
    fake.fail_with("CreateAutoScalingGroup", "ValidationError", "bad subnet", 1);
    let err = engine
        .release(&spec(IMAGE_A), true, LIMIT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad subnet"), "{err}");
    assert_eq!(fake.calls("CreateAutoScalingGroup"), 1);
}

#[tokio::test(start_paused = true)]
async fn deletions_aws_refuses_for_now_are_retried_by_code() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    fake.fail_with(
        "DeleteAutoScalingGroup",
        "ScalingActivityInProgress",
        "Scaling activity in progress",
        2,
    );
    fake.fail_with(
        "DeleteTargetGroup",
        "ResourceInUse",
        "Target group is currently in use by a listener or a rule",
        2,
    );
    let mut c = spec(IMAGE_A);
    c.retain_fleets = 0;
    engine.save_settings(&c, None, false).await.unwrap();
    assert_eq!(fake.group_names(), vec!["web-r2".to_string()]);
    assert_eq!(fake.calls("DeleteAutoScalingGroup"), 3);
    assert_eq!(fake.calls("DeleteTargetGroup"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_second_writer_between_read_and_write_is_detected_and_nothing_of_it_is_lost() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    let engine2 = engine.clone();
    let release = tokio::spawn(async move { engine2.release(&canary(IMAGE_B), true, LIMIT).await });
    // Mid-canary, another apply writes the ledger (here: the same record with a note).
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut theirs = fake.ledger("web").unwrap();
    theirs.history[0].reason = Some("written by the other apply".into());
    fake.write_ledger_outside(&theirs);
    let err = release.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("written by another apply"), "{err}");
    // The other write stands; traffic is back on the serving fleet; the new fleet is gone.
    assert_eq!(
        fake.ledger("web").unwrap().history[0].reason.as_deref(),
        Some("written by the other apply")
    );
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
    assert_eq!(fake.group_names(), vec!["web-r1".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn sixty_releases_with_long_abort_reasons_keep_the_ledger_within_aws_limits() {
    let (fake, engine) = world();
    let mut s = spec(IMAGE_A);
    s.history_limit = 100;
    s.health.timeout = Duration::from_secs(5);
    for n in 1..=60u64 {
        // A new image each time: every release makes a fleet (none is a rollback).
        let image = format!("ami-{n:08x}");
        fake.add_image(&image);
        s.fleet.image_id = image;
        if n % 3 == 0 {
            fake.script_health(&format!("web-r{n}"), HealthScript::Never);
            engine.release(&s, true, LIMIT).await.unwrap_err();
        } else {
            engine.release(&s, true, LIMIT).await.unwrap();
        }
    }
    let stored = fake.ledger("web").unwrap();
    let (text, _) = stored.to_stored_json();
    assert!(text.len() <= crate::ledger::MAX_STORED);
    assert!(stored.history.len() >= 40, "{}", stored.history.len());
    assert_eq!(stored.history[0].release, stored.next_release - 1);
    // The reasons are long: the oldest lines were left out, and the user is told.
    assert!(stored.history.len() < 60, "{}", stored.history.len());
    let notices = crate::log::take_notices("web");
    assert!(
        notices
            .iter()
            .any(|n| n.contains("history entries were left out")),
        "{notices:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_commit_says_which_release_serves() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    fake.add_image("ami-0000000c");
    // Retiring web-r1 fails for good after release 3 serves.
    fake.fail("DeleteAutoScalingGroup", 100);
    let err = engine
        .release(&spec("ami-0000000c"), true, LIMIT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::AfterCommit { release: 3, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("release 3 (web-r3) serves all traffic"),
        "{text}"
    );
    assert!(
        text.contains("The next apply finishes the clean-up"),
        "{text}"
    );
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![
            (tg("web-r3"), 100),
            (tg("web-r2"), 0)
        ]))
    );
}

#[tokio::test(start_paused = true)]
async fn changed_tags_reach_every_object_and_dropped_keys_leave() {
    let (fake, engine) = world();
    let mut s = spec(IMAGE_A);
    s.tags = [("env".to_string(), "prod".to_string())].into();
    engine.release(&s, true, LIMIT).await.unwrap();
    s.fleet.image_id = IMAGE_B.into();
    engine.release(&s, true, LIMIT).await.unwrap();
    engine.save_settings(&s, None, false).await.unwrap();
    let calls = fake.calls("Retag");
    assert_eq!(calls, 0, "nothing to do while the tags are as recorded");
    s.tags = [("team".to_string(), "web".to_string())].into();
    engine.save_settings(&s, None, false).await.unwrap();
    for (object, tags) in fake.all_tags() {
        assert_eq!(
            tags.get("team").map(String::as_str),
            Some("web"),
            "{object}"
        );
        assert!(!tags.contains_key("env"), "{object}: {tags:?}");
        assert_eq!(
            tags.get(TAG_RELEASE_NAME).map(String::as_str),
            Some("web"),
            "{object}"
        );
    }
    assert_eq!(
        fake.all_tags().len(),
        6,
        "two fleets: group, target group, template each"
    );
    assert_eq!(fake.ledger("web").unwrap().tags, s.tags);
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_ledger_is_rebuilt_like_a_lost_one() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    fake.corrupt_ledger_outside("web");
    assert!(engine.observe("web").await.unwrap().is_none());
    fake.add_image("ami-0000000c");
    let ledger = engine
        .release(&spec("ami-0000000c"), true, LIMIT)
        .await
        .unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r3");
    assert_eq!(ledger.retained()[0].fleet_name, "web-r2");
    assert!(crate::log::take_notices("web")
        .iter()
        .any(|n| n.contains("could not be read")));
}

#[tokio::test(start_paused = true)]
async fn the_fleet_just_replaced_drains_before_it_is_deleted() {
    let (fake, engine) = world();
    let mut s = spec(IMAGE_A);
    s.retain_fleets = 0;
    engine.release(&s, true, LIMIT).await.unwrap();
    s.fleet.image_id = IMAGE_B.into();
    let started = tokio::time::Instant::now();
    engine.release(&s, true, LIMIT).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "deregistration_delay = 30 s: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.group_names(), vec!["web-r2".to_string()]);
    assert_eq!(
        fake.listener_log().last(),
        Some(&vec![(tg("web-r2"), 100)]),
        "out of the route before it went"
    );
    // With no delay, no wait.
    s.fleet.target_group.deregistration_delay = 0;
    s.fleet.image_id = IMAGE_A.into();
    let started = tokio::time::Instant::now();
    engine.release(&s, true, LIMIT).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn instances_pending_for_a_while_are_waited_for_not_counted() {
    let (fake, engine) = world();
    fake.set_pending_reads(4);
    let mut s = spec(IMAGE_A);
    s.health.timeout = Duration::from_secs(3);
    // Pending for longer than the timeout allows polls: the gate says why.
    let err = engine
        .release(&s, true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("0 of 2 instances InService"), "{err}");
    // With time: the release waits until they are InService and healthy.
    fake.set_pending_reads(3);
    let ledger = engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    assert!(ledger.active().is_some());
    assert!(fake.calls("DescribeAutoScalingGroups") > 3);
}

/// The fleets the ledger records, by name, against the groups that exist: a group the
/// engine deleted is gone, not merely unseen or `Delete in progress`.
fn groups_match_ledger(fake: &FakeCloud, ledger: &Ledger) {
    let mut recorded: Vec<String> = ledger.fleets.iter().map(|f| f.fleet_name.clone()).collect();
    recorded.sort();
    assert_eq!(fake.group_names(), recorded);
}

/// AWS's reads lag its writes: a new group, target group and launch template unseen by
/// three describes each, a deleted group `Delete in progress` for five reads. A first
/// release, a blue/green release, a rollback, an abort and a destroy end as they do at
/// once, and a group the engine deleted is really gone when it says so (a read that did
/// not see a group made moments ago once passed for "gone").
#[tokio::test(start_paused = true)]
async fn releases_meet_lagging_reads_and_slow_deletions() {
    const IMAGE_C: &str = "ami-0000000c";
    let (fake, engine) = world();
    fake.add_image(IMAGE_C);
    fake.set_visibility_reads(3);
    fake.set_deletion_reads(5);
    let ledger = engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    groups_match_ledger(&fake, &ledger);
    let ledger = engine.release(&spec(IMAGE_B), true, LIMIT).await.unwrap();
    groups_match_ledger(&fake, &ledger);
    let ledger = engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1", "a rollback");
    groups_match_ledger(&fake, &ledger);
    // A release that never becomes healthy, aborted at once after launching.
    let next = fleet_name("web", ledger.next_release);
    fake.script_health(&next, HealthScript::Never);
    let mut s = spec(IMAGE_C);
    s.health.timeout = Duration::from_secs(20);
    let err = engine
        .release(&s, true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Traffic stayed on release"), "{err}");
    assert!(!err.contains("Clean-up was incomplete"), "{err}");
    groups_match_ledger(&fake, &fake.ledger("web").unwrap());
    assert!(!fake.group_names().contains(&next));
    engine
        .destroy("web", &Route::listener(LISTENER))
        .await
        .unwrap();
    assert!(fake.group_names().is_empty());
    assert!(fake.target_group_names().is_empty());
}

/// Targets that stay `unused` (`Target.NotInUse`) although a route forwards to their
/// target group are in an Availability Zone the load balancer does not serve: the release
/// aborts once the grace has passed, not at the 10-minute health timeout, and says why.
#[tokio::test(start_paused = true)]
async fn targets_in_a_zone_the_load_balancer_does_not_serve_abort_after_the_grace() {
    let (fake, engine) = world();
    engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
    fake.script_health("web-r2", HealthScript::ZoneNotServed);
    let s = spec(IMAGE_B);
    let interval = Duration::from_secs(s.fleet.target_group.health_check.interval as u64);
    let started = tokio::time::Instant::now();
    let err = engine
        .release(&s, true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    let grace = decide::not_in_use_grace(interval);
    assert!(
        started.elapsed() >= grace && started.elapsed() < grace + Duration::from_secs(40),
        "{:?} (grace {grace:?}, health timeout {:?})",
        started.elapsed(),
        s.health.timeout
    );
    assert!(err.contains("Target.NotInUse"), "{err}");
    assert!(err.contains("Availability Zone"), "{err}");
    assert!(
        err.contains("Traffic stayed on release 1 (web-r1)"),
        "{err}"
    );
    assert_eq!(fake.group_names(), vec!["web-r1"]);
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
}

/// The example release with one request-count policy at `target` per instance.
fn scaled(image: &str, target: f64) -> ReleaseSpec {
    let mut s = spec(image);
    s.scaling = vec![TargetTracking {
        metric: REQUEST_COUNT.into(),
        target_value: target,
        disable_scale_in: false,
    }];
    s
}

/// The canary release with the request-count policy.
fn scaled_canary(image: &str) -> ReleaseSpec {
    let mut c = canary(image);
    c.scaling = scaled(image, 500.0).scaling;
    c
}

/// Fleet → its policies as (name, target, resource label).
async fn policies(fake: &FakeCloud, fleets: &[&str]) -> Vec<(String, Vec<(String, f64, String)>)> {
    let mut out = Vec::new();
    for f in fleets {
        let p = crate::cloud::Fleets::scaling_policies(fake, f)
            .await
            .unwrap();
        out.push((
            f.to_string(),
            p.into_iter()
                .map(|p| (p.name, p.target_value, p.resource_label.unwrap_or_default()))
                .collect(),
        ));
    }
    out
}

fn label(fleet: &str) -> String {
    format!("app/web/1/targetgroup/{fleet}/0001")
}

#[tokio::test(start_paused = true)]
async fn scaling_policies_follow_the_serving_fleet() {
    let (fake, engine) = world();
    let policy = |f: &str, t: f64| (format!("{f}-ALBRequestCountPerTarget"), t, label(f));
    let ledger = engine
        .release(&scaled(IMAGE_A, 500.0), true, LIMIT)
        .await
        .unwrap();
    assert_eq!(
        policies(&fake, &["web-r1"]).await,
        vec![("web-r1".into(), vec![policy("web-r1", 500.0)])],
        "a first release carries its policy, bound to its own target group"
    );
    assert!(ledger.active().unwrap().scaling);

    // A release: the policy moves to the new fleet; the retained one holds its capacity.
    let before = fake.group("web-r1").unwrap().capacity;
    let ledger = engine
        .release(&scaled(IMAGE_B, 500.0), true, LIMIT)
        .await
        .unwrap();
    assert_eq!(
        policies(&fake, &["web-r1", "web-r2"]).await,
        vec![
            ("web-r1".into(), vec![]),
            ("web-r2".into(), vec![policy("web-r2", 500.0)])
        ]
    );
    assert_eq!(fake.group("web-r1").unwrap().capacity, before);
    let roles: Vec<(String, crate::ledger::Role)> = ledger
        .fleets
        .iter()
        .map(|f| (f.fleet_name.clone(), f.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("web-r1".into(), crate::ledger::Role::Retained),
            ("web-r2".into(), crate::ledger::Role::Active)
        ],
        "the record of the fleet whose policies went is otherwise untouched"
    );
    assert!(
        fake.schedule("web-r1").is_some(),
        "its window still ends it"
    );
    assert!(
        !ledger
            .fleets
            .iter()
            .find(|f| f.release == 1)
            .unwrap()
            .scaling
    );

    // A rollback: back on the fleet rolled back to, off the one it replaced.
    let ledger = engine
        .release(&scaled(IMAGE_A, 500.0), true, LIMIT)
        .await
        .unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
    assert_eq!(
        policies(&fake, &["web-r1", "web-r2"]).await,
        vec![
            ("web-r1".into(), vec![policy("web-r1", 500.0)]),
            ("web-r2".into(), vec![])
        ]
    );

    // A settings update: the serving fleet's policy changes in place, no fleet is made.
    let groups_made = fake.calls("CreateAutoScalingGroup");
    engine
        .save_settings(&scaled(IMAGE_A, 800.0), None, false)
        .await
        .unwrap();
    assert_eq!(
        policies(&fake, &["web-r1", "web-r2"]).await,
        vec![
            ("web-r1".into(), vec![policy("web-r1", 800.0)]),
            ("web-r2".into(), vec![])
        ]
    );
    // Removed from the configuration: off the serving fleet, and the record says so.
    let ledger = engine
        .save_settings(&spec(IMAGE_A), None, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        policies(&fake, &["web-r1"]).await,
        vec![("web-r1".into(), vec![])]
    );
    assert!(!ledger.active().unwrap().scaling);
    assert_eq!(fake.calls("CreateAutoScalingGroup"), groups_made);
    // With none configured and none carried, a settings update reads no policies.
    let reads = fake.calls("DescribePolicies");
    engine
        .save_settings(&spec(IMAGE_A), None, false)
        .await
        .unwrap();
    assert_eq!(fake.calls("DescribePolicies"), reads);
}

#[tokio::test(start_paused = true)]
async fn a_policy_refused_aborts_before_the_new_fleet_takes_traffic() {
    let (fake, engine) = world();
    engine
        .release(&scaled(IMAGE_A, 500.0), true, LIMIT)
        .await
        .unwrap();
    let log_before = fake.listener_log().len();
    fake.fail_with("PutScalingPolicy", "ValidationError", "limit exceeded", 1);
    let err = engine
        .release(&scaled(IMAGE_B, 500.0), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("limit exceeded"), "{err}");
    let r2 = tg("web-r2");
    assert!(
        fake.listener_log()[log_before..]
            .iter()
            .all(|w| w.iter().all(|(arn, weight)| arn != &r2 || *weight == 0)),
        "web-r2 never got traffic: {:?}",
        fake.listener_log()
    );
    assert_eq!(
        fake.listener(LISTENER),
        Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
    );
    assert_eq!(
        policies(&fake, &["web-r1"]).await,
        vec![(
            "web-r1".into(),
            vec![(
                "web-r1-ALBRequestCountPerTarget".into(),
                500.0,
                label("web-r1")
            )]
        )],
        "the serving fleet keeps its policy"
    );
}

/// Fleet → whether each of its policies may scale in, by policy name.
async fn scale_in(fake: &FakeCloud, fleet: &str) -> Vec<(String, bool)> {
    crate::cloud::Fleets::scaling_policies(fake, fleet)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.name, !p.disable_scale_in))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn during_a_canary_neither_fleet_scales_in() {
    let (fake, engine) = world();
    engine
        .release(&scaled(IMAGE_A, 500.0), true, LIMIT)
        .await
        .unwrap();
    let c = scaled_canary(IMAGE_B);
    let e2 = engine.clone();
    let c2 = c.clone();
    let task = tokio::spawn(async move { e2.release(&c2, true, LIMIT).await });
    // In the first pause, at 10 %: both fleets carry their policies, neither scales in.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        matches!(fake.listener(LISTENER), Some(ListenerAction::Forward(s)) if s.contains(&(tg("web-r2"), 10)))
    );
    let name = |f: &str| format!("{f}-ALBRequestCountPerTarget");
    assert_eq!(
        scale_in(&fake, "web-r1").await,
        vec![(name("web-r1"), false)]
    );
    assert_eq!(
        scale_in(&fake, "web-r2").await,
        vec![(name("web-r2"), false)]
    );
    task.await.unwrap().unwrap();
    // Committed: the new fleet scales as configured; the retained one carries none.
    assert_eq!(
        scale_in(&fake, "web-r2").await,
        vec![(name("web-r2"), true)]
    );
    assert_eq!(scale_in(&fake, "web-r1").await, vec![]);
}

#[tokio::test(start_paused = true)]
async fn an_aborted_canary_gives_the_serving_fleet_its_scale_in_back() {
    let (fake, engine) = world();
    engine
        .release(&scaled(IMAGE_A, 500.0), true, LIMIT)
        .await
        .unwrap();
    let c = scaled_canary(IMAGE_B);
    alarm_after(&fake, 90);
    let err = engine
        .release(&c, true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Traffic is back on release 1"), "{err}");
    assert_eq!(
        scale_in(&fake, "web-r1").await,
        vec![("web-r1-ALBRequestCountPerTarget".to_string(), true)],
        "traffic is back on it, and so is its scale-in"
    );
    assert_eq!(fake.group_names(), vec!["web-r1"]);
}

/// The example release on version `version` of the user's template `lt-0123456789abcdef0`.
fn on_base(image: &str, version: i64) -> ReleaseSpec {
    let mut s = spec(image);
    s.fleet.base = Some(BaseTemplate {
        id: "lt-0123456789abcdef0".into(),
        version,
    });
    s
}

#[tokio::test(start_paused = true)]
async fn a_new_base_template_version_is_a_release_and_going_back_a_rollback() {
    let (fake, engine) = world();
    fake.add_base_template("lt-0123456789abcdef0", 1, 2);
    engine
        .release(&on_base(IMAGE_A, 1), true, LIMIT)
        .await
        .unwrap();
    assert_eq!(
        fake.template_base("web-r1"),
        Some(("lt-0123456789abcdef0".to_string(), 1)),
        "the fleet's template started from the base version"
    );
    // Version 2 of the base, same image: a new fleet.
    let ledger = engine
        .release(&on_base(IMAGE_A, 2), true, LIMIT)
        .await
        .unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    assert_eq!(
        fake.template_base("web-r2"),
        Some(("lt-0123456789abcdef0".to_string(), 2))
    );
    // Back to version 1: the retained fleet serves again, nothing launched.
    let made = fake.calls("CreateAutoScalingGroup");
    let ledger = engine
        .release(&on_base(IMAGE_A, 1), true, LIMIT)
        .await
        .unwrap();
    assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
    assert_eq!(fake.calls("CreateAutoScalingGroup"), made);
}

#[tokio::test(start_paused = true)]
async fn a_base_version_gone_by_apply_aborts_with_traffic_unmoved() {
    let (fake, engine) = world();
    fake.add_base_template("lt-0123456789abcdef0", 1, 1);
    engine
        .release(&on_base(IMAGE_A, 1), true, LIMIT)
        .await
        .unwrap();
    let before = fake.listener(LISTENER);
    let err = engine
        .release(&on_base(IMAGE_A, 5), true, LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no version 5"), "{err}");
    assert_eq!(fake.listener(LISTENER), before);
    assert_eq!(fake.group_names(), vec!["web-r1"]);
}

// Canary analysis (`analysis`): the new fleet judged on its own metrics against the
// serving fleet's, in virtual time against the fake's metric points.

mod analysis {
    use super::*;
    use crate::analysis::{AnalysisSpec, ErrorRate, Latency, MetricCheck, ALB_NAMESPACE};

    fn dims(fleet: &str) -> Vec<(&'static str, String)> {
        vec![
            ("TargetGroup", format!("targetgroup/{fleet}/0001")),
            ("LoadBalancer", "app/web/1".to_string()),
        ]
    }

    /// Puts a fleet's requests and 5xx answers.
    fn traffic(fake: &FakeCloud, fleet: &str, requests: f64, errors: f64) {
        let d = dims(fleet);
        let d: Vec<(&str, &str)> = d.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fake.put_metric(ALB_NAMESPACE, "RequestCount", &d, &[requests]);
        fake.put_metric(ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", &d, &[errors]);
    }

    fn latency(fake: &FakeCloud, fleet: &str, points: &[f64]) {
        let d = dims(fleet);
        let d: Vec<(&str, &str)> = d.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fake.put_metric(ALB_NAMESPACE, "TargetResponseTime", &d, points);
    }

    /// A canary at 10 % for 5 minutes, judged every minute: error rate at most +2 points
    /// over the serving fleet (at least 100 requests), p99 at most +100ms.
    fn judged(image: &str) -> ReleaseSpec {
        let mut s = spec(image);
        s.strategy = Strategy::Canary;
        s.canary_steps = vec![CanaryStep {
            weight: 10,
            pause: Duration::from_secs(300),
        }];
        s.analysis = Some(AnalysisSpec {
            interval: Duration::from_secs(60),
            failure_limit: 0,
            error_rate: Some(ErrorRate {
                max: None,
                max_increase: Some(2.0),
                min_requests: 100,
            }),
            latency: Some(Latency {
                statistic: "p99".into(),
                max: None,
                max_increase: Some(Duration::from_millis(100)),
            }),
            metrics: Vec::new(),
        });
        s
    }

    async fn serving_r1() -> (Arc<FakeCloud>, Engine) {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        crate::log::take_notices("web");
        (fake, engine)
    }

    #[tokio::test(start_paused = true)]
    async fn a_canary_far_worse_than_the_serving_fleet_aborts_within_its_pause() {
        let (fake, engine) = serving_r1().await;
        traffic(&fake, "web-r2", 1200.0, 240.0);
        traffic(&fake, "web-r1", 10800.0, 54.0);
        latency(&fake, "web-r2", &[0.2; 10]);
        latency(&fake, "web-r1", &[0.2; 10]);
        let started = tokio::time::Instant::now();
        let err = engine
            .release(&judged(IMAGE_B), true, LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "aborted at the first judgement, within the pause: {:?}",
            started.elapsed()
        );
        assert!(
            err.contains("analysis error_rate: web-r2 20.0 % of 1,200 requests answered 5xx against web-r1 0.5 % of 10,800 (max increase 2 points) during canary pause at 10 %"),
            "{err}"
        );
        assert!(
            err.contains("Traffic is back on release 1 (web-r1)"),
            "{err}"
        );
        assert_eq!(fake.calls("GetMetricData"), 1, "one call a judgement");
        // The window: whole minutes from the step's start, the current one included.
        let (from, to) = fake.metric_windows()[0];
        let secs =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs(from) % 60, 0);
        assert_eq!(secs(to) % 60, 0);
        assert!(secs(to) - secs(from) >= 60);
    }

    #[tokio::test(start_paused = true)]
    async fn a_canary_as_good_as_the_serving_fleet_is_released_after_its_pause() {
        let (fake, engine) = serving_r1().await;
        traffic(&fake, "web-r2", 1200.0, 7.0);
        traffic(&fake, "web-r1", 10800.0, 54.0);
        latency(&fake, "web-r2", &[0.21; 10]);
        latency(&fake, "web-r1", &[0.2; 10]);
        let started = tokio::time::Instant::now();
        let ledger = engine.release(&judged(IMAGE_B), true, LIMIT).await.unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
        assert!(
            started.elapsed() >= Duration::from_secs(300),
            "the pause watched to its end"
        );
        let calls = fake.calls("GetMetricData");
        assert!((4..=5).contains(&calls), "a judgement a minute: {calls}");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_and_a_custom_metric_each_abort() {
        let (fake, engine) = serving_r1().await;
        traffic(&fake, "web-r2", 1200.0, 0.0);
        traffic(&fake, "web-r1", 10800.0, 0.0);
        let mut slow = vec![0.2; 95];
        slow.extend([1.5; 5]);
        latency(&fake, "web-r2", &slow);
        latency(&fake, "web-r1", &[0.2; 100]);
        let err = engine
            .release(&judged(IMAGE_B), true, LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "analysis latency: web-r2 p99 1.5s against web-r1 200ms (max increase 100ms)"
            ),
            "{err}"
        );

        // A custom metric of the new fleet, by its group's name.
        fake.clear_metrics();
        traffic(&fake, "web-r3", 1200.0, 0.0);
        traffic(&fake, "web-r1", 10800.0, 0.0);
        latency(&fake, "web-r3", &[0.2]);
        latency(&fake, "web-r1", &[0.2]);
        fake.put_metric(
            "Shop",
            "CheckoutFailed",
            &[("AutoScalingGroupName", "web-r3")],
            &[4.0, 5.0],
        );
        let mut s = judged(IMAGE_B);
        s.analysis.as_mut().unwrap().metrics.push(MetricCheck {
            name: "checkout-failures".into(),
            namespace: "Shop".into(),
            metric_name: "CheckoutFailed".into(),
            dimensions: [("AutoScalingGroupName".to_string(), "{fleet}".to_string())].into(),
            statistic: "Sum".into(),
            max: Some(5.0),
            min: None,
        });
        let err = engine
            .release(&s, true, LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("analysis metric checkout-failures: web-r3 CheckoutFailed Sum 9 (max 5)"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn too_few_requests_is_inconclusive_and_goes_on_with_a_warning() {
        let (fake, engine) = serving_r1().await;
        traffic(&fake, "web-r2", 40.0, 40.0);
        traffic(&fake, "web-r1", 10800.0, 0.0);
        latency(&fake, "web-r2", &[0.2]);
        latency(&fake, "web-r1", &[0.2]);
        let ledger = engine.release(&judged(IMAGE_B), true, LIMIT).await.unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
        let notices = crate::log::take_notices("web");
        assert!(
            notices
                .iter()
                .any(|n| n.contains(
                    "canary pause at 10 % of web-r2 ended with only inconclusive judgements"
                ) && n.contains("web-r2 had 40 requests, fewer than min_requests (100)")),
            "{notices:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failure_limit_tolerates_that_many_failed_judgements() {
        let (fake, engine) = serving_r1().await;
        traffic(&fake, "web-r2", 1200.0, 240.0);
        traffic(&fake, "web-r1", 10800.0, 0.0);
        latency(&fake, "web-r2", &[0.2]);
        latency(&fake, "web-r1", &[0.2]);
        let mut s = judged(IMAGE_B);
        s.analysis.as_mut().unwrap().failure_limit = 2;
        let started = tokio::time::Instant::now();
        let err = engine
            .release(&s, true, LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            (Duration::from_secs(180)..Duration::from_secs(240)).contains(&started.elapsed()),
            "two failures tolerated, the third aborts: {:?}",
            started.elapsed()
        );
        assert!(err.contains("analysis error_rate"), "{err}");
        assert_eq!(fake.calls("GetMetricData"), 3);
        let notices = crate::log::take_notices("web");
        assert!(
            notices.iter().any(|n| n.contains("failed judgement 2 of the 2 analysis.failure_limit tolerates")),
            "{notices:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_bake_judges_the_new_fleets_own_thresholds_only() {
        let (fake, engine) = serving_r1().await;
        // At 100 % the replaced fleet has no traffic: no increase to judge, no warning.
        traffic(&fake, "web-r2", 1200.0, 30.0);
        latency(&fake, "web-r2", &[0.2]);
        let mut s = judged(IMAGE_B);
        s.strategy = Strategy::BlueGreen;
        s.canary_steps.clear();
        s.bake_time = Duration::from_secs(180);
        let ledger = engine.release(&s, true, LIMIT).await.unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
        assert_eq!(
            fake.calls("GetMetricData"),
            3,
            "judged every minute of the bake"
        );
        let notices = crate::log::take_notices("web");
        assert!(notices.is_empty(), "{notices:?}");
        // Its own max still counts: 5 % of its answers 5xx, max 2 %.
        traffic(&fake, "web-r3", 1200.0, 60.0);
        latency(&fake, "web-r3", &[0.2]);
        s.fleet.image_id = IMAGE_A.into();
        s.fleet.instance_type = "t3.small".into();
        s.analysis
            .as_mut()
            .unwrap()
            .error_rate
            .as_mut()
            .unwrap()
            .max = Some(2.0);
        let err = engine
            .release(&s, true, LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("analysis error_rate: web-r3 5.0 % of 1,200 requests answered 5xx (max 2.0 %) during bake"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollback_is_not_judged_and_no_analysis_reads_no_metrics() {
        let (fake, engine) = serving_r1().await;
        // Without analysis: not one metric read.
        let mut plain = judged(IMAGE_B);
        plain.analysis = None;
        engine.release(&plain, true, LIMIT).await.unwrap();
        assert_eq!(fake.calls("GetMetricData"), 0);
        // Back to web-r1, whose figures would fail any judgement: a rollback goes to a
        // fleet that served, and is not judged.
        traffic(&fake, "web-r1", 100.0, 100.0);
        let mut back = judged(IMAGE_A);
        back.canary_steps.clear();
        back.strategy = Strategy::BlueGreen;
        back.bake_time = Duration::from_secs(300);
        let ledger = engine.release(&back, true, LIMIT).await.unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
        assert_eq!(fake.calls("GetMetricData"), 0, "a rollback is not judged");
    }
}

mod notifications {
    use super::*;
    use crate::notify::{Event, NotificationSpec};

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:releases";

    fn told(mut s: ReleaseSpec, events: Vec<Event>) -> ReleaseSpec {
        s.notification = Some(NotificationSpec {
            sns_topic_arn: TOPIC.into(),
            events,
        });
        s
    }

    /// The messages sent so far: (event, subject, parsed body).
    fn messages(fake: &FakeCloud) -> Vec<(String, String, serde_json::Value)> {
        fake.published()
            .into_iter()
            .map(|(topic, subject, body)| {
                assert_eq!(topic, TOPIC);
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                (v["event"].as_str().unwrap().to_string(), subject, v)
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_canary_tells_every_step_in_order_and_a_rollback_too() {
        let (fake, engine) = world();
        engine
            .release(&told(canary(IMAGE_A), vec![]), true, LIMIT)
            .await
            .unwrap();
        engine
            .release(&told(canary(IMAGE_B), vec![]), true, LIMIT)
            .await
            .unwrap();
        engine.flush_notifications("web").await;
        let sent = messages(&fake);
        let events: Vec<&str> = sent.iter().map(|(e, _, _)| e.as_str()).collect();
        assert_eq!(
            events,
            [
                // The first release: all at once.
                "started",
                "healthy",
                "traffic",
                "committed",
                // The canary: each weight, then the commit.
                "started",
                "healthy",
                "traffic",
                "traffic",
                "traffic",
                "traffic",
                "committed",
            ]
        );
        let (_, subject, at_10) = &sent[6];
        assert_eq!(
            subject,
            "web: release 2 (ami-0000000b) at 10 %; traffic on web-r1 90 %, web-r2 10 %"
        );
        assert_eq!(
            at_10["traffic"],
            serde_json::json!({"web-r1": 90, "web-r2": 10})
        );
        assert_eq!(at_10["previous_fleet_name"], "web-r1");
        assert_eq!(at_10["fleet_name"], "web-r2");
        assert_eq!(at_10["image_id"], IMAGE_B);
        assert_eq!(at_10["release"], 2);
        assert!(at_10["time"].as_str().unwrap().starts_with("2026-01-01T"));
        assert_eq!(sent[10].2["traffic"], serde_json::json!({"web-r2": 100}));

        // A rollback: one message, with its reason.
        engine
            .release(&told(canary(IMAGE_A), vec![]), true, LIMIT)
            .await
            .unwrap();
        engine.flush_notifications("web").await;
        let sent = messages(&fake);
        let (event, subject, body) = sent.last().unwrap();
        assert_eq!(event, "rolled_back");
        assert_eq!(
            subject,
            "web: release 3 (ami-0000000a) rolled back to web-r1; traffic on web-r1"
        );
        assert!(
            body["reason"]
                .as_str()
                .unwrap()
                .contains("release 1's again"),
            "{body}"
        );
        assert_eq!(body["previous_fleet_name"], "web-r2");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abort_says_why_and_where_traffic_is_and_retirement_is_told() {
        let (fake, engine) = world();
        let mut s = told(spec(IMAGE_A), vec![Event::Aborted, Event::Retired]);
        s.retain_fleets = 0;
        engine.release(&s, true, LIMIT).await.unwrap();
        let mut c = told(canary(IMAGE_B), vec![Event::Aborted, Event::Retired]);
        c.retain_fleets = 0;
        alarm_after(&fake, 70);
        engine.release(&c, true, LIMIT).await.unwrap_err();
        engine.flush_notifications("web").await;
        let sent = messages(&fake);
        assert_eq!(sent.len(), 1, "only the events asked for: {sent:?}");
        let (event, subject, body) = &sent[0];
        assert_eq!(event, "aborted");
        assert_eq!(
            subject,
            "web: release 2 (ami-0000000b) aborted; traffic on web-r1"
        );
        assert!(
            body["reason"].as_str().unwrap().contains("web-5xx"),
            "{body}"
        );
        assert_eq!(body["traffic"], serde_json::json!({"web-r1": 100}));

        // A release that retires the one it replaced (retain_fleets = 0).
        fake.set_alarm("web-5xx", false);
        engine.release(&c, true, LIMIT).await.unwrap();
        engine.flush_notifications("web").await;
        let sent = messages(&fake);
        let (event, subject, body) = sent.last().unwrap();
        assert_eq!(event, "retired");
        assert_eq!(subject, "web: web-r1 retired");
        assert_eq!(body["reason"], "beyond retain_fleets = 0");
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_cannot_be_sent_is_a_warning_not_a_failed_release() {
        let (fake, engine) = world();
        fake.fail_publishing();
        let s = told(spec(IMAGE_A), vec![]);
        let ledger = engine.release(&s, true, LIMIT).await.unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
        engine.flush_notifications("web").await;
        let notices = crate::log::take_notices("web");
        assert!(
            notices.iter().any(|n| n
                .contains("notification \"web: release 1 (ami-0000000a) started\" was not sent")
                && n.contains("Topic does not exist")),
            "{notices:?}"
        );
        // Without `notification`, nothing is sent.
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        engine.flush_notifications("web").await;
        assert!(fake.published().is_empty());
    }
}

mod hold_and_promote {
    use super::*;

    fn held(image: &str, at: Option<i64>) -> ReleaseSpec {
        let mut s = canary(image);
        s.hold_at = at;
        s
    }

    /// The weights web-r2 was given, in order, since `from` (0s left out).
    fn given(fake: &FakeCloud, from: usize) -> Vec<i64> {
        fake.listener_log()[from..]
            .iter()
            .filter_map(|w| w.iter().find(|(a, _)| a == &tg("web-r2")).map(|(_, w)| *w))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_held_at_ten_percent_is_promoted_from_there_without_a_new_fleet() {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        let ledger = engine
            .release(&held(IMAGE_B, Some(10)), true, LIMIT)
            .await
            .unwrap();
        // Held: the serving fleet still serves, the new one holds 10 %.
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
        let h = ledger.held().expect("a held release");
        assert_eq!(h.fleet_name, "web-r2");
        assert_eq!(h.held.as_ref().unwrap().weight, 10);
        assert_eq!(ledger.history[0].status, Status::Holding);
        assert_eq!(
            fake.listener(LISTENER),
            Some(ListenerAction::Forward(vec![
                (tg("web-r2"), 10),
                (tg("web-r1"), 90)
            ]))
        );
        assert_eq!(fake.calls("CreateAutoScalingGroup"), 2);

        // The same configuration again: nothing moves (a settings apply keeps it held).
        assert!(kept_held(&ledger, &held(IMAGE_B, Some(10))).is_some());
        let (after, released) = engine
            .repair(&held(IMAGE_B, Some(10)), Some(ledger.clone()), true, LIMIT)
            .await
            .unwrap();
        assert!(!released);
        assert!(after.unwrap().held().is_some());

        // Promoted: from 10 %, never back to 0, and no third fleet.
        let from = fake.listener_log().len();
        let ledger = engine
            .release(&held(IMAGE_B, None), true, LIMIT)
            .await
            .unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
        assert!(ledger.held().is_none());
        assert_eq!(fake.calls("CreateAutoScalingGroup"), 2, "no new fleet");
        let weights = given(&fake, from);
        assert_eq!(weights.first(), Some(&10), "{weights:?}");
        assert!(
            !weights.contains(&0),
            "never taken off its share: {weights:?}"
        );
        assert_eq!(weights.last(), Some(&100));
        assert_eq!(ledger.history[0].status, Status::Active);
        assert_eq!(ledger.history.iter().filter(|h| h.release == 2).count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_held_at_zero_takes_no_traffic_then_is_promoted() {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        let ledger = engine
            .release(&held(IMAGE_B, Some(0)), true, LIMIT)
            .await
            .unwrap();
        assert_eq!(ledger.held().unwrap().held.as_ref().unwrap().weight, 0);
        let Some(ListenerAction::Forward(split)) = fake.listener(LISTENER) else {
            panic!()
        };
        assert!(split.contains(&(tg("web-r1"), 100)), "{split:?}");
        let ledger = engine
            .release(&held(IMAGE_B, Some(50)), true, LIMIT)
            .await
            .unwrap();
        assert_eq!(
            ledger.held().unwrap().held.as_ref().unwrap().weight,
            50,
            "raised: held again further on"
        );
        let ledger = engine
            .release(&held(IMAGE_B, None), true, LIMIT)
            .await
            .unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
    }

    #[tokio::test(start_paused = true)]
    async fn setting_the_serving_arguments_back_abandons_the_held_release() {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        engine
            .release(&held(IMAGE_B, Some(10)), true, LIMIT)
            .await
            .unwrap();
        let ledger = engine
            .release(&held(IMAGE_A, Some(10)), true, LIMIT)
            .await
            .unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
        assert!(ledger.held().is_none());
        assert_eq!(
            fake.group_names(),
            vec!["web-r1"],
            "the held fleet deleted, nothing launched"
        );
        let r2 = ledger.history.iter().find(|h| h.release == 2).unwrap();
        assert_eq!(r2.status, Status::Aborted);
        assert_eq!(r2.reason.as_deref(), Some("abandoned while held at 10 %"));
        assert_eq!(
            fake.listener(LISTENER),
            Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)]))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_alarm_during_a_promotion_puts_traffic_back_on_the_serving_fleet_alone() {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        engine
            .release(&held(IMAGE_B, Some(10)), true, LIMIT)
            .await
            .unwrap();
        alarm_after(&fake, 10);
        let err = engine
            .release(&held(IMAGE_B, None), true, LIMIT)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("web-5xx"), "{err}");
        assert_eq!(
            fake.listener(LISTENER),
            Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)])),
            "the held share is given back too"
        );
        assert_eq!(fake.group_names(), vec!["web-r1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_split_changed_by_hand_while_held_is_put_back_to_the_held_split() {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        let ledger = engine
            .release(&held(IMAGE_B, Some(10)), true, LIMIT)
            .await
            .unwrap();
        fake.set_route_actions(
            LISTENER,
            vec![ListenerAction::Forward(vec![
                (tg("web-r1"), 100),
                (tg("web-r2"), 0),
            ])],
        );
        engine
            .restore_traffic(&held(IMAGE_B, Some(10)), &ledger)
            .await
            .unwrap();
        assert_eq!(
            fake.listener(LISTENER),
            Some(ListenerAction::Forward(vec![
                (tg("web-r2"), 10),
                (tg("web-r1"), 90)
            ]))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_record_while_held_is_rebuilt_with_the_held_release() {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        engine
            .release(&held(IMAGE_B, Some(10)), true, LIMIT)
            .await
            .unwrap();
        fake.delete_ledger_outside("web");
        let ledger = engine
            .rebuild("web", &Route::listener(LISTENER))
            .await
            .unwrap()
            .expect("rebuilt");
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
        let h = ledger.held().expect("the held release, from its phase tag");
        assert_eq!(h.fleet_name, "web-r2");
        assert_eq!(h.held.as_ref().unwrap().weight, 10);
        assert!(kept_held(&ledger, &held(IMAGE_B, Some(10))).is_some());
        // And the promotion goes on from there.
        let ledger = engine
            .release(&held(IMAGE_B, None), true, LIMIT)
            .await
            .unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r2");
        assert_eq!(fake.calls("CreateAutoScalingGroup"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_is_told() {
        let (fake, engine) = world();
        engine.release(&spec(IMAGE_A), true, LIMIT).await.unwrap();
        let mut s = held(IMAGE_B, Some(10));
        s.notification = Some(crate::notify::NotificationSpec {
            sns_topic_arn: "arn:aws:sns:us-east-1:123456789012:releases".into(),
            events: vec![crate::notify::Event::Held, crate::notify::Event::Committed],
        });
        engine.release(&s, true, LIMIT).await.unwrap();
        s.hold_at = None;
        engine.release(&s, true, LIMIT).await.unwrap();
        engine.flush_notifications("web").await;
        let subjects: Vec<String> = fake.published().into_iter().map(|(_, s, _)| s).collect();
        assert_eq!(
            subjects,
            [
                "web: release 2 (ami-0000000b) held at 10 %; traffic on web-r1 90 %, web-r2 10 %",
                "web: release 2 (ami-0000000b) committed; traffic on web-r2",
            ]
        );
    }
}

mod adopting_a_running_service {
    use super::*;

    const APP_TG: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app-tg/00ff";

    #[tokio::test(start_paused = true)]
    async fn a_first_release_takes_traffic_from_the_services_target_group_step_by_step() {
        let (fake, engine) = world();
        fake.add_running_service(LISTENER, "app-asg", APP_TG, 6);
        let mut s = canary(IMAGE_A);
        s.capacity.max = 8;
        let ledger = engine.release(&s, false, LIMIT).await.unwrap();
        assert_eq!(ledger.active().unwrap().fleet_name, "web-r1");
        // The service's capacity, not min_size's 2.
        assert_eq!(fake.group("web-r1").unwrap().capacity.desired, 6);
        let shares: Vec<(i64, i64)> = fake
            .listener_log()
            .iter()
            .filter_map(|w| {
                let of = |a: &str| w.iter().find(|(x, _)| x == a).map(|(_, v)| *v);
                Some((of(&tg("web-r1"))?, of(APP_TG).unwrap_or(0)))
            })
            .filter(|(new, _)| *new > 0)
            .collect();
        assert_eq!(
            shares.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [10, 20, 50, 100, 100],
            "step by step, then the service's target group out: {shares:?}"
        );
        assert_eq!(shares[0], (10, 90));
        assert_eq!(
            fake.listener(LISTENER),
            Some(ListenerAction::Forward(vec![(tg("web-r1"), 100)])),
            "the service's target group left the route"
        );
        assert!(fake.group("app-asg").is_some(), "never modified or deleted");
        assert_eq!(fake.group("app-asg").unwrap().capacity.desired, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_adoption_puts_the_services_forward_back_exactly() {
        let (fake, engine) = world();
        fake.add_running_service(LISTENER, "app-asg", APP_TG, 2);
        alarm_after(&fake, 30);
        let err = engine
            .release(&canary(IMAGE_A), true, LIMIT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Traffic is back on target group app-tg as it was"),
            "{err}"
        );
        assert_eq!(
            fake.route_actions(LISTENER),
            Some(vec![ListenerAction::Forward(vec![(APP_TG.to_string(), 1)])]),
            "exactly as it was"
        );
        assert_eq!(fake.group_names(), vec!["app-asg".to_string()]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_adoption_held_then_abandoned_or_promoted_never_leaves_the_service_without_traffic()
    {
        let (fake, engine) = world();
        fake.add_running_service(LISTENER, "app-asg", APP_TG, 2);
        let mut s = canary(IMAGE_A);
        s.hold_at = Some(10);
        let ledger = engine.release(&s, true, LIMIT).await.unwrap();
        assert!(ledger.held().is_some());
        let Some(ListenerAction::Forward(w)) = fake.listener(LISTENER) else {
            panic!()
        };
        assert!(
            w.contains(&(APP_TG.to_string(), 90)) && w.contains(&(tg("web-r1"), 10)),
            "{w:?}"
        );
        // Another image while held: the held fleet abandoned, its share back on app-tg,
        // and the new one adopted from there.
        let mut b = canary(IMAGE_B);
        b.hold_at = Some(10);
        engine.release(&b, true, LIMIT).await.unwrap();
        let Some(ListenerAction::Forward(w)) = fake.listener(LISTENER) else {
            panic!()
        };
        assert!(
            w.contains(&(APP_TG.to_string(), 90)) && w.contains(&(tg("web-r2"), 10)),
            "{w:?}"
        );
        assert!(
            fake.listener_log()
                .iter()
                .all(|w| w.iter().any(|(a, x)| a == APP_TG && *x > 0)
                    || w.iter().any(|(a, x)| a.contains("web-r") && *x == 100)),
            "never a route without the service or a whole fleet: {:?}",
            fake.listener_log()
        );
        // An alarm during the promotion: back on app-tg alone, exactly.
        alarm_after(&fake, 10);
        b.hold_at = None;
        engine.release(&b, true, LIMIT).await.unwrap_err();
        assert_eq!(
            fake.listener(LISTENER),
            Some(ListenerAction::Forward(vec![(APP_TG.to_string(), 100)]))
        );
        assert_eq!(fake.group_names(), vec!["app-asg".to_string()]);
    }
}
