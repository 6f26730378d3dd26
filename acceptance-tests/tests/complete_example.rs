//! `examples/complete`, the page a new user copies, applied as that user would: hashicorp/aws
//! and this provider in one configuration, `terraform init` from filesystem mirrors, both
//! pointed at the local AWS by an override file (which also shortens the pauses and the
//! analysis interval to match, nothing else). Apply, a canary release, the one-line rollback, an empty plan, a destroy that
//! leaves nothing.

use acceptance_tests::{
    aws_mirror, local_override, repo_root, Harness, MirrorWorkdir, TempDir, SHORT_CANARY_STEPS,
};

/// What the override file says: both providers at the harness's proxy (AWS's target
/// health and its refusals for a while, see `proxy::AwsRules`); pauses and bake of a
/// second, judged every second (an override's block replaces the example's whole).
fn override_tf(url: &str) -> String {
    let release = format!(
        r#"{SHORT_CANARY_STEPS}
  bake_time = "1s"
  analysis {{
    interval = "1s"
    error_rate {{
      max          = 5
      max_increase = 1
      min_requests = 200
    }}
    latency {{
      statistic    = "p99"
      max_increase = "250ms"
    }}
  }}"#
    );
    local_override(url, "web", &release)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_complete_example_applies_releases_rolls_back_and_destroys() -> anyhow::Result<()> {
    let Some(aws_mirror) = aws_mirror() else {
        acceptance_tests::say_skipped("skipped: the complete example needs hashicorp/aws in a filesystem mirror, and this machine has none (TF_ACC_PLUGIN_MIRROR, found by make tools)");
        return Ok(());
    };
    // The example attaches an AWS managed policy, which moto knows only when asked to.
    let h = Harness::start_with(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]).await?;
    let work = TempDir::new("immutable-complete")?;
    let user = MirrorWorkdir::new(&work.0, &aws_mirror, true)?;
    for e in std::fs::read_dir(repo_root().join("examples/complete"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "tf") {
            std::fs::copy(&p, user.dir.join(p.file_name().unwrap()))?;
        }
    }
    std::fs::write(
        user.dir.join("local_override.tf"),
        override_tf(&h.proxy.url),
    )?;
    std::fs::write(
        user.dir.join("terraform.tfvars.json"),
        serde_json::json!({ "region": "us-east-1", "image_id": h.fx.image_a }).to_string(),
    )?;

    // 1. init offline, then the first apply: network, load balancer, alarms, IAM, release.
    let init = user.terraform(&["init", "-input=false"]).await?;
    assert!(init.contains("Installing hashicorp/aws"), "{init}");
    user.terraform(&["apply", "-auto-approve", "-input=false"])
        .await?;
    assert_eq!(user.output("release").await?, "1");
    // The fleet's template started from the platform template made in the same apply (its
    // ID unknown at plan): its tags and detailed monitoring are there, under the release's.
    let data = h.aws.fleet_template_data("web-r1").await?;
    assert_eq!(data.monitoring().and_then(|m| m.enabled()), Some(true));
    let instance_tags = acceptance_tests::Aws::instance_tags(&data);
    assert_eq!(
        (
            instance_tags.get("team").map(String::as_str),
            instance_tags.get("role").map(String::as_str)
        ),
        (Some("platform"), Some("web")),
        "{instance_tags:?}"
    );

    // Its root volume is sized on the image's own root device, read with data "aws_ami".
    let image = h
        .aws
        .ec2
        .describe_images()
        .image_ids(&h.fx.image_a)
        .send()
        .await?;
    let root = image.images()[0].root_device_name().unwrap_or_default();
    let sized = data
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_size());
    assert_eq!(sized, Some(20), "root {root}: {data:?}");

    // 2. A canary release of a new image.
    let release_b = format!("-var=image_id={}", h.fx.image_b);
    user.terraform(&["apply", "-auto-approve", "-input=false", &release_b])
        .await?;
    assert_eq!(user.output("release").await?, "2");
    assert_eq!(user.output("previous_image_id").await?, h.fx.image_a);

    // 3. The one-line rollback through `terraform output`.
    let back = format!("-var=image_id={}", user.output("previous_image_id").await?);
    user.terraform(&["apply", "-auto-approve", "-input=false", &back])
        .await?;
    assert_eq!(user.output("release").await?, "3");
    assert_eq!(user.output("previous_image_id").await?, h.fx.image_b);

    // 4. Both providers agree about the listener: no change planned.
    let plan = user
        .terraform(&["plan", "-input=false", "-detailed-exitcode", &back])
        .await?;
    assert!(plan.contains("No changes"), "{plan}");

    // 5. Destroy leaves nothing of the release, and nothing of the example.
    user.terraform(&["destroy", "-auto-approve", "-input=false", &back])
        .await?;
    assert!(h.owned_objects("web").await?.is_empty());
    let names = h.aws.load_balancer_names().await?;
    assert_eq!(
        names,
        vec!["fixture-alb"],
        "only the harness's own load balancer remains"
    );
    Ok(())
}
