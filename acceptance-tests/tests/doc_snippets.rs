//! Every Terraform snippet a reader may copy — the published pages under `docs/`, the
//! README, the module's README and the contributing notes — is formatted as `terraform fmt`
//! writes it and valid against the schemas of this provider and hashicorp/aws (`terraform
//! validate`), as written.
//!
//! A snippet may leave out what the page around it gives, in two ways the reader knows:
//! - a fragment of a release's body (its first line indented) is read inside
//!   `resource "immutable_release" "snippet" { # ... }`;
//! - `# ...` in an `immutable_release` stands for the required arguments it does not show.
//!
//! What a snippet refers to without declaring it (`var.x`, `aws_lb_listener.http`,
//! `data.aws_vpc.default`) is declared beside it, minimally (the table in [`stub`]): a
//! reference to anything else fails the test, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use acceptance_tests::{aws_mirror, repo_root, terraform_at_least, MirrorWorkdir, TempDir};

/// One fenced Terraform block of a page.
#[derive(Debug)]
struct Snippet {
    /// Page, relative to the repository, and the block's number on it (from 1).
    page: String,
    number: usize,
    /// As the page shows it (a fragment wrapped in its resource).
    text: String,
}

impl Snippet {
    fn name(&self) -> String {
        format!("{} #{}", self.page, self.number)
    }
}

/// The pages a reader copies from.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![
        root.join("README.md"),
        root.join("examples/modules/service/README.md"),
    ];
    for dir in ["docs", "contributing"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "md") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn snippets(root: &Path) -> anyhow::Result<Vec<Snippet>> {
    let mut out = Vec::new();
    for page in pages(root) {
        let text = std::fs::read_to_string(&page)?;
        let rel = page.strip_prefix(root)?.display().to_string();
        let mut number = 0;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(lang) = line.strip_prefix("```") else {
                continue;
            };
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            anyhow::ensure!(
                !["hcl", "tf"].contains(&lang),
                "{rel}: a Terraform block is fenced ```terraform (found ```{lang})"
            );
            if lang != "terraform" {
                continue;
            }
            number += 1;
            let body = body.join("\n") + "\n";
            let first = body
                .lines()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .unwrap_or_default();
            let text = if first.starts_with(' ') {
                format!("resource \"immutable_release\" \"snippet\" {{\n  # ...\n{body}}}\n")
            } else {
                body
            };
            out.push(Snippet {
                page: rel.clone(),
                number,
                text,
            });
        }
    }
    Ok(out)
}

/// Required arguments of a release, for `# ...`.
const RELEASE_REQUIRED: [(&str, &str); 5] = [
    ("name", "  name          = \"snippet\"\n"),
    ("image_id", "  image_id      = \"ami-0123456789abcdef0\"\n"),
    ("instance_type", "  instance_type = \"t3.micro\"\n"),
    ("subnet_ids", "  subnet_ids    = [\"subnet-0123456789abcdef0\"]\n"),
    (
        "load_balancer",
        "  load_balancer {\n    listener_arn = \"arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/0123456789abcdef/0123456789abcdef\"\n    vpc_id       = \"vpc-0123456789abcdef0\"\n  }\n",
    ),
];

/// Each `# ...` line of an `immutable_release` block replaced by the required arguments
/// that block does not give.
fn fill_elisions(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push_str(line);
        out.push('\n');
        i += 1;
        if !(line.starts_with("resource \"immutable_release\"") && line.ends_with('{')) {
            continue;
        }
        // The block's body, to its closing brace at the start of a line.
        let end = lines[i..]
            .iter()
            .position(|l| *l == "}")
            .map_or(lines.len(), |p| i + p);
        let body = &lines[i..end];
        let given: BTreeSet<&str> = body
            .iter()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.trim().split([' ', '=', '{']).next())
            .collect();
        for l in body {
            if l.trim() == "# ..." {
                for (arg, hcl) in RELEASE_REQUIRED {
                    if !given.contains(arg) {
                        out.push_str(hcl);
                    }
                }
            } else {
                out.push_str(l);
                out.push('\n');
            }
        }
        i = end;
    }
    out
}

