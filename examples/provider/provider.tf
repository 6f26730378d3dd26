provider "immutable" {
  region        = "us-east-1"
  profile       = "prod"
  poll_interval = "5s"
  max_retries   = 10
  default_tags  = { owner = "platform" }
}
