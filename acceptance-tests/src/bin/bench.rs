//! `make bench`: the provider's own costs, measured with a release build of the provider,
//! the local AWS (moto) and the real Terraform CLI. Prints one table and writes it as JSON
//! (`target/bench/bench.json`). See `contributing/benchmarks.md` for how to read it.
//!
//! Environment: `TF_ACC_PROVIDER_DIR` (the release build's directory; `make bench` sets it),
//! `BENCH_RUNS` (runs per single-release figure, default 5), `BENCH_SCALE_RUNS` (default 3),
//! `BENCH_SCALE` (release counts, default `1,10,100`), `BENCH_PARALLELISM` (default `10,50`),
//! `BENCH_BASELINE_DIR` (another build of the provider, e.g. of an earlier commit: the same
//! figures are measured for it in the same run, under `baseline` in the JSON),
//! `BENCH_PEER_RUNS` (default 3: the peer, hashicorp/aws's classic pattern for the same image
//! change, when the machine has its filesystem mirror; under `peer` in the JSON).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acceptance_tests::proxy::{FaultProxy, Faults};
use acceptance_tests::{
    aws_mirror, aws_provider_block, Harness, MirrorWorkdir, ReleaseOpts, TempDir,
};
use serde_json::{json, Value};

/// Median, min and max of some runs.
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let n = v.len();
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Self {
            median,
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }

    fn json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

