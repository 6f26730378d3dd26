resource "immutable_release" "web" {
  name                 = "web"
  image_id             = var.image_id # change this line to release; set it back to roll back
  instance_type        = "t3.micro"
  subnet_ids           = var.subnet_ids
  security_group_ids   = [var.web_sg_id]
  iam_instance_profile = var.instance_profile
  user_data            = templatefile("boot.sh", { session_store = var.redis_url })
  instance_tags        = { role = "web" }

  min_size         = 2
  max_size         = 8
  desired_capacity = 3

  load_balancer {
    listener_arn = var.listener_arn
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
  alarm_names = ["web-5xx-rate", "web-p99-latency"]
  bake_time   = "5m"

  retain_fleets   = 1
  rollback_window = "1h"
  tags            = { team = "web" }
}
