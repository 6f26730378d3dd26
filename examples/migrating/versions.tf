terraform {
  required_version = ">= 1.0"
  required_providers {
    aws       = { source = "hashicorp/aws", version = ">= 5.0" }
    immutable = { source = "immutable-infra/immutable" }
  }
}

provider "aws" {
  region = var.region
}

provider "immutable" {
  region = var.region
}
