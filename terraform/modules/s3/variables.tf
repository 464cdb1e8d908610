variable "name" {
  description = "Name prefix (project-environment); the account id is appended for global uniqueness."
  type        = string
}

variable "backup_prefix" {
  description = "Key prefix of the database backups (the only prefix usergraph may write)."
  type        = string
}

variable "glacier_after_days" {
  description = "Transition backups to Glacier Flexible Retrieval after N days."
  type        = number
  default     = 30
}

variable "expire_after_days" {
  description = "Delete backups after N days."
  type        = number
  default     = 365

  validation {
    condition     = var.expire_after_days > 0
    error_message = "expire_after_days must be positive."
  }
}

variable "access_log_retention" {
  description = "Days the S3 access logs are kept."
  type        = number
  default     = 365
}
