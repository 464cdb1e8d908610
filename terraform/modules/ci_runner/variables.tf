variable "name" {
  description = "Name of the CodeBuild project (and prefix of its role, SG and log group); part of the runs-on label."
  type        = string
}

variable "vpc_id" {
  description = "VPC the runners run in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the runners (egress through the NAT gateways)."
  type        = list(string)
}

variable "github_repository" {
  description = "owner/name of the repository whose workflow jobs the runners take."
  type        = string
}

variable "codeconnection_arn" {
  description = "AWS CodeConnections connection to GitHub (null = the account's default CodeBuild source credential)."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "KMS key for the build log group and the project's encryption key."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the build logs."
  type        = number
}

variable "compute_type" {
  description = "CodeBuild compute type of a runner."
  type        = string
  default     = "BUILD_GENERAL1_SMALL"
}

variable "image" {
  description = "CodeBuild image of a runner (has bash, git, curl and the AWS CLI)."
  type        = string
  default     = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
}

variable "build_timeout_minutes" {
  description = "Upper bound of one runner's life (the workflow job's own timeout is shorter)."
  type        = number
  default     = 60
}

variable "concurrent_build_limit" {
  description = "Runners at the same time (deploys are serialised by workflow concurrency anyway)."
  type        = number
  default     = 2
}
