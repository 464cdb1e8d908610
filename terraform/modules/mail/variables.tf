variable "name" {
  description = "Name prefix (project-environment) of the SMTP IAM user."
  type        = string
}

variable "domain_name" {
  description = "Domain that sends the mail (SES domain identity); the zone itself or a name inside it."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lower-case DNS name without a trailing dot."
  }
}

variable "zone_name" {
  description = "Public Route 53 zone of domain_name (checked: the records must be able to go there)."
  type        = string
}

variable "zone_id" {
  description = "Id of that zone (DKIM and MAIL FROM records)."
  type        = string
}

variable "from_local_part" {
  description = "Local part of the only sender address the SMTP user may send from (<from_local_part>@<domain_name>)."
  type        = string
  default     = "no-reply"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._+-]*$", var.from_local_part))
    error_message = "from_local_part must be a plain local part such as no-reply."
  }
}

variable "mail_from_subdomain" {
  description = "Label of the custom MAIL FROM domain under domain_name (MX to SES feedback, SPF TXT)."
  type        = string
  default     = "bounce"
}

variable "key_generations" {
  description = "Labels of the SMTP user's access keys; MAILER uses the last. Two during a rotation, one otherwise (IAM allows two keys per user)."
  type        = list(string)
  default     = ["1"]

  validation {
    condition     = length(var.key_generations) >= 1 && length(var.key_generations) <= 2 && length(distinct(var.key_generations)) == length(var.key_generations)
    error_message = "key_generations must hold one or two distinct labels (IAM allows two access keys per user)."
  }
}
