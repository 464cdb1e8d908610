# ---------------------------------------------------------------- general ----

variable "aws_region" {
  description = "AWS region for every resource of this environment."
  type        = string
  default     = "eu-west-1"
}

variable "project" {
  description = "Project name; prefixes every resource name."
  type        = string
  default     = "usergraph"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project must be lower-case letters, digits and dashes (2-21 chars)."
  }
}

variable "environment" {
  description = "Deployment environment."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be \"dev\" or \"prod\"."
  }
}

variable "owner" {
  description = "Team that owns these resources (Owner tag)."
  type        = string
  default     = "platform"
}

variable "extra_tags" {
  description = "Additional tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default     = {}
}

# -------------------------------------------------------------------- vpc ----

variable "vpc_cidr" {
  description = "CIDR of the VPC; split into 3 public and 3 private subnets."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "The three availability zones to span, pinned by name so a newly added zone never moves a subnet."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) == 3
    error_message = "The reference deployment spans exactly 3 availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One shared NAT gateway (cheap, dev) instead of one per AZ (highly available, prod)."
  type        = bool
  default     = false
}

# -------------------------------------------------------------------- eks ----

variable "eks_cluster_version" {
  description = "Kubernetes version of the EKS control plane."
  type        = string
  default     = "1.31"
}

variable "eks_endpoint_public_access" {
  description = "Expose the Kubernetes API publicly (restricted to eks_public_access_cidrs). Off = private endpoint only, reachable from inside the VPC (VPN, bastion or self-hosted CI runner)."
  type        = bool
  default     = false
}

variable "eks_public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint when it is enabled. Never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.eks_public_access_cidrs, "0.0.0.0/0")
    error_message = "Do not open the Kubernetes API to 0.0.0.0/0."
  }
}

variable "eks_admin_principal_arns" {
  description = "IAM role/user ARNs granted cluster-admin through EKS access entries (e.g. the CI deploy role, the on-call role)."
  type        = list(string)
  default     = []
}

variable "eks_node_groups" {
  description = "Managed node groups. desired_size is only the initial size; the cluster autoscaler owns it afterwards."
  type = map(object({
    instance_types = list(string)
    capacity_type  = optional(string, "ON_DEMAND")
    min_size       = number
    max_size       = number
    desired_size   = number
    disk_size_gb   = optional(number, 50)
    labels         = optional(map(string), {})
  }))
  default = {
    general = {
      instance_types = ["m6i.large"]
      min_size       = 3
      max_size       = 10
      desired_size   = 3
    }
  }
}

# -------------------------------------------------------------------- rds ----

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.r6g.large"
}

variable "db_allocated_storage_gb" {
  description = "Initial allocated storage (GiB)."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage_gb" {
  description = "Upper bound for storage autoscaling (GiB)."
  type        = number
  default     = 500
}

variable "db_multi_az" {
  description = "Run a synchronous standby in a second AZ."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups kept; also the point-in-time-recovery window."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be 1-35 (0 would disable backups and PITR)."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database instance."
  type        = bool
  default     = true
}

variable "db_slow_query_ms" {
  description = "log_min_duration_statement: statements slower than this (ms) are logged."
  type        = number
  default     = 250
}

# ------------------------------------------------------------------ redis ----

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.r7g.large"
}

variable "redis_num_shards" {
  description = "Number of shards (node groups) in cluster mode."
  type        = number
  default     = 3
}

variable "redis_replicas_per_shard" {
  description = "Replicas per shard (>= 1 for automatic failover and Multi-AZ)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replicas_per_shard >= 1
    error_message = "At least one replica per shard is needed for automatic failover."
  }
}

variable "redis_auth_token_update_strategy" {
  description = "Applied when the AUTH token changes: ROTATE (old and new both valid while pods restart), then SET (old one dropped). See the secrets runbook."
  type        = string
  default     = "ROTATE"
}

variable "redis_snapshot_retention_days" {
  description = "Days of Redis snapshots kept."
  type        = number
  default     = 7
}

# ----------------------------------------------------- secrets / iam / s3 ----

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored."
  type        = number
  default     = 30
}

variable "db_rotation_lambda_arn" {
  description = "ARN of a Secrets Manager rotation Lambda for the DB credentials (e.g. deployed from the SecretsManagerRDSPostgreSQLRotationSingleUser serverless application into the private subnets; add its security group to the RDS ingress). null = rotation not scheduled. Pods must be restarted (or re-read the secret) after a rotation."
  type        = string
  default     = null
}

variable "db_rotation_days" {
  description = "Rotate the DB credentials every N days when db_rotation_lambda_arn is set."
  type        = number
  default     = 30

  validation {
    condition     = var.db_rotation_days >= 1 && var.db_rotation_days <= 90
    error_message = "db_rotation_days must be 1-90."
  }
}

variable "k8s_namespace" {
  description = "Namespace of the usergraph ServiceAccount (IRSA trust)."
  type        = string
  default     = "usergraph"
}

variable "k8s_service_account" {
  description = "Name of the usergraph ServiceAccount (IRSA trust)."
  type        = string
  default     = "usergraph"
}

variable "backup_prefix" {
  description = "Key prefix in the backup bucket that usergraph may write to."
  type        = string
  default     = "db-backups"
}

variable "backup_glacier_after_days" {
  description = "Move backups to Glacier Flexible Retrieval after N days."
  type        = number
  default     = 30
}

variable "backup_expire_after_days" {
  description = "Delete backups after N days."
  type        = number
  default     = 365
}

# ------------------------------------------------------------- monitoring ----

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group (must be a value CloudWatch accepts; >= 365 for audit)."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least 365 days."
  }
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the alarm SNS topic (each must confirm the subscription)."
  type        = list(string)
  default     = []
}

variable "db_connections_alarm_threshold" {
  description = "Alarm when RDS DatabaseConnections exceeds this (keep below max_connections of the instance class)."
  type        = number
  default     = 800
}
