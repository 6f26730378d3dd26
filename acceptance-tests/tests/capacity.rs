//! Capacity: a zone with no capacity for the fleet's type is AWS's to work around (it
//! launches in the group's other zones), not a reason to abort; `fallback_instance_types`
//! gives the group a mixed instances policy over the fleet's own template, its types in the
//! order given, on-demand; bad lists are refused at plan.

use std::time::Duration;

use acceptance_tests::proxy::{Faults, NoCapacity};
use acceptance_tests::{Harness, ReleaseOpts};

/// The zone of each fixture subnet.
async fn zones(h: &Harness) -> anyhow::Result<Vec<String>> {
    let out = h
        .aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(h.fx.subnet_ids.clone()))
        .send()
        .await?;
    let mut zones = Vec::new();
    for id in &h.fx.subnet_ids {
        let s = out
            .subnets()
            .iter()
            .find(|s| s.subnet_id() == Some(id.as_str()))
            .ok_or_else(|| anyhow::anyhow!("no subnet {id}"))?;
        zones.push(s.availability_zone().unwrap_or_default().to_string());
    }
    Ok(zones)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zone_out_of_capacity_is_worked_around_not_an_abort() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let opts = ReleaseOpts {
        lb_extra: "    deregistration_delay = 1".into(),
        ..Default::default()
    };
    h.write(&h.release_hcl(&opts))?;
    h.apply(&[]).await?;
    let zones = zones(&h).await?;
    assert_ne!(zones[0], zones[1], "the fixture's subnets are in two zones");
    // Release 2's launches into the first zone fail for lack of t3.micro, one failure a
    // second as AWS tries again; its instances come up in the other zone after 5 s (more
    // failed launches than a release tolerates of a lasting cause by then).
    h.proxy.set_faults(Faults {
        no_capacity: vec![NoCapacity {
            group: "web-r2".into(),
            subnet_id: h.fx.subnet_ids[0].clone(),
            zone: zones[0].clone(),
            other_zones: vec![zones[1].clone()],
            instance_type: "t3.micro".into(),
            pending_for: Duration::from_secs(5),
        }],
        ..Faults::default()
    });
    let run = h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    let values = h.resource_values().await?;
    assert_eq!(values["release"], 2);
    assert_eq!(values["fleet_name"], "web-r2");
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    // The provider read the failed launches while it waited, and went on.
    let reads = h
        .proxy
        .log()
        .into_iter()
        .filter(|s| s.action == "DescribeScalingActivities" && s.body.contains("web-r2"))
        .collect::<Vec<_>>();
    assert!(!reads.is_empty(), "the failed launches were never read");
    let last = reads.last().unwrap().at;
    let made = h
        .proxy
        .log()
        .into_iter()
        .find(|s| s.action == "CreateAutoScalingGroup" && s.body.contains("web-r2"))
        .map(|s| s.at)
        .unwrap();
    assert!(
        last.duration_since(made) >= Duration::from_secs(3),
        "read when at least four launches had failed: {:?}",
        last.duration_since(made)
    );
    let group = h.aws.group("web-r2").await?;
    assert!(
        group
            .instances()
            .iter()
            .all(|i| i.availability_zone() == Some(zones[1].as_str())),
        "every instance is in the zone that had capacity: {:?}",
        group.instances()
    );
    Ok(())
}

/// The group's types, in priority order, from its mixed instances policy (None: it has a
/// plain launch template).
async fn group_types(h: &Harness, group: &str) -> anyhow::Result<Option<Vec<String>>> {
    let g = h.aws.group(group).await?;
    let Some(policy) = g.mixed_instances_policy() else {
        assert!(
            g.launch_template().is_some(),
            "{group} has a launch template"
        );
        return Ok(None);
    };
    assert!(g.launch_template().is_none(), "one or the other");
    let dist = policy.instances_distribution().expect("a distribution");
    assert_eq!(dist.on_demand_allocation_strategy(), Some("prioritized"));
    assert_eq!(dist.on_demand_percentage_above_base_capacity(), Some(100));
    assert_eq!(dist.on_demand_base_capacity(), Some(0));
    let lt = policy.launch_template().expect("a template");
    let spec = lt.launch_template_specification().expect("the fleet's own");
    let fleet_template = h.resource_values().await?["launch_template_id"].clone();
    if h.resource_values().await?["fleet_name"] == group {
        assert_eq!(spec.launch_template_id(), fleet_template.as_str());
    }
    assert!(
        spec.version().is_some_and(|v| v.parse::<i64>().is_ok()),
        "pins a version number: {:?}",
        spec.version()
    );
    Ok(Some(
        lt.overrides()
            .iter()
            .filter_map(|o| o.instance_type().map(String::from))
            .collect(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn fallback_instance_types_give_the_fleet_a_prioritized_on_demand_mix() -> anyhow::Result<()>
{
    let h = Harness::start().await?;
    let with = |types: &str| {
        h.release_hcl(&ReleaseOpts {
            extra: if types.is_empty() {
                String::new()
            } else {
                format!("  fallback_instance_types = {types}")
            },
            lb_extra: "    deregistration_delay = 1".into(),
            ..Default::default()
        })
    };
    h.write(&with(r#"["t3a.micro", "m5.large"]"#))?;
    h.apply(&[]).await?;
    assert_eq!(
        group_types(&h, "web-r1").await?,
        Some(vec![
            "t3.micro".into(),
            "t3a.micro".into(),
            "m5.large".into()
        ])
    );
    let group = h.aws.group("web-r1").await?;
    assert_eq!(group.instances().len(), 1, "the group launched");
    assert!(h.plan_is_empty().await?, "the fleet reads back as made");

    // Another list is another fleet: the plan says so, and the apply releases it.
    h.write(&with(r#"["m5.large"]"#))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.stdout
            .contains("launch web-r2: t3.micro (falling back to m5.large) from"),
        "{}",
        plan.all()
    );
    h.apply(&[]).await?;
    let values = h.resource_values().await?;
    assert_eq!(values["release"], 2);
    assert_eq!(
        group_types(&h, "web-r2").await?,
        Some(vec!["t3.micro".into(), "m5.large".into()])
    );
    // None: a plain launch template again.
    h.write(&with(""))?;
    h.apply(&[]).await?;
    assert_eq!(h.resource_values().await?["fleet_name"], "web-r3");
    assert_eq!(group_types(&h, "web-r3").await?, None);
    assert!(h.plan_is_empty().await?);

    // Refused at plan, with the attribute and what is allowed; nothing changes.
    let ten: Vec<String> = (0..10).map(|i| format!("\"m{i}.large\"")).collect();
    for (types, says) in [
        (r#"["t3.micro"]"#.to_string(), "must not name instance_type"),
        (r#"["t3a.micro", "t3a.micro"]"#.to_string(), "twice"),
        (r#"["large"]"#.to_string(), "must be an EC2 instance type"),
        (format!("[{}]", ten.join(", ")), "holds 10 types; at most 9"),
    ] {
        h.write(&with(&types))?;
        let run = h.terraform(&["plan"]).await?;
        assert_eq!(run.code, 1, "{types}: {}", run.all());
        let text = acceptance_tests::fold(&run.all());
        assert!(text.contains(says), "{types}: {}", run.all());
        assert!(
            text.contains("fallback_instance_types"),
            "{types}: {}",
            run.all()
        );
    }
    assert_eq!(h.resource_values().await?["fleet_name"], "web-r3");
    Ok(())
}
