# Blue/green: the new fleet takes all traffic at once when it is healthy; the previous one
# stays warm for an hour, so setting image_id back is a rollback in seconds.
resource "immutable_release" "web" {
  name               = "web"
  image_id           = var.image_id # change it to release; set it back to roll back
  instance_type      = "t3.micro"
  subnet_ids         = var.subnet_ids
  security_group_ids = [aws_security_group.web.id] # must admit the load balancer on port

  min_size = 2
  max_size = 4

  load_balancer {
    listener_arn = aws_lb_listener.http.arn # declared with ignore_changes = [default_action]
    vpc_id       = var.vpc_id
    port         = 8080
    health_check {
      path              = "/healthz"
      interval          = 10
      healthy_threshold = 2
    }
  }
}
