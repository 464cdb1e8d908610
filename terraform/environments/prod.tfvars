# terraform plan -var-file=environments/prod.tfvars
environment = "prod"
aws_region  = "eu-west-1"

availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
owner              = "platform"

vpc_cidr           = "10.50.0.0/16"
single_nat_gateway = false # one NAT gateway per AZ

# 1.35: standard support until 2027-03-27 (1.34's ends 2026-12-02). See
# docs/runbook.md, "EKS upgrade", before that date.
eks_cluster_version        = "1.35"
eks_endpoint_public_access = false # private API only: CD runs on the in-VPC CodeBuild runners
eks_public_access_cidrs    = []
eks_admin_principal_arns   = [] # e.g. ["arn:aws:iam::<ACCOUNT_ID>:role/oncall"]
eks_node_pools             = ["general-purpose", "system"]

route53_zone_name = "usergraph.example.com"
api_domain_name   = "api.usergraph.example.com"
api_alb_hostname  = null                    # after the first deploy: kubectl -n usergraph get ingress usergraph
mail_domain_name  = "usergraph.example.com" # SES identity (DKIM); MAIL_FROM no-reply@usergraph.example.com

github_repository  = "usergraph/usergraph"
github_environment = "production"

db_instance_class              = "db.r6g.large"
db_allocated_storage_gb        = 100
db_max_allocated_storage_gb    = 1000
db_multi_az                    = true
db_read_replica                = true # DATABASE_READ_URL
db_backup_retention_days       = 35
db_deletion_protection         = true
db_slow_query_ms               = 250
db_connections_alarm_threshold = 1200

redis_node_type          = "cache.r7g.large"
redis_num_shards         = 3
redis_replicas_per_shard = 1

secret_recovery_window_days = 30
log_retention_days          = 731
alarm_email_addresses       = [] # e.g. ["oncall@example.com"]

backup_glacier_after_days = 30
backup_expire_after_days  = 365
