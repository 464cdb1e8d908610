# usergraph — reference AWS deployment. One state per environment
# (environments/<env>.tfvars); the only provider is hashicorp/aws.
#
#   VPC (3 AZ, public + private subnets, NAT)
#    ├─ EKS Auto Mode (nodes, ALB, EBS, network policies, Pod Identity)
#    │    + metrics-server add-on; access entries: admins, the deploy role
#    ├─ CodeBuild-hosted GitHub Actions runners (private subnets) ── the
#    │    only path from CD to the private API endpoint
#    ├─ RDS PostgreSQL 15 (private; master password managed by RDS;
#    │    optional read replica)
#    └─ ElastiCache Redis 7 cluster (private, TLS + AUTH)
#   ACM certificate (DNS-validated in Route 53) ── IngressClassParams alb
#   Secrets Manager usergraph/<env>/{db-app,jwt,redis,connection,mailer} +
#     the RDS-managed owner secret ── External Secrets Operator (Pod Identity)
#   SES domain identity (DKIM, MAIL FROM) + SMTP-only IAM user ── mailer secret
#   S3 backup bucket ── backup CronJob (Pod Identity, one prefix)
#   GitHub OIDC provider + deploy role ── the workflow's deploy jobs
#   CloudWatch (log groups, alarms) ── SNS
#
# What each Kubernetes object the manifests reference comes from:
# docs/platform.md.
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
  # one-way: cloudwatch -> vpc -> ci_runner -> eks -> rds/redis -> secrets
  # (connection) -> iam.
  cluster_name   = local.name
  db_identifier  = "${local.name}-postgres"
  db_name        = "usergraph"
  db_username    = "usergraph_admin" # owner of the database; changing it replaces the instance
  db_port        = 5432
  redis_group_id = "${local.name}-redis"
  redis_port     = 6379
  secret_prefix  = "${var.project}/${var.environment}"
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

module "ci_runner" {
  source = "./modules/ci_runner"

  name               = "${local.name}-gha-runner"
  vpc_id             = module.vpc.vpc_id
  subnet_ids         = module.vpc.private_subnet_ids
  github_repository  = var.github_repository
  codeconnection_arn = var.github_codeconnection_arn
  kms_key_arn        = module.cloudwatch.kms_key_arn
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
  node_pools             = var.eks_node_pools
  metrics_server_version = var.eks_metrics_server_version
  log_kms_key_arn        = module.cloudwatch.kms_key_arn
  log_retention_days     = var.log_retention_days

  api_allowed_security_group_ids = {
    ci_runner = module.ci_runner.security_group_id
  }
}

module "certificate" {
  source = "./modules/certificate"

  zone_name    = var.route53_zone_name
  domain_name  = var.api_domain_name
  alb_hostname = var.api_alb_hostname
}

module "mail" {
  source = "./modules/mail"

  name            = local.name
  domain_name     = coalesce(var.mail_domain_name, var.route53_zone_name)
  zone_name       = var.route53_zone_name
  zone_id         = module.certificate.zone_id
  from_local_part = var.mail_from_local_part
  key_generations = var.mail_smtp_key_generations
}

module "secrets" {
  source = "./modules/secrets"

  name                 = local.name
  prefix               = local.secret_prefix
  recovery_window_days = var.secret_recovery_window_days
  db_app_username      = var.db_app_username
  mailer_url           = module.mail.smtp_url

  connection = {
    db_host      = module.rds.address
    db_port      = module.rds.port
    db_name      = local.db_name
    db_read_host = module.rds.reader_address
    redis_host   = module.redis.configuration_endpoint
    redis_port   = module.redis.port
  }
}

module "rds" {
  source = "./modules/rds"

  identifier                     = local.db_identifier
  vpc_id                         = module.vpc.vpc_id
  subnet_ids                     = module.vpc.private_subnet_ids
  allowed_security_group_ids     = { eks_cluster = module.eks.cluster_security_group_id }
  instance_class                 = var.db_instance_class
  allocated_storage_gb           = var.db_allocated_storage_gb
  max_allocated_storage_gb       = var.db_max_allocated_storage_gb
  multi_az                       = var.db_multi_az
  read_replica                   = var.db_read_replica
  db_name                        = local.db_name
  username                       = local.db_username
  master_user_secret_kms_key_arn = module.secrets.kms_key_arn
  port                           = local.db_port
  backup_retention_days          = var.db_backup_retention_days
  deletion_protection            = var.db_deletion_protection
  slow_query_ms                  = var.db_slow_query_ms
  log_kms_key_arn                = module.cloudwatch.kms_key_arn
  log_retention_days             = var.log_retention_days
}

module "redis" {
  source = "./modules/redis"

  replication_group_id       = local.redis_group_id
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  allowed_security_group_ids = { eks_cluster = module.eks.cluster_security_group_id }
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

  name         = local.name
  cluster_name = module.eks.cluster_name
  cluster_arn  = module.eks.cluster_arn
  namespace    = var.k8s_namespace

  backup_service_account           = var.k8s_backup_service_account
  external_secrets_namespace       = var.external_secrets_namespace
  external_secrets_service_account = var.external_secrets_service_account

  app_secret_arns     = module.secrets.secret_arns
  db_owner_secret_arn = module.rds.master_user_secret_arn
  secrets_kms_key_arn = module.secrets.kms_key_arn
  backup_bucket_arn   = module.s3.backup_bucket_arn
  backup_prefix       = var.backup_prefix
  backup_kms_key_arn  = module.s3.kms_key_arn

  github_repository        = var.github_repository
  github_environment       = var.github_environment
  github_oidc_provider_arn = var.github_oidc_provider_arn
  deploy_kubernetes_group  = var.deploy_kubernetes_group
}
