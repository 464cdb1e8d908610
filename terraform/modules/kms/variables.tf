variable "name" {
  description = "Alias of the key, without the alias/ prefix (the key becomes alias/<name>)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_-]+$", var.name)) && !startswith(var.name, "alias/") && !startswith(var.name, "aws/")
    error_message = "name must be letters, digits, / _ -, without the alias/ prefix, and must not start with aws/ (reserved for AWS managed keys)."
  }
}

variable "description" {
  description = "Description of the key: what it encrypts."
  type        = string
}

variable "extra_statements" {
  description = "Key-policy statements besides the account-root administration one, e.g. a service that encrypts with the key. principal_type is Service (principals = service principals such as logs.<region>.amazonaws.com) or AWS (principals = IAM role/user ARNs); resources is always the key itself (\"*\")."
  type = list(object({
    sid            = string
    principal_type = optional(string, "Service")
    principals     = list(string)
    actions        = list(string)
    conditions = optional(list(object({
      test     = string
      variable = string
      values   = list(string)
    })), [])
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.extra_statements : contains(["Service", "AWS"], s.principal_type)])
    error_message = "principal_type must be Service or AWS."
  }

  validation {
    condition     = alltrue([for s in var.extra_statements : length(s.actions) > 0 && alltrue([for a in s.actions : startswith(a, "kms:") && a != "kms:*"])])
    error_message = "Each statement needs kms: actions; kms:* is reserved for the account-root administration statement."
  }

  validation {
    condition     = length(distinct([for s in var.extra_statements : s.sid])) == length(var.extra_statements) && !contains([for s in var.extra_statements : s.sid], "AccountAdministration")
    error_message = "Statement sids must be unique and must not be AccountAdministration."
  }
}

variable "deletion_window_in_days" {
  description = "Days a deleted key can still be recovered before KMS destroys it (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be 7-30."
  }
}

variable "tags" {
  description = "Tags of the key, in addition to the provider's default_tags (null = default_tags only)."
  type        = map(string)
  default     = null
}