/// Peak RSS of any process whose executable's name starts with a prefix (this provider's,
/// or hashicorp/aws's), sampled every 5 ms from /proc (VmHWM).
struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(exe_prefix: &'static str) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak_kib.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Ok(dir) = std::fs::read_dir("/proc") {
                    for e in dir.flatten() {
                        let path = e.path();
                        let is_provider = std::fs::read_link(path.join("exe"))
                            .ok()
                            .and_then(|x| {
                                x.file_name()
                                    .map(|n| n.to_string_lossy().starts_with(exe_prefix))
                            })
                            .unwrap_or(false);
                        if !is_provider {
                            continue;
                        }
                        if let Ok(status) = std::fs::read_to_string(path.join("status")) {
                            if let Some(kib) = status
                                .lines()
                                .find(|l| l.starts_with("VmHWM:"))
                                .and_then(|l| l.split_whitespace().nth(1))
                                .and_then(|v| v.parse::<u64>().ok())
                            {
                                p.fetch_max(kib, Ordering::SeqCst);
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { peak_kib, stop }
    }

    /// The peak since the last take, in MiB; resets it.
    fn take_mib(&self) -> f64 {
        self.peak_kib.swap(0, Ordering::SeqCst) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn total(calls: &BTreeMap<String, u64>) -> f64 {
    calls.values().sum::<u64>() as f64
}

/// Per operation: plan seconds, apply seconds, calls by action, peak RSS.
#[derive(Default)]
struct OpRuns {
    plan: Vec<f64>,
    apply: Vec<f64>,
    calls: Vec<BTreeMap<String, u64>>,
    rss: Vec<f64>,
}

impl OpRuns {
    fn json(&self) -> Value {
        let mut by_action: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for c in &self.calls {
            for (k, v) in c {
                by_action.entry(k.clone()).or_default().push(*v as f64);
            }
        }
        let runs = self.calls.len();
        let by_action: BTreeMap<String, f64> = by_action
            .into_iter()
            .map(|(k, mut v)| {
                v.resize(runs, 0.0);
                (k, Stat::of(v).median)
            })
            .collect();
        json!({
            "plan_s": Stat::of(self.plan.clone()).json(),
            "apply_s": Stat::of(self.apply.clone()).json(),
            "aws_calls": Stat::of(self.calls.iter().map(total).collect()).json(),
            "aws_calls_by_action_median": by_action,
            "provider_peak_rss_mib": Stat::of(self.rss.clone()).json(),
        })
    }
}

const OPS: [&str; 5] = [
    "first release",
    "blue/green release",
    "canary, zero pauses",
    "rollback (warm fleet)",
    "canary with analysis (4 s pause, judged every 2 s)",
];

async fn single_release_ops(runs: usize, rss: &RssSampler) -> anyhow::Result<Vec<OpRuns>> {
    let mut out: Vec<OpRuns> = (0..OPS.len()).map(|_| OpRuns::default()).collect();
    for run in 0..runs {
        eprintln!("single release, run {}/{runs}", run + 1);
        let h = Harness::start().await?;
        let proxy = FaultProxy::start(&h.emulator.url).await?;
        // The figures stay comparable with earlier runs: the emulator's plain answers.
        proxy.set_faults(Faults::plain());
        let base = ReleaseOpts {
            endpoint: Some(proxy.url.clone()),
            poll_interval: String::new(),
            extra: "  min_size = 2".into(),
            ..Default::default()
        };
        let canary = ReleaseOpts {
            extra: "  min_size = 2\n  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"0s\"\n  }\n  canary_step {\n    weight = 50\n    pause  = \"0s\"\n  }".into(),
            ..base.clone()
        };
        // Analysis: one pause, judged every 2 s (no metrics written: every judgement
        // inconclusive, one GetMetricData each, the call analysis adds).
        let analysed = ReleaseOpts {
            extra: "  min_size = 2\n  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"4s\"\n  }\n  analysis {\n    interval = \"2s\"\n    error_rate {\n      max_increase = 2\n    }\n    latency {\n      max_increase = \"100ms\"\n    }\n  }".into(),
            ..base.clone()
        };
        let steps = [
            (&base, h.fx.image_a.clone()),
            (&base, h.fx.image_b.clone()),
            (&canary, h.fx.image_c.clone()),
            (&canary, h.fx.image_b.clone()),
            (&analysed, h.fx.image_a.clone()),
        ];
        for (i, (opts, image)) in steps.iter().enumerate() {
            h.write(&h.release_hcl(opts))?;
            let var = format!("-var=image_id={image}");
            let t = Instant::now();
            h.terraform(&["plan", &var]).await?.ok()?;
            out[i].plan.push(t.elapsed().as_secs_f64());
            proxy.reset_counts();
            rss.take_mib();
            let t = Instant::now();
            h.terraform(&["apply", "-auto-approve", &var]).await?.ok()?;
            out[i].apply.push(t.elapsed().as_secs_f64());
            out[i].rss.push(rss.take_mib());
            out[i].calls.push(proxy.calls());
        }
    }
    Ok(out)
}

/// Detection latency: the new fleet's targets are `initial` (health checks in progress)
/// until an instant the provider cannot know; then the release goes on. Measures how long
/// after that instant the first traffic shift started, and how long after a canary pause
/// ended the next weight was set, from the proxy's log of calls.
async fn detection(runs: usize) -> anyhow::Result<Value> {
    let mut health_ms = Vec::new();
    let mut pause_ms = Vec::new();
    let mut polls_wait = Vec::new();
    let mut polls_pause = Vec::new();
    for run in 0..runs {
        eprintln!("detection latency, run {}/{runs}", run + 1);
        let h = Harness::start().await?;
        let proxy = FaultProxy::start(&h.emulator.url).await?;
        // The figures stay comparable with earlier runs: the emulator's plain answers.
        proxy.set_faults(Faults::plain());
        let opts = ReleaseOpts {
            endpoint: Some(proxy.url.clone()),
            poll_interval: String::new(),
            lb_extra: "    health_check {\n      interval          = 5\n      timeout           = 2\n      healthy_threshold = 2\n    }".into(),
            extra: "  strategy = \"canary\"\n  canary_step {\n    weight = 10\n    pause  = \"3s\"\n  }".into(),
            ..Default::default()
        };
        h.write(&h.release_hcl(&opts))?;
        h.apply(&[]).await?;
        proxy.reset_counts();
        // Two health checks 5 s apart after registration, plus a little: healthy at 5.5 s
        // after the apply starts (the fleet registers within the first second in moto).
        let apply_started = Instant::now();
        let healthy_at = apply_started + Duration::from_millis(5_500);
        proxy.set_faults(Faults {
            pending_target_groups: vec![("web-r2".into(), Some(healthy_at))],
            ..Faults::plain()
        });
        h.apply(&[("image_id", &h.fx.image_b)]).await?;
        proxy.set_faults(Faults::plain());
        let log = proxy.log();
        let shifts: Vec<Instant> = log
            .iter()
            .filter(|s| s.action == "ModifyListener" && s.at > healthy_at)
            .map(|s| s.at)
            .collect();
        anyhow::ensure!(
            shifts.len() >= 2,
            "expected two traffic shifts, saw {}",
            shifts.len()
        );
        health_ms.push((shifts[0] - healthy_at).as_secs_f64() * 1000.0);
        pause_ms.push((shifts[1] - shifts[0]).as_secs_f64() * 1000.0 - 3000.0);
        let th = |from: Instant, to: Instant| {
            log.iter()
                .filter(|s| s.action == "DescribeTargetHealth" && s.at >= from && s.at < to)
                .count() as f64
        };
        polls_wait.push(th(apply_started, shifts[0]));
        polls_pause.push(th(shifts[0], shifts[1]));
    }
    Ok(json!({
        "scenario": "the new fleet's targets `initial` for 5.5 s (health_check interval 5 s, healthy_threshold 2), then healthy; canary 10 % with a 3 s pause; default poll_interval (5s)",
        "healthy_to_first_shift_ms": Stat::of(health_ms).json(),
        "pause_end_to_next_shift_ms": Stat::of(pause_ms).json(),
        "target_health_polls_during_health_wait": Stat::of(polls_wait).json(),
        "target_health_polls_during_3s_pause": Stat::of(polls_pause).json(),
    }))
}

fn many_hcl(h: &Harness, endpoint: &str, listeners: &[String]) -> String {
    let subnets = serde_json::to_string(&h.fx.subnet_ids).unwrap();
    let listeners = serde_json::to_string(listeners).unwrap();
    let head = acceptance_tests::config_head(endpoint, "", &h.fx.image_a);
    format!(
        r#"{head}
variable "listeners" {{
  type    = list(string)
  default = {listeners}
}}

resource "immutable_release" "svc" {{
  count         = length(var.listeners)
  name          = "svc-${{count.index}}"
  image_id      = var.image_id
  instance_type = "t3.micro"
  subnet_ids    = {subnets}

  load_balancer {{
    listener_arn = var.listeners[count.index]
    vpc_id       = "{vpc}"
    health_check {{
      interval          = 5
      timeout           = 2
      healthy_threshold = 2
    }}
  }}
}}
"#,
        vpc = h.fx.vpc_id,
    )
}

/// N releases in one configuration: the first release of all, then a blue/green release
/// of all (whose new fleets take 6 s to pass their health checks), at a given
/// `-parallelism`.
async fn scale(
    n: usize,
    parallelism: usize,
    runs: usize,
    rss: &RssSampler,
) -> anyhow::Result<Value> {
    let mut create = OpRuns::default();
    let mut release = OpRuns::default();
    for run in 0..runs {
        eprintln!(
            "{n} releases, -parallelism={parallelism}, run {}/{runs}",
            run + 1
        );
        let h = Harness::start().await?;
        let proxy = FaultProxy::start(&h.emulator.url).await?;
        // The figures stay comparable with earlier runs: the emulator's plain answers.
        proxy.set_faults(Faults::plain());
        let mut listeners = Vec::new();
        for i in 0..n {
            listeners.push(
                h.aws
                    .add_listener(&h.fx.load_balancer_arn, 8000 + i as i32)
                    .await?,
            );
        }
        h.write(&many_hcl(&h, &proxy.url, &listeners))?;
        let par = format!("-parallelism={parallelism}");
        for (i, (op, image)) in [(&mut create, &h.fx.image_a), (&mut release, &h.fx.image_b)]
            .into_iter()
            .enumerate()
        {
            let var = format!("-var=image_id={image}");
            let t = Instant::now();
            h.terraform(&["plan", &par, &var]).await?.ok()?;
            op.plan.push(t.elapsed().as_secs_f64());
            proxy.reset_counts();
            rss.take_mib();
            let t = Instant::now();
            // The blue/green release waits for health like a real one: every new fleet's
            // targets are `initial` for the first 6 s of the apply.
            proxy.set_faults(Faults {
                pending_target_groups: if i == 1 {
                    (0..n)
                        .map(|k| (format!("svc-{k}-r2"), Some(t + Duration::from_secs(6))))
                        .collect()
                } else {
                    Vec::new()
                },
                ..Faults::plain()
            });
            h.terraform(&["apply", "-auto-approve", &par, &var])
                .await?
                .ok()?;
            op.apply.push(t.elapsed().as_secs_f64());
            op.rss.push(rss.take_mib());
            op.calls.push(proxy.calls());
        }
    }
    let per_release =
        |op: &OpRuns| Stat::of(op.calls.iter().map(|c| total(c) / n as f64).collect()).json();
    Ok(json!({
        "releases": n,
        "parallelism": parallelism,
        "first_release_of_all": create.json(),
        "blue_green_release_of_all": release.json(),
        "aws_calls_per_release": {
            "first_release": per_release(&create),
            "blue_green_release": per_release(&release),
        },
    }))
}

/// The classic pattern users write with hashicorp/aws alone for an immutable image change:
/// a launch template per image and an Auto Scaling group with `create_before_destroy` and
/// `wait_for_elb_capacity`, attached to one target group that a listener forwards to.
fn classic_hcl(h: &Harness, endpoint: &str) -> String {
    let subnets = serde_json::to_string(&h.fx.subnet_ids).unwrap();
    format!(
        r#"terraform {{
  required_providers {{
    aws = {{ source = "hashicorp/aws" }}
  }}
}}

{aws}
variable "image_id" {{
  type = string
}}

resource "aws_lb_target_group" "web" {{
  name     = "classic"
  port     = 80
  protocol = "HTTP"
  vpc_id   = "{vpc}"
  health_check {{
    interval          = 5
    timeout           = 2
    healthy_threshold = 2
  }}
}}

resource "aws_lb_listener" "web" {{
  load_balancer_arn = "{lb}"
  port              = 8080
  protocol          = "HTTP"
  default_action {{
    type             = "forward"
    target_group_arn = aws_lb_target_group.web.arn
  }}
}}

# A template per image (moto cannot launch from a second version of one template).
resource "aws_launch_template" "web" {{
  name          = "classic-${{var.image_id}}"
  image_id      = var.image_id
  instance_type = "t3.micro"
  lifecycle {{
    create_before_destroy = true
  }}
}}

resource "aws_autoscaling_group" "web" {{
  name                  = "classic-${{var.image_id}}"
  min_size              = 2
  max_size              = 2
  desired_capacity      = 2
  vpc_zone_identifier   = {subnets}
  target_group_arns     = [aws_lb_target_group.web.arn]
  health_check_type     = "ELB"
  wait_for_elb_capacity = 2
  launch_template {{
    id      = aws_launch_template.web.id
    version = aws_launch_template.web.latest_version
  }}
  lifecycle {{
    create_before_destroy = true
  }}
}}
"#,
        aws = aws_provider_block(endpoint),
        vpc = h.fx.vpc_id,
        lb = h.fx.load_balancer_arn,
    )
}

/// The peer: the classic pattern's first apply and image change, against the same local AWS
/// through the same counting proxy; the AWS provider's peak RSS and binary size.
async fn peer(runs: usize) -> anyhow::Result<Value> {
    let Some(mirror) = aws_mirror() else {
        eprintln!("peer skipped: no hashicorp/aws filesystem mirror on this machine (TF_ACC_PLUGIN_MIRROR, found by make tools)");
        return Ok(json!({"skipped": "no hashicorp/aws filesystem mirror"}));
    };
    let rss = RssSampler::start("terraform-provider-aws");
    let mut create = OpRuns::default();
    let mut release = OpRuns::default();
    let mut binary_mib = 0.0;
    for run in 0..runs {
        eprintln!(
            "peer (hashicorp/aws classic pattern), run {}/{runs}",
            run + 1
        );
        let h = Harness::start().await?;
        let proxy = FaultProxy::start(&h.emulator.url).await?;
        // The figures stay comparable with earlier runs: the emulator's plain answers.
        proxy.set_faults(Faults::plain());
        let root = TempDir::new("immutable-bench-peer")?;
        let w = MirrorWorkdir::new(&root.0, &mirror, false)?;
        std::fs::write(w.dir.join("main.tf"), classic_hcl(&h, &proxy.url))?;
        w.terraform(&["init", "-input=false"]).await?;
        if let Some(bin) = std::fs::read_dir(
            w.dir
                .join(".terraform/providers/registry.terraform.io/hashicorp/aws"),
        )?
        .flatten()
        .next()
        .and_then(|v| std::fs::read_dir(v.path().join("linux_amd64")).ok())
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        {
            binary_mib = std::fs::metadata(bin.path())?.len() as f64 / (1024.0 * 1024.0);
        }
        for (op, image) in [(&mut create, &h.fx.image_a), (&mut release, &h.fx.image_b)] {
            let var = format!("-var=image_id={image}");
            let t = Instant::now();
            w.terraform(&["plan", "-input=false", &var]).await?;
            op.plan.push(t.elapsed().as_secs_f64());
            proxy.reset_counts();
            rss.take_mib();
            let t = Instant::now();
            w.terraform(&["apply", "-auto-approve", "-input=false", &var])
                .await?;
            op.apply.push(t.elapsed().as_secs_f64());
            op.rss.push(rss.take_mib());
            op.calls.push(proxy.calls());
        }
    }
    Ok(json!({
        "pattern": "hashicorp/aws: aws_launch_template per image + aws_autoscaling_group (create_before_destroy, wait_for_elb_capacity = 2, health_check_type ELB) attached to one aws_lb_target_group behind a listener",
        "provider_binary_mib": binary_mib,
        "first_apply": create.json(),
        "image_change": release.json(),
        "cannot": [
            "no canary: both groups serve from the same target group as soon as the new instances pass health checks, and the old one is destroyed at once",
            "no abort: when wait_for_elb_capacity times out the apply fails and the new group stays attached to the serving target group (tainted) beside the old one until a later apply replaces it",
            "no warm rollback: going back is another full launch of the previous image",
        ],
    }))
}

/// `terraform providers schema -json`: a provider start and its schema.
async fn startup(runs: usize) -> anyhow::Result<Stat> {
    let h = Harness::start().await?;
    h.write(&h.release_hcl(&ReleaseOpts::default()))?;
    let mut v = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        h.terraform(&["providers", "schema", "-json"]).await?.ok()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Stat::of(v))
}

/// Every figure for the provider in `dir`.
async fn measure(dir: &std::path::Path, rss: &RssSampler) -> anyhow::Result<Value> {
    std::env::set_var("TF_ACC_PROVIDER_DIR", dir);
    let binary = dir.join("terraform-provider-immutable");
    let size_mib = std::fs::metadata(&binary)?.len() as f64 / (1024.0 * 1024.0);
    let runs = env_num("BENCH_RUNS", 5);
    let scale_runs = env_num("BENCH_SCALE_RUNS", 3);
    let counts = env_list("BENCH_SCALE", &[1, 10, 100]);
    let pars = env_list("BENCH_PARALLELISM", &[10, 50]);
    let schema_ms = startup(runs).await?;
    let ops = single_release_ops(runs, rss).await?;
    let detect = detection(runs).await?;
    let mut scales = Vec::new();
    for &n in &counts {
        for &p in &pars {
            scales.push(scale(n, p, scale_runs, rss).await?);
        }
    }
    let mut report = json!({
        "provider_binary": binary.display().to_string(),
        "provider_binary_mib": size_mib,
        "runs": runs,
        "scale_runs": scale_runs,
        "terraform_providers_schema_ms": schema_ms.json(),
        "detection_latency": detect,
        "single_release": {},
        "scale": scales,
    });
    for (name, op) in OPS.iter().zip(&ops) {
        report["single_release"][name] = op.json();
    }
    Ok(report)
}

fn f(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or(0.0)
}

fn st(v: &Value, p: &str, digits: usize) -> String {
    format!(
        "{:.d$} ({:.d$}–{:.d$})",
        f(v, &format!("{p}/median")),
        f(v, &format!("{p}/min")),
        f(v, &format!("{p}/max")),
        d = digits
    )
}

fn print_table(title: &str, r: &Value) {
    println!();
    println!(
        "{title}: median (min–max) of {} runs ({} for the scale rows); release binary {:.1} MiB; moto 5.2.5 + Terraform 1.0.3",
        r["runs"], r["scale_runs"], f(r, "/provider_binary_mib")
    );
    println!();
    println!("| operation (1 release) | plan s | apply s | AWS calls | provider peak RSS MiB |");
    println!("|---|---|---|---|---|");
    for name in OPS {
        let p = format!("/single_release/{}", name.replace('/', "~1"));
        println!(
            "| {name} | {} | {} | {} | {} |",
            st(r, &format!("{p}/plan_s"), 2),
            st(r, &format!("{p}/apply_s"), 2),
            st(r, &format!("{p}/aws_calls"), 0),
            st(r, &format!("{p}/provider_peak_rss_mib"), 1),
        );
    }
    println!();
    println!("| releases × -parallelism | first release of all: apply s | AWS calls per release | blue/green of all: apply s | AWS calls per release | provider peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for s in r["scale"].as_array().into_iter().flatten() {
        println!(
            "| {} × {} | {} | {} | {} | {} | {:.1} |",
            s["releases"],
            s["parallelism"],
            st(s, "/first_release_of_all/apply_s", 2),
            st(s, "/aws_calls_per_release/first_release", 1),
            st(s, "/blue_green_release_of_all/apply_s", 2),
            st(s, "/aws_calls_per_release/blue_green_release", 1),
            f(s, "/blue_green_release_of_all/provider_peak_rss_mib/max")
                .max(f(s, "/first_release_of_all/provider_peak_rss_mib/max")),
        );
    }
    println!();
    let d = &r["detection_latency"];
    println!(
        "detection latency: targets healthy → first traffic shift {} ms; canary pause end → next weight {} ms; DescribeTargetHealth calls: {} during the 5.5 s health wait, {} during the 3 s pause",
        st(d, "/healthy_to_first_shift_ms", 0),
        st(d, "/pause_end_to_next_shift_ms", 0),
        st(d, "/target_health_polls_during_health_wait", 0),
        st(d, "/target_health_polls_during_3s_pause", 0),
    );
    println!(
        "start-up: `terraform providers schema -json` {} ms",
        st(r, "/terraform_providers_schema_ms", 0)
    );
}

/// The peer beside this provider's blue/green release of the same image change.
fn print_peer(ours: &Value, peer: &Value) {
    println!();
    if let Some(why) = peer["skipped"].as_str() {
        println!("peer: skipped ({why})");
        return;
    }
    println!("peer: the same image change (2 instances, one target group) with hashicorp/aws's classic pattern, same run, same local AWS, same proxy counting calls");
    println!();
    println!("| image change | plan s | apply s | AWS calls | provider peak RSS MiB | provider binary MiB |");
    println!("|---|---|---|---|---|---|");
    let b = "/single_release/blue~1green release";
    println!(
        "| immutable_release, blue/green | {} | {} | {} | {} | {:.1} |",
        st(ours, &format!("{b}/plan_s"), 2),
        st(ours, &format!("{b}/apply_s"), 2),
        st(ours, &format!("{b}/aws_calls"), 0),
        st(ours, &format!("{b}/provider_peak_rss_mib"), 1),
        f(ours, "/provider_binary_mib"),
    );
    println!(
        "| hashicorp/aws classic (create_before_destroy + wait_for_elb_capacity) | {} | {} | {} | {} | {:.1} |",
        st(peer, "/image_change/plan_s", 2),
        st(peer, "/image_change/apply_s", 2),
        st(peer, "/image_change/aws_calls", 0),
        st(peer, "/image_change/provider_peak_rss_mib", 1),
        f(peer, "/provider_binary_mib"),
    );
    for c in peer["cannot"].as_array().into_iter().flatten() {
        println!("- classic pattern: {}", c.as_str().unwrap_or_default());
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let rss = RssSampler::start("terraform-provider-immutable");
    let current_dir = acceptance_tests::provider_dir()?;
    let baseline = match std::env::var_os("BENCH_BASELINE_DIR") {
        Some(dir) => Some(measure(std::path::Path::new(&dir), &rss).await?),
        None => None,
    };
    let mut report = measure(&current_dir, &rss).await?;
    if let Some(b) = &baseline {
        print_table("baseline", b);
        report["baseline"] = b.clone();
    }
    print_table("terraform-provider-immutable benchmark", &report);
    let peer = peer(env_num("BENCH_PEER_RUNS", 3)).await?;
    print_peer(&report, &peer);
    report["peer"] = peer;
    report["bench_wall_s"] = json!(started.elapsed().as_secs_f64());
    let out_dir = acceptance_tests::repo_root().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!(
        "\nJSON: {} (the benchmark took {:.0} s)",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
