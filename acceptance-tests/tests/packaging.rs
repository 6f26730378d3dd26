//! Terraform-native packaging: `make install` puts the provider where `terraform init`
//! finds it with no network, and the module example then applies from a fresh directory;
//! `make release` artifacts pass `sha256sum -c` and declare protocol 6.0; the quick start
//! example applies. (Both make targets run here with PROFILE=debug: the test build, no
//! second cargo run inside `cargo test`.)

use std::path::Path;

use acceptance_tests::{repo_root, Harness, TempDir};
use anyhow::Context;

fn make(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("make")
        .arg("-s")
        .arg("--no-print-directory")
        .args(args)
        .current_dir(repo_root())
        .output()
        .context("running make")?;
    anyhow::ensure!(
        out.status.success(),
        "make {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let p = e?.path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap()))?;
        }
    }
    Ok(())
}

/// The module example's inputs; `security_group_id`, a group made for it in the VPC.
fn tfvars(h: &Harness, security_group_id: &str) -> String {
    serde_json::json!({
        "endpoint": h.proxy.url,
        "listener_arn": h.fx.listener_arn,
        "vpc_id": h.fx.vpc_id,
        "subnet_ids": h.fx.subnet_ids,
        "security_group_id": security_group_id,
    })
    .to_string()
}

/// A security group in the fixtures' VPC, as a team's network layer makes one.
async fn security_group(h: &Harness, name: &str) -> anyhow::Result<String> {
    Ok(h.aws
        .ec2
        .create_security_group()
        .group_name(name)
        .description("admits the load balancer")
        .vpc_id(&h.fx.vpc_id)
        .send()
        .await?
        .group_id()
        .unwrap_or_default()
        .to_string())
}

