# A release is imported by its name; its state is rebuilt from what the provider records in AWS.
terraform import immutable_release.web web
