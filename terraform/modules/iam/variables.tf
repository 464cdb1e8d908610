variable "name" {
  description = "Name prefix (project-environment)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider."
  type        = string
}

variable "oidc_issuer" {
  description = "OIDC issuer without https:// (prefix of the :sub and :aud condition keys)."
  type        = string
}

variable "service_account_sub" {
  description = "Subject allowed to assume the role: system:serviceaccount:<namespace>:<name>."
  type        = string

  validation {
    condition     = can(regex("^system:serviceaccount:[a-z0-9-]+:[a-z0-9-]+$", var.service_account_sub))
    error_message = "service_account_sub must name exactly one ServiceAccount (no wildcards)."
  }
}

variable "secret_arns" {
  description = "Secrets Manager secrets the service may read."
  type        = list(string)
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
  description = "The only key prefix the service may write to."
  type        = string
}

variable "backup_kms_key_arn" {
  description = "KMS key of the backup bucket."
  type        = string
}
