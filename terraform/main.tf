# usergraph — reference AWS deployment.
#
#   VPC (3 AZ, public + private subnets, NAT) ─┬─ EKS (managed nodes, IRSA)
#                                               ├─ RDS PostgreSQL 15 (private)
#                                               └─ ElastiCache Redis 7 cluster (private, TLS + AUTH)
#   Secrets Manager (DB creds, JWT secret, Redis AUTH) ── read by the usergraph pod via IRSA
#   S3 backup bucket ── written by the usergraph pod (backup prefix only)
#   CloudWatch (log groups, alarms) ── SNS
#
# Usage:  terraform init && terraform plan -var-file=environments/dev.tfvars

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

locals {
  name = "${var.project}-${var.environment}"

  tags = merge(var.extra_tags, {
    Project     = var.project
    Environment = var.environment
    Owner       = var.owner
    ManagedBy   = "terraform"
    Repository  = "usergraph/terraform"
  })

  # Names are fixed here and handed to both the module that creates a resource
  # and the cloudwatch module that alarms on it, so the dependency graph stays
  # one-way: cloudwatch -> vpc -> eks -> rds/redis, secrets -> rds/redis/iam.
  cluster_name        = local.name
  db_identifier       = "${local.name}-postgres"
  db_name             = "usergraph"
  db_username         = "usergraph_admin"
  db_port             = 5432
  redis_group_id      = "${local.name}-redis"
  redis_port          = 6379
  service_account_sub = "system:serviceaccount:${var.k8s_namespace}:${var.k8s_service_account}"
}

module "cloudwatch" {
  source = "./modules/cloudwatch"

  name               = local.name
  log_retention_days = var.log_retention_days
  alarm_emails       = var.alarm_email_addresses

  db_instance_id                 = local.db_identifier
  db_allocated_storage_gb        = var.db_allocated_storage_gb
  db_connections_alarm_threshold = var.db_connections_alarm_threshold

  redis_replication_group_id = local.redis_group_id
  redis_num_shards           = var.redis_num_shards
  redis_replicas_per_shard   = var.redis_replicas_per_shard
}

module "vpc" {
  source = "./modules/vpc"

  name               = local.name
  cidr               = var.vpc_cidr
  azs                = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  cluster_name       = local.cluster_name
  log_kms_key_arn    = module.cloudwatch.kms_key_arn
  log_retention_days = var.log_retention_days
}

module "eks" {
  source = "./modules/eks"

  cluster_name           = local.cluster_name
  cluster_version        = var.eks_cluster_version
  vpc_id                 = module.vpc.vpc_id
  private_subnet_ids     = module.vpc.private_subnet_ids
  endpoint_public_access = var.eks_endpoint_public_access
  public_access_cidrs    = var.eks_public_access_cidrs
  admin_principal_arns   = var.eks_admin_principal_arns
  node_groups            = var.eks_node_groups
  log_kms_key_arn        = module.cloudwatch.kms_key_arn
  log_retention_days     = var.log_retention_days
}

module "secrets" {
  source = "./modules/secrets"

  name                   = local.name
  recovery_window_days   = var.secret_recovery_window_days
  db_rotation_lambda_arn = var.db_rotation_lambda_arn
  db_rotation_days       = var.db_rotation_days
}

module "rds" {
  source = "./modules/rds"

  identifier                 = local.db_identifier
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  allowed_security_group_ids = [module.eks.node_security_group_id]
  instance_class             = var.db_instance_class
  allocated_storage_gb       = var.db_allocated_storage_gb
  max_allocated_storage_gb   = var.db_max_allocated_storage_gb
  multi_az                   = var.db_multi_az
  db_name                    = local.db_name
  username                   = local.db_username
  password                   = module.secrets.db_password
  credentials_secret_arn     = module.secrets.db_secret_arn
  port                       = local.db_port
  backup_retention_days      = var.db_backup_retention_days
  deletion_protection        = var.db_deletion_protection
  slow_query_ms              = var.db_slow_query_ms
  log_kms_key_arn            = module.cloudwatch.kms_key_arn
  log_retention_days         = var.log_retention_days
}

module "redis" {
  source = "./modules/redis"

  replication_group_id       = local.redis_group_id
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  allowed_security_group_ids = [module.eks.node_security_group_id]
  node_type                  = var.redis_node_type
  num_shards                 = var.redis_num_shards
  replicas_per_shard         = var.redis_replicas_per_shard
  port                       = local.redis_port
  auth_token                 = module.secrets.redis_auth_token
  auth_token_update_strategy = var.redis_auth_token_update_strategy
  snapshot_retention_days    = var.redis_snapshot_retention_days
  log_kms_key_arn            = module.cloudwatch.kms_key_arn
  log_retention_days         = var.log_retention_days
}

module "s3" {
  source = "./modules/s3"

  name                 = local.name
  backup_prefix        = var.backup_prefix
  glacier_after_days   = var.backup_glacier_after_days
  expire_after_days    = var.backup_expire_after_days
  access_log_retention = var.log_retention_days
}

module "iam" {
  source = "./modules/iam"

  name                = local.name
  oidc_provider_arn   = module.eks.oidc_provider_arn
  oidc_issuer         = module.eks.oidc_issuer
  service_account_sub = local.service_account_sub
  secret_arns         = module.secrets.app_secret_arns
  secrets_kms_key_arn = module.secrets.kms_key_arn
  backup_bucket_arn   = module.s3.backup_bucket_arn
  backup_prefix       = var.backup_prefix
  backup_kms_key_arn  = module.s3.kms_key_arn
}
