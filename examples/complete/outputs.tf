output "url" {
  value = "http://${aws_lb.main.dns_name}/"
}

output "release" {
  value = immutable_release.web.release
}

output "traffic" {
  value = immutable_release.web.traffic
}

output "previous_image_id" {
  description = "terraform apply -var image_id=$(terraform output -raw previous_image_id) rolls back."
  value       = immutable_release.web.previous_image_id
}
