# Step 3: the old target group is gone from the configuration, so the listener's default
# action names none. Terraform ignores it (the release owns it); it is what the listener
# would be created with again. (A destroy of the release writes its own fixed 503.)
resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.main.arn
  port              = 80
  protocol          = "HTTP"
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      status_code  = "503"
    }
  }
  lifecycle {
    ignore_changes = [default_action]
  }
}
