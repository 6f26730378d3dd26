# The quick start: one service released on the local AWS emulator. `make demo` applies it,
# releases a new image, rolls back, and prints the history.

terraform {
  required_providers {
    immutable = { source = "immutable-infra/immutable" }
  }
}

variable "endpoint" {
  description = "The local AWS emulator's URL."
  type        = string
}

variable "listener_arn" { type = string }
variable "vpc_id" { type = string }
variable "subnet_ids" { type = list(string) }
variable "security_group_id" {
  description = "The instances' group: it admits the load balancer on port 8080."
  type        = string
}

variable "image_id" {
  description = "Change this to release; set it back to roll back."
  type        = string
}

provider "immutable" {
  region        = "us-east-1"
  endpoint_url  = var.endpoint
  poll_interval = "250ms"
  default_tags  = { owner = "platform" }
}

resource "immutable_release" "web" {
  name          = "web"
  image_id      = var.image_id
  instance_type = "t3.micro"
  subnet_ids    = var.subnet_ids
  user_data     = "#!/bin/sh\necho serving on 8080"
  instance_tags = { role = "web" }

  security_group_ids = [var.security_group_id]

  min_size         = 2
  max_size         = 6
  desired_capacity = 3

  load_balancer {
    listener_arn = var.listener_arn
    vpc_id       = var.vpc_id
    port         = 8080
    health_check {
      path     = "/healthz"
      interval = 10
    }
  }

  health {
    timeout = "2m"
  }

  # A release walks these steps (a first release and a rollback move 100 % at once).
  strategy = "canary"
  canary_step {
    weight = 10
    pause  = "2s"
  }
  canary_step {
    weight = 50
    pause  = "2s"
  }

  retain_fleets = 1
  tags          = { team = "web" }
}

output "release" { value = immutable_release.web.release }
output "fleet_name" { value = immutable_release.web.fleet_name }
output "traffic" { value = immutable_release.web.traffic }
output "previous_image_id" { value = immutable_release.web.previous_image_id }
output "history" { value = immutable_release.web.history }