/// A minimal declaration of `kind.name` (a resource type, or `data.TYPE`), valid against
/// the schemas; None when the table has none.
fn stub(kind: &str, name: &str) -> Option<String> {
    let body = match kind {
        "aws_lb_listener" => {
            r#"  load_balancer_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123456789abcdef"
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      status_code  = "503"
    }
  }"#
        }
        "aws_lb" => r#"  subnets = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]"#,
        "aws_security_group"
        | "aws_sns_topic"
        | "aws_iam_instance_profile"
        | "aws_launch_template"
        | "aws_lb_target_group" => "",
        "aws_vpc" => r#"  cidr_block = "10.0.0.0/16""#,
        "aws_cloudwatch_metric_alarm" => {
            r#"  alarm_name          = "snippet"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  metric_name         = "HTTPCode_Target_5XX_Count"
  namespace           = "AWS/ApplicationELB"
  period              = 60
  statistic           = "Sum"
  threshold           = 5"#
        }
        "immutable_release" => {
            return Some(fill_elisions(&format!(
                "resource \"immutable_release\" \"{name}\" {{\n  # ...\n}}\n"
            )))
        }
        "data.aws_ami" => r#"  owners = ["amazon"]"#,
        "data.aws_vpc" | "data.aws_subnets" => "",
        _ => return None,
    };
    Some(match kind.strip_prefix("data.") {
        Some(t) => format!("data \"{t}\" \"{name}\" {{\n{body}\n}}\n"),
        None => format!("resource \"{kind}\" \"{name}\" {{\n{body}\n}}\n"),
    })
}

/// Identifiers `prefix.NAME` in `text` (`var.`, `local.`).
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Resources (`TYPE.NAME`) and data sources (`data.TYPE.NAME`) `text` refers to.
fn references(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for provider in ["aws_", "immutable_"] {
        let mut rest = text;
        while let Some(i) = rest.find(provider) {
            let before = &rest[..i];
            rest = &rest[i..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || *c == '-')
                .collect();
            rest = &rest[word.len().max(1)..];
            let prev = before.chars().last();
            if prev.is_some_and(|c| c == '"' || c.is_ascii_alphanumeric() || c == '_') {
                continue; // a type in a declaration, or part of another word
            }
            let parts: Vec<&str> = word.split('.').collect();
            if parts.len() < 2 || parts[1].is_empty() {
                continue;
            }
            let kind = if before.ends_with("data.") {
                format!("data.{}", parts[0])
            } else {
                parts[0].to_string()
            };
            out.insert((kind, parts[1].to_string()));
        }
    }
    out
}

/// What `text` declares: resources and data sources (`kind`, name), variables, locals.
fn declarations(
    text: &str,
) -> (
    BTreeSet<(String, String)>,
    BTreeSet<String>,
    BTreeSet<String>,
) {
    let (mut objects, mut vars, mut locals) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut in_locals = false;
    for line in text.lines() {
        let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        if line.starts_with("resource \"") && quoted.len() >= 2 {
            objects.insert((quoted[0].to_string(), quoted[1].to_string()));
        } else if line.starts_with("data \"") && quoted.len() >= 2 {
            objects.insert((format!("data.{}", quoted[0]), quoted[1].to_string()));
        } else if line.starts_with("variable \"") && !quoted.is_empty() {
            vars.insert(quoted[0].to_string());
        } else if line.starts_with("locals {") {
            in_locals = true;
        } else if in_locals && line == "}" {
            in_locals = false;
        } else if in_locals && line.starts_with("  ") && !line.starts_with("   ") {
            if let Some(name) = line.trim().split([' ', '=']).next() {
                locals.insert(name.to_string());
            }
        }
    }
    (objects, vars, locals)
}

