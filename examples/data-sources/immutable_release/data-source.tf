data "immutable_release" "web" {
  name = "web"
}

output "web_image" {
  value = data.immutable_release.web.image_id
}
