output "region" {
  description = "AWS region of the environment."
  value       = var.aws_region
}

output "vpc_id" {
  description = "VPC id."
  value       = module.vpc.vpc_id
}

output "nat_public_ips" {
  description = "Egress IPs of the cluster (for third-party allow-lists such as the SMTP relay)."
  value       = module.vpc.nat_public_ips
}

output "eks_cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "eks_cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.eks.cluster_endpoint
}

output "usergraph_role_arn" {
  description = "IRSA role: annotate ServiceAccount usergraph/usergraph with eks.amazonaws.com/role-arn = this."
  value       = module.iam.usergraph_role_arn
}

output "db_address" {
  description = "RDS endpoint host (DATABASE_URL host; TLS required)."
  value       = module.rds.address
}

output "db_port" {
  description = "RDS port."
  value       = module.rds.port
}

output "db_name" {
  description = "Database name."
  value       = local.db_name
}

output "redis_configuration_endpoint" {
  description = "ElastiCache cluster-mode configuration endpoint (TLS, AUTH)."
  value       = module.redis.configuration_endpoint
}

output "redis_port" {
  description = "Redis port."
  value       = module.redis.port
}

output "secret_arns" {
  description = "Secrets Manager ARNs to sync into the usergraph Secret (e.g. with External Secrets Operator)."
  value = {
    database = module.secrets.db_secret_arn
    jwt      = module.secrets.jwt_secret_arn
    redis    = module.secrets.redis_secret_arn
  }
}

output "backup_bucket" {
  description = "Backup bucket; usergraph may write under backup_prefix only."
  value       = module.s3.backup_bucket_name
}

output "backup_prefix" {
  description = "Key prefix for database backups."
  value       = var.backup_prefix
}

output "alarm_topic_arn" {
  description = "SNS topic of every alarm."
  value       = module.cloudwatch.alarm_topic_arn
}

output "app_log_group" {
  description = "CloudWatch log group for the pods' logs."
  value       = module.cloudwatch.app_log_group_name
}
