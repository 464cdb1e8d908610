variable "name" {
  description = "Name prefix (project-environment); secrets are named <name>/<secret>."
  type        = string
}

variable "recovery_window_days" {
  description = "Days a deleted secret stays recoverable (7-30)."
  type        = number
  default     = 30
}

variable "db_rotation_lambda_arn" {
  description = "Rotation Lambda for the DB credentials; null = no rotation schedule."
  type        = string
  default     = null
}

variable "db_rotation_days" {
  description = "Rotation interval of the DB credentials."
  type        = number
  default     = 30
}