/// Terraform as a user runs it: no development overrides, the home directory's implied
/// local mirror only.
async fn user_terraform(home: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let rc = home.join("empty.terraformrc");
    std::fs::write(&rc, "")?;
    let out = acceptance_tests::user_terraform(dir, home, &rc)
        .args(args)
        .arg("-no-color")
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "terraform {args:?} failed:\n{text}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn make_install_then_init_offline_and_apply_the_module_example() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let home = TempDir::new("immutable-home")?;
    let plugins = home.0.join(".terraform.d/plugins");
    let said = make(&[
        "install-files",
        "PROFILE=debug",
        &format!("INSTALL_DIR={}", plugins.display()),
    ])?;
    let version = env!("CARGO_PKG_VERSION");
    let installed = plugins.join(format!(
        "registry.terraform.io/immutable-infra/immutable/{version}/linux_amd64/terraform-provider-immutable_v{version}"
    ));
    assert!(
        installed.is_file(),
        "{said}: {} missing",
        installed.display()
    );

    // A fresh directory with the module and its example, as a team would have them.
    let work = TempDir::new("immutable-module")?;
    let examples = repo_root().join("examples/modules");
    copy_dir(&examples.join("service"), &work.0.join("service"))?;
    copy_dir(&examples.join("example"), &work.0.join("example"))?;
    let dir = work.0.join("example");
    let sg = security_group(&h, "web-instances").await?;
    std::fs::write(dir.join("terraform.tfvars.json"), tfvars(&h, &sg))?;

    let init = user_terraform(&home.0, &dir, &["init", "-input=false"]).await?;
    assert!(
        init.contains(&format!("Installing immutable-infra/immutable v{version}")),
        "{init}"
    );
    assert!(
        init.contains("Terraform has been successfully initialized"),
        "{init}"
    );
    let lock = std::fs::read_to_string(dir.join(".terraform.lock.hcl"))?;
    assert!(lock.contains("registry.terraform.io/immutable-infra/immutable"));

    user_terraform(&home.0, &dir, &["validate"]).await?;
    user_terraform(&home.0, &dir, &["apply", "-auto-approve", "-input=false"]).await?;
    let outputs = user_terraform(&home.0, &dir, &["output", "-json"]).await?;
    let outputs: serde_json::Value =
        serde_json::from_str(outputs.find('{').map(|i| &outputs[i..]).unwrap_or(&outputs))?;
    assert_eq!(outputs["web_release"]["value"], 1);
    assert_eq!(outputs["web_traffic"]["value"]["web-r1"], 100);
    // The module's fleets: IMDSv2 only, an encrypted gp3 root volume.
    let data = h.aws.fleet_template_data("web-r1").await?;
    assert_eq!(
        data.metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str()),
        Some("required")
    );
    let root = data
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some("/dev/xvda"))
        .and_then(|m| m.ebs())
        .expect("the module's root volume");
    assert_eq!(
        (root.encrypted(), root.volume_size()),
        (Some(true), Some(20))
    );
    assert_eq!(root.volume_type().map(|t| t.as_str()), Some("gp3"));
    // The security group the module now asks for is the instances'.
    assert_eq!(
        data.security_group_ids(),
        std::slice::from_ref(&sg),
        "{data:?}"
    );
    // Its request-count policy is on the serving fleet.
    let policy = |fleet: &str| {
        let aws = &h.aws;
        let fleet = fleet.to_string();
        async move {
            anyhow::Ok(
                aws.scaling_policies(&fleet)
                    .await?
                    .into_iter()
                    .map(|(metric, target, _)| (metric, target))
                    .collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(
        policy("web-r1").await?,
        vec![("ALBRequestCountPerTarget".to_string(), 500.0)]
    );
    // A release through the module: canary 20 %, then all traffic.
    user_terraform(
        &home.0,
        &dir,
        &[
            "apply",
            "-auto-approve",
            "-input=false",
            &format!("-var=image_id={}", h.fx.image_b),
        ],
    )
    .await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into()
    );
    assert_eq!(
        (policy("web-r1").await?, policy("web-r2").await?),
        (
            vec![],
            vec![("ALBRequestCountPerTarget".to_string(), 500.0)]
        ),
        "the policy moved with the release"
    );
    // The one-line rollback through the module's output: the warm fleet serves again.
    let previous =
        user_terraform(&home.0, &dir, &["output", "-raw", "web_previous_image_id"]).await?;
    let previous = previous.trim();
    assert_eq!(previous, h.fx.image_a);
    let back = format!("-var=image_id={previous}");
    user_terraform(
        &home.0,
        &dir,
        &["apply", "-auto-approve", "-input=false", &back],
    )
    .await?;
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100), ("web-r2".to_string(), 0)].into()
    );
    assert_eq!(
        h.aws.group_names().await?,
        vec!["web-r1", "web-r2"],
        "no new fleet"
    );
    let plan = user_terraform(
        &home.0,
        &dir,
        &["plan", "-input=false", "-detailed-exitcode", &back],
    )
    .await?;
    assert!(plan.contains("No changes"), "{plan}");
    user_terraform(
        &home.0,
        &dir,
        &["destroy", "-auto-approve", "-input=false", &back],
    )
    .await?;
    assert!(h.owned_objects("web").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn make_release_artifacts_check_out() -> anyhow::Result<()> {
    let dist = TempDir::new("immutable-dist")?;
    let said = make(&[
        "package",
        "PROFILE=debug",
        &format!("DIST={}", dist.0.display()),
    ])?;
    assert!(
        said.contains("SHA256SUMS not signed: set GPG_FINGERPRINT"),
        "{said}"
    );
    let version = env!("CARGO_PKG_VERSION");
    let base = format!("terraform-provider-immutable_{version}");
    let mut names: Vec<String> = std::fs::read_dir(&dist.0)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            format!("{base}_SHA256SUMS"),
            format!("{base}_linux_amd64.zip"),
            format!("{base}_manifest.json"),
        ]
    );
    let check = std::process::Command::new("sha256sum")
        .args(["-c", &format!("{base}_SHA256SUMS")])
        .current_dir(&dist.0)
        .output()?;
    assert!(
        check.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let sums = std::fs::read_to_string(dist.0.join(format!("{base}_SHA256SUMS")))?;
    assert_eq!(sums.lines().count(), 2, "the zip and the manifest: {sums}");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dist.0.join(format!("{base}_manifest.json")),
    )?)?;
    assert_eq!(
        manifest,
        serde_json::json!({"version": 1, "metadata": {"protocol_versions": ["6.0"]}})
    );
    // Signed as the Registry requires: a detached GnuPG signature of SHA256SUMS, made with
    // the key GPG_FINGERPRINT names (a throwaway one here), that gpg verifies.
    match std::process::Command::new("gpg").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let home = TempDir::new("gpg")?;
            let gpg = |args: &[&str]| -> anyhow::Result<std::process::Output> {
                Ok(std::process::Command::new("gpg")
                    .env("GNUPGHOME", &home.0)
                    .arg("--batch")
                    .args(args)
                    .output()?)
            };
            std::fs::set_permissions(&home.0, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
            let made = gpg(&[
                "--passphrase",
                "",
                "--quick-gen-key",
                "Immutable Test <test@example.invalid>",
                "ed25519",
                "sign",
                "1d",
            ])?;
            anyhow::ensure!(
                made.status.success(),
                "{}",
                String::from_utf8_lossy(&made.stderr)
            );
            let keys = gpg(&["--with-colons", "--list-secret-keys"])?;
            let fpr = String::from_utf8_lossy(&keys.stdout)
                .lines()
                .find_map(|l| {
                    l.strip_prefix("fpr:")
                        .map(|r| r.trim_matches(':').to_string())
                })
                .expect("a fingerprint");
            let out = std::process::Command::new("make")
                .args(["-s", "--no-print-directory", "package", "PROFILE=debug"])
                .arg(format!("DIST={}", dist.0.display()))
                .arg(format!("GPG_FINGERPRINT={fpr}"))
                .env("GNUPGHOME", &home.0)
                .current_dir(repo_root())
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let sums = format!("{base}_SHA256SUMS");
            let verify = gpg(&[
                "--verify",
                &format!("{}.sig", dist.0.join(&sums).display()),
                &dist.0.join(&sums).display().to_string(),
            ])?;
            assert!(
                verify.status.success(),
                "gpg --verify: {}",
                String::from_utf8_lossy(&verify.stderr)
            );
        }
        _ => acceptance_tests::say_skipped("signature check skipped: gpg is not installed here"),
    }
    // The zip holds the binary under the name Terraform looks for.
    let py = repo_root().join(".tools/venv/bin/python");
    let listing = std::process::Command::new(py)
        .args(["-m", "zipfile", "-l"])
        .arg(dist.0.join(format!("{base}_linux_amd64.zip")))
        .output()?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains(&format!("terraform-provider-immutable_v{version}")),
        "{listing}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_example_applies_and_rolls_back() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let main = std::fs::read_to_string(repo_root().join("examples/quickstart/main.tf"))?;
    h.write(&main)?;
    let sg = security_group(&h, "demo-web").await?;
    std::fs::write(h.dir.0.join("terraform.tfvars.json"), tfvars(&h, &sg))?;
    h.apply(&[("image_id", &h.fx.image_a)]).await?;
    h.apply(&[("image_id", &h.fx.image_b)]).await?;
    let prev = h.outputs().await?["previous_image_id"]["value"]
        .as_str()
        .map(String::from);
    assert_eq!(prev.as_deref(), Some(h.fx.image_a.as_str()));
    h.apply(&[("image_id", &h.fx.image_a)]).await?;
    assert!(h.plan_is_empty_with(&[("image_id", &h.fx.image_a)]).await?);
    Ok(())
}
