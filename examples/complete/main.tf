# A complete service on real AWS: a VPC, an internet-facing ALB with its listener, the
# alarms a canary watches, and the release. Apply with `-var image_id=ami-...`.

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, 2)
}

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_hostnames = true
  tags                 = { Name = "web" }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id
}

resource "aws_subnet" "public" {
  count                   = length(local.azs)
  vpc_id                  = aws_vpc.main.id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  map_public_ip_on_launch = true
  tags                    = { Name = "web-public-${count.index}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "alb" {
  name   = "web-alb"
  vpc_id = aws_vpc.main.id
  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "web" {
  name   = "web-instances"
  vpc_id = aws_vpc.main.id
  ingress {
    from_port       = 8080
    to_port         = 8080
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_lb" "main" {
  name               = "web"
  load_balancer_type = "application"
  subnets            = aws_subnet.public[*].id
  security_groups    = [aws_security_group.alb.id]
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.main.arn
  port              = 80
  protocol          = "HTTP"

  # Until the first release serves, and after a destroy.
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "no release is serving"
      status_code  = "503"
    }
  }

  # The release owns the default action from its first apply on.
  lifecycle {
    ignore_changes = [default_action]
  }
}

resource "aws_cloudwatch_metric_alarm" "web_5xx" {
  alarm_name          = "web-5xx"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  dimensions          = { LoadBalancer = aws_lb.main.arn_suffix }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 5
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
}

resource "aws_cloudwatch_metric_alarm" "web_latency" {
  alarm_name          = "web-p99-latency"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = { LoadBalancer = aws_lb.main.arn_suffix }
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 2
  threshold           = 1.5
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
}

resource "aws_iam_role" "web" {
  name = "web-instance"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "ec2.amazonaws.com" } }]
  })
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.web.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "web" {
  name = "web-instance"
  role = aws_iam_role.web.name
}

# The platform team's launch template: every fleet's own template starts from it (its
# tags and detailed monitoring here); the release's arguments win over it. "$Latest" is
# resolved to a number at plan, so a new version of it plans a release.
resource "aws_launch_template" "base" {
  name_prefix = "web-base-"
  monitoring {
    enabled = true
  }
  tag_specifications {
    resource_type = "instance"
    tags          = { team = "platform", cost-center = "web" }
  }
  tag_specifications {
    resource_type = "volume"
    tags          = { team = "platform", cost-center = "web" }
  }
}

# The image's root device name, so that block_device sizes and encrypts its root volume
# whatever the distribution names it.
data "aws_ami" "web" {
  filter {
    name   = "image-id"
    values = [var.image_id]
  }
}

resource "immutable_release" "web" {
  name                 = "web"
  image_id             = var.image_id
  instance_type        = "t3.small"
  subnet_ids           = aws_subnet.public[*].id
  security_group_ids   = [aws_security_group.web.id]
  iam_instance_profile = aws_iam_instance_profile.web.name
  user_data            = <<-EOT
    #!/bin/bash
    systemctl enable --now web
  EOT
  instance_tags        = { role = "web" }

  launch_template {
    id      = aws_launch_template.base.id
    version = "$Latest"
  }

  # IMDSv2 only (the default, said out loud) and an encrypted gp3 root volume.
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }
  block_device {
    device_name = data.aws_ami.web.root_device_name # the image's own: /dev/xvda, /dev/sda1, ...
    volume_size = 20
    volume_type = "gp3"
    encrypted   = true
  }

  min_size = 2
  max_size = 6

  # Autoscaling that follows the serving fleet: each new fleet gets it before it takes
  # traffic, bound to its own target group; a retained fleet holds its capacity.
  target_tracking {
    predefined_metric = "ALBRequestCountPerTarget"
    target_value      = 500
  }

  load_balancer {
    listener_arn = aws_lb_listener.http.arn
    vpc_id       = aws_vpc.main.id
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
  alarm_names = [aws_cloudwatch_metric_alarm.web_5xx.alarm_name, aws_cloudwatch_metric_alarm.web_latency.alarm_name]
  bake_time   = "5m"

  # The alarms see the whole service; analysis judges the canary by itself, against the
  # fleet that serves beside it (see the guide "Canary analysis").
  analysis {
    interval = "1m"
    error_rate {
      max          = 5
      max_increase = 1
      min_requests = 200
    }
    latency {
      statistic    = "p99"
      max_increase = "250ms"
    }
  }

  retain_fleets   = 1
  rollback_window = "2h"
}
