//! Notifications: every event of an apply is one JSON message to the release's SNS topic,
//! delivered by the local AWS's SNS to an SQS queue the test reads (as a team routes them
//! to chat or a pipeline): a canary's steps in order, an abort with its reason, a rollback.

use std::time::Duration;

use acceptance_tests::{Harness, ReleaseOpts};

const CANARY: &str = acceptance_tests::CANARY_10_50;

/// The events the topic was sent since the proxy's log entry `from`, in the order they
/// were sent (the queue does not keep an order).
fn sent(h: &Harness, from: usize) -> Vec<String> {
    h.proxy.log()[from..]
        .iter()
        .filter(|s| s.action == "Publish")
        .map(|s| {
            let message = acceptance_tests::proxy::form_field(&s.body, "Message")
                .expect("a Publish has a Message");
            let v: serde_json::Value = serde_json::from_str(&message).expect("JSON");
            v["event"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_an_abort_and_a_rollback_are_told_step_by_step() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.aws.put_alarm("web-5xx").await?;
    let (topic, queue) = h.topic_with_queue("releases").await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: format!("{CANARY}\n  notification {{\n    sns_topic_arn = \"{topic}\"\n  }}"),
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    }))?;

    // 1. The first release, then a canary: each step, in order.
    h.apply(&[]).await?;
    let from = h.proxy.log().len();
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(
        sent(&h, from),
        [
            "started",
            "healthy",
            "traffic",
            "traffic",
            "traffic",
            "committed"
        ]
    );
    let received = h.queue_messages(&queue).await?;
    assert_eq!(
        received.len(),
        10,
        "4 for the first release, 6 for the canary"
    );
    let mut canary: Vec<serde_json::Value> = Vec::new();
    for envelope in &received {
        assert_eq!(envelope["TopicArn"], topic.as_str());
        let m: serde_json::Value = serde_json::from_str(envelope["Message"].as_str().unwrap())?;
        for field in [
            "release_name",
            "release",
            "event",
            "fleet_name",
            "image_id",
            "previous_fleet_name",
            "traffic",
            "time",
        ] {
            assert!(m.get(field).is_some(), "{field}: {m}");
        }
        assert!(
            time::OffsetDateTime::parse(
                m["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "RFC 3339: {m}"
        );
        if m["release"] == 2 {
            eprintln!("{}  {}", envelope["Subject"].as_str().unwrap(), m);
            canary.push(m);
        }
    }
    let at_10 = canary
        .iter()
        .find(|m| m["event"] == "traffic" && m["traffic"]["web-r2"] == 10)
        .expect("the 10 % step");
    assert_eq!(
        at_10["traffic"],
        serde_json::json!({"web-r1": 90, "web-r2": 10})
    );
    assert_eq!(at_10["previous_fleet_name"], "web-r1");
    assert_eq!(at_10["image_id"], h.fx.image_b.as_str());
    assert!(received.iter().any(|e| e["Subject"]
        == format!(
            "web: release 2 ({}) committed; traffic on web-r2",
            h.fx.image_b
        )
        .as_str()));

    // 2. An abort: the alarm fires at 10 %; the message says why and where traffic is.
    let firing = h.aws.fire_alarm_at(
        &h.fx.listener_arn,
        "web-r3",
        10,
        "web-5xx",
        Duration::from_secs(60),
    );
    let from = h.proxy.log().len();
    let run = h
        .terraform(&[
            "apply",
            "-auto-approve",
            &format!("-var=image_id={}", h.fx.image_c),
        ])
        .await?;
    assert!(firing.await?, "the canary never reached 10 %");
    assert_eq!(run.code, 1, "{}", run.all());
    assert_eq!(sent(&h, from), ["started", "healthy", "traffic", "aborted"]);
    let received = h.queue_messages(&queue).await?;
    let aborted = received
        .iter()
        .find(|e| e["Message"].as_str().unwrap().contains("\"aborted\""))
        .expect("the abort's message");
    let m: serde_json::Value = serde_json::from_str(aborted["Message"].as_str().unwrap())?;
    assert!(
        m["reason"]
            .as_str()
            .unwrap()
            .contains("alarm web-5xx is in ALARM"),
        "{m}"
    );
    assert_eq!(m["traffic"], serde_json::json!({"web-r2": 100}));
    assert_eq!(
        aborted["Subject"],
        format!(
            "web: release 3 ({}) aborted; traffic on web-r2",
            h.fx.image_c
        )
        .as_str()
    );

    // 3. A rollback to release 1's fleet (image A): one message, with its reason.
    h.aws
        .cw
        .set_alarm_state()
        .alarm_name("web-5xx")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("test")
        .send()
        .await?;
    let from = h.proxy.log().len();
    h.apply(&[("image_id", &h.fx.image_a)]).await?;
    assert_eq!(sent(&h, from), ["rolled_back"]);
    let received = h.queue_messages(&queue).await?;
    assert_eq!(received.len(), 1);
    let m: serde_json::Value = serde_json::from_str(received[0]["Message"].as_str().unwrap())?;
    assert_eq!(m["fleet_name"], "web-r1");
    assert_eq!(m["previous_fleet_name"], "web-r2");
    assert!(
        m["reason"].as_str().unwrap().contains("release 1's again"),
        "{m}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_that_cannot_be_reached_is_a_warning_not_a_failed_release() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  notification {\n    sns_topic_arn = \"arn:aws:sns:us-east-1:123456789012:deleted\"\n    events        = [\"committed\"]\n  }".into(),
        ..Default::default()
    }))?;
    let run = h.apply(&[]).await?;
    assert!(run.says("Warning: Release web"), "{}", run.all());
    assert!(run.says("notification \"web: release 1"), "{}", run.all());
    assert!(run.says("was not sent"), "{}", run.all());
    assert_eq!(h.resource_values().await?["release"], 1);
    // Bad arguments are refused at plan, with the attribute.
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  notification {\n    sns_topic_arn = \"arn:aws:sqs:us-east-1:123456789012:q\"\n    events        = [\"begun\"]\n  }".into(),
        ..Default::default()
    }))?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 1);
    assert!(
        run.says("notification.sns_topic_arn must be an SNS topic ARN"),
        "{}",
        run.all()
    );
    assert!(
        run.says("notification.events: \"begun\" is not an event"),
        "{}",
        run.all()
    );
    Ok(())
}
