variable "region" {
  type        = string
  description = "AWS region."
  default     = "eu-west-1"
}

variable "image_id" {
  type        = string
  description = "The image the service runs."
}
