//! `fault-proxy`: the project's fault-injecting proxy as a command, for trying the provider
//! against a misbehaving AWS by hand. See `contributing/fault-proxy.md`.
//!
//! ```text
//! fault-proxy --upstream http://127.0.0.1:5000 [--listen 127.0.0.1:5001]
//!             [--throttle 0.2] [--error-5xx 0.05] [--reset 0.01] [--latency-ms 200]
//!             [--action ModifyListener]... [--unhealthy web-r2]... [--seed N]
//!             [--lose-first-answer CreateAutoScalingGroup]...
//! ```
//!
//! Point the provider's `endpoint_url` at the printed address. Every 10 s, and when it
//! stops (Ctrl-C), the proxy prints the calls it saw by action and what it did with them.

use std::time::Duration;

use acceptance_tests::proxy::{AlbHealth, AwsRules, FaultProxy, Faults};

fn usage() -> ! {
    eprintln!(
        "usage: fault-proxy --upstream URL [--listen HOST:PORT] [--throttle SHARE] [--error-5xx SHARE]\n       [--reset SHARE] [--latency-ms MS] [--action NAME]... [--unhealthy TARGET_GROUP_NAME|all]... [--seed N]\n       [--lose-first-answer ACTION[:BODY_TEXT]]... [--plain]"
    );
    std::process::exit(2)
}

fn share(v: &str) -> f64 {
    match v.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => x,
        _ => {
            eprintln!("a share is a number from 0 to 1, not {v:?}");
            usage()
        }
    }
}

fn report(proxy: &FaultProxy) {
    let calls = proxy.calls();
    let total: u64 = calls.values().sum();
    eprintln!(
        "fault-proxy: {total} calls; outcomes {:?}",
        proxy.outcomes()
    );
    for (action, n) in calls {
        eprintln!("  {action:<36} {n}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut upstream = None;
    let mut listen = "127.0.0.1:0".to_string();
    // AWS's own target health, at AWS's own pace (--plain: the emulator's answers).
    let mut faults = Faults {
        alb_health: Some(AlbHealth { time_scale: 1.0 }),
        aws_rules: Some(AwsRules {
            profile_propagation: std::time::Duration::from_secs(10),
            activity: std::time::Duration::from_secs(10),
            max_template_versions: 10_000,
            visibility: std::time::Duration::from_secs(1),
            group_deletion: std::time::Duration::from_secs(20),
            page_size: 10,
        }),
        ..Faults::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--upstream" => upstream = Some(value()),
            "--listen" => listen = value(),
            "--throttle" => faults.throttle = share(&value()),
            "--error-5xx" => faults.error_5xx = share(&value()),
            "--reset" => faults.reset = share(&value()),
            "--latency-ms" => {
                faults.latency = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            "--action" => faults.actions.push(value()),
            "--plain" => {
                faults.alb_health = None;
                faults.aws_rules = None;
            }
            "--unhealthy" => match value().as_str() {
                "all" => faults.unhealthy_targets = true,
                name => faults
                    .unhealthy_target_groups
                    .push((name.to_string(), None)),
            },
            "--seed" => faults.seed = value().parse().unwrap_or_else(|_| usage()),
            "--lose-first-answer" => {
                let v = value();
                let (action, text) = v.split_once(':').unwrap_or((v.as_str(), ""));
                faults
                    .lose_first_answer
                    .push((action.to_string(), text.to_string()));
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other:?}");
                usage()
            }
        }
    }
    let Some(upstream) = upstream else { usage() };
    let proxy = FaultProxy::start_on(&listen, &upstream).await?;
    proxy.set_faults(faults.clone());
    println!("{}", proxy.url);
    eprintln!("fault-proxy: {} → {upstream}; faults {faults:?}", proxy.url);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => report(&proxy),
            _ = tokio::signal::ctrl_c() => {
                report(&proxy);
                return Ok(());
            }
        }
    }
}
