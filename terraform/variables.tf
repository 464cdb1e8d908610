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
  description = "Kubernetes version of the EKS control plane. Must be in EKS standard support; see docs/runbook.md (EKS upgrade) for the dates and the procedure."
  type        = string
  default     = "1.35"
}

variable "eks_endpoint_public_access" {
  description = "Expose the Kubernetes API publicly (restricted to eks_public_access_cidrs). Off = private endpoint only, reachable from inside the VPC (the CodeBuild-hosted CI runners, a VPN or a bastion)."
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

variable "eks_node_pools" {
  description = "Built-in EKS Auto Mode node pools: general-purpose (workloads) and system (add-ons). Auto Mode sizes them; there is nothing to scale by hand."
  type        = list(string)
  default     = ["general-purpose", "system"]
}

variable "eks_metrics_server_version" {
  description = "Version of the metrics-server EKS add-on (null = the default for the cluster version at install; set it after a Kubernetes upgrade, see docs/runbook.md)."
  type        = string
  default     = null
}

# ---------------------------------------------------------- ingress / TLS ----

variable "route53_zone_name" {
  description = "Public Route 53 hosted zone holding api_domain_name (and the ACM validation records)."
  type        = string
}

variable "api_domain_name" {
  description = "Public host name of the API: the Ingress host and the certificate's name."
  type        = string
}

variable "api_alb_hostname" {
  description = "DNS name of the ALB that EKS Auto Mode created for the Ingress (null before the first deploy; then set it and apply again to create the CNAME api_domain_name -> ALB)."
  type        = string
  default     = null
}

# ------------------------------------------------------------------- mail ----

variable "mail_domain_name" {
  description = "Domain the app sends mail from (SES domain identity with DKIM, MAIL FROM bounce.<domain>); route53_zone_name or a name inside it. null = route53_zone_name. Give each environment of one account its own (an SES identity exists once per account and region)."
  type        = string
  default     = null
}

variable "mail_from_local_part" {
  description = "Local part of the one sender address the SES SMTP user may use: MAIL_FROM is <this>@<mail domain> (output mail_from_address)."
  type        = string
  default     = "no-reply"
}

variable "mail_smtp_key_generations" {
  description = "Labels of the SES SMTP user's access keys; MAILER (usergraph/<env>/mailer) uses the last. Rotate without a gap: [\"1\", \"2\"], apply, sync + restart the pods, then [\"2\"] and apply (docs/runbook.md)."
  type        = list(string)
  default     = ["1"]
}

# -------------------------------------------------------------------- CD ----

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflow deploys (deploy role trust, runner webhook)."
  type        = string
  default     = "usergraph/usergraph"
}

variable "github_environment" {
  description = "GitHub deployment environment allowed to assume this environment's deploy role (the workflow's environment: dev, production)."
  type        = string
}

variable "github_oidc_provider_arn" {
  description = "Existing IAM OIDC provider for token.actions.githubusercontent.com in this account; null = create it (one per account: when dev and prod share an account, give the second one the first one's ARN)."
  type        = string
  default     = null
}

variable "github_codeconnection_arn" {
  description = "AWS CodeConnections connection to GitHub used by the CodeBuild runners (created once in the console); null = the account's default CodeBuild source credential."
  type        = string
  default     = null
}

variable "deploy_kubernetes_group" {
  description = "Kubernetes RBAC group of the deploy role (bound by the platform manifests for the few cluster-scoped reads a deploy needs)."
  type        = string
  default     = "usergraph-deployers"
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

variable "db_read_replica" {
  description = "Build one read replica (DATABASE_READ_URL; its endpoint is db_read_host in <project>/<env>/connection)."
  type        = bool
  default     = false
}

variable "db_app_username" {
  description = "PostgreSQL role of the application (DML only; created by the migration Job, which runs as the owner)."
  type        = string
  default     = "usergraph_app"
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

variable "k8s_namespace" {
  description = "Namespace of usergraph (deploy role's edit scope, backup ServiceAccount)."
  type        = string
  default     = "usergraph"
}

variable "k8s_backup_service_account" {
  description = "ServiceAccount of the backup CronJob (Pod Identity: backup bucket prefix, owner DB secret)."
  type        = string
  default     = "usergraph-backup"
}

variable "external_secrets_namespace" {
  description = "Namespace of the External Secrets Operator."
  type        = string
  default     = "external-secrets"
}

variable "external_secrets_service_account" {
  description = "ServiceAccount of the External Secrets Operator controller (Pod Identity: read the usergraph secrets)."
  type        = string
  default     = "external-secrets"
}

variable "backup_prefix" {
  description = "Key prefix in the backup bucket that the backup CronJob may write to."
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
