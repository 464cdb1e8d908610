# terraform plan -var-file=environments/dev.tfvars
environment = "dev"
aws_region  = "eu-west-1"

availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
owner              = "platform"

vpc_cidr           = "10.40.0.0/16"
single_nat_gateway = true # one NAT gateway: cheaper, not AZ-redundant

# 1.35: standard support until 2027-03-27 (1.34's ends 2026-12-02). See
# docs/runbook.md, "EKS upgrade", before that date.
eks_cluster_version        = "1.35"
eks_endpoint_public_access = true               # for people only: CD uses the in-VPC runners
eks_public_access_cidrs    = ["203.0.113.0/24"] # placeholder: your office / VPN egress range
eks_admin_principal_arns   = []
eks_node_pools             = ["general-purpose", "system"]

route53_zone_name = "usergraph.example.com"
api_domain_name   = "api.dev.usergraph.example.com"
api_alb_hostname  = null                        # after the first deploy: kubectl -n usergraph get ingress usergraph
mail_domain_name  = "dev.usergraph.example.com" # SES identity: its own name, as dev and prod may share an account

github_repository  = "usergraph/usergraph"
github_environment = "dev"

db_instance_class              = "db.t4g.medium"
db_allocated_storage_gb        = 20
db_max_allocated_storage_gb    = 100
db_multi_az                    = false
db_read_replica                = false
db_backup_retention_days       = 7
db_deletion_protection         = true
db_slow_query_ms               = 100
db_connections_alarm_threshold = 300

redis_node_type          = "cache.t4g.small"
redis_num_shards         = 1
redis_replicas_per_shard = 1

secret_recovery_window_days = 7
log_retention_days          = 365
alarm_email_addresses       = []

backup_glacier_after_days = 30
backup_expire_after_days  = 90
