output "release" {
  description = "Number of the release now serving."
  value       = immutable_release.this.release
}

output "fleet_name" {
  description = "Auto Scaling group serving traffic."
  value       = immutable_release.this.fleet_name
}

output "target_group_arn" {
  description = "Target group of the serving fleet (for per-fleet alarms and dashboards)."
  value       = immutable_release.this.target_group_arn
}

output "previous_image_id" {
  description = "Image of the warm fleet: pass it back as image_id to roll back."
  value       = immutable_release.this.previous_image_id
}

output "traffic" {
  description = "Listener weights by fleet, as read from AWS."
  value       = immutable_release.this.traffic
}
