//! Releases on update: blue/green, one-line rollback, retention.

use acceptance_tests::{Harness, ReleaseOpts};

#[tokio::test(flavor = "multi_thread")]
async fn release_rollback_and_retention() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    let (a, b, c) = (
        h.fx.image_a.clone(),
        h.fx.image_b.clone(),
        h.fx.image_c.clone(),
    );

    // 1. First release.
    h.apply(&[("image_id", &a)]).await?;

    // 2. New image: a new fleet beside the old one; all traffic moves; the old is retained.
    h.apply(&[("image_id", &b)]).await?;
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r2".to_string()]
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    let out = h.outputs().await?;
    assert_eq!(out["previous_image_id"]["value"], a.as_str());
    assert_eq!(out["release"]["value"], 2);
    assert!(h.plan_is_empty_with(&[("image_id", &b)]).await?);
    // The retained fleet keeps full capacity until its rollback window ends, enforced by AWS.
    assert_eq!(window_ends(&h, "web-r1").await?, 1);
    assert_eq!(window_ends(&h, "web-r2").await?, 0);

    // 3. One-line rollback: back to the retained fleet, no new group.
    h.apply(&[("image_id", &a)]).await?;
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r2".to_string()]
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100), ("web-r2".to_string(), 0)].into()
    );
    let out = h.outputs().await?;
    assert_eq!(out["release"]["value"], 3);
    assert_eq!(out["fleet_name"]["value"], "web-r1");
    assert_eq!(out["previous_image_id"]["value"], b.as_str());
    assert!(h.plan_is_empty_with(&[("image_id", &a)]).await?);
    assert_eq!(
        window_ends(&h, "web-r1").await?,
        0,
        "serving again: no scale to zero"
    );
    assert_eq!(window_ends(&h, "web-r2").await?, 1);

    // 4. Another release with retain_fleets = 1: exactly two fleets remain.
    h.apply(&[("image_id", &c)]).await?;
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1".to_string(), "web-r4".to_string()]
    );
    assert_eq!(
        h.aws.target_group_names().await?,
        vec!["web-r1".to_string(), "web-r4".to_string()]
    );
    assert!(h.plan_is_empty_with(&[("image_id", &c)]).await?);
    let values = h.resource_values().await?;
    let statuses: Vec<(i64, String)> = values["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["release"].as_i64().unwrap(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (4, "active".into()),
            (3, "retained".into()),
            (2, "retired".into()),
            (1, "retained".into())
        ]
    );
    Ok(())
}

/// Scheduled actions that scale the group to zero.
async fn window_ends(h: &Harness, group: &str) -> anyhow::Result<usize> {
    let out = h
        .aws
        .asg
        .describe_scheduled_actions()
        .auto_scaling_group_name(group)
        .send()
        .await?;
    Ok(out
        .scheduled_update_group_actions()
        .iter()
        .filter(|a| a.desired_capacity() == Some(0) && a.max_size() == Some(0))
        .count())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_releases_with_retain_one_leave_two_fleets() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts {
        extra: "  retain_fleets = 1\n  history_limit = 2".into(),
        ..Default::default()
    }))?;
    for image in [&h.fx.image_a, &h.fx.image_b, &h.fx.image_c] {
        h.apply(&[("image_id", image)]).await?;
        assert!(h.plan_is_empty_with(&[("image_id", image)]).await?);
    }
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r2".to_string(), "web-r3".to_string()]
    );
    assert_eq!(
        h.aws.target_group_names().await?,
        vec!["web-r2".to_string(), "web-r3".to_string()]
    );
    let lts: Vec<String> = h.aws.launch_template_names().await?;
    assert_eq!(
        lts,
        vec![
            "web-ledger".to_string(),
            "web-r2".to_string(),
            "web-r3".to_string()
        ]
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r2".to_string(), 0), ("web-r3".to_string(), 100)].into()
    );
    let values = h.resource_values().await?;
    assert_eq!(
        values["history"].as_array().unwrap().len(),
        2,
        "history_limit bounds the history"
    );
    Ok(())
}
