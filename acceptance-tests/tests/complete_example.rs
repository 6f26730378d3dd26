//! `examples/complete`, the page a new user copies, applied as that user would: hashicorp/aws
//! and this provider in one configuration, `terraform init` from filesystem mirrors, both
//! pointed at the local AWS by an override file (which also shortens the pauses, nothing
//! else). Apply, a canary release, the one-line rollback, an empty plan, a destroy that
//! leaves nothing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use acceptance_tests::{provider_dir, repo_root, terraform_bin, Harness, TempDir};

/// hashicorp/aws's filesystem mirror (`make tools` records it), if this machine has one.
fn aws_mirror() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("TF_ACC_PLUGIN_MIRROR")?);
    dir.join("registry.terraform.io/hashicorp/aws")
        .is_dir()
        .then_some(dir)
}

/// A mirror of this provider's binary in the unpacked layout (a symlinked file is fine;
/// Terraform does not follow a symlinked directory).
fn own_mirror(root: &Path) -> anyhow::Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let dir = root.join(format!(
        "registry.terraform.io/immutable-infra/immutable/{version}/linux_amd64"
    ));
    std::fs::create_dir_all(&dir)?;
    std::os::unix::fs::symlink(
        provider_dir()?.join("terraform-provider-immutable"),
        dir.join(format!("terraform-provider-immutable_v{version}")),
    )?;
    Ok(root.to_path_buf())
}

struct User {
    dir: PathBuf,
    rc: PathBuf,
}

impl User {
    async fn terraform(&self, args: &[&str]) -> anyhow::Result<String> {
        let started = Instant::now();
        let out = tokio::process::Command::new(terraform_bin())
            .args(args)
            .arg("-no-color")
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .output()
            .await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "terraform {} ({:.1} s)",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        anyhow::ensure!(out.status.success(), "terraform {args:?} failed:\n{text}");
        Ok(text)
    }

    async fn output(&self, name: &str) -> anyhow::Result<String> {
        Ok(self
            .terraform(&["output", "-raw", name])
            .await?
            .trim()
            .to_string())
    }
}

/// What the override file says: both providers at the emulator; pauses and bake of a second.
fn override_tf(url: &str) -> String {
    let endpoints = ["autoscaling", "cloudwatch", "ec2", "elbv2", "iam", "sts"]
        .iter()
        .map(|s| format!("    {s} = \"{url}\"\n"))
        .collect::<String>();
    format!(
        r#"# The local AWS instead of a real account, and short pauses: nothing else differs.
provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {{
{endpoints}  }}
}}

provider "immutable" {{
  endpoint_url  = "{url}"
  poll_interval = "200ms"
}}

resource "immutable_release" "web" {{
  canary_step {{
    weight = 10
    pause  = "1s"
  }}
  canary_step {{
    weight = 50
    pause  = "1s"
  }}
  bake_time = "1s"
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_complete_example_applies_releases_rolls_back_and_destroys() -> anyhow::Result<()> {
    let Some(aws_mirror) = aws_mirror() else {
        eprintln!("skipped: no hashicorp/aws filesystem mirror on this machine (TF_ACC_PLUGIN_MIRROR, set by make tools)");
        return Ok(());
    };
    // The example attaches an AWS managed policy, which moto knows only when asked to.
    let h = Harness::start_with(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]).await?;
    let work = TempDir::new("immutable-complete")?;
    let mirror = own_mirror(&work.0.join("mirror"))?;
    let dir = work.0.join("complete");
    std::fs::create_dir_all(&dir)?;
    for e in std::fs::read_dir(repo_root().join("examples/complete"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "tf") {
            std::fs::copy(&p, dir.join(p.file_name().unwrap()))?;
        }
    }
    std::fs::write(dir.join("local_override.tf"), override_tf(&h.emulator.url))?;
    std::fs::write(
        dir.join("terraform.tfvars.json"),
        serde_json::json!({ "region": "us-east-1", "image_id": h.fx.image_a }).to_string(),
    )?;
    let rc = work.0.join("terraform.rc");
    std::fs::write(
        &rc,
        format!(
            r#"provider_installation {{
  filesystem_mirror {{
    path    = "{}"
    include = ["registry.terraform.io/hashicorp/*"]
  }}
  filesystem_mirror {{
    path    = "{}"
    include = ["registry.terraform.io/immutable-infra/*"]
  }}
}}
"#,
            aws_mirror.display(),
            mirror.display()
        ),
    )?;
    let user = User { dir, rc };

    // 1. init offline, then the first apply: network, load balancer, alarms, IAM, release.
    let init = user.terraform(&["init", "-input=false"]).await?;
    assert!(init.contains("Installing hashicorp/aws"), "{init}");
    user.terraform(&["apply", "-auto-approve", "-input=false"])
        .await?;
    assert_eq!(user.output("release").await?, "1");
    assert_eq!(h.aws.group_names().await?, vec!["web-r1".to_string()]);

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
    let lbs = h.aws.elb.describe_load_balancers().send().await?;
    let names: Vec<_> = lbs
        .load_balancers()
        .iter()
        .filter_map(|l| l.load_balancer_name())
        .collect();
    assert_eq!(
        names,
        vec!["fixture-alb"],
        "only the harness's own load balancer remains"
    );
    Ok(())
}