/// The snippet as a module: itself with `# ...` filled, and what it leaves undeclared.
/// Returns the files and the module's variables (the caller passes each).
fn as_module(s: &Snippet) -> anyhow::Result<(BTreeMap<&'static str, String>, BTreeSet<String>)> {
    let text = fill_elisions(&s.text);
    let (mut declared, declared_vars, declared_locals) = declarations(&text);
    let mut stubs = String::new();
    let mut pending: Vec<(String, String)> = references(&text).into_iter().collect();
    while let Some((kind, name)) = pending.pop() {
        if declared.contains(&(kind.clone(), name.clone())) {
            continue;
        }
        let Some(hcl) = stub(&kind, &name) else {
            anyhow::bail!(
                "{}: refers to {kind}.{name}, which it does not declare and the test cannot stand in for: add {kind} to `stub` in this test, or declare it in the snippet",
                s.name()
            );
        };
        pending.extend(references(&hcl));
        stubs.push_str(&hcl);
        declared.insert((kind, name));
    }
    let used_locals = names_after(&text, "local.");
    if let Some(l) = used_locals.difference(&declared_locals).next() {
        anyhow::bail!("{}: uses local.{l}, which it does not declare", s.name());
    }
    let used_vars = names_after(&format!("{text}{stubs}"), "var.");
    let mut vars = declared_vars.clone();
    for v in used_vars.difference(&declared_vars) {
        stubs.push_str(&format!("variable \"{v}\" {{}}\n"));
        vars.insert(v.clone());
    }
    let mut files = BTreeMap::new();
    files.insert("snippet.tf", text.clone());
    files.insert("stubs.tf", stubs);
    if !text.contains("required_providers") {
        files.insert(
            "versions.tf",
            "terraform {\n  required_providers {\n    aws       = { source = \"hashicorp/aws\" }\n    immutable = { source = \"immutable-infra/immutable\" }\n  }\n}\n".into(),
        );
    }
    Ok((files, vars))
}

