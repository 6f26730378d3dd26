# A canary: 10 %, then 50 %, each watched for a few minutes by the service's alarms and by
# analysis of the new fleet's own metrics against the serving fleet's; then 100 % and a
# bake. Any failure puts traffic back where it was and fails the apply.
resource "immutable_release" "web" {
  name                 = "web"
  image_id             = var.image_id
  instance_type        = "t3.micro"
  subnet_ids           = var.subnet_ids
  security_group_ids   = [aws_security_group.web.id]
  iam_instance_profile = aws_iam_instance_profile.web.name
  user_data            = <<-EOT
    #!/bin/bash
    echo "SESSION_STORE=${var.redis_url}" >> /etc/web.env
    systemctl enable --now web
  EOT
  instance_tags        = { role = "web" }

  min_size         = 2
  max_size         = 8
  desired_capacity = 3

  load_balancer {
    listener_arn = aws_lb_listener.http.arn
    vpc_id       = var.vpc_id
    port         = 8080
    health_check {
      path                = "/healthz"
      interval            = 10
      healthy_threshold   = 2
      unhealthy_threshold = 2
    }
  }

  health {
    min_healthy_percentage = 100
    grace_period           = "30s"
    timeout                = "10m"
  }

  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "2m"
  }
  canary_step {
    weight = 50
    pause  = "5m"
  }
  alarm_names = [aws_cloudwatch_metric_alarm.web_5xx.alarm_name]
  bake_time   = "5m"

  analysis {
    interval = "1m"
    error_rate {
      max_increase = 1 # percentage points above the serving fleet's
      min_requests = 100
    }
    latency {
      statistic    = "p99"
      max_increase = "250ms"
    }
  }

  retain_fleets   = 1
  rollback_window = "1h"
  tags            = { team = "web" }
}
