//! What users of Terraform 1.5 and later write: `import {}` blocks with
//! `-generate-config-out`, `moved` between addresses, and `removed` with
//! `lifecycle { destroy = false }`. Each runs where the Terraform under test has the feature
//! and says in one line where it does not.

use acceptance_tests::{config_head, terraform_at_least, Harness, ReleaseOpts};

/// The configuration head of the harness's release configuration (provider and variable).
fn head(h: &Harness) -> String {
    config_head(
        &h.proxy.url,
        "  poll_interval = \"100ms\"\n  max_retries   = 3\n",
        &h.fx.image_a,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn import_block_with_generated_configuration_plans_empty() -> anyhow::Result<()> {
    if !terraform_at_least((1, 5), "an import block with -generate-config-out")? {
        return Ok(());
    }
    let h = Harness::start().await?;
    let opts = ReleaseOpts {
        extra: "  min_size = 2\n  instance_tags = { role = \"web\" }\n  user_data = \"#!/bin/sh\\necho hi\\n\"\n".into(),
        ..Default::default()
    };
    h.write(&h.release_hcl(&opts))?;
    h.apply(&[]).await?;
    h.terraform(&["state", "rm", "immutable_release.web"])
        .await?
        .ok()?;

    // A configuration that only says "import release web here".
    h.write(&format!(
        "{}\nimport {{\n  to = immutable_release.web\n  id = \"web\"\n}}\n",
        head(&h)
    ))?;
    let gen = h
        .terraform(&["plan", "-generate-config-out=generated.tf"])
        .await?
        .ok()?;
    let generated = std::fs::read_to_string(h.dir.0.join("generated.tf"))?;
    assert!(
        generated.contains("resource \"immutable_release\" \"web\""),
        "{generated}\n{}",
        gen.all()
    );
    // Terraform never writes a sensitive value into generated configuration: it writes
    // `null # sensitive`, and the user puts the value back, as here.
    let generated: String = generated
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("user_data") && l.ends_with("null # sensitive") {
                "  user_data = \"#!/bin/sh\\necho hi\\n\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!generated.contains("# sensitive"), "{generated}");
    std::fs::write(h.dir.0.join("generated.tf"), &generated)?;
    // The generated configuration plans an import and nothing else.
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("Plan: 1 to import, 0 to add, 0 to change, 0 to destroy."),
        "generated:\n{generated}\nplan:\n{}",
        plan.all()
    );
    h.terraform(&["apply", "-auto-approve"]).await?.ok()?;
    assert!(h.plan_is_empty().await?);
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn moved_between_addresses_changes_nothing() -> anyhow::Result<()> {
    if !terraform_at_least((1, 1), "a moved block")? {
        return Ok(());
    }
    let h = Harness::start().await?;
    let hcl = h.release_hcl(&ReleaseOpts::default());
    h.write(&hcl)?;
    h.apply(&[]).await?;
    let moved = hcl.replace(
        "resource \"immutable_release\" \"web\"",
        "resource \"immutable_release\" \"service\"",
    );
    let moved = moved.replace("immutable_release.web.", "immutable_release.service.");
    h.write(&format!(
        "{moved}\nmoved {{\n  from = immutable_release.web\n  to   = immutable_release.service\n}}\n"
    ))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("immutable_release.web has moved to immutable_release.service")
            && plan.says("0 to add, 0 to change, 0 to destroy"),
        "{}",
        plan.all()
    );
    h.terraform(&["apply", "-auto-approve"]).await?.ok()?;
    assert!(h.plan_is_empty().await?);
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_without_destroy_leaves_aws_untouched() -> anyhow::Result<()> {
    if !terraform_at_least((1, 7), "a removed block")? {
        return Ok(());
    }
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    h.apply(&[]).await?;
    let before = h.owned_objects("web").await?;
    h.write(&format!(
        "{}\nremoved {{\n  from = immutable_release.web\n  lifecycle {{\n    destroy = false\n  }}\n}}\n",
        head(&h)
    ))?;
    let plan = h.terraform(&["plan"]).await?.ok()?;
    assert!(
        plan.says("will no longer be managed by Terraform")
            && plan.says("0 to add, 0 to change, 0 to destroy"),
        "{}",
        plan.all()
    );
    h.terraform(&["apply", "-auto-approve"]).await?.ok()?;
    let state = h.terraform(&["state", "list"]).await?.ok()?;
    assert!(state.stdout.trim().is_empty(), "{}", state.stdout);
    assert_eq!(h.owned_objects("web").await?, before);
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    Ok(())
}
