output "url" {
  value = "http://${aws_lb.web.dns_name}/"
}

output "release" {
  value = immutable_release.web.release
}

output "image_id" {
  value = immutable_release.web.image_id
}

output "previous_image_id" {
  value = immutable_release.web.previous_image_id
}

output "planned_steps" {
  value = immutable_release.web.planned_steps
}
