variable "region" {
  type        = string
  description = "AWS region."
  default     = "eu-west-1"
}

variable "image_id" {
  type        = string
  description = "The machine image to release: change it to release, set it back to roll back. Commit the value (terraform.tfvars) so that every apply agrees."
}
