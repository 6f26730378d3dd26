//! `make docs`: renders `docs/` in the Terraform Registry's format from the provider's own
//! schema (`terraform providers schema -json` against the built provider), the templates
//! under `templates/`, and the files under `examples/`. The HashiCorp generator
//! (tfplugindocs) is a Go tool this project does not have; this is its small equivalent.
//!
//! `docgen` writes `docs/`; `docgen --check` renders into memory and fails, naming the
//! files, when `docs/` differs (CI runs it).
//!
//! Template directives (on a line of their own or inline):
//! - `{{ .SchemaMarkdown }}` — the schema of the page's subject (provider, resource or data
//!   source, by the template's path), split into Required / Optional / Read-Only with
//!   nested blocks;
//! - `{{ tffile "PATH" }}` — a Terraform file from the repository, fenced;
//! - `{{ codefile "LANG" "PATH" }}` — any file, fenced with LANG;
//! - `{{ .IAMPolicy }}` — an IAM policy document listing exactly the AWS actions the
//!   provider's code calls (read from `provider/src/cloud/aws.rs` and `cloud/aws/`), plus the ones AWS
//!   requires on top of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use acceptance_tests::{provider_dir, repo_root, terraform_bin, TempDir};
use anyhow::{anyhow, bail, Context};
use serde_json::Value;

const SOURCE: &str = "registry.terraform.io/immutable-infra/immutable";

