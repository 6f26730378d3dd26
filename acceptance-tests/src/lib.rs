//! The acceptance harness: the real Terraform CLI and the provider binary against the local
//! AWS emulator (moto), each test with an emulator of its own.
//!
//! A test reads as numbered steps:
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! let h = acceptance_tests::Harness::start().await?;
//! h.write(&h.release_hcl(&Default::default()))?;
//! h.terraform(&["apply", "-auto-approve"]).await?.ok()?;
//! assert!(h.plan_is_empty().await?);
//! # Ok(()) }
//! ```

pub mod proxy;
pub mod tls_front;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_autoscaling as asg;
use aws_sdk_ec2 as ec2;
use aws_sdk_elasticloadbalancingv2 as elb;
use tokio::process::{Child, Command};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn tool(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default))
}

/// The Terraform binary (`make tools` installs it).
pub fn terraform_bin() -> PathBuf {
    tool("TF_ACC_TERRAFORM", ".tools/bin/terraform")
}

/// The version of the Terraform under test, as (major, minor, patch).
pub fn terraform_version() -> anyhow::Result<(u32, u32, u32)> {
    let out = std::process::Command::new(terraform_bin())
        .args(["version", "-json"])
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .context("running terraform version")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let text = v["terraform_version"]
        .as_str()
        .ok_or_else(|| anyhow!("no terraform_version in {v}"))?;
    let mut parts = text
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    ))
}

/// Whether the Terraform under test is at least `min`; when not, says in one line that
/// `what` is skipped on this version (the suite's run on the newer Terraform covers it).
pub fn terraform_at_least(min: (u32, u32), what: &str) -> anyhow::Result<bool> {
    let v = terraform_version()?;
    if (v.0, v.1) >= min {
        return Ok(true);
    }
    say_skipped(&format!(
        "skipped on Terraform {}.{}.{}: {what} needs {}.{} or later (make test runs the suite on the newer Terraform too)",
        v.0, v.1, v.2, min.0, min.1
    ));
    Ok(false)
}

/// Says that a test did not run here and why: one line in `make test`'s output, never a
/// silent pass. On the test run's own stderr, past libtest's capture of passing tests'
/// output; and, since cargo-nextest keeps a passing test's whole stderr to itself, in the
/// file `TF_ACC_SKIPS` names (the suite prints it at its end).
pub fn say_skipped(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(path) = std::env::var_os("TF_ACC_SKIPS") {
        let test = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test} ({}): {line}", terraform_bin().display());
        }
    }
}

/// The directory holding the provider binary. `make test` builds it first
/// (`cargo build --workspace --bins`); a missing or stale binary is an error, not a hidden
/// rebuild (a build with another feature set than the outer `cargo test` takes minutes).
pub fn provider_dir() -> anyhow::Result<PathBuf> {
    // The benchmark points at the release build.
    if let Some(dir) = std::env::var_os("TF_ACC_PROVIDER_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let bin = target.join("debug").join("terraform-provider-immutable");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .map_err(|_| {
            anyhow!(
                "{} is missing: run `make test`, or `cargo build --workspace --bins` first",
                bin.display()
            )
        })?;
    let root = repo_root();
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    let mut stack = vec![root.join("provider/src")];
    for f in [root.join("provider/Cargo.toml"), root.join("Cargo.lock")] {
        if let Ok(m) = std::fs::metadata(&f).and_then(|m| m.modified()) {
            newest = newest.max(m);
        }
    }
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
    }
    if newest > built {
        // Only a hint: cargo may judge a source whose time changed but whose content did
        // not (cargo fmt) as fresh and keep the binary.
        eprintln!("warning: {} is older than some provider source: run `cargo build --workspace --bins` if it changed", bin.display());
    }
    Ok(target.join("debug"))
}

