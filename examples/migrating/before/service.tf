# The service as it runs before the migration: an Auto Scaling group of 3 behind its own
# target group. Step 3 deletes it from the configuration.
resource "aws_lb_target_group" "app" {
  name     = "app-tg"
  port     = 8080
  protocol = "HTTP"
  vpc_id   = data.aws_vpc.default.id
  health_check {
    path = "/healthz"
  }
}

resource "aws_launch_template" "app" {
  name_prefix            = "app-"
  image_id               = var.image_id
  instance_type          = "t3.small"
  vpc_security_group_ids = [aws_security_group.app.id]
}

resource "aws_autoscaling_group" "app" {
  name                = "app"
  min_size            = 2
  max_size            = 6
  desired_capacity    = 3
  vpc_zone_identifier = data.aws_subnets.default.ids
  target_group_arns   = [aws_lb_target_group.app.arn]
  health_check_type   = "ELB"
  launch_template {
    id      = aws_launch_template.app.id
    version = aws_launch_template.app.latest_version
  }
}
