//! The guide "Getting started on AWS", followed as a newcomer follows it: its configuration
//! (`examples/getting-started`, which the guide shows file by file) applied with
//! hashicorp/aws beside this provider, `terraform init` from filesystem mirrors, both
//! pointed at the local AWS by an override file that also shortens the canary's pauses —
//! nothing else differs. The first release, a canary release of a new image written in
//! `terraform.tfvars`, a rollback committed the same way, an empty plan, a destroy that
//! leaves nothing.

use acceptance_tests::{
    aws_mirror, local_override, repo_root, Harness, MirrorWorkdir, TempDir, SHORT_CANARY_STEPS,
};

/// `terraform.tfvars` as the guide has the reader write it.
fn tfvars(image: &str) -> String {
    format!("region   = \"us-east-1\"\nimage_id = \"{image}\"\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_getting_started_guide_applies_releases_rolls_back_and_destroys() -> anyhow::Result<()>
{
    let Some(aws_mirror) = aws_mirror() else {
        acceptance_tests::say_skipped("skipped: the getting-started configuration needs hashicorp/aws in a filesystem mirror, and this machine has none (TF_ACC_PLUGIN_MIRROR, found by make tools)");
        return Ok(());
    };
    // Once per suite, on the newer Terraform (each of its commands starts hashicorp/aws,
    // the heaviest process of the suite); on 1.0.3 every file of it is validated by
    // doc_snippets, and the complete example applies hashicorp/aws beside this provider.
    if acceptance_tests::terraform_version()? <= (1, 0, 99) {
        acceptance_tests::say_skipped(
            "skipped on Terraform 1.0: the getting-started guide's apply is run once, on the newer Terraform (its files are validated on 1.0 by doc_snippets)",
        );
        return Ok(());
    }
    let h = Harness::start().await?;
    let work = TempDir::new("immutable-getting-started")?;
    let user = MirrorWorkdir::new(&work.0, &aws_mirror, true)?;
    let example = repo_root().join("examples/getting-started");
    for e in std::fs::read_dir(&example)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "tf") {
            std::fs::copy(&p, user.dir.join(p.file_name().unwrap()))?;
        }
    }
    std::fs::write(
        user.dir.join("local_override.tf"),
        local_override(&h.proxy.url, "web", SHORT_CANARY_STEPS),
    )?;
    let vars = user.dir.join("terraform.tfvars");

    // 1. The first release: the network, the load balancer and the release in one apply.
    std::fs::write(&vars, tfvars(&h.fx.image_a))?;
    user.terraform(&["init", "-input=false"]).await?;
    user.terraform(&["apply", "-auto-approve", "-input=false"])
        .await?;
    assert_eq!(user.output("release").await?, "1");
    let listener = h.aws.listener_of("web").await?;
    assert_eq!(
        h.aws.listener_weights(&listener).await?,
        [("web-r1".to_string(), 100)].into()
    );
    // The instances are in the group that admits the load balancer, not the VPC's default.
    let data = h.aws.fleet_template_data("web-r1").await?;
    let groups = h
        .aws
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(data.security_group_ids().to_vec()))
        .send()
        .await?;
    let names: Vec<_> = groups
        .security_groups()
        .iter()
        .filter_map(|g| g.group_name())
        .collect();
    assert_eq!(names, ["web-instances"], "{data:?}");

    // 2. A canary release: a new image written in terraform.tfvars. The plan (as the apply
    // prints it) says the steps.
    std::fs::write(&vars, tfvars(&h.fx.image_b))?;
    let applied = user
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .await?;
    for step in [
        "traffic 10 % to web-r2, 90 % to web-r1",
        "alarms web-5xx and the new fleet's health",
        "traffic 100 % to web-r2",
    ] {
        assert!(applied.contains(step), "{step}: {applied}");
    }
    assert_eq!(user.output("release").await?, "2");
    assert_eq!(user.output("previous_image_id").await?, h.fx.image_a);

    // 3. The rollback, committed as the guide says: the previous image back in tfvars. No
    // fleet is launched.
    let previous = user.output("previous_image_id").await?;
    std::fs::write(&vars, tfvars(&previous))?;
    let applied = user
        .terraform(&["apply", "-auto-approve", "-input=false"])
        .await?;
    assert!(
        applied.contains("+ \"traffic 100 % to web-r1\""),
        "{applied}"
    );
    assert!(!applied.contains("+ \"launch web-r"), "{applied}");
    assert_eq!(user.output("release").await?, "3");
    assert_eq!(user.output("image_id").await?, h.fx.image_a);
    let mut groups = h.aws.group_names().await?;
    groups.sort();
    assert_eq!(groups, ["web-r1", "web-r2"], "no new fleet");
    assert_eq!(
        h.aws.listener_weights(&listener).await?,
        [("web-r1".to_string(), 100), ("web-r2".to_string(), 0)].into()
    );
    // hashicorp/aws leaves the listener's default action to the release: no change.
    let plan = user
        .terraform(&["plan", "-input=false", "-detailed-exitcode"])
        .await?;
    assert!(plan.contains("No changes"), "{plan}");

    // 4. Destroy: nothing of the release or of the guide's network is left.
    user.terraform(&["destroy", "-auto-approve", "-input=false"])
        .await?;
    assert!(h.owned_objects("web").await?.is_empty());
    let names = h.aws.load_balancer_names().await?;
    assert_eq!(
        names,
        ["fixture-alb"],
        "only the harness's own load balancer remains"
    );
    Ok(())
}
