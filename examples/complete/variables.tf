variable "region" {
  type        = string
  description = "AWS region."
  default     = "eu-west-1"
}

variable "image_id" {
  type        = string
  description = "The machine image to release. Change it to release; set it back to roll back."
}

variable "vpc_cidr" {
  type    = string
  default = "10.42.0.0/16"
}
