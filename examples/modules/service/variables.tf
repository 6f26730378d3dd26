variable "name" {
  type        = string
  description = "Service name: 1–24 characters, lowercase letters, digits and hyphens, starting with a letter. Prefixes every AWS object of the release."
}

variable "image_id" {
  type        = string
  description = "Machine image to run. Changing it releases; setting it back rolls back."
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type."
  default     = "t3.small"
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the fleet (at least one; two or more zones recommended)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the instances, at least one; one of them must admit the load balancer's security group on port. (Without any, AWS attaches the VPC's default group, which the load balancer cannot reach: every release would time out at its health gate.)"
  validation {
    condition     = length(var.security_group_ids) > 0
    error_message = "Give the instances a security group that admits the load balancer on port (security_group_ids): the VPC's default group, which AWS attaches otherwise, does not."
  }
}

variable "instance_profile" {
  type        = string
  description = "IAM instance profile name or ARN, or null."
  default     = null
}

variable "user_data" {
  type        = string
  description = "Boot script (plain text)."
  default     = null
  sensitive   = true
}

variable "listener_arn" {
  type        = string
  description = "The ALB listener whose default action the service owns (declare it with ignore_changes = [default_action])."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the target groups."
}

variable "port" {
  type        = number
  description = "Port the service listens on."
  default     = 8080
}

variable "health_check_path" {
  type        = string
  description = "HTTP path the load balancer checks."
  default     = "/healthz"
}

variable "min_size" {
  type        = number
  description = "Fewest instances."
  default     = 2
}

variable "max_size" {
  type        = number
  description = "Most instances."
  default     = 6
}

variable "desired_capacity" {
  type        = number
  description = "Instances wanted; null: the first release uses min_size, later ones keep the live desired capacity (autoscaling-friendly)."
  default     = null
}

variable "canary" {
  type = list(object({
    weight = number
    pause  = string
  }))
  description = "Canary steps (weights strictly increasing, 1–99). Empty: blue/green."
  default = [
    { weight = 10, pause = "5m" },
    { weight = 50, pause = "5m" },
  ]
}

variable "alarm_names" {
  type        = list(string)
  description = "CloudWatch alarms that abort a release if they fire during a canary pause or the bake."
  default     = []
}

variable "bake_time" {
  type        = string
  description = "How long to keep watching at 100 % before a release counts as done."
  default     = "5m"
}

variable "analysis_interval" {
  type        = string
  description = "Canary analysis: how often the new fleet is judged on its own error rate and p99 against the serving fleet's during each pause and the bake. null: no analysis."
  default     = "1m"
}

variable "max_error_rate_increase" {
  type        = number
  description = "Canary analysis: the most the new fleet's 5xx rate may exceed the serving fleet's, in percentage points."
  default     = 1
}

variable "max_p99_increase" {
  type        = string
  description = "Canary analysis: the most the new fleet's p99 response time may exceed the serving fleet's."
  default     = "250ms"
}

variable "min_requests" {
  type        = number
  description = "Canary analysis: fewer requests than this in a judgement's window is inconclusive (never a failure)."
  default     = 100
}

variable "hold_at" {
  type        = number
  description = "Stop the release at this weight (0, 10 or 50) until an apply raises or removes it: a pipeline's approval between stages. null: no hold."
  default     = null
}

variable "notification_topic_arn" {
  type        = string
  description = "An SNS topic told every event of every apply (started, healthy, each weight, committed, aborted with its reason, rolled back, retired), one JSON message each. null: none."
  default     = null
}

variable "rollback_window" {
  type        = string
  description = "How long the previous fleet stays warm for an instant rollback."
  default     = "1h"
}

variable "tags" {
  type        = map(string)
  description = "Tags on every AWS object of the service."
  default     = {}
}

variable "key_name" {
  type        = string
  description = "EC2 key pair of the instances, or null (reach them with SSM Session Manager instead)."
  default     = null
}

variable "detailed_monitoring" {
  type        = bool
  description = "Detailed (1-minute) CloudWatch monitoring of the instances."
  default     = false
}

variable "metadata_hop_limit" {
  type        = number
  description = "Hops an instance metadata (IMDSv2) response may take: 1 for processes on the instance only, 2 when containers need it."
  default     = 2
  validation {
    condition     = var.metadata_hop_limit >= 1 && var.metadata_hop_limit <= 64
    error_message = "The metadata hop limit (metadata_hop_limit) must be between 1 and 64."
  }
}

variable "root_device_name" {
  type        = string
  description = "The image's root device name (data.aws_ami's root_device_name: /dev/xvda on Amazon Linux, /dev/sda1 on Ubuntu and Debian), to size and encrypt the root volume; null keeps the image's own root volume. A name that is not the image's root device adds a second, empty volume instead."
  default     = null
}

variable "root_volume_size" {
  type        = number
  description = "Root volume size in GiB (gp3, encrypted), with root_device_name."
  default     = 20
  validation {
    condition     = var.root_volume_size >= 1 && var.root_volume_size <= 16384
    error_message = "The root volume size (root_volume_size) must be between 1 and 16384 GiB."
  }
}

variable "root_volume_kms_key_id" {
  type        = string
  description = "KMS key (ID, ARN or alias) that encrypts the root volume, or null for the account's default EBS key."
  default     = null
}

variable "requests_per_instance" {
  type        = number
  description = "Target of a request-count scaling policy: load balancer requests per instance per minute the fleet scales to hold, or null for none. Moves with each release; a retained fleet holds its capacity."
  default     = null
  validation {
    condition     = coalesce(var.requests_per_instance, 1) > 0
    error_message = "The request target (requests_per_instance) must be greater than 0, or null for no request-count policy."
  }
}

variable "cpu_target" {
  type        = number
  description = "Target of a CPU scaling policy: the average CPU utilization in percent the fleet scales to hold, or null for none."
  default     = null
  validation {
    condition     = coalesce(var.cpu_target, 50) > 0 && coalesce(var.cpu_target, 50) <= 100
    error_message = "The CPU target (cpu_target) must be a percentage above 0 and at most 100, or null for no CPU policy."
  }
}

variable "base_launch_template_id" {
  type        = string
  description = "ID of the platform team's launch template that every fleet's own template starts from (network interfaces, placement, tags, ...), or null for none. The module's own settings win over it."
  default     = null
  validation {
    condition     = can(regex("^lt-([0-9a-f]{8}|[0-9a-f]{17})$", coalesce(var.base_launch_template_id, "lt-00000000")))
    error_message = "The base launch template (base_launch_template_id) must be a launch template ID such as \"lt-0123456789abcdef0\", not a name."
  }
}

variable "base_launch_template_version" {
  type        = string
  description = "Version of the base launch template: \"$Latest\", \"$Default\" or a number. Resolved to a number at plan: a new version of the template is a release."
  default     = "$Default"
  validation {
    condition     = can(regex("^(\\$Latest|\\$Default|[1-9][0-9]*)$", var.base_launch_template_version))
    error_message = "The base launch template version (base_launch_template_version) must be \"$Latest\", \"$Default\" or a version number from 1."
  }
}
