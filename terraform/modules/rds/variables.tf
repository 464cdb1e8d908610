variable "identifier" {
  description = "RDS instance identifier."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the DB subnet group (one per AZ)."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to connect, keyed by a static label (keys must be known at plan time): the EKS cluster security group, which Auto Mode nodes and pods carry."
  type        = map(string)
}

variable "engine_version" {
  description = "PostgreSQL major version; minor upgrades are applied automatically in the maintenance window."
  type        = string
  default     = "15"
}

variable "instance_class" {
  description = "Instance class."
  type        = string
}

variable "allocated_storage_gb" {
  description = "Initial storage (GiB)."
  type        = number
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
}

variable "multi_az" {
  description = "Synchronous standby in another AZ."
  type        = bool
  default     = true
}

variable "db_name" {
  description = "Name of the database created at launch."
  type        = string
}

variable "username" {
  description = "Master user name: the owner of the database (migrations, backups). RDS manages its password."
  type        = string
}

variable "master_user_secret_kms_key_arn" {
  description = "KMS key of the RDS-managed master user secret (the secrets module's key, so the readers of the app secrets need no second key)."
  type        = string
}

variable "read_replica" {
  description = "Build one read replica (endpoint for DATABASE_READ_URL)."
  type        = bool
  default     = false
}

variable "replica_instance_class" {
  description = "Instance class of the replica (null = same as the primary)."
  type        = string
  default     = null
}

variable "port" {
  description = "Listener port."
  type        = number
  default     = 5432
}

variable "backup_retention_days" {
  description = "Automated backup retention (days) = PITR window."
  type        = number
}

variable "backup_window" {
  description = "Daily backup window (UTC)."
  type        = string
  default     = "02:00-03:00"
}

variable "maintenance_window" {
  description = "Weekly maintenance window (UTC); must not overlap the backup window."
  type        = string
  default     = "sun:03:30-sun:04:30"
}

variable "deletion_protection" {
  description = "Refuse to delete the instance."
  type        = bool
  default     = true
}

variable "slow_query_ms" {
  description = "log_min_duration_statement in milliseconds."
  type        = number
  default     = 250
}

variable "monitoring_interval" {
  description = "Enhanced monitoring interval in seconds (1, 5, 10, 15, 30 or 60)."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "KMS key for the exported PostgreSQL log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the exported log groups."
  type        = number
}
