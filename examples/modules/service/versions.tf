terraform {
  required_version = ">= 1.0"
  required_providers {
    immutable = { source = "immutable-infra/immutable" }
  }
}
