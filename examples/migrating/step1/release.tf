# The release beside the service: the same image, type, subnets and security group as the
# group's launch template, under a new name. desired_capacity unset: the first fleet gets
# the capacity of the groups behind app-tg (3), later ones the serving fleet's.
resource "immutable_release" "app" {
  name               = "app"
  image_id           = var.image_id
  instance_type      = "t3.small"
  subnet_ids         = data.aws_subnets.default.ids
  security_group_ids = [aws_security_group.app.id]

  min_size = 2
  max_size = 6

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

  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "5m"
  }
  canary_step {
    weight = 50
    pause  = "5m"
  }
  alarm_names = [aws_cloudwatch_metric_alarm.app_5xx.alarm_name]
  bake_time   = "5m"
}
