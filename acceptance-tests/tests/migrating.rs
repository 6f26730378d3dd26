//! The guide "Migrating from aws_autoscaling_group", followed with hashicorp/aws as its
//! reader follows it (`examples/migrating`, which the guide shows file by file): a service
//! made by hashicorp/aws — an Auto Scaling group of 3 behind its own target group, the
//! listener forwarding to it — then the release added beside it, which adopts the service
//! and walks its canary steps from that target group (never sending traffic to an unhealthy
//! fleet), then the old group removed. Both providers point at the local AWS through an
//! override file that also shortens the pauses; nothing else differs.

use std::path::Path;
use std::time::Duration;

use acceptance_tests::proxy::{AwsRules, Faults, TEST_AWS_RULES};
use acceptance_tests::{
    aws_mirror, local_override, repo_root, Harness, MirrorWorkdir, TempDir, TrafficWatcher,
    SHORT_CANARY_STEPS,
};

/// Lays out one stage in `dir`: the example's top-level files and `files` (paths under
/// `examples/migrating`), nothing else.
fn stage(dir: &Path, files: &[&str], url: &str) -> anyhow::Result<()> {
    let example = repo_root().join("examples/migrating");
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "tf") {
            std::fs::remove_file(p)?;
        }
    }
    for name in ["versions.tf", "variables.tf", "network.tf"]
        .iter()
        .chain(files)
    {
        let to = dir.join(name.replace('/', "-"));
        std::fs::copy(example.join(name), to)?;
    }
    let release = if files.iter().any(|f| f.ends_with("release.tf")) {
        format!("{SHORT_CANARY_STEPS}\n  bake_time = \"1s\"")
    } else {
        String::new()
    };
    std::fs::write(
        dir.join("local_override.tf"),
        local_override(url, "app", &release),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_migration_guide_adopts_a_service_made_by_hashicorp_aws() -> anyhow::Result<()> {
    let Some(aws_mirror) = aws_mirror() else {
        acceptance_tests::say_skipped("skipped: the migration guide's configuration needs hashicorp/aws in a filesystem mirror, and this machine has none (TF_ACC_PLUGIN_MIRROR, found by make tools)");
        return Ok(());
    };
    // Once per suite, on Terraform 1.0.3 (each of its commands starts hashicorp/aws, the
    // heaviest process of the suite; the getting-started guide runs on the newer one).
    // Adoption itself runs on both (adopt.rs).
    if acceptance_tests::terraform_version()? > (1, 0, 99) {
        acceptance_tests::say_skipped(
            "skipped on this Terraform: the migration guide's apply is run once, on Terraform 1.0",
        );
        return Ok(());
    }
    let h = Harness::start().await?;
    let work = TempDir::new("immutable-migrating")?;
    let user = MirrorWorkdir::new(&work.0, &aws_mirror, true)?;
    std::fs::write(
        user.dir.join("terraform.tfvars"),
        format!(
            "region   = \"us-east-1\"\nimage_id = \"{}\"\n",
            h.fx.image_a
        ),
    )?;
    let apply = ["apply", "-auto-approve", "-input=false"];

    // Before: the service as hashicorp/aws runs it. Its wait for the group's capacity
    // reads the group once right after making it and takes an empty answer as an error, so
    // the proxy's lagging reads (AWS's eventual consistency, which our provider meets) are
    // off while hashicorp/aws makes the service.
    h.proxy.set_faults(Faults {
        aws_rules: Some(AwsRules {
            visibility: Duration::ZERO,
            ..TEST_AWS_RULES
        }),
        ..Faults::default()
    });
    stage(
        &user.dir,
        &["before/service.tf", "before/listener.tf"],
        &h.proxy.url,
    )?;
    user.terraform(&["init", "-input=false"]).await?;
    user.terraform(&apply).await?;
    let listener = h.aws.listener_of("app").await?;
    assert_eq!(
        h.aws.listener_weights(&listener).await?,
        [("app-tg".to_string(), 100)].into()
    );
    assert_eq!(h.aws.group("app").await?.instances().len(), 3);

    h.proxy.set_faults(Faults::default());

    // Step 1: the release beside the service. The plan says it adopts it.
    stage(
        &user.dir,
        &["before/service.tf", "step1/listener.tf", "step1/release.tf"],
        &h.proxy.url,
    )?;
    let watcher = TrafficWatcher::start(h.aws.clone(), listener.clone());
    let (stop, seen) = acceptance_tests::watch_splits(h.aws.clone(), listener.clone());
    let applied = user.terraform(&apply).await?;
    // The plan, as the apply prints it, says it adopts the service.
    assert!(
        applied.contains("shift from the existing target group app-tg: 10 %, 50 %, 100 %"),
        "{applied}"
    );
    *stop.lock().unwrap() = true;
    let seen = seen.await?;
    let (samples, violations) = watcher.finish().await;
    assert!(samples > 0);
    assert!(
        violations.is_empty(),
        "traffic to an unhealthy fleet: {violations:?}"
    );
    // It walked from app-tg: a split with both was seen on the way.
    assert!(
        seen.iter()
            .any(|s| s.get("app-tg").is_some_and(|w| *w > 0)
                && s.get("app-r1").is_some_and(|w| *w > 0)),
        "{seen:?}"
    );
    assert_eq!(
        h.aws.listener_weights(&listener).await?,
        [("app-r1".to_string(), 100)].into()
    );
    // The fleet took the service's capacity; the service's group is untouched.
    assert_eq!(h.aws.group("app-r1").await?.desired_capacity(), Some(3));
    let old = h.aws.group("app").await?;
    assert_eq!(
        (old.desired_capacity(), old.instances().len()),
        (Some(3), 3)
    );
    let plan = user
        .terraform(&["plan", "-input=false", "-detailed-exitcode"])
        .await?;
    assert!(plan.contains("No changes"), "{plan}");

    // Step 3: the old group, template and target group removed from the configuration.
    stage(
        &user.dir,
        &["step1/release.tf", "step3/listener.tf"],
        &h.proxy.url,
    )?;
    user.terraform(&apply).await?;
    assert!(h.aws.group_names().await?.iter().all(|g| g != "app"));
    assert!(!h
        .aws
        .target_group_names()
        .await?
        .contains(&"app-tg".to_string()));
    assert_eq!(
        h.aws.listener_weights(&listener).await?,
        [("app-r1".to_string(), 100)].into()
    );
    let plan = user
        .terraform(&["plan", "-input=false", "-detailed-exitcode"])
        .await?;
    assert!(plan.contains("No changes"), "{plan}");
    Ok(())
}
