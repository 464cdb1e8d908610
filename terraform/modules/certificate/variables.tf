variable "zone_name" {
  description = "Public Route 53 hosted zone that holds domain_name and the validation records."
  type        = string
}

variable "domain_name" {
  description = "Host name of the API (the Ingress host), e.g. api.usergraph.example.com."
  type        = string

  validation {
    condition     = !startswith(var.domain_name, "*.")
    error_message = "Use the exact API host name, not a wildcard."
  }
}

variable "subject_alternative_names" {
  description = "Further host names on the certificate."
  type        = list(string)
  default     = []
}

variable "alb_hostname" {
  description = "DNS name of the ALB serving the Ingress (null until the first deploy has created it)."
  type        = string
  default     = null
}