/// `terraform fmt -` of `text`: None when it is formatted, else what fmt writes.
async fn unformatted(text: &str) -> anyhow::Result<Option<String>> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(acceptance_tests::terraform_bin())
        .args(["fmt", "-no-color", "-"])
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(text.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    let formatted = String::from_utf8_lossy(&out.stdout).to_string();
    anyhow::ensure!(
        out.status.success(),
        "terraform fmt could not parse it:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((formatted != text).then_some(formatted))
}

fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:>3} | {l}\n", i + 1))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_snippet_in_the_docs_is_formatted_and_valid() -> anyhow::Result<()> {
    let root = repo_root();
    let all = snippets(&root)?;
    assert!(all.len() >= 30, "only {} snippets found", all.len());

    // 1. Formatted as terraform fmt writes it.
    let mut failures = Vec::new();
    for s in &all {
        match unformatted(&s.text).await {
            Ok(None) => {}
            Ok(Some(f)) => failures.push(format!(
                "{} is not formatted; terraform fmt writes:\n{}",
                s.name(),
                numbered(&f)
            )),
            Err(e) => failures.push(format!("{}: {e}\n{}", s.name(), numbered(&s.text))),
        }
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("\n"));

    // 2. Valid: each snippet a module of one configuration, validated at once. An `import`
    // block belongs to the root module: those snippets are each a configuration of their own.
    let Some(mirror) = aws_mirror() else {
        acceptance_tests::say_skipped("skipped: validating the docs' snippets needs hashicorp/aws in a filesystem mirror, and this machine has none (TF_ACC_PLUGIN_MIRROR, found by make tools); their formatting was checked");
        return Ok(());
    };
    let imports_supported = terraform_at_least((1, 5), "import blocks")?;
    let work = TempDir::new("immutable-snippets")?;
    let user = MirrorWorkdir::new(&work.0, &mirror, true)?;
    let mut roots: Vec<(PathBuf, Vec<(String, &Snippet)>)> = vec![(user.dir.clone(), vec![])];
    let mut calls = String::new();
    for (i, s) in all.iter().enumerate() {
        let (files, vars) = as_module(s)?;
        let is_root = files["snippet.tf"]
            .lines()
            .any(|l| l.starts_with("import {"));
        if is_root && !imports_supported {
            acceptance_tests::say_skipped(&format!(
                "{}: an import block, validated on Terraform 1.5 and later only (formatting checked)",
                s.name()
            ));
            continue;
        }
        let dir = if is_root {
            let d = work.0.join(format!("root{i:02}"));
            roots.push((d.clone(), vec![(String::new(), s)]));
            d
        } else {
            let d = format!("s{i:02}");
            calls.push_str(&format!("module \"{d}\" {{\n  source = \"./{d}\"\n"));
            for v in &vars {
                calls.push_str(&format!("  {v} = null\n"));
            }
            calls.push_str("}\n");
            roots[0].1.push((format!("{d}/"), s));
            user.dir.join(&d)
        };
        std::fs::create_dir_all(&dir)?;
        for (name, text) in &files {
            std::fs::write(dir.join(name), text)?;
        }
        // A module a snippet calls from the repository (`./modules/service`).
        if files["snippet.tf"].contains("source = \"./modules/service\"") {
            std::fs::create_dir_all(dir.join("modules"))?;
            std::os::unix::fs::symlink(
                root.join("examples/modules/service"),
                dir.join("modules/service"),
            )?;
        }
    }
    std::fs::write(user.dir.join("main.tf"), calls)?;
    for (dir, members) in &roots {
        let d = dir.display().to_string();
        let cd = format!("-chdir={d}");
        // Terraform 1.0.3 has -chdir too (since 0.14).
        user.terraform(&[&cd, "init", "-input=false", "-backend=false"])
            .await?;
        let (_, out) = user.run(&[&cd, "validate", "-json", "-no-color"]).await?;
        let report: serde_json::Value =
            serde_json::from_str(out.find('{').map_or(out.as_str(), |i| &out[i..]))?;
        for d in report["diagnostics"].as_array().into_iter().flatten() {
            if d["severity"] != "error" {
                continue;
            }
            let file = d["range"]["filename"].as_str().unwrap_or_default();
            let snippet = members
                .iter()
                .find(|(prefix, _)| !prefix.is_empty() && file.starts_with(prefix.as_str()))
                .or_else(|| members.iter().find(|(p, _)| p.is_empty()))
                .map(|(_, s)| s.name())
                .unwrap_or_else(|| "the test's own configuration".into());
            failures.push(format!(
                "{snippet}: {} — {} ({file} line {})",
                d["summary"].as_str().unwrap_or_default(),
                d["detail"].as_str().unwrap_or_default(),
                d["range"]["start"]["line"]
            ));
        }
        if report["valid"] != true && failures.is_empty() {
            failures.push(format!("{d}: not valid:\n{out}"));
        }
    }
    anyhow::ensure!(
        failures.is_empty(),
        "snippets that terraform validate refuses:\n{}",
        failures.join("\n")
    );
    let validated: usize = roots.iter().map(|(_, m)| m.len()).sum();
    eprintln!(
        "{} snippets of {} pages formatted, {validated} of them validated",
        all.len(),
        pages(&root).len()
    );
    Ok(())
}

#[test]
fn elisions_are_filled_with_what_the_block_does_not_give() {
    let text = "resource \"immutable_release\" \"web\" {\n  # ...\n  image_id = var.image_id\n  load_balancer {\n    name = 1\n  }\n}\n";
    let filled = fill_elisions(text);
    assert!(filled.contains("name          = \"snippet\""), "{filled}");
    assert!(!filled.contains("ami-0123456789abcdef0"), "{filled}");
    assert_eq!(filled.matches("load_balancer {").count(), 1, "{filled}");
    assert!(!filled.contains("# ..."), "{filled}");
}

#[test]
fn references_are_found_and_declarations_are_not_references() {
    let text = "resource \"aws_lb\" \"web\" {}\nx = aws_lb_listener.http.arn\ny = data.aws_vpc.default.id\nz = \"aws_lb.name\"\nw = immutable_release.web.release\n";
    let refs = references(text);
    assert_eq!(
        refs,
        [
            ("aws_lb_listener".to_string(), "http".to_string()),
            ("data.aws_vpc".to_string(), "default".to_string()),
            ("immutable_release".to_string(), "web".to_string()),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        names_after("a = var.image_id\nb = var.x_y\nc = foo.var.z", "var."),
        ["image_id".to_string(), "x_y".to_string()]
            .into_iter()
            .collect()
    );
}
