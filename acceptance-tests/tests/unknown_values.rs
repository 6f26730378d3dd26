//! Configuration values unknown at plan (a network made in the same apply): the plan keeps
//! the configuration's shape, element by element, and the apply uses the values once known.

use acceptance_tests::{config_head, Harness};
use aws_sdk_ec2::types::Filter;

/// `value`, but known only once release `base` has applied (its `fleet_name` is unknown at
/// plan): the way a subnet, security group or alarm made in the same apply arrives.
fn later(value: &str) -> String {
    format!("replace(immutable_release.base.fleet_name, \"/^.*$/\", \"{value}\")")
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_values_in_every_collection_and_block() -> anyhow::Result<()> {
    let h = Harness::start().await?;
    let sg = h
        .aws
        .ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("group-name")
                .values("default")
                .build(),
        )
        .send()
        .await?
        .security_groups()
        .first()
        .and_then(|g| g.group_id())
        .unwrap()
        .to_string();
    h.aws
        .cw
        .put_metric_alarm()
        .alarm_name("web-5xx")
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await?;
    let base_listener = h.aws.add_listener(&h.fx.load_balancer_arn, 8081).await?;
    let (s1, s2) = (&h.fx.subnet_ids[0], &h.fx.subnet_ids[1]);
    let head = config_head(&h.proxy.url, "  poll_interval = \"100ms\"\n", &h.fx.image_a);
    let hcl = format!(
        r#"{head}
variable "base_image" {{
  type    = string
  default = "{image_a}"
}}

resource "immutable_release" "base" {{
  name          = "base"
  image_id      = var.base_image
  instance_type = "t3.micro"
  subnet_ids    = ["{s1}"]
  load_balancer {{
    listener_arn = "{base_listener}"
    vpc_id       = "{vpc}"
  }}
}}

resource "immutable_release" "web" {{
  name                 = "web"
  image_id             = {image}
  instance_type        = {itype}
  subnet_ids           = [{sub1}, {sub2}]
  security_group_ids   = [{sg}]
  instance_tags        = {{ role = "web", base = immutable_release.base.fleet_name }}
  min_size             = length(immutable_release.base.fleet_name) > 0 ? 2 : 1
  alarm_names          = [{alarm}]
  bake_time            = {bake}
  tags                 = {{ team = "web", base = immutable_release.base.fleet_name }}

  load_balancer {{
    listener_arn = {listener}
    vpc_id       = {vpc_later}
    port         = length(immutable_release.base.fleet_name) > 0 ? 8080 : 80
    health_check {{
      path     = "/${{immutable_release.base.fleet_name}}"
      interval = length(immutable_release.base.fleet_name) > 0 ? 10 : 20
    }}
  }}

  health {{
    grace_period = {grace}
  }}

  # A block allowed once, from a `dynamic` whose for_each is unknown at plan.
  dynamic "metadata_options" {{
    for_each = length(immutable_release.base.fleet_name) > 0 ? [3] : []
    content {{
      http_put_response_hop_limit = metadata_options.value
    }}
  }}

  strategy = "canary"
  dynamic "canary_step" {{
    for_each = [10, 50]
    content {{
      weight = length(immutable_release.base.fleet_name) > 0 ? canary_step.value : 1
      pause  = {pause}
    }}
  }}

  timeouts {{
    create = {create}
  }}
}}

output "web_traffic" {{ value = immutable_release.web.traffic }}
"#,
        image_a = h.fx.image_a,
        vpc = h.fx.vpc_id,
        image = later(&h.fx.image_a),
        itype = later("t3.micro"),
        sub1 = later(s1),
        sub2 = later(s2),
        sg = later(&sg),
        alarm = later("web-5xx"),
        bake = later("0s"),
        listener = later(&h.fx.listener_arn),
        vpc_later = later(&h.fx.vpc_id),
        grace = later("10s"),
        pause = later("0s"),
        create = later("10m"),
    );
    h.write(&hcl)?;

    // 1. The plan keeps every unknown element; nothing is refused for not being known yet.
    let plan = h.terraform(&["plan", "-out=first.plan"]).await?.ok()?;
    assert!(plan.says("Plan: 2 to add"), "first plan:\n{}", plan.all());
    let show = h.terraform(&["show", "-json", "first.plan"]).await?.ok()?;
    let planned: serde_json::Value = serde_json::from_str(&show.stdout)?;
    let web = planned["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "immutable_release.web")
        .unwrap();
    let unknown = &web["change"]["after_unknown"];
    assert_eq!(
        unknown["subnet_ids"],
        serde_json::json!([true, true]),
        "{unknown}"
    );
    assert_eq!(unknown["security_group_ids"], serde_json::json!([true]));
    assert_eq!(unknown["alarm_names"], serde_json::json!([true]));
    assert_eq!(unknown["instance_tags"]["base"], true);
    assert_eq!(unknown["tags"]["base"], true);
    assert_eq!(web["change"]["after"]["instance_tags"]["role"], "web");
    assert_eq!(web["change"]["after"]["tags"]["team"], "web");
    assert_eq!(unknown["load_balancer"]["vpc_id"], true);
    assert_eq!(unknown["load_balancer"]["health_check"][0]["path"], true);
    assert_eq!(unknown["canary_step"][1]["weight"], true);
    assert_eq!(unknown["timeouts"][0]["create"], true);

    // 2. The apply uses the values once they are known.
    h.terraform(&["apply", "-auto-approve", "first.plan"])
        .await?
        .ok()?;
    let group = h.aws.group("web-r1").await?;
    let mut subnets: Vec<&str> = group
        .vpc_zone_identifier()
        .unwrap_or_default()
        .split(',')
        .collect();
    subnets.sort();
    let mut want = vec![s1.as_str(), s2.as_str()];
    want.sort();
    assert_eq!(subnets, want);
    assert_eq!(group.desired_capacity(), Some(2));
    let data = h.aws.fleet_template_data("web-r1").await?;
    assert_eq!(
        data.metadata_options()
            .and_then(|m| m.http_put_response_hop_limit()),
        Some(3),
        "the dynamic block unknown at plan reached the fleet's template"
    );
    assert!(
        group
            .tags()
            .iter()
            .any(|t| t.key() == Some("base") && t.value() == Some("base-r1")),
        "release tags reach the group: {:?}",
        group.tags()
    );
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert!(
        h.plan_is_empty().await?,
        "the plan after the apply is empty"
    );

    // 3. An update whose plan has unknown values again: base releases (its fleet name is
    //    unknown until then), so web's listener is unknown too, an argument that forces
    //    replacement. Terraform's rule is to plan the replacement; the create half of it
    //    must not be refused for meeting the release it replaces.
    let vars = [("base_image", h.fx.image_b.as_str())];
    let plan = h
        .terraform(&["plan", "-var", &format!("base_image={}", h.fx.image_b)])
        .await?
        .ok()?;
    assert!(
        plan.says("immutable_release.web must be replaced")
            && plan.says("1 to add, 1 to change, 1 to destroy"),
        "{}",
        plan.all()
    );
    let run = h.apply(&vars).await?;
    assert!(run.says("1 added, 1 changed, 1 destroyed"), "{}", run.all());
    assert_eq!(
        h.aws.listener_weights(&h.fx.listener_arn).await?,
        [("web-r1".to_string(), 100)].into()
    );
    assert_eq!(
        h.aws
            .group("web-r1")
            .await?
            .tags()
            .iter()
            .find(|t| t.key() == Some("base"))
            .and_then(|t| t.value()),
        Some("base-r2")
    );
    assert!(h.plan_is_empty_with(&vars).await?);
    Ok(())
}
