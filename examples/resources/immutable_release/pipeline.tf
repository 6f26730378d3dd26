# A pipeline's first stage holds the release at 10 %; after an approval, the next stage
# applies without hold_at and the release walks on from 10 %. Every step goes to SNS.
variable "hold_at" {
  type    = number
  default = null # no hold: the release goes all the way
}

resource "aws_sns_topic" "releases" {
  name = "releases"
}

resource "immutable_release" "web" {
  name               = "web"
  image_id           = var.image_id
  instance_type      = "t3.micro"
  subnet_ids         = var.subnet_ids
  security_group_ids = [aws_security_group.web.id]

  load_balancer {
    listener_arn = aws_lb_listener.http.arn
    vpc_id       = var.vpc_id
    port         = 8080
  }

  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "5m"
  }
  canary_step {
    weight = 50
    pause  = "10m"
  }
  alarm_names = [aws_cloudwatch_metric_alarm.web_5xx.alarm_name]
  hold_at     = var.hold_at

  notification {
    sns_topic_arn = aws_sns_topic.releases.arn
  }
}
