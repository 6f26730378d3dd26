# Many services behind one load balancer: each release owns one rule of the shared
# listener (its conditions and priority stay yours) instead of the default action.
resource "aws_lb_listener_rule" "api" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10
  condition {
    host_header {
      values = ["api.example.com"]
    }
  }
  action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      status_code  = "503"
    }
  }
  lifecycle {
    ignore_changes = [action] # the release owns the rule's action
  }
}

resource "immutable_release" "api" {
  name               = "api"
  image_id           = var.api_image_id
  instance_type      = "t3.small"
  subnet_ids         = var.subnet_ids
  security_group_ids = [aws_security_group.api.id]
  min_size           = 2

  load_balancer {
    listener_arn = aws_lb_listener.https.arn
    rule_arn     = aws_lb_listener_rule.api.arn
    vpc_id       = var.vpc_id
    port         = 8080
    stickiness {
      duration = "30m" # clients keep the fleet that served them; new clients follow the weights
    }
  }
}
