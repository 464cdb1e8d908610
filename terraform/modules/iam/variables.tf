variable "name" {
  description = "Name prefix (project-environment)."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster of the Pod Identity associations and the deploy access entry."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of that cluster (scope of the deploy role's DescribeCluster)."
  type        = string
}

variable "namespace" {
  description = "Namespace of usergraph: the deploy role may edit it, the backup ServiceAccount lives in it."
  type        = string
}

variable "backup_service_account" {
  description = "ServiceAccount of the backup CronJob."
  type        = string
}

variable "external_secrets_namespace" {
  description = "Namespace of the External Secrets Operator."
  type        = string
}

variable "external_secrets_service_account" {
  description = "ServiceAccount of the External Secrets Operator controller."
  type        = string
}

variable "app_secret_arns" {
  description = "Secrets Manager secrets of the app by key (db_app, jwt, redis, connection, mailer): all readable by ESO."
  type        = map(string)

  validation {
    condition     = contains(keys(var.app_secret_arns), "connection")
    error_message = "app_secret_arns must contain the connection secret (the backup reads the DB host from it)."
  }
}

variable "db_owner_secret_arn" {
  description = "RDS-managed secret of the master (owner) user."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of those secrets."
  type        = string
}

variable "backup_bucket_arn" {
  description = "ARN of the backup bucket."
  type        = string
}

variable "backup_prefix" {
  description = "The only key prefix the backup may write to."
  type        = string
}

variable "backup_kms_key_arn" {
  description = "KMS key of the backup bucket."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflow deploys."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, without wildcards."
  }
}

variable "github_environment" {
  description = "GitHub deployment environment whose jobs may assume the deploy role."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.github_environment))
    error_message = "github_environment must be one environment name, without wildcards."
  }
}

variable "github_oidc_provider_arn" {
  description = "Existing IAM OIDC provider for token.actions.githubusercontent.com (null = create it here; one per account)."
  type        = string
  default     = null
}

variable "deploy_kubernetes_group" {
  description = "Kubernetes group of the deploy role's access entry."
  type        = string
}