/// The provider's schema, from Terraform itself.
fn schema() -> anyhow::Result<Value> {
    let dir = TempDir::new("immutable-docgen")?;
    let rc = dir.0.join("terraform.rc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"immutable-infra/immutable\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            provider_dir()?.display()
        ),
    )?;
    std::fs::write(
        dir.0.join("main.tf"),
        "terraform {\n  required_providers {\n    immutable = { source = \"immutable-infra/immutable\" }\n  }\n}\n",
    )?;
    let out = std::process::Command::new(terraform_bin())
        .args(["providers", "schema", "-json"])
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir.0)
        .env("TF_CLI_CONFIG_FILE", &rc)
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .context("running terraform providers schema -json")?;
    if !out.status.success() {
        bail!(
            "terraform providers schema -json failed (run `make build` first):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let all: Value = serde_json::from_slice(&out.stdout)?;
    all.pointer(&format!("/provider_schemas/{}", SOURCE.replace('/', "~1")))
        .cloned()
        .ok_or_else(|| anyhow!("no schema for {SOURCE}"))
}

fn type_name(t: &Value) -> String {
    match t {
        Value::String(s) => match s.as_str() {
            "string" => "String".into(),
            "number" => "Number".into(),
            "bool" => "Boolean".into(),
            "dynamic" => "Dynamic".into(),
            other => other.to_string(),
        },
        Value::Array(a) if a.len() == 2 => {
            let outer = match a[0].as_str().unwrap_or("") {
                "list" => "List",
                "set" => "Set",
                "map" => "Map",
                "object" => return "Object".into(),
                other => other,
            };
            format!("{outer} of {}", type_name(&a[1]))
        }
        _ => "Unknown".into(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Attributes and blocks of one block, rendered: each list sorted by name, attributes and
/// blocks together (as tfplugindocs does).
struct Section {
    required: Vec<String>,
    optional: Vec<String>,
    read_only: Vec<String>,
}

impl Section {
    fn sort(&mut self) {
        for list in [&mut self.required, &mut self.optional, &mut self.read_only] {
            // Every line starts with "- `name`".
            list.sort();
        }
    }
}

fn anchor(kind: &str, path: &str) -> String {
    format!("nested{kind}--{}", path.replace('.', "--"))
}

/// Renders `block` (a schema block) with nested schemas below, `path` being its dotted
/// name ("" for the top).
fn render_block(block: &Value, path: &str, out_nested: &mut Vec<String>) -> Section {
    let mut s = Section {
        required: vec![],
        optional: vec![],
        read_only: vec![],
    };
    let attrs = block["attributes"].as_object().cloned().unwrap_or_default();
    for (name, a) in &attrs {
        let full = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let mut ty = type_name(&a["type"]);
        let desc = one_line(a["description"].as_str().unwrap_or(""));
        let mut line = String::new();
        let object_type = a["type"]
            .as_array()
            .and_then(|t| t.get(1))
            .and_then(|t| t.as_array())
            .filter(|t| t.first().and_then(Value::as_str) == Some("object"))
            .and_then(|t| t.get(1))
            .cloned();
        if a["sensitive"].as_bool() == Some(true) {
            ty.push_str(", Sensitive");
        }
        line.push_str(&format!("- `{name}` ({ty})"));
        if !desc.is_empty() {
            line.push_str(&format!(" {desc}"));
        }
        if let Some(obj) = object_type {
            let id = anchor("att", &full);
            line.push_str(&format!(" (see [below for nested schema](#{id}))"));
            let mut n =
                format!("<a id=\"{id}\"></a>\n### Nested Schema for `{full}`\n\nRead-Only:\n\n");
            for (k, t) in obj.as_object().into_iter().flatten() {
                n.push_str(&format!("- `{k}` ({})\n", type_name(t)));
            }
            out_nested.push(n);
        }
        let required = a["required"].as_bool() == Some(true);
        let optional = a["optional"].as_bool() == Some(true);
        if required {
            s.required.push(line);
        } else if optional {
            s.optional.push(line);
        } else {
            s.read_only.push(line);
        }
    }
    let blocks = block["block_types"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, b) in &blocks {
        let full = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let mode = b["nesting_mode"].as_str().unwrap_or("list");
        let min = b["min_items"].as_u64().unwrap_or(0);
        let max = b["max_items"].as_u64().unwrap_or(0);
        let mut ty = match mode {
            // tfplugindocs: "(Block, Required)" / "(Block, Optional)" for a single block.
            "single" if min > 0 => "Block, Required".to_string(),
            "single" => "Block, Optional".to_string(),
            "set" => "Block Set".to_string(),
            _ => "Block List".to_string(),
        };
        if mode != "single" {
            if min > 0 {
                ty.push_str(&format!(", Min: {min}"));
            }
            // tf-provider reports "no maximum" as i64::MAX.
            if max > 0 && max < i64::MAX as u64 {
                ty.push_str(&format!(", Max: {max}"));
            }
        }
        let desc = one_line(b["block"]["description"].as_str().unwrap_or(""));
        let id = anchor("block", &full);
        let mut line = format!("- `{name}` ({ty})");
        if !desc.is_empty() {
            line.push_str(&format!(" {desc}"));
        }
        line.push_str(&format!(" (see [below for nested schema](#{id}))"));
        if min > 0 {
            s.required.push(line);
        } else {
            s.optional.push(line);
        }
        let mut deeper = Vec::new();
        let mut inner = render_block(&b["block"], &full, &mut deeper);
        inner.sort();
        let mut n = format!("<a id=\"{id}\"></a>\n### Nested Schema for `{full}`\n");
        for (title, items) in [
            ("Required", &inner.required),
            ("Optional", &inner.optional),
            ("Read-Only", &inner.read_only),
        ] {
            if !items.is_empty() {
                n.push_str(&format!("\n{title}:\n\n{}\n", items.join("\n")));
            }
        }
        out_nested.push(n);
        out_nested.extend(deeper);
    }
    s
}

fn schema_markdown(block: &Value) -> String {
    let mut nested = Vec::new();
    let mut s = render_block(block, "", &mut nested);
    s.sort();
    let mut out = String::from("## Schema\n");
    for (title, items) in [
        ("Required", &s.required),
        ("Optional", &s.optional),
        ("Read-Only", &s.read_only),
    ] {
        if !items.is_empty() {
            out.push_str(&format!("\n### {title}\n\n{}\n", items.join("\n")));
        }
    }
    for n in nested {
        out.push('\n');
        out.push_str(&n);
    }
    out.trim_end().to_string()
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every AWS action the provider's code calls, by reading its AWS adapter: `cloud/aws.rs`
/// and its rooms under `cloud/aws/`.
fn actions_called(root: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut code = std::fs::read_to_string(root.join("provider/src/cloud/aws.rs"))?;
    let mut rooms: Vec<PathBuf> = std::fs::read_dir(root.join("provider/src/cloud/aws"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    rooms.sort();
    for room in rooms {
        code.push_str(&std::fs::read_to_string(room)?);
    }
    let squeezed: String = code.split_whitespace().collect::<Vec<_>>().join("");
    let mut out = BTreeSet::new();
    for (field, service) in [
        ("ec2", "ec2"),
        ("asg", "autoscaling"),
        ("elb", "elasticloadbalancing"),
        ("cw", "cloudwatch"),
        ("sns", "sns"),
    ] {
        let needle = format!(".{field}.");
        let mut rest = squeezed.as_str();
        while let Some(i) = rest.find(&needle) {
            rest = &rest[i + needle.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && rest[name.len()..].starts_with("()") {
                out.insert(format!("{service}:{}", pascal(&name)));
            }
        }
    }
    // A guard against reading the wrong files: a policy short of the adapter's calls
    // would deny a user's first release.
    for needed in [
        "autoscaling:CreateAutoScalingGroup",
        "ec2:CreateLaunchTemplate",
        "elasticloadbalancing:ModifyListener",
        "cloudwatch:DescribeAlarms",
    ] {
        if !out.contains(needed) {
            bail!("the IAM policy found no {needed} in the AWS adapter's code: where did it go?");
        }
    }
    Ok(out)
}

fn iam_policy(root: &Path) -> anyhow::Result<String> {
    let mut actions = actions_called(root)?;
    // Not calls of the provider's own, but what AWS checks when the provider's calls act:
    // a launch template and group that launch instances, tag them, and pass their role;
    // tags given on CreateTargetGroup (authorised as AddTags); the service-linked role that
    // Auto Scaling creates the first time an account uses it.
    for implied in [
        "ec2:RunInstances",
        "ec2:CreateTags",
        "iam:PassRole",
        "elasticloadbalancing:AddTags",
        "iam:CreateServiceLinkedRole",
    ] {
        actions.insert(implied.to_string());
    }
    let list: Vec<String> = actions.iter().map(|a| format!("        \"{a}\"")).collect();
    Ok(format!(
        "```json\n{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {{\n      \"Sid\": \"ImmutableReleases\",\n      \"Effect\": \"Allow\",\n      \"Action\": [\n{}\n      ],\n      \"Resource\": \"*\"\n    }}\n  ]\n}}\n```",
        list.join(",\n")
    ))
}

fn fenced(lang: &str, root: &Path, path: &str) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(root.join(path)).with_context(|| format!("reading {path}"))?;
    Ok(format!("```{lang}\n{}\n```", text.trim_end()))
}

fn quoted_args(s: &str) -> Vec<String> {
    s.split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, a)| a.to_string())
        .collect()
}

fn render(template: &str, subject: Option<&Value>, root: &Path) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| anyhow!("unclosed {{{{ in a template"))?
            + start;
        let directive = rest[start + 2..end].trim();
        let args = quoted_args(directive);
        let text = if directive == ".SchemaMarkdown" {
            schema_markdown(subject.ok_or_else(|| anyhow!("no schema for this page"))?)
        } else if directive == ".IAMPolicy" {
            iam_policy(root)?
        } else if directive.starts_with("tffile") && args.len() == 1 {
            fenced("terraform", root, &args[0])?
        } else if directive.starts_with("codefile") && args.len() == 2 {
            fenced(&args[0], root, &args[1])?
        } else {
            bail!("unknown template directive {{{{ {directive} }}}}");
        };
        out.push_str(&text);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out.trim_end().to_string() + "\n")
}

/// The registry publishes `index.md`, `resources/`, `data-sources/` and `guides/`, and
/// serves pages without their `.md`: a relative link must name a published page that way.
fn check_links(page: &str, text: &str) -> anyhow::Result<()> {
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let target = &rest[..rest.find(')').unwrap_or(rest.len())];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let path = target.split('#').next().unwrap_or_default();
        let published = ["resources/", "data-sources/", "guides/"]
            .iter()
            .any(|d| path.trim_start_matches("../").starts_with(d));
        if path.ends_with(".md") || !published {
            bail!("{page}: link ({target}) must name a published page without .md (resources/…, data-sources/…, guides/…)");
        }
    }
    Ok(())
}

/// What the Registry accepts and shows well, checked on every rendered page:
/// - front matter with `page_title` and `description` (guides: `subcategory: "Guides"`);
/// - callouts in the Registry's syntax: `~> **NOTE:**`, `!> **WARNING:**`, `-> **Note:**`;
/// - fenced code in languages the Registry highlights (`terraform`, never `hcl`), no
///   diagrams it cannot render (`mermaid`), no pictures (it hosts none);
/// - no paths into the source repository (the Registry publishes `docs/` alone);
/// - a resource or data source page laid out as the Registry shows them: the title, a short
///   introduction, then `## Example Usage`, `## Schema` and (a resource) `## Import`, and
///   no other section: the long prose belongs in guides.
fn check_layout(page: &str, text: &str) -> anyhow::Result<()> {
    let fail = |why: String| anyhow!("{page}: {why}");
    let Some(front) = text
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n").map(|(f, _)| f))
    else {
        return Err(fail(
            "no front matter (--- page_title, description ---)".into(),
        ));
    };
    for key in ["page_title:", "description:"] {
        if !front.lines().any(|l| l.starts_with(key)) {
            return Err(fail(format!("front matter has no {key}")));
        }
    }
    if page.starts_with("guides/") && !front.contains("subcategory: \"Guides\"") {
        return Err(fail(
            "a guide's front matter says subcategory: \"Guides\"".into(),
        ));
    }
    let mut in_code = false;
    let mut headings = Vec::new();
    let mut intro_lines = 0usize;
    for (n, line) in text.lines().enumerate() {
        let at = |why: &str| fail(format!("line {}: {why}: {line}", n + 1));
        if let Some(lang) = line.strip_prefix("```") {
            if !in_code {
                let allowed = ["terraform", "shell", "text", "json", "yaml"];
                if !allowed.contains(&lang) {
                    return Err(at(&format!(
                        "a code block's language is one of {allowed:?} (the Registry renders no diagrams; Terraform is `terraform`)"
                    )));
                }
            }
            in_code = !in_code;
            continue;
        }
        for repo_path in [
            "provider/src",
            "acceptance-tests",
            "examples/",
            "templates/",
            "scripts/",
            "contributing/",
            "GNUmakefile",
            ".rs`",
            "make demo",
            "make bench",
            "make test",
            "make analysis-svg",
            "docs/",
        ] {
            if line.contains(repo_path) {
                return Err(at(&format!("`{repo_path}` names the source repository, which the Registry does not publish")));
            }
        }
        if in_code {
            continue;
        }
        if line.starts_with("![") || line.contains("<img") {
            return Err(at("a picture: the Registry hosts none"));
        }
        for (mark, word) in [
            ("~>", "~> **NOTE:** "),
            ("!>", "!> **WARNING:** "),
            ("->", "-> **Note:** "),
        ] {
            if line.starts_with(mark) && !line.starts_with(word) {
                return Err(at(&format!("a callout starts `{word}`")));
            }
        }
        if let Some(h) = line.strip_prefix("## ") {
            headings.push(h.to_string());
        } else if headings.is_empty() && !line.trim().is_empty() && !line.starts_with('#') {
            intro_lines += 1;
        }
    }
    let kind = if page.starts_with("resources/") {
        Some(("Resource", vec!["Example Usage", "Schema", "Import"]))
    } else if page.starts_with("data-sources/") {
        Some(("Data Source", vec!["Example Usage", "Schema"]))
    } else {
        None
    };
    if let Some((kind, sections)) = kind {
        let name = page
            .split('/')
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(".md");
        let title = format!("# immutable_{name} ({kind})");
        if !text.lines().any(|l| l == title) {
            return Err(fail(format!("the title is `{title}`")));
        }
        if headings != sections {
            return Err(fail(format!(
                "the sections are {sections:?}, as the Registry lays out a {kind} page (found {headings:?}): move the rest into a guide"
            )));
        }
        // The front matter's lines are counted too: a few short paragraphs and callouts.
        if intro_lines > 45 {
            return Err(fail(format!(
                "{intro_lines} lines before Example Usage: keep the introduction short and move the prose into a guide"
            )));
        }
    }
    Ok(())
}

/// Every page: docs path → content.
fn pages(root: &Path) -> anyhow::Result<BTreeMap<PathBuf, String>> {
    let schema = schema()?;
    let templates = root.join("templates");
    let mut out = BTreeMap::new();
    let mut stack = vec![templates.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Some(rel) = p.strip_prefix(&templates)?.to_str().map(String::from) else {
                continue;
            };
            let Some(page) = rel.strip_suffix(".tmpl") else {
                continue;
            };
            let subject = if page == "index.md" {
                schema.pointer("/provider/block")
            } else if let Some(name) = page.strip_prefix("resources/") {
                schema.pointer(&format!(
                    "/resource_schemas/immutable_{}/block",
                    name.trim_end_matches(".md")
                ))
            } else if let Some(name) = page.strip_prefix("data-sources/") {
                schema.pointer(&format!(
                    "/data_source_schemas/immutable_{}/block",
                    name.trim_end_matches(".md")
                ))
            } else {
                None
            };
            let text = render(&std::fs::read_to_string(&p)?, subject, root)?;
            check_links(page, &text)?;
            check_layout(page, &text)?;
            out.insert(PathBuf::from(page), text);
        }
    }
    Ok(out)
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir)?.to_path_buf());
            }
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let check = std::env::args().any(|a| a == "--check");
    let root = repo_root();
    let docs = root.join("docs");
    let rendered = pages(&root)?;
    if check {
        let mut stale = Vec::new();
        for (rel, text) in &rendered {
            let on_disk = std::fs::read_to_string(docs.join(rel)).unwrap_or_default();
            if &on_disk != text {
                stale.push(rel.display().to_string());
            }
        }
        // docs/ holds the published pages alone: the Registry reads nothing else there.
        for extra in files_under(&docs)? {
            if !rendered.contains_key(&extra) {
                stale.push(format!(
                    "{} (not a page of templates/: remove it)",
                    extra.display()
                ));
            }
        }
        if !stale.is_empty() {
            bail!(
                "docs/ is stale ({}): run `make docs` and commit the result",
                stale.join(", ")
            );
        }
        println!("docs/ is up to date ({} pages)", rendered.len());
        return Ok(());
    }
    for extra in files_under(&docs)? {
        if !rendered.contains_key(&extra) {
            std::fs::remove_file(docs.join(&extra))?;
            println!("removed docs/{} (no template renders it)", extra.display());
        }
    }
    for (rel, text) in &rendered {
        let path = docs.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
    }
    println!("wrote {} pages under docs/", rendered.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_layout;

    const FRONT: &str = "---\npage_title: \"immutable_release Resource - immutable\"\nsubcategory: \"\"\ndescription: |-\n  A release.\n---\n\n# immutable_release (Resource)\n\nA short introduction.\n\n";

    fn resource(body: &str) -> String {
        format!("{FRONT}{body}")
    }

    #[test]
    fn a_resource_page_as_the_registry_lays_it_out_passes() {
        let page = resource("~> **NOTE:** a note.\n\n## Example Usage\n\n```terraform\nresource \"x\" \"y\" {}\n```\n\n## Schema\n\n## Import\n\n```shell\nterraform import immutable_release.web web\n```\n");
        check_layout("resources/release.md", &page).unwrap();
    }

    #[test]
    fn what_the_registry_does_not_show_well_is_refused() {
        let long_intro = format!(
            "{}## Example Usage\n\n## Schema\n\n## Import\n",
            "prose\n".repeat(50)
        );
        for (body, why) in [
            (
                "## Example Usage\n\n## Failure semantics\n\n## Schema\n\n## Import\n",
                "the sections are",
            ),
            (
                "## Example Usage\n\n```mermaid\ngraph\n```\n\n## Schema\n\n## Import\n",
                "language",
            ),
            (
                "## Example Usage\n\n```hcl\nx = 1\n```\n\n## Schema\n\n## Import\n",
                "language",
            ),
            (
                "See `examples/complete/main.tf`.\n\n## Example Usage\n\n## Schema\n\n## Import\n",
                "source repository",
            ),
            (
                "![a chart](../images/chart.svg)\n\n## Example Usage\n\n## Schema\n\n## Import\n",
                "picture",
            ),
            (
                "~> NOTE: loose.\n\n## Example Usage\n\n## Schema\n\n## Import\n",
                "callout",
            ),
            (long_intro.as_str(), "lines before Example Usage"),
        ] {
            let err = check_layout("resources/release.md", &resource(body))
                .expect_err(why)
                .to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        let err = check_layout(
            "guides/x.md",
            "---\npage_title: \"x\"\ndescription: |-\n  x\n---\n\n# X\n",
        )
        .expect_err("a guide without its subcategory")
        .to_string();
        assert!(err.contains("subcategory"), "{err}");
        let err = check_layout("index.md", "# immutable Provider\n")
            .expect_err("no front matter")
            .to_string();
        assert!(err.contains("front matter"), "{err}");
    }
}
