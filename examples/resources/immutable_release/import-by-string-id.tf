# Terraform 1.5 and later: import an existing release by its name. With
# `terraform plan -generate-config-out=generated.tf` Terraform writes its configuration,
# which then plans no change.
import {
  to = immutable_release.web
  id = "web"
}
