//! What Terraform sees of the provider: every argument and attribute of the contract, each
//! with a description; a second configuration cannot take over an existing release.

use acceptance_tests::{Harness, ReleaseOpts};
use serde_json::Value;

fn walk(block: &Value, path: &str, missing: &mut Vec<String>, names: &mut Vec<String>) {
    for (name, attr) in block["attributes"].as_object().into_iter().flatten() {
        names.push(format!("{path}{name}"));
        if attr["description"].as_str().unwrap_or("").trim().is_empty() {
            missing.push(format!("{path}{name}"));
        }
    }
    for (name, nested) in block["block_types"].as_object().into_iter().flatten() {
        names.push(format!("{path}{name}"));
        if nested["block"]["description"]
            .as_str()
            .unwrap_or("")
            .trim()
            .is_empty()
        {
            missing.push(format!("{path}{name}"));
        }
        walk(&nested["block"], &format!("{path}{name}."), missing, names);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_has_every_argument_with_a_description() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    let run = h.terraform(&["providers", "schema", "-json"]).await?.ok()?;
    let v: Value = serde_json::from_str(&run.stdout)?;
    let p = &v["provider_schemas"]["registry.terraform.io/immutable-infra/immutable"];
    let mut missing = Vec::new();
    let mut names = Vec::new();
    walk(
        &p["provider"]["block"],
        "provider.",
        &mut missing,
        &mut names,
    );
    let release = &p["resource_schemas"]["immutable_release"]["block"];
    walk(release, "", &mut missing, &mut names);
    walk(
        &p["data_source_schemas"]["immutable_release"]["block"],
        "data.",
        &mut missing,
        &mut names,
    );
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "attributes without a description"
    );
    for want in [
        "provider.region",
        "provider.profile",
        "provider.endpoint_url",
        "provider.endpoints.ec2",
        "provider.endpoints.autoscaling",
        "provider.endpoints.elbv2",
        "provider.endpoints.cloudwatch",
        "provider.poll_interval",
        "provider.max_retries",
        "provider.default_tags",
        "id",
        "name",
        "image_id",
        "instance_type",
        "subnet_ids",
        "security_group_ids",
        "iam_instance_profile",
        "user_data",
        "instance_tags",
        "min_size",
        "max_size",
        "desired_capacity",
        "load_balancer.listener_arn",
        "load_balancer.vpc_id",
        "load_balancer.port",
        "load_balancer.protocol",
        "load_balancer.health_check.path",
        "load_balancer.health_check.port",
        "load_balancer.health_check.protocol",
        "load_balancer.health_check.interval",
        "load_balancer.health_check.timeout",
        "load_balancer.health_check.healthy_threshold",
        "load_balancer.health_check.unhealthy_threshold",
        "load_balancer.health_check.matcher",
        "load_balancer.deregistration_delay",
        "health.min_healthy_percentage",
        "health.grace_period",
        "health.timeout",
        "strategy",
        "canary_step.weight",
        "canary_step.pause",
        "alarm_names",
        "bake_time",
        "retain_fleets",
        "rollback_window",
        "history_limit",
        "tags",
        "timeouts.create",
        "timeouts.update",
        "timeouts.delete",
        "release",
        "fleet_name",
        "target_group_arn",
        "launch_template_id",
        "previous_image_id",
        "traffic",
        "history",
        "data.name",
        "data.image_id",
        "data.release",
        "data.fleet_name",
        "data.traffic",
        "data.history",
    ] {
        assert!(
            names.contains(&want.to_string()),
            "{want} is not in the schema"
        );
    }
    assert_eq!(release["attributes"]["user_data"]["sensitive"], true);
    assert_eq!(release["block_types"]["load_balancer"]["min_items"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_configuration_cannot_take_over_a_release() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;
    std::fs::rename(
        h.dir.0.join("terraform.tfstate"),
        h.dir.0.join("kept.tfstate"),
    )?;
    let run = h.terraform(&["plan"]).await?;
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.says("a release named web already exists"),
        "{}",
        run.all()
    );
    assert!(run.says("terraform import"), "{}", run.all());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_progress_reaches_tf_log_at_info() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    let run = h
        .terraform_env(&["apply", "-auto-approve"], &[("TF_LOG", "INFO")])
        .await?
        .ok()?;
    assert!(
        run.stderr.contains(
            "[INFO]  provider.terraform-provider-immutable: release web-r1: traffic 0 % → 100 %"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("TERRAFORM CRASH"));
    Ok(())
}
