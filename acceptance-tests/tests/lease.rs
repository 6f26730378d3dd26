//! A lost lease stops its own release only: two releases in one configuration (one
//! provider process), one of them loses its lease in the middle of a canary pause (its
//! lease object is deleted, as when it expired and another runner took it); that release
//! stops with traffic back on its serving fleet, the other walks on to 100 %.

use std::time::Duration;

use acceptance_tests::{config_head, wait_until, Harness};

fn release(name: &str, listener: &str, h: &Harness) -> String {
    let subnets = serde_json::to_string(&h.fx.subnet_ids).unwrap();
    format!(
        r#"
resource "immutable_release" "{name}" {{
  name          = "{name}"
  image_id      = var.image_id
  instance_type = "t3.micro"
  subnet_ids    = {subnets}
  strategy      = "canary"
  canary_step {{
    weight = 10
    pause  = "50s"
  }}
  load_balancer {{
    listener_arn         = "{listener}"
    vpc_id               = "{vpc}"
    deregistration_delay = 1
  }}
}}
"#,
        vpc = h.fx.vpc_id
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lease_stops_its_own_release_and_no_other() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let api_listener = h.aws.add_listener(&h.fx.load_balancer_arn, 8080).await?;
    let hcl = format!(
        "{}{}{}",
        config_head(&h.proxy.url, "", &h.fx.image_a),
        release("web", &h.fx.listener_arn, &h),
        release("api", &api_listener, &h)
    );
    h.write(&hcl)?;
    h.apply(&[]).await?;

    // Release 2 of both; once both canaries stand at 10 %, api's lease goes away.
    let apply = h.spawn_terraform_in(
        &h.dir.0,
        &[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            &format!("-var=image_id={}", h.fx.image_b),
        ],
    )?;
    let at_ten = |listener: String, fleet: &'static str| {
        let aws = h.aws.clone();
        async move {
            aws.listener_weights(&listener)
                .await
                .is_ok_and(|w| w.get(fleet) == Some(&10))
        }
    };
    assert!(
        wait_until(Duration::from_secs(60), || async {
            Ok(at_ten(h.fx.listener_arn.clone(), "web-r2").await
                && at_ten(api_listener.clone(), "api-r2").await)
        })
        .await?,
        "both canaries reach 10 %"
    );
    h.aws
        .ec2
        .delete_launch_template()
        .launch_template_name("api-lease")
        .send()
        .await?;
    let out = apply.wait_with_output().await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = acceptance_tests::fold(&format!("{stdout}\n{stderr}"));
    assert_eq!(out.status.code(), Some(1), "api's release failed: {all}");
    assert!(
        all.contains("the lease of release api was lost"),
        "the error says why: {all}"
    );
    // api: traffic back on its serving fleet; web: walked on and committed.
    assert_eq!(
        h.aws.listener_weights(&api_listener).await?.get("api-r1"),
        Some(&100),
        "{all}"
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 0), ("web-r2".to_string(), 100)].into(),
        "{all}"
    );
    let state = h.terraform(&["show", "-json"]).await?.ok()?;
    let state: serde_json::Value = serde_json::from_str(&state.stdout)?;
    let resources = state["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let release_of = |name: &str| {
        resources
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["values"]["release"].clone())
    };
    assert_eq!(release_of("web"), Some(serde_json::json!(2)));
    assert_eq!(release_of("api"), Some(serde_json::json!(1)));
    // The next apply finishes api's release, with a lease of its own.
    let run = h.apply(&[("image_id", &h.fx.image_b)]).await?;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        h.aws.listener_weights(&api_listener).await?.get("api-r2"),
        Some(&100)
    );
    Ok(())
}
