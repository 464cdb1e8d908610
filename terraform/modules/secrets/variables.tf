variable "name" {
  description = "Name prefix of the KMS key alias (project-environment)."
  type        = string
}

variable "prefix" {
  description = "Secret name prefix, <project>/<environment>; secrets are named <prefix>/db-app, /jwt, /redis, /connection, /mailer."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*/[a-z]+$", var.prefix))
    error_message = "prefix must look like <project>/<environment>, e.g. usergraph/prod."
  }
}

variable "recovery_window_days" {
  description = "Days a deleted secret stays recoverable (7-30)."
  type        = number
  default     = 30
}

variable "db_app_username" {
  description = "PostgreSQL role the application logs in as (created and granted DML by the migration Job, which runs as the owner)."
  type        = string
}

variable "connection" {
  description = "Endpoints written to <prefix>/connection. db_read_host null = no replica (the primary is written instead)."
  type = object({
    db_host      = string
    db_port      = number
    db_name      = string
    db_read_host = optional(string)
    redis_host   = string
    redis_port   = number
  })
}

variable "mailer_url" {
  description = "MAILER value written to <prefix>/mailer: the smtps:// URL with percent-encoded SMTP credentials (mail module output smtp_url)."
  type        = string
  sensitive   = true

  validation {
    condition     = startswith(var.mailer_url, "smtps://") || startswith(var.mailer_url, "smtp://")
    error_message = "mailer_url must be an smtps:// (or smtp://) URL: the app would otherwise log reset links (MAILER=log) or refuse to start."
  }
}
