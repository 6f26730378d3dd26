# The service: each new image_id is a release. The first one takes the listener at once;
# every later one is a canary (10 %, then 50 %, each watched for two minutes), and the
# previous fleet stays warm for an hour to roll back to.
resource "immutable_release" "web" {
  name               = "web"
  image_id           = var.image_id
  instance_type      = "t3.micro"
  subnet_ids         = data.aws_subnets.default.ids
  security_group_ids = [aws_security_group.web.id]

  # A stock Amazon Linux 2023 image serves this page; your own image would start your
  # service instead. Each fleet answers with the image it runs.
  user_data = <<-EOT
    #!/bin/bash
    mkdir -p /srv/web
    echo ok > /srv/web/healthz
    echo "served by ${var.image_id}" > /srv/web/index.html
    systemd-run --unit web python3 -m http.server 8080 --directory /srv/web
  EOT

  min_size = 2
  max_size = 4

  load_balancer {
    listener_arn = aws_lb_listener.http.arn
    vpc_id       = data.aws_vpc.default.id
    port         = 8080
    health_check {
      path              = "/healthz"
      interval          = 10
      healthy_threshold = 2
    }
  }

  health {
    grace_period = "2m" # time for an instance to boot and start serving
  }

  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "2m"
  }
  canary_step {
    weight = 50
    pause  = "2m"
  }
  alarm_names = [aws_cloudwatch_metric_alarm.web_5xx.alarm_name]

  retain_fleets   = 1
  rollback_window = "1h"
}
