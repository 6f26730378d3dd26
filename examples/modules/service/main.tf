# A service as a platform team publishes it: one immutable release with the team's
# defaults (health-checked on /healthz, canary 10 % → 50 % watched by alarms, a bake, one
# warm fleet to roll back to). Callers choose the image and where it runs.

locals {
  strategy = length(var.canary) > 0 ? "canary" : "blue_green"
}

resource "immutable_release" "this" {
  name                 = var.name
  image_id             = var.image_id
  instance_type        = var.instance_type
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  iam_instance_profile = var.instance_profile
  user_data            = var.user_data
  instance_tags        = { service = var.name }
  key_name             = var.key_name
  monitoring           = var.detailed_monitoring

  # The platform team's launch template, when given: each fleet's template starts from it.
  dynamic "launch_template" {
    for_each = var.base_launch_template_id == null ? [] : [var.base_launch_template_id]
    content {
      id      = launch_template.value
      version = var.base_launch_template_version
    }
  }

  # IMDSv2 only; the hop limit lets containers on the instance reach it.
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = var.metadata_hop_limit
  }
  # The root volume, when its device name is given: encrypted gp3 (the account's default
  # KMS key unless one is given).
  dynamic "block_device" {
    for_each = var.root_device_name == null ? [] : [var.root_device_name]
    content {
      device_name = block_device.value
      volume_size = var.root_volume_size
      volume_type = "gp3"
      encrypted   = true
      kms_key_id  = var.root_volume_kms_key_id
    }
  }

  min_size         = var.min_size
  max_size         = var.max_size
  desired_capacity = var.desired_capacity

  # Scaling that moves with each release (none when both targets are null).
  dynamic "target_tracking" {
    for_each = var.requests_per_instance == null ? [] : [var.requests_per_instance]
    content {
      predefined_metric = "ALBRequestCountPerTarget"
      target_value      = target_tracking.value
    }
  }
  dynamic "target_tracking" {
    for_each = var.cpu_target == null ? [] : [var.cpu_target]
    content {
      predefined_metric = "ASGAverageCPUUtilization"
      target_value      = target_tracking.value
    }
  }

  load_balancer {
    listener_arn = var.listener_arn
    vpc_id       = var.vpc_id
    port         = var.port
    health_check {
      path              = var.health_check_path
      interval          = 10
      healthy_threshold = 2
    }
  }

  strategy = local.strategy
  dynamic "canary_step" {
    for_each = var.canary
    content {
      weight = canary_step.value.weight
      pause  = canary_step.value.pause
    }
  }
  alarm_names = var.alarm_names
  bake_time   = var.bake_time

  # The new fleet judged on its own metrics against the serving fleet's.
  dynamic "analysis" {
    for_each = var.analysis_interval == null ? [] : [var.analysis_interval]
    content {
      interval = analysis.value
      error_rate {
        max_increase = var.max_error_rate_increase
        min_requests = var.min_requests
      }
      latency {
        statistic    = "p99"
        max_increase = var.max_p99_increase
      }
    }
  }

  # A pipeline's first stage holds the release part-way; the next one promotes it.
  hold_at = var.hold_at

  # Every step of every apply to an SNS topic (chat, a pipeline).
  dynamic "notification" {
    for_each = var.notification_topic_arn == null ? [] : [var.notification_topic_arn]
    content {
      sns_topic_arn = notification.value
    }
  }

  retain_fleets   = 1
  rollback_window = var.rollback_window
  tags            = merge({ service = var.name }, var.tags)
}