/// A unique temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates one.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A moto server of the test's own on a free loopback port; killed on drop.
pub struct Emulator {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl Emulator {
    /// Starts moto and waits until it answers.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// [`Emulator::start`] with moto settings in its environment (e.g.
    /// `MOTO_IAM_LOAD_MANAGED_POLICIES=true`, for configurations that attach AWS managed
    /// policies).
    pub async fn start_with(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let moto = tool("TF_ACC_MOTO", ".tools/venv/bin/moto_server");
        if !moto.exists() {
            bail!("{} is missing: run `make tools`", moto.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", moto.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("moto did not start on port {port} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self { url, child })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// AWS clients pointed at the emulator, for fixtures and assertions.
#[derive(Clone)]
pub struct Aws {
    /// EC2.
    pub ec2: ec2::Client,
    /// Auto Scaling.
    pub asg: asg::Client,
    /// ELBv2.
    pub elb: elb::Client,
    /// CloudWatch.
    pub cw: aws_sdk_cloudwatch::Client,
}

impl Aws {
    /// Defines a CloudWatch alarm `name` on the load balancer's 5xx count (state
    /// `INSUFFICIENT_DATA` until set).
    pub async fn put_alarm(&self, name: &str) -> anyhow::Result<()> {
        self.cw
            .put_metric_alarm()
            .alarm_name(name)
            .metric_name("HTTPCode_Target_5XX_Count")
            .namespace("AWS/ApplicationELB")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(10.0)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            )
            .send()
            .await?;
        Ok(())
    }

    /// Sets alarm `name` in `ALARM` (as CloudWatch would when its metric breaches).
    pub async fn fire_alarm(&self, name: &str) -> anyhow::Result<()> {
        self.cw
            .set_alarm_state()
            .alarm_name(name)
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("test")
            .send()
            .await?;
        Ok(())
    }

    /// Puts one write of a fleet's ALB metrics (`AWS/ApplicationELB`, dimensions
    /// `TargetGroup` and `LoadBalancer`), stamped now: its requests, 5xx answers and, when
    /// given, response times (seconds). Through the fault proxy, which keeps CloudWatch's
    /// metrics.
    pub async fn put_alb_metrics(
        &self,
        target_group: &str,
        load_balancer: &str,
        requests: f64,
        errors: f64,
        latency: &[f64],
    ) -> anyhow::Result<()> {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        let dims = [
            ("TargetGroup", target_group),
            ("LoadBalancer", load_balancer),
        ]
        .map(|(k, v)| Dimension::builder().name(k).value(v).build());
        let datum = |name: &str| {
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dims.to_vec()))
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
                    std::time::SystemTime::now(),
                ))
        };
        let mut call = self
            .cw
            .put_metric_data()
            .namespace("AWS/ApplicationELB")
            .metric_data(datum("RequestCount").value(requests).build())
            .metric_data(datum("HTTPCode_Target_5XX_Count").value(errors).build());
        if !latency.is_empty() {
            call = call.metric_data(
                datum("TargetResponseTime")
                    .set_values(Some(latency.to_vec()))
                    .build(),
            );
        }
        call.send().await?;
        Ok(())
    }

    /// Waits (a look every 25 ms, for at most `limit`) until `fleet` has `weight` % of the
    /// listener's traffic; whether it came.
    pub async fn until_weight(
        &self,
        listener: &str,
        fleet: &str,
        weight: i64,
        limit: Duration,
    ) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            let w = self.listener_weights(listener).await.ok();
            if w.as_ref().and_then(|w| w.get(fleet).copied()) == Some(weight) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    /// Fires alarm `alarm` as soon as `fleet` has `weight` % of the listener's traffic
    /// (looking for at most `limit`), in a task of its own; whether it came.
    pub fn fire_alarm_at(
        &self,
        listener: &str,
        fleet: &str,
        weight: i64,
        alarm: &str,
        limit: Duration,
    ) -> tokio::task::JoinHandle<bool> {
        let (aws, listener, fleet, alarm) = (
            self.clone(),
            listener.to_string(),
            fleet.to_string(),
            alarm.to_string(),
        );
        tokio::spawn(async move {
            let reached = aws.until_weight(&listener, &fleet, weight, limit).await;
            if reached {
                aws.fire_alarm(&alarm).await.expect("the alarm fires");
            }
            reached
        })
    }

    /// Sets the listener's default action to a forward to these target groups (by name)
    /// and weights, as someone in the console would.
    pub async fn set_forward(&self, listener: &str, weights: &[(&str, i32)]) -> anyhow::Result<()> {
        let arns = self.target_group_arns().await?;
        let mut config = elb::types::ForwardActionConfig::builder();
        for (name, w) in weights {
            let arn = arns
                .iter()
                .find(|(_, n)| n.as_str() == *name)
                .map(|(a, _)| a.clone())
                .ok_or_else(|| anyhow!("no target group {name}"))?;
            config = config.target_groups(
                elb::types::TargetGroupTuple::builder()
                    .target_group_arn(arn)
                    .weight(*w)
                    .build(),
            );
        }
        self.elb
            .modify_listener()
            .listener_arn(listener)
            .default_actions(
                elb::types::Action::builder()
                    .r#type(elb::types::ActionTypeEnum::Forward)
                    .forward_config(config.build())
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    /// Clients for an endpoint with test credentials.
    pub async fn new(url: &str) -> Self {
        let creds =
            aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "acceptance");
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            // Plain HTTP to the emulator or the proxy (the SDKs' default clients are not built).
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(creds)
            .load()
            .await;
        Self {
            ec2: ec2::Client::new(&conf),
            asg: asg::Client::new(&conf),
            elb: elb::Client::new(&conf),
            cw: aws_sdk_cloudwatch::Client::new(&conf),
        }
    }

    /// Names of every Auto Scaling group.
    pub async fn group_names(&self) -> anyhow::Result<Vec<String>> {
        let out = self.asg.describe_auto_scaling_groups().send().await?;
        let mut v: Vec<String> = out
            .auto_scaling_groups()
            .iter()
            .filter_map(|g| g.auto_scaling_group_name().map(String::from))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Target-tracking policies of a group: (metric, target, resource label), by metric.
    /// Filtered by group here too: the emulator keeps a deleted group's policies.
    pub async fn scaling_policies(
        &self,
        group: &str,
    ) -> anyhow::Result<Vec<(String, f64, Option<String>)>> {
        let out = self
            .asg
            .describe_policies()
            .auto_scaling_group_name(group)
            .send()
            .await?;
        let mut v: Vec<(String, f64, Option<String>)> = out
            .scaling_policies()
            .iter()
            .filter(|p| p.auto_scaling_group_name() == Some(group))
            .filter_map(|p| {
                let c = p.target_tracking_configuration()?;
                let m = c.predefined_metric_specification()?;
                Some((
                    m.predefined_metric_type()?.as_str().to_string(),
                    c.target_value()?,
                    m.resource_label().map(String::from),
                ))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// Sets a group's desired capacity outside Terraform (as a person or a policy would).
    pub async fn set_desired(&self, group: &str, desired: i32) -> anyhow::Result<()> {
        self.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .desired_capacity(desired)
            .send()
            .await?;
        Ok(())
    }

    /// One group.
    pub async fn group(&self, name: &str) -> anyhow::Result<asg::types::AutoScalingGroup> {
        let out = self
            .asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await?;
        out.auto_scaling_groups()
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("no group {name}"))
    }

    /// Names of every target group.
    pub async fn target_group_names(&self) -> anyhow::Result<Vec<String>> {
        let out = self.elb.describe_target_groups().send().await?;
        let mut v: Vec<String> = out
            .target_groups()
            .iter()
            .filter_map(|t| t.target_group_name().map(String::from))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Target group ARN → name.
    pub async fn target_group_arns(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let out = self.elb.describe_target_groups().send().await?;
        Ok(out
            .target_groups()
            .iter()
            .map(|t| {
                (
                    t.target_group_arn().unwrap_or_default().to_string(),
                    t.target_group_name().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    /// The tags a launch template's data puts on the instances it launches.
    pub fn instance_tags(
        data: &ec2::types::ResponseLaunchTemplateData,
    ) -> BTreeMap<String, String> {
        data.tag_specifications()
            .iter()
            .filter(|s| s.resource_type() == Some(&ec2::types::ResourceType::Instance))
            .flat_map(|s| s.tags())
            .map(|t| {
                (
                    t.key().unwrap_or_default().into(),
                    t.value().unwrap_or_default().into(),
                )
            })
            .collect()
    }

    /// The launch template data of the version fleet `group` runs (as its group pins it).
    pub async fn fleet_template_data(
        &self,
        group: &str,
    ) -> anyhow::Result<ec2::types::ResponseLaunchTemplateData> {
        let g = self.group(group).await?;
        let lt = g
            .launch_template()
            .ok_or_else(|| anyhow!("group {group} has no launch template"))?;
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(lt.launch_template_id().unwrap_or_default())
            .versions(lt.version().unwrap_or("$Default"))
            .send()
            .await?;
        out.launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
            .cloned()
            .ok_or_else(|| anyhow!("no template data for {group}"))
    }

    /// Names of every launch template.
    pub async fn launch_template_names(&self) -> anyhow::Result<Vec<String>> {
        let out = self.ec2.describe_launch_templates().send().await?;
        let mut v: Vec<String> = out
            .launch_templates()
            .iter()
            .filter_map(|t| t.launch_template_name().map(String::from))
            .collect();
        v.sort();
        Ok(v)
    }

    /// One more listener on the load balancer (each release owns its listener's default
    /// action), answering 404 until a release serves.
    /// The names of every load balancer.
    pub async fn load_balancer_names(&self) -> anyhow::Result<Vec<String>> {
        let lbs = self.elb.describe_load_balancers().send().await?;
        Ok(lbs
            .load_balancers()
            .iter()
            .filter_map(|l| l.load_balancer_name().map(String::from))
            .collect())
    }

    /// The first listener of the load balancer named `lb_name` (one a configuration made).
    pub async fn listener_of(&self, lb_name: &str) -> anyhow::Result<String> {
        let lbs = self
            .elb
            .describe_load_balancers()
            .names(lb_name)
            .send()
            .await?;
        let lb = lbs
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or_else(|| anyhow!("no load balancer {lb_name}"))?;
        let listeners = self
            .elb
            .describe_listeners()
            .load_balancer_arn(lb)
            .send()
            .await?;
        Ok(listeners
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .ok_or_else(|| anyhow!("load balancer {lb_name} has no listener"))?
            .to_string())
    }

    pub async fn add_listener(&self, lb_arn: &str, port: i32) -> anyhow::Result<String> {
        let listener = self
            .elb
            .create_listener()
            .load_balancer_arn(lb_arn)
            .protocol(elb::types::ProtocolEnum::Http)
            .port(port)
            .default_actions(fixed_404())
            .send()
            .await?;
        Ok(listener
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .ok_or_else(|| anyhow!("no listener created"))?
            .to_string())
    }

    /// A route's actions in order, each as text: its type, then `:tg-name=weight,...` for a
    /// forward or `:status` for a fixed response. `rule_arn` None reads the listener's
    /// default actions.
    pub async fn route_actions(
        &self,
        listener_arn: &str,
        rule_arn: Option<&str>,
    ) -> anyhow::Result<Vec<String>> {
        let mut actions = match rule_arn {
            Some(rule) => self
                .elb
                .describe_rules()
                .rule_arns(rule)
                .send()
                .await?
                .rules()
                .first()
                .map(|r| r.actions().to_vec())
                .unwrap_or_default(),
            None => self
                .elb
                .describe_listeners()
                .listener_arns(listener_arn)
                .send()
                .await?
                .listeners()
                .first()
                .map(|l| l.default_actions().to_vec())
                .unwrap_or_default(),
        };
        actions.sort_by_key(|a| a.order().unwrap_or(0));
        let names = self.target_group_arns().await?;
        Ok(actions
            .iter()
            .map(|a| {
                let kind = a.r#type().map(|t| t.as_str()).unwrap_or("?").to_string();
                if let Some(f) = a.fixed_response_config() {
                    format!("{kind}:{}", f.status_code().unwrap_or("?"))
                } else if let Some(fc) = a.forward_config() {
                    let tgs: Vec<String> = fc
                        .target_groups()
                        .iter()
                        .map(|t| {
                            let arn = t.target_group_arn().unwrap_or_default();
                            format!(
                                "{}={}",
                                names.get(arn).map(String::as_str).unwrap_or(arn),
                                t.weight().unwrap_or(1)
                            )
                        })
                        .collect();
                    format!("{kind}:{}", tgs.join(","))
                } else if let Some(arn) = a.target_group_arn() {
                    format!(
                        "{kind}:{}=1",
                        names.get(arn).map(String::as_str).unwrap_or(arn)
                    )
                } else {
                    kind
                }
            })
            .collect())
    }

    /// Puts OIDC authentication in front of the listener's default action, as a user
    /// protecting a service would (the action AWS never gives back the secret of).
    pub async fn put_oidc_in_front(&self, listener_arn: &str) -> anyhow::Result<()> {
        let oidc = elb::types::Action::builder()
            .r#type(elb::types::ActionTypeEnum::AuthenticateOidc)
            .order(1)
            .authenticate_oidc_config(
                elb::types::AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp.example.com")
                    .authorization_endpoint("https://idp.example.com/authorize")
                    .token_endpoint("https://idp.example.com/token")
                    .user_info_endpoint("https://idp.example.com/userinfo")
                    .client_id("client")
                    .client_secret("secret")
                    .build(),
            )
            .build();
        let mut fixed = fixed_404();
        fixed.order = Some(2);
        self.elb
            .modify_listener()
            .listener_arn(listener_arn)
            .default_actions(oidc)
            .default_actions(fixed)
            .send()
            .await?;
        Ok(())
    }

    /// A rule of the listener matching a host name, answering a fixed 404 until a release
    /// owns it; returns its ARN.
    pub async fn add_host_rule(
        &self,
        listener_arn: &str,
        host: &str,
        priority: i32,
    ) -> anyhow::Result<String> {
        let out = self
            .elb
            .create_rule()
            .listener_arn(listener_arn)
            .priority(priority)
            .conditions(
                elb::types::RuleCondition::builder()
                    .field("host-header")
                    .host_header_config(
                        elb::types::HostHeaderConditionConfig::builder()
                            .values(host)
                            .build(),
                    )
                    .build(),
            )
            .actions(fixed_404())
            .send()
            .await?;
        Ok(out
            .rules()
            .first()
            .and_then(|r| r.rule_arn())
            .ok_or_else(|| anyhow!("no rule created"))?
            .to_string())
    }

    /// Listener rules other than the default one.
    pub async fn rules(&self, listener_arn: &str) -> anyhow::Result<usize> {
        let out = self
            .elb
            .describe_rules()
            .listener_arn(listener_arn)
            .send()
            .await?;
        Ok(out
            .rules()
            .iter()
            .filter(|r| r.is_default() != Some(true))
            .count())
    }

    /// The listener's final default action (authentication may stand in front of it).
    async fn final_action(&self, listener_arn: &str) -> anyhow::Result<Option<elb::types::Action>> {
        let out = self
            .elb
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await?;
        Ok(out.listeners().first().and_then(|l| {
            l.default_actions()
                .iter()
                .max_by_key(|a| a.order().unwrap_or(0))
                .cloned()
        }))
    }

    /// The listener's default action: target group name → weight for a forward, or
    /// `{"fixed-response": status}`.
    pub async fn listener_weights(
        &self,
        listener_arn: &str,
    ) -> anyhow::Result<BTreeMap<String, i64>> {
        let names = self.target_group_arns().await?;
        let action = self
            .final_action(listener_arn)
            .await?
            .ok_or_else(|| anyhow!("listener has no default action"))?;
        let mut m = BTreeMap::new();
        if let Some(f) = action.fixed_response_config() {
            m.insert(
                "fixed-response".to_string(),
                f.status_code().unwrap_or("0").parse().unwrap_or(0),
            );
        }
        if let Some(fc) = action.forward_config() {
            for t in fc.target_groups() {
                let arn = t.target_group_arn().unwrap_or_default();
                m.insert(
                    names.get(arn).cloned().unwrap_or_else(|| arn.to_string()),
                    i64::from(t.weight().unwrap_or(1)),
                );
            }
        } else if let Some(arn) = action.target_group_arn() {
            m.insert(
                names.get(arn).cloned().unwrap_or_else(|| arn.to_string()),
                100,
            );
        }
        Ok(m)
    }
}

impl Aws {
    /// The listener's default action's group stickiness in seconds (None: off or not a
    /// forward).
    pub async fn listener_stickiness(&self, listener_arn: &str) -> anyhow::Result<Option<i64>> {
        Ok(self
            .final_action(listener_arn)
            .await?
            .and_then(|a| a.forward_config().cloned())
            .and_then(|f| f.target_group_stickiness_config().cloned())
            .filter(|c| c.enabled() == Some(true))
            .map(|c| i64::from(c.duration_seconds().unwrap_or(0))))
    }

    /// Switches the listener's stickiness off behind the provider's back: the same weights,
    /// no stickiness (a console user unticking it).
    pub async fn switch_stickiness_off(&self, listener_arn: &str) -> anyhow::Result<()> {
        let out = self
            .elb
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await?;
        let mut actions = out
            .listeners()
            .first()
            .map(|l| l.default_actions().to_vec())
            .unwrap_or_default();
        if let Some(last) = actions.last_mut() {
            if let Some(fc) = last.forward_config.as_mut() {
                fc.target_group_stickiness_config = None;
            }
        }
        self.elb
            .modify_listener()
            .listener_arn(listener_arn)
            .set_default_actions(Some(actions))
            .send()
            .await?;
        Ok(())
    }
}

/// A fixed 404 response: what a listener or rule answers before a release owns it.
fn fixed_404() -> elb::types::Action {
    elb::types::Action::builder()
        .r#type(elb::types::ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            elb::types::FixedResponseActionConfig::builder()
                .status_code("404")
                .build(),
        )
        .build()
}

/// What a user already has before writing a release: a VPC, subnets, an ALB and a listener,
/// and two available images.
#[derive(Debug, Clone)]
pub struct Fixtures {
    /// Default VPC.
    pub vpc_id: String,
    /// Two of its subnets.
    pub subnet_ids: Vec<String>,
    /// The ALB listener (default action: a fixed 404).
    pub listener_arn: String,
    /// Amazon Linux 2.
    pub image_a: String,
    /// Another built-in image.
    pub image_b: String,
    /// A third.
    pub image_c: String,
    /// The load balancer of the listener.
    pub load_balancer_arn: String,
}

impl Fixtures {
    /// Creates them in the emulator.
    pub async fn create(aws: &Aws) -> anyhow::Result<Self> {
        let vpcs = aws
            .ec2
            .describe_vpcs()
            .filters(
                ec2::types::Filter::builder()
                    .name("isDefault")
                    .values("true")
                    .build(),
            )
            .send()
            .await?;
        let vpc_id = vpcs
            .vpcs()
            .first()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| anyhow!("no default VPC"))?
            .to_string();
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(
                ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(&vpc_id)
                    .build(),
            )
            .send()
            .await?;
        let subnet_ids: Vec<String> = subnets
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(String::from))
            .take(2)
            .collect();
        let lb = aws
            .elb
            .create_load_balancer()
            .name("fixture-alb")
            .r#type(elb::types::LoadBalancerTypeEnum::Application)
            .set_subnets(Some(subnet_ids.clone()))
            .send()
            .await?;
        let lb_arn = lb
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .unwrap()
            .to_string();
        let listener_arn = aws.add_listener(&lb_arn, 80).await?;
        let images = aws
            .ec2
            .describe_images()
            .owners("amazon")
            .filters(
                ec2::types::Filter::builder()
                    .name("architecture")
                    .values("x86_64")
                    .build(),
            )
            .send()
            .await?;
        let mut others = images
            .images()
            .iter()
            .filter_map(|i| i.image_id())
            .filter(|i| *i != "ami-04681a1dbd79675a5")
            .filter(|i| i.len() == 12 || i.len() == 21)
            .map(String::from);
        Ok(Self {
            vpc_id,
            subnet_ids,
            listener_arn,
            image_a: "ami-04681a1dbd79675a5".into(),
            image_b: others.next().ok_or_else(|| anyhow!("no second image"))?,
            image_c: others.next().ok_or_else(|| anyhow!("no third image"))?,
            load_balancer_arn: lb_arn,
        })
    }
}

/// What a Terraform run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// Ok when the exit code is 0, else an error with the output.
    pub fn ok(self) -> anyhow::Result<Self> {
        if self.code != 0 {
            bail!(
                "terraform exited {}\n--- stdout\n{}\n--- stderr\n{}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }

    /// Whether the output holds `text`, white space folded on both sides.
    pub fn says(&self, text: &str) -> bool {
        self.all().contains(&fold(text))
    }

    /// stdout and stderr together, with runs of white space folded to one space (Terraform
    /// wraps long diagnostics).
    pub fn all(&self) -> String {
        fold(&format!("{}\n{}", self.stdout, self.stderr))
    }
}

/// Folds every run of white space to one space.
pub fn fold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The head of every configuration the tests write: the provider requirement, the provider
/// block against `endpoint` (plus `settings`, lines of that block) and the `image_id`
/// variable defaulting to `image`.
pub fn config_head(endpoint: &str, settings: &str, image: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    immutable = {{ source = "immutable-infra/immutable" }}
  }}
}}

provider "immutable" {{
  region        = "us-east-1"
  endpoint_url  = "{endpoint}"
{settings}}}

variable "image_id" {{
  type    = string
  default = "{image}"
}}
"#
    )
}

/// A canary of 10 % then 50 %, paused two seconds each, watched by alarm `web-5xx`.
pub const CANARY_10_50: &str = r#"  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "2s"
  }
  canary_step {
    weight = 50
    pause  = "2s"
  }
  alarm_names = ["web-5xx"]"#;

/// Options of the generated release configuration.
#[derive(Debug, Clone)]
pub struct ReleaseOpts {
    /// `name`.
    pub name: String,
    /// `image_id` default (the variable `image_id` overrides it).
    pub image: Option<String>,
    /// Extra HCL lines inside the resource.
    pub extra: String,
    /// Extra HCL inside `load_balancer`.
    pub lb_extra: String,
    /// Endpoint the provider talks to (default: the harness's proxy, AWS behaviour on).
    pub endpoint: Option<String>,
    /// The provider's `max_retries`.
    pub max_retries: u32,
    /// The provider's `poll_interval` (empty: the provider's default).
    pub poll_interval: String,
}

impl Default for ReleaseOpts {
    fn default() -> Self {
        Self {
            name: "web".into(),
            image: None,
            extra: String::new(),
            lb_extra: String::new(),
            endpoint: None,
            max_retries: 3,
            // Fast enough for second-long pauses, slow enough that a dozen tests side by
            // side do not keep their emulators busy answering polls.
            poll_interval: "500ms".into(),
        }
    }
}

/// One test's world: an emulator, the fault proxy in front of it (AWS's own behaviour on:
/// see [`proxy::Faults::default`]), the fixtures, a Terraform working directory.
/// Configurations point the provider at the proxy; `aws` (the assertions' clients) talks
/// to the emulator directly, the truth.
pub struct Harness {
    /// The emulator.
    pub emulator: Emulator,
    /// The proxy the provider talks to.
    pub proxy: proxy::FaultProxy,
    /// Clients for assertions.
    pub aws: Aws,
    /// The fixtures.
    pub fx: Fixtures,
    /// The working directory.
    pub dir: TempDir,
    cli_config: PathBuf,
}

impl Harness {
    /// Starts an emulator, creates the fixtures, prepares a working directory with a CLI
    /// config whose `dev_overrides` point at the freshly built provider.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// [`Harness::start`] with moto settings (see [`Emulator::start_with`]).
    pub async fn start_with(emulator_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let started = Instant::now();
        let provider = provider_dir()?;
        eprintln!("provider built ({:.1} s)", started.elapsed().as_secs_f64());
        let emulator = Emulator::start_with(emulator_env).await?;
        let proxy = proxy::FaultProxy::start(&emulator.url).await?;
        eprintln!("emulator up ({:.1} s)", started.elapsed().as_secs_f64());
        let aws = Aws::new(&emulator.url).await;
        let fx = Fixtures::create(&aws).await?;
        eprintln!("fixtures made ({:.1} s)", started.elapsed().as_secs_f64());
        let dir = TempDir::new("immutable-acc")?;
        let cli_config = dir.0.join("terraform.rc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"immutable-infra/immutable\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider.display()
            ),
        )?;
        Ok(Self {
            emulator,
            proxy,
            aws,
            fx,
            dir,
            cli_config,
        })
    }

    /// Writes `main.tf`.
    pub fn write(&self, hcl: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.0.join("main.tf"), hcl)?;
        Ok(())
    }

    /// A configuration with one release and outputs for its read-only attributes.
    pub fn release_hcl(&self, o: &ReleaseOpts) -> String {
        let endpoint = o.endpoint.clone().unwrap_or_else(|| self.proxy.url.clone());
        let subnets = serde_json::to_string(&self.fx.subnet_ids).unwrap();
        let image = o.image.clone().unwrap_or_else(|| self.fx.image_a.clone());
        let poll = if o.poll_interval.is_empty() {
            String::new()
        } else {
            format!("  poll_interval = \"{}\"\n", o.poll_interval)
        };
        let head = config_head(
            &endpoint,
            &format!("{poll}  max_retries   = {}\n", o.max_retries),
            &image,
        );
        format!(
            r#"{head}
resource "immutable_release" "web" {{
  name          = "{name}"
  image_id      = var.image_id
  instance_type = "t3.micro"
  subnet_ids    = {subnets}
{extra}
  load_balancer {{
    listener_arn = "{listener}"
    vpc_id       = "{vpc}"
{lb_extra}
  }}
}}

output "release" {{ value = immutable_release.web.release }}
output "fleet_name" {{ value = immutable_release.web.fleet_name }}
output "previous_image_id" {{ value = immutable_release.web.previous_image_id }}
output "traffic" {{ value = immutable_release.web.traffic }}
"#,
            name = o.name,
            extra = o.extra,
            lb_extra = o.lb_extra,
            listener = self.fx.listener_arn,
            vpc = self.fx.vpc_id,
        )
    }

    /// Runs terraform with the arguments (plus `-no-color` and, where it applies,
    /// `-input=false`) in the working directory.
    pub async fn terraform(&self, args: &[&str]) -> anyhow::Result<Run> {
        self.terraform_env(args, &[]).await
    }

    /// [`Harness::terraform`] with extra environment variables (e.g. `TF_LOG`).
    pub async fn terraform_env(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Run> {
        // Options go right after the (sub)command: `providers schema -json`, `state rm -no-color
        // A`, `import -no-color A B`.
        let words = if matches!(args[0], "providers" | "state") && args.len() > 1 {
            2
        } else {
            1
        };
        let mut full: Vec<&str> = args[..words].to_vec();
        if matches!(args[0], "apply" | "plan" | "destroy" | "import" | "refresh") {
            full.push("-input=false");
        }
        if args[0] != "providers" && !(args[0] == "state" && args.get(1) == Some(&"list")) {
            full.push("-no-color");
        }
        full.extend(&args[words..]);
        let started = Instant::now();
        let out = self
            .command()
            .args(&full)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .await
            .context("running terraform")?;
        eprintln!(
            "terraform {} ({:.1} s)",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        Ok(Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Terraform in the working directory with an environment of the harness's own (the
    /// caller's is cleared), including the hostile `RUST_BACKTRACE=1` of this machine,
    /// which the provider must neutralise itself.
    fn command(&self) -> Command {
        self.command_in(&self.dir.0)
    }

    /// [`Harness::command`] in another working directory.
    pub fn command_in(&self, dir: &std::path::Path) -> Command {
        let mut c = Command::new(terraform_bin());
        c.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_BACKTRACE", "1");
        // For a failing test: Terraform's and the provider's log, appended to this file.
        if let Ok(path) = std::env::var("TF_ACC_LOG_PATH") {
            c.env("TF_LOG", "DEBUG").env("TF_LOG_PATH", path);
        }
        c
    }

    /// Starts terraform in its own process group (so that it and the provider it starts
    /// can be killed together), without waiting for it.
    pub fn spawn_terraform(&self, args: &[&str]) -> anyhow::Result<Child> {
        self.spawn(&self.dir.0, args, Stdio::null)
    }

    /// Starts terraform (own process group) in `dir` with its output captured, without
    /// waiting for it.
    pub fn spawn_terraform_in(
        &self,
        dir: &std::path::Path,
        args: &[&str],
    ) -> anyhow::Result<Child> {
        self.spawn(dir, args, Stdio::piped)
    }

    fn spawn(
        &self,
        dir: &std::path::Path,
        args: &[&str],
        output: fn() -> Stdio,
    ) -> anyhow::Result<Child> {
        let child = self
            .command_in(dir)
            .args(args)
            .arg("-no-color")
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        Ok(child)
    }

    /// A copy of the working directory (configuration and state) for a second runner.
    pub fn copy_workdir(&self) -> anyhow::Result<TempDir> {
        let copy = TempDir::new("immutable-acc-copy")?;
        for f in ["main.tf", "terraform.tfstate"] {
            let from = self.dir.0.join(f);
            if from.exists() {
                std::fs::copy(&from, copy.0.join(f))?;
            }
        }
        Ok(copy)
    }

    /// Sends SIGINT to one process.
    pub fn interrupt(pid: u32) -> anyhow::Result<()> {
        Self::signal_process(pid, libc::SIGINT)
    }

    fn signal_process(pid: u32, signal: i32) -> anyhow::Result<()> {
        let pid = i32::try_from(pid)?;
        anyhow::ensure!(pid > 1, "refusing to signal process {pid}");
        // SAFETY: kill(2) with a positive pid signals exactly that process.
        let rc = unsafe { libc::kill(pid, signal) };
        anyhow::ensure!(
            rc == 0,
            "kill({pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// Ctrl-C in a terminal: SIGINT to the whole process group (Terraform, the Terraform
    /// process doing the work, and the provider).
    pub fn interrupt_group(pgid: u32) -> anyhow::Result<()> {
        Self::signal_group(pgid, libc::SIGINT)
    }

    /// The process that runs Terraform's work: Terraform 1.0 runs it in a child of the
    /// process it was started as (panicwrap; the parent ignores SIGINT), later versions
    /// (panicwrap removed) in that process itself.
    pub fn terraform_worker(pid: u32) -> anyhow::Result<u32> {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        match Self::child_named(
            pid,
            exe.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("terraform"),
        ) {
            Ok(child) => Ok(child),
            Err(_) if crate::terraform_version()? >= (1, 1, 0) => Ok(pid),
            Err(e) => Err(e),
        }
    }

    /// The provider process Terraform (started as `pid`) is running now.
    pub fn provider_process(pid: u32) -> anyhow::Result<u32> {
        Self::child_named(Self::terraform_worker(pid)?, "terraform-provider-immutable")
    }

    /// Sends SIGTERM to one process.
    pub fn terminate(pid: u32) -> anyhow::Result<()> {
        Self::signal_process(pid, libc::SIGTERM)
    }

    fn child_named(pid: u32, name: &str) -> anyhow::Result<u32> {
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let ppid: u32 = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let exe = std::fs::read_link(format!("/proc/{child}/exe")).unwrap_or_default();
            if ppid == pid && exe.file_name().is_some_and(|n| n == name) {
                return Ok(child);
            }
        }
        bail!("process {pid} has no child {name}")
    }

    /// Kills a process group with SIGKILL: Terraform and the provider it started.
    pub fn kill_group(pgid: u32) -> anyhow::Result<()> {
        Self::signal_group(pgid, libc::SIGKILL)
    }

    fn signal_group(pgid: u32, signal: i32) -> anyhow::Result<()> {
        let pgid = i32::try_from(pgid)?;
        // Never 0 or 1: that would be this test's own group or every process.
        anyhow::ensure!(pgid > 1, "refusing to kill process group {pgid}");
        // Only a group that leads itself and is not this test's own.
        let stat = std::fs::read_to_string(format!("/proc/{pgid}/stat"))?;
        let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let group: i32 = after_name
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        // SAFETY: getpgrp(2) has no preconditions.
        let own = unsafe { libc::getpgrp() };
        anyhow::ensure!(
            group == pgid && group != own,
            "process {pgid} is in group {group}, not its own"
        );
        // SAFETY: kill(2) with a negative pid signals exactly that process group.
        let rc = unsafe { libc::kill(-pgid, signal) };
        anyhow::ensure!(
            rc == 0,
            "kill(-{pgid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// `terraform apply -auto-approve` with `-var` pairs; must succeed.
    pub async fn apply(&self, vars: &[(&str, &str)]) -> anyhow::Result<Run> {
        let var_args: Vec<String> = vars.iter().map(|(k, v)| format!("-var={k}={v}")).collect();
        let mut args = vec!["apply", "-auto-approve"];
        args.extend(var_args.iter().map(String::as_str));
        self.terraform(&args).await?.ok()
    }

    /// `terraform plan -detailed-exitcode`: Ok(true) when there are no changes.
    pub async fn plan_is_empty_with(&self, vars: &[(&str, &str)]) -> anyhow::Result<bool> {
        let var_args: Vec<String> = vars.iter().map(|(k, v)| format!("-var={k}={v}")).collect();
        let mut args = vec!["plan", "-detailed-exitcode"];
        args.extend(var_args.iter().map(String::as_str));
        let run = self.terraform(&args).await?;
        match run.code {
            0 => Ok(true),
            2 => {
                eprintln!("plan shows changes:\n{}", run.stdout);
                Ok(false)
            }
            _ => bail!("plan failed:\n{}", run.all()),
        }
    }

    /// `terraform plan -detailed-exitcode` with no variables.
    pub async fn plan_is_empty(&self) -> anyhow::Result<bool> {
        self.plan_is_empty_with(&[]).await
    }

    /// `terraform output -json` as a map.
    pub async fn outputs(&self) -> anyhow::Result<serde_json::Value> {
        let run = self.terraform(&["output", "-json"]).await?.ok()?;
        let v: serde_json::Value = serde_json::from_str(&run.stdout)?;
        Ok(v)
    }

    /// `terraform state show -no-color ADDRESS` text... as JSON of the resource's values.
    pub async fn resource_values(&self) -> anyhow::Result<serde_json::Value> {
        let run = self.terraform(&["show", "-json"]).await?.ok()?;
        let v: serde_json::Value = serde_json::from_str(&run.stdout)?;
        v.pointer("/values/root_module/resources/0/values")
            .cloned()
            .ok_or_else(|| anyhow!("no resource in state"))
    }

    /// An SNS topic `name` delivering to an SQS queue of the same name, as teams route
    /// releases' notifications (to chat, a pipeline): (topic ARN, queue URL).
    pub async fn topic_with_queue(&self, name: &str) -> anyhow::Result<(String, String)> {
        let url = &self.emulator.url;
        let topic = proxy::query(
            url,
            "sns",
            "2010-03-31",
            &[("Action", "CreateTopic"), ("Name", name)],
        )
        .await
        .and_then(|x| xml_text(&x, "TopicArn").into_iter().next())
        .ok_or_else(|| anyhow!("CreateTopic answered no TopicArn"))?;
        let queue = proxy::query(
            url,
            "sqs",
            "2012-11-05",
            &[("Action", "CreateQueue"), ("QueueName", name)],
        )
        .await
        .and_then(|x| xml_text(&x, "QueueUrl").into_iter().next())
        .ok_or_else(|| anyhow!("CreateQueue answered no QueueUrl"))?;
        let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        let sub = proxy::query(
            url,
            "sns",
            "2010-03-31",
            &[
                ("Action", "Subscribe"),
                ("TopicArn", &topic),
                ("Protocol", "sqs"),
                ("Endpoint", &queue_arn),
            ],
        )
        .await
        .unwrap_or_default();
        if !sub.contains("SubscriptionArn") {
            bail!("Subscribe failed: {sub}");
        }
        Ok((topic, queue))
    }

    /// The SNS envelopes (`Subject`, `Message`, …) the queue holds, taken off it.
    pub async fn queue_messages(&self, queue_url: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        loop {
            let answer = proxy::query(
                &self.emulator.url,
                "sqs",
                "2012-11-05",
                &[
                    ("Action", "ReceiveMessage"),
                    ("QueueUrl", queue_url),
                    ("MaxNumberOfMessages", "10"),
                    ("VisibilityTimeout", "600"),
                ],
            )
            .await
            .ok_or_else(|| anyhow!("ReceiveMessage failed"))?;
            let bodies = xml_text(&answer, "Body");
            if bodies.is_empty() {
                return Ok(out);
            }
            for b in bodies {
                out.push(
                    serde_json::from_str(&b).with_context(|| format!("an SNS envelope: {b}"))?,
                );
            }
        }
    }

    /// Every object named like the release's in the emulator: groups, target groups and
    /// launch templates whose names start with `<name>-`.
    pub async fn owned_objects(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let prefix = format!("{name}-");
        let mut v = Vec::new();
        v.extend(
            self.aws
                .group_names()
                .await?
                .into_iter()
                .filter(|n| n.starts_with(&prefix))
                .map(|n| format!("group {n}")),
        );
        v.extend(
            self.aws
                .target_group_names()
                .await?
                .into_iter()
                .filter(|n| n.starts_with(&prefix))
                .map(|n| format!("target group {n}")),
        );
        v.extend(
            self.aws
                .launch_template_names()
                .await?
                .into_iter()
                .filter(|n| n.starts_with(&prefix))
                .map(|n| format!("launch template {n}")),
        );
        Ok(v)
    }
}

/// Distinct listener splits, in the order they were seen.
pub type Splits = Vec<BTreeMap<String, i64>>;

/// Samples the listener every 50 ms until stopped; returns the distinct splits in order.
pub fn watch_splits(
    aws: Aws,
    listener: String,
) -> (Arc<std::sync::Mutex<bool>>, tokio::task::JoinHandle<Splits>) {
    let stop = Arc::new(std::sync::Mutex::new(false));
    let s2 = stop.clone();
    let task = tokio::spawn(async move {
        let mut seen: Splits = Vec::new();
        while !*s2.lock().unwrap() {
            if let Ok(w) = aws.listener_weights(&listener).await {
                if seen.last() != Some(&w) {
                    seen.push(w);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    });
    (stop, task)
}

/// Samples the listener, and the target health of every target group it sends traffic to,
/// for as long as it runs; any sample where traffic pointed at a target group that was not
/// healthy at that moment (no target, or a target not `healthy`) is a violation. Give it
/// clients that see what the provider sees (through the fault proxy when there is one).
pub struct TrafficWatcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl TrafficWatcher {
    /// Starts sampling every 20 ms.
    pub fn start(aws: Aws, listener_arn: String) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = 0;
            let mut violations = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                if let Ok(Some(v)) = Self::sample(&aws, &listener_arn).await {
                    violations.push(v);
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (samples, violations)
        });
        Self { stop, task }
    }

    async fn sample(aws: &Aws, listener_arn: &str) -> anyhow::Result<Option<String>> {
        let out = aws
            .elb
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await?;
        // The final action carries the traffic (authentication may stand in front).
        let Some(action) = out.listeners().first().and_then(|l| {
            l.default_actions()
                .iter()
                .max_by_key(|a| a.order().unwrap_or(0))
                .cloned()
        }) else {
            return Ok(None);
        };
        let Some(fc) = action.forward_config() else {
            return Ok(None);
        };
        for t in fc.target_groups() {
            if t.weight().unwrap_or(1) == 0 {
                continue;
            }
            let arn = t.target_group_arn().unwrap_or_default();
            let health = aws
                .elb
                .describe_target_health()
                .target_group_arn(arn)
                .send()
                .await?;
            let states: Vec<String> = health
                .target_health_descriptions()
                .iter()
                .map(|d| {
                    d.target_health()
                        .and_then(|h| h.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default()
                })
                .collect();
            if states.is_empty() || states.iter().any(|s| s != "healthy") {
                return Ok(Some(format!(
                    "weight {} on {arn} while its targets were {states:?}",
                    t.weight().unwrap_or(1)
                )));
            }
        }
        Ok(None)
    }

    /// Stops; returns the number of samples and the violations seen.
    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or_default()
    }
}

/// Polls `cond` every 20 ms for up to `limit`; Ok(true) as soon as it holds.
pub async fn wait_until<F, Fut>(limit: Duration, mut cond: F) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond().await? {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(false)
}

/// Kills a process group (SIGKILL) when dropped, unless it is already gone: a failing test
/// never leaves Terraform or a provider running.
pub struct GroupGuard(pub u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = Harness::kill_group(self.0);
    }
}

/// hashicorp/aws's filesystem mirror (`make tools` records it as `TF_ACC_PLUGIN_MIRROR`),
/// when this machine has one.
pub fn aws_mirror() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("TF_ACC_PLUGIN_MIRROR")?);
    dir.join("registry.terraform.io/hashicorp/aws")
        .is_dir()
        .then_some(dir)
}

/// Terraform as a user runs it in `dir`: the CLI configuration `rc` and nothing else of
/// the caller's environment (no development overrides), test credentials, no input.
pub fn user_terraform(dir: &Path, home: &Path, rc: &Path) -> Command {
    let mut c = Command::new(terraform_bin());
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TF_CLI_CONFIG_FILE", rc)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    c
}

/// A working directory driven as a user drives Terraform: providers installed by
/// `terraform init` from filesystem mirrors only (hashicorp/* from `aws`, this provider's
/// build from a mirror of its own when `with_ours`), no development overrides.
pub struct MirrorWorkdir {
    /// The configuration's directory.
    pub dir: PathBuf,
    rc: PathBuf,
}

impl MirrorWorkdir {
    /// Lays out `root/work` (the configuration goes there) and `root/mirror`.
    pub fn new(root: &Path, aws: &Path, with_ours: bool) -> anyhow::Result<Self> {
        let dir = root.join("work");
        std::fs::create_dir_all(&dir)?;
        let mut mirrors = format!(
            "  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/hashicorp/*\"]\n  }}\n",
            aws.display()
        );
        if with_ours {
            // The unpacked layout; a symlinked file is fine (a symlinked directory is not).
            let version = env!("CARGO_PKG_VERSION");
            let own = root.join("mirror");
            let bin_dir = own.join(format!(
                "registry.terraform.io/immutable-infra/immutable/{version}/linux_amd64"
            ));
            std::fs::create_dir_all(&bin_dir)?;
            std::os::unix::fs::symlink(
                provider_dir()?.join("terraform-provider-immutable"),
                bin_dir.join(format!("terraform-provider-immutable_v{version}")),
            )?;
            mirrors.push_str(&format!(
                "  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/immutable-infra/*\"]\n  }}\n",
                own.display()
            ));
        }
        let rc = root.join("terraform.rc");
        std::fs::write(&rc, format!("provider_installation {{\n{mirrors}}}\n"))?;
        Ok(Self { dir, rc })
    }

    /// Runs terraform with `args` (and `-no-color`); must succeed; stdout and stderr.
    pub async fn terraform(&self, args: &[&str]) -> anyhow::Result<String> {
        let started = Instant::now();
        let out = user_terraform(&self.dir, &self.dir, &self.rc)
            .args(args)
            .arg("-no-color")
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

    /// Runs terraform with `args`, success or not: whether it succeeded, and its stdout.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<(bool, String)> {
        let out = user_terraform(&self.dir, &self.dir, &self.rc)
            .args(args)
            .output()
            .await?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        ))
    }

    /// `terraform output -raw NAME`.
    pub async fn output(&self, name: &str) -> anyhow::Result<String> {
        Ok(self
            .terraform(&["output", "-raw", name])
            .await?
            .trim()
            .to_string())
    }
}

/// The override file that points an example configuration at the local AWS at `url`:
/// both providers' blocks and, when `release_body` is not empty, the release `release`'s
/// blocks that replace the example's (an override's block replaces the whole block, so
/// short pauses are given whole). Nothing else of the example differs.
pub fn local_override(url: &str, release: &str, release_body: &str) -> String {
    let mut out = format!(
        "# The local AWS instead of a real account, and short pauses: nothing else differs.\n{}\nprovider \"immutable\" {{\n  endpoint_url  = \"{url}\"\n  poll_interval = \"200ms\"\n}}\n",
        aws_provider_block(url)
    );
    if !release_body.is_empty() {
        out.push_str(&format!(
            "\nresource \"immutable_release\" \"{release}\" {{\n{release_body}\n}}\n"
        ));
    }
    out
}

/// Canary steps of 10 % and 50 % with pauses of a second, for [`local_override`].
pub const SHORT_CANARY_STEPS: &str = r#"  canary_step {
    weight = 10
    pause  = "1s"
  }
  canary_step {
    weight = 50
    pause  = "1s"
  }"#;

/// A `provider "aws"` block for the local AWS at `url` (every service the examples use).
pub fn aws_provider_block(url: &str) -> String {
    let endpoints = ["autoscaling", "cloudwatch", "ec2", "elbv2", "iam", "sts"]
        .iter()
        .map(|s| format!("    {s} = \"{url}\"\n"))
        .collect::<String>();
    format!(
        r#"provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {{
{endpoints}  }}
}}
"#
    )
}

/// Samples a route every `every` until stopped: every sample, in order (see
/// [`Aws::route_actions`]). Reads that fail are left out.
pub struct RouteWatcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Vec<String>>>,
}

impl RouteWatcher {
    /// Starts sampling.
    pub fn start(aws: Aws, listener_arn: &str, rule_arn: Option<&str>, every: Duration) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, listener, rule) = (
            stop.clone(),
            listener_arn.to_string(),
            rule_arn.map(String::from),
        );
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let Ok(a) = aws.route_actions(&listener, rule.as_deref()).await {
                    seen.push(a);
                }
                tokio::time::sleep(every).await;
            }
            seen
        });
        Self { stop, task }
    }

    /// Stops and returns the samples.
    pub async fn stop(self) -> anyhow::Result<Vec<Vec<String>>> {
        self.stop.store(true, Ordering::SeqCst);
        Ok(self.task.await?)
    }
}

/// The texts of every `<tag>…</tag>` of an XML answer, entities decoded.
pub fn xml_text(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(|t| {
            t.replace("&quot;", "\"")
                .replace("&#34;", "\"")
                .replace("&apos;", "'")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#xD;", "\r")
                .replace("&#xA;", "\n")
                .replace("&amp;", "&")
        })
        .collect()
}
