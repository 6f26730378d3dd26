//! Provider settings as hashicorp/aws users write them: `assume_role` on top of the chain's
//! credentials (the fault proxy sees which access key signs each call), the account guards
//! (`allowed_account_ids`, `forbidden_account_ids`: refused at plan, nothing called after),
//! shared config and credentials files, web identity as CI sets it, and bad values refused
//! at plan with the attribute.

use std::collections::BTreeSet;

use acceptance_tests::{Harness, ReleaseOpts, Run};

/// The release configuration with `lines` added to the provider block.
fn with_provider(h: &Harness, lines: &str) -> String {
    h.release_hcl(&ReleaseOpts::default())
        .replace("  endpoint_url  =", &format!("{lines}\n  endpoint_url  ="))
}

/// The access keys that signed the calls the proxy saw, by action.
fn keys(h: &Harness) -> Vec<(String, Option<String>)> {
    h.proxy
        .log()
        .into_iter()
        .map(|s| (s.action, s.access_key))
        .collect()
}

/// Terraform with the harness's environment less its access keys (the chain then finds
/// the credentials elsewhere), plus `env`.
async fn without_env_keys(
    h: &Harness,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<Run> {
    let mut c = h.command_in(&h.dir.0);
    c.args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.stdin(std::process::Stdio::null()).output().await?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_signed_with_the_assumed_roles_keys() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    h.write(&with_provider(
        &h,
        "  assume_role {\n    role_arn     = \"arn:aws:iam::123456789012:role/deployer\"\n    session_name = \"pipeline\"\n    external_id  = \"ext-1234\"\n    duration     = \"30m\"\n  }\n  allowed_account_ids = [\"123456789012\"]",
    ))?;
    h.apply(&[]).await?;
    let seen = keys(&h);
    let assumed: Vec<&(String, Option<String>)> =
        seen.iter().filter(|(a, _)| a == "AssumeRole").collect();
    assert!(!assumed.is_empty(), "the role was assumed: {seen:?}");
    assert!(
        assumed.iter().all(|(_, k)| k.as_deref() == Some("testing")),
        "with the chain's credentials: {assumed:?}"
    );
    let log = h.proxy.log();
    let body = &log.iter().find(|s| s.action == "AssumeRole").unwrap().body;
    for field in [
        "RoleSessionName=pipeline",
        "ExternalId=ext-1234",
        "DurationSeconds=1800",
    ] {
        assert!(body.contains(field), "{field}: {body}");
    }
    let others: BTreeSet<Option<String>> = seen
        .iter()
        .filter(|(a, _)| a != "AssumeRole")
        .map(|(_, k)| k.clone())
        .collect();
    // Each provider process (plan, apply) assumes the role once and signs everything else
    // with its session's key.
    assert_eq!(
        others.len(),
        assumed.len(),
        "one session key a process signs every other call: {others:?}"
    );
    assert!(
        others
            .iter()
            .all(|k| k.as_deref().is_some_and(|k| k.starts_with("ASIA"))),
        "the role's session keys, never the chain's: {others:?}"
    );
    assert!(
        seen.iter().any(|(a, _)| a == "GetCallerIdentity"),
        "the account guard read the account: {seen:?}"
    );
    assert_eq!(h.resource_values().await?["release"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_guard_refuses_at_plan_and_calls_nothing_after() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    for (lines, says) in [
        (
            "  allowed_account_ids = [\"111111111111\"]",
            "AWS account 123456789012, which is not in allowed_account_ids (111111111111)",
        ),
        (
            "  forbidden_account_ids = [\"123456789012\"]",
            "AWS account 123456789012, which forbidden_account_ids names",
        ),
    ] {
        h.write(&with_provider(&h, lines))?;
        h.proxy.reset_counts();
        let before = h.proxy.log().len();
        let run = h.terraform(&["plan"]).await?;
        assert_eq!(run.code, 1, "{lines}: {}", run.all());
        assert!(
            acceptance_tests::fold(&run.all()).contains(says),
            "{}",
            run.all()
        );
        let actions: BTreeSet<String> = h.proxy.log()[before..]
            .iter()
            .map(|s| s.action.clone())
            .collect();
        assert_eq!(
            actions,
            BTreeSet::from(["GetCallerIdentity".to_string()]),
            "nothing but the account's read: {actions:?}"
        );
    }
    h.write(&with_provider(
        &h,
        "  allowed_account_ids = [\"123456789012\"]",
    ))?;
    h.terraform(&["plan"]).await?.ok()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_provider_settings_are_refused_at_plan_with_the_attribute() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    for (lines, says) in [
        ("  retry_mode = \"fast\"", "retry_mode must be \"standard\" or \"adaptive\""),
        (
            "  assume_role {\n    role_arn = \"arn:aws:iam::123:role/x\"\n  }",
            "assume_role.role_arn must be an IAM role ARN",
        ),
        (
            "  assume_role {\n    role_arn = \"arn:aws:iam::123456789012:role/x\"\n    duration = \"5m\"\n  }",
            "assume_role.duration must be from 15m to 12h",
        ),
        (
            "  allowed_account_ids = [\"123456789012\"]\n  forbidden_account_ids = [\"111111111111\"]",
            "cannot both be given",
        ),
        ("  allowed_account_ids = [\"12345\"]", "12 digits"),
        (
            "  http_proxy = \"proxy.example.com:3128\"",
            "http_proxy must be an http:// or https:// URL of a proxy",
        ),
        (
            "  https_proxy = \"socks5://proxy:1080\"",
            "https_proxy must be an http:// or https:// URL of a proxy",
        ),
        (
            "  custom_ca_bundle = \"/nonexistent/corp.pem\"",
            "custom_ca_bundle \"/nonexistent/corp.pem\" cannot be read",
        ),
    ] {
        h.write(&with_provider(&h, lines))?;
        let run = h.terraform(&["plan"]).await?;
        assert_eq!(run.code, 1, "{lines}: {}", run.all());
        assert!(
            acceptance_tests::fold(&run.all()).contains(says),
            "{lines}: {}",
            run.all()
        );
    }
    assert!(
        h.proxy.log().is_empty(),
        "nothing is called with settings that are wrong"
    );
    Ok(())
}

/// Shared config and credentials files with profile `deployer` (key AKIAFROMSHAREDFILE)
/// in `dir`: `aws-config`, `aws-credentials`.
fn write_deployer_profile(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("aws-config"),
        "[profile deployer]\nregion = us-east-1\n",
    )?;
    std::fs::write(
        dir.join("aws-credentials"),
        "[deployer]\naws_access_key_id = AKIAFROMSHAREDFILE\naws_secret_access_key = secret\n",
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_files_and_web_identity_supply_the_credentials() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = &h.dir.0;
    write_deployer_profile(dir)?;
    h.write(&with_provider(
        &h,
        &format!(
            "  profile                  = \"deployer\"\n  shared_config_files      = [\"{}\"]\n  shared_credentials_files = [\"{}\"]",
            dir.join("aws-config").display(),
            dir.join("aws-credentials").display()
        ),
    ))?;
    let run = without_env_keys(&h, &["plan", "-no-color", "-input=false"], &[]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    let signed: BTreeSet<Option<String>> = keys(&h).into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        signed,
        BTreeSet::from([Some("AKIAFROMSHAREDFILE".to_string())]),
        "the credentials file's key"
    );

    // Web identity, as CI's OIDC sets it: a token file and a role, STS at the local AWS.
    std::fs::write(dir.join("token"), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln")?;
    h.write(&with_provider(&h, ""))?;
    let before = h.proxy.log().len();
    let env = [
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            dir.join("token").display().to_string(),
        ),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/ci".to_string(),
        ),
        ("AWS_ROLE_SESSION_NAME", "ci-run".to_string()),
        ("AWS_ENDPOINT_URL_STS", h.proxy.url.clone()),
    ];
    let run = without_env_keys(
        &h,
        &["apply", "-auto-approve", "-no-color", "-input=false"],
        &env,
    )
    .await?;
    assert_eq!(run.code, 0, "{}", run.all());
    let seen: Vec<(String, Option<String>)> = h.proxy.log()[before..]
        .iter()
        .map(|s| (s.action.clone(), s.access_key.clone()))
        .collect();
    assert!(
        seen.iter().any(|(a, _)| a == "AssumeRoleWithWebIdentity"),
        "the token was exchanged: {seen:?}"
    );
    let others: BTreeSet<Option<String>> = seen
        .iter()
        .filter(|(a, _)| a != "AssumeRoleWithWebIdentity")
        .map(|(_, k)| k.clone())
        .collect();
    let exchanges = seen
        .iter()
        .filter(|(a, _)| a == "AssumeRoleWithWebIdentity")
        .count();
    assert_eq!(others.len(), exchanges, "one session a process: {others:?}");
    assert!(
        others
            .iter()
            .all(|k| k.as_deref().is_some_and(|k| k.starts_with("ASIA"))),
        "signed with the web identity role's session keys: {others:?}"
    );
    assert_eq!(h.resource_values().await?["release"], 1);
    Ok(())
}

/// The body of a provider block as a hashicorp/aws user writes it (credentials from a
/// profile of shared files, a deployer role with session policies and tags, the account
/// guard, retry settings, per-service endpoints), against `endpoint`.
fn hashicorp_aws_body(dir: &std::path::Path, endpoint: &str) -> String {
    format!(
        r#"  region                   = "us-east-1"
  profile                  = "deployer"
  shared_config_files      = ["{config}"]
  shared_credentials_files = ["{credentials}"]
  allowed_account_ids      = ["123456789012"]
  max_retries              = 5
  retry_mode               = "adaptive"

  assume_role {{
    role_arn     = "arn:aws:iam::123456789012:role/deployer"
    session_name = "pipeline"
    external_id  = "ext-1234"
    duration     = "1h"
    policy = jsonencode({{
      Version   = "2012-10-17"
      Statement = [{{ Effect = "Allow", Action = "*", Resource = "*" }}]
    }})
    policy_arns = ["arn:aws:iam::aws:policy/PowerUserAccess"]
    tags        = {{ pipeline = "deploy" }}
  }}

  endpoints {{
    autoscaling = "{endpoint}"
    cloudwatch  = "{endpoint}"
    ec2         = "{endpoint}"
    elbv2       = "{endpoint}"
    sts         = "{endpoint}"
  }}
"#,
        config = dir.join("aws-config").display(),
        credentials = dir.join("aws-credentials").display(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hashicorp_aws_provider_block_works_unchanged() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let dir = &h.dir.0;
    write_deployer_profile(dir)?;
    let body = hashicorp_aws_body(dir, &h.proxy.url);

    // 1. The same text is a valid hashicorp/aws provider block (its own schema says so),
    // when this machine has hashicorp/aws.
    match acceptance_tests::aws_mirror() {
        Some(mirror) => {
            let work = acceptance_tests::TempDir::new("immutable-aws-block")?;
            let user = acceptance_tests::MirrorWorkdir::new(&work.0, &mirror, false)?;
            std::fs::write(
                user.dir.join("main.tf"),
                format!("terraform {{\n  required_providers {{\n    aws = {{ source = \"hashicorp/aws\" }}\n  }}\n}}\n\nprovider \"aws\" {{\n{body}}}\n"),
            )?;
            user.terraform(&["init", "-input=false"]).await?;
            let valid = user.terraform(&["validate"]).await?;
            assert!(valid.contains("The configuration is valid"), "{valid}");
        }
        None => acceptance_tests::say_skipped(
            "hashicorp/aws half skipped: no filesystem mirror of it on this machine (TF_ACC_PLUGIN_MIRROR)",
        ),
    }

    // 2. Ours, with it copied as it is (default_tags is a map here): a release is made.
    let hcl = h.release_hcl(&ReleaseOpts::default());
    let start = hcl
        .find("provider \"immutable\" {")
        .expect("a provider block");
    let end = start + hcl[start..].find("\n}\n").expect("its end") + 3;
    let hcl = format!(
        "{}provider \"immutable\" {{\n{body}  default_tags = {{ owner = \"platform\" }}\n}}\n{}",
        &hcl[..start],
        &hcl[end..]
    );
    h.write(&hcl)?;
    let run = without_env_keys(
        &h,
        &["apply", "-auto-approve", "-no-color", "-input=false"],
        &[],
    )
    .await?;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(h.resource_values().await?["release"], 1);
    let seen = keys(&h);
    let assumed: Vec<&(String, Option<String>)> =
        seen.iter().filter(|(a, _)| a == "AssumeRole").collect();
    assert!(
        !assumed.is_empty()
            && assumed
                .iter()
                .all(|(_, k)| k.as_deref() == Some("AKIAFROMSHAREDFILE")),
        "the profile's keys assumed the role: {assumed:?}"
    );
    assert!(
        seen.iter()
            .filter(|(a, _)| a != "AssumeRole")
            .all(|(_, k)| k.as_deref().is_some_and(|k| k.starts_with("ASIA"))),
        "everything else signed by the role's session: {seen:?}"
    );
    let log = h.proxy.log();
    let body = &log.iter().find(|s| s.action == "AssumeRole").unwrap().body;
    for field in [
        "RoleSessionName=pipeline",
        "ExternalId=ext-1234",
        "DurationSeconds=3600",
        "Policy=%7B%22Statement%22",
        "PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FPowerUserAccess",
        "Tags.member.1.Key=pipeline",
        "Tags.member.1.Value=deploy",
    ] {
        assert!(body.contains(field), "{field}: {body}");
    }
    assert!(
        seen.iter().any(|(a, _)| a == "GetCallerIdentity"),
        "the account guard read the account"
    );
    let group = h.aws.group("web-r1").await?;
    assert!(
        group
            .tags()
            .iter()
            .any(|t| t.key() == Some("owner") && t.value() == Some("platform")),
        "default_tags on the fleet: {:?}",
        group.tags()
    );
    Ok(())
}
