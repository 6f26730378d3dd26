# The `service` module used by a team, against the local AWS (moto): fill
# terraform.tfvars.json with the endpoint, listener, VPC and subnets (the acceptance tests
# and `examples/quickstart/fixtures.py` make them).

terraform {
  required_version = ">= 1.0"
  required_providers {
    immutable = { source = "immutable-infra/immutable" }
  }
}

variable "endpoint" {
  type = string
}

variable "listener_arn" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "security_group_id" {
  type        = string
  description = "A group that admits the load balancer on port 80."
}

variable "image_id" {
  type    = string
  default = "ami-04681a1dbd79675a5"
}

provider "immutable" {
  region        = "us-east-1"
  endpoint_url  = var.endpoint
  poll_interval = "200ms"
}

module "web" {
  source = "../service"

  name               = "web"
  image_id           = var.image_id
  subnet_ids         = var.subnet_ids
  security_group_ids = [var.security_group_id]
  listener_arn       = var.listener_arn
  vpc_id             = var.vpc_id
  root_device_name   = "/dev/xvda" # the image's (Amazon Linux)

  min_size  = 1
  max_size  = 2
  canary    = [{ weight = 20, pause = "1s" }]
  bake_time = "0s"

  analysis_interval = "1s"

  requests_per_instance = 500
}

output "web_release" {
  value = module.web.release
}

output "web_traffic" {
  value = module.web.traffic
}

output "web_previous_image_id" {
  value = module.web.previous_image_id
}
