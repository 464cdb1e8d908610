# Every value a Kubernetes manifest or the workflow needs from this state.
# docs/platform.md lists which object uses which output.

output "region" {
  description = "AWS region of the environment (workflow variable AWS_REGION; ClusterSecretStore aws-secrets-manager spec.provider.aws.region)."
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

output "trusted_proxies" {
  description = "TRUSTED_PROXIES for the app: the public subnets where the internet-facing ALB runs, comma-joined. Only the ALB's X-Forwarded-For is believed, not the whole VPC."
  value       = join(",", module.vpc.public_subnet_cidrs)
}

output "private_subnet_cidrs" {
  description = "Private subnets (RDS, ElastiCache, nodes): the NetworkPolicy egress destinations for PostgreSQL and Redis."
  value       = module.vpc.private_subnet_cidrs
}

# -------------------------------------------------------------------- EKS ----

output "eks_cluster_name" {
  description = "EKS cluster name (workflow variable EKS_CLUSTER_NAME; aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "eks_cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = module.eks.cluster_endpoint
}

output "eks_cluster_version" {
  description = "Kubernetes version of the control plane."
  value       = module.eks.cluster_version
}

output "eks_node_role_name" {
  description = "Auto Mode node role (spec.role of a custom NodeClass, if one is ever added)."
  value       = module.eks.node_role_name
}

output "certificate_arn" {
  description = "ACM certificate of the API host (IngressClassParams alb: spec.certificateARNs)."
  value       = module.certificate.certificate_arn
}

output "api_domain_name" {
  description = "Host name on the certificate (the Ingress host)."
  value       = module.certificate.domain_name
}

# --------------------------------------------------------------------- CD ----

output "deploy_role_arn" {
  description = "Role the deploy jobs assume through GitHub OIDC (workflow environment variable AWS_DEPLOY_ROLE_ARN)."
  value       = module.iam.deploy_role_arn
}

output "github_oidc_provider_arn" {
  description = "IAM OIDC provider of GitHub Actions (pass it as github_oidc_provider_arn to a second environment in the same account)."
  value       = module.iam.github_oidc_provider_arn
}

output "ci_runner_project" {
  description = "CodeBuild project of the in-VPC GitHub Actions runners."
  value       = module.ci_runner.project_name
}

output "ci_runner_runs_on" {
  description = "runs-on label of a deploy job (runs inside the VPC, reaches the private API endpoint)."
  value       = module.ci_runner.runs_on_label
}

# ---------------------------------------------------------------- secrets ----

output "secret_names" {
  description = "Secrets Manager names read by the ExternalSecrets (db_app, jwt, redis, connection)."
  value       = module.secrets.secret_names
}

output "mailer_secret_name" {
  description = "Secrets Manager secret holding MAILER (JSON key MAILER: smtps:// URL of Amazon SES with the SMTP credentials): remoteRef of the ExternalSecret usergraph-secrets."
  value       = module.secrets.secret_names["mailer"]
}

output "db_owner_secret_arn" {
  description = "RDS-managed secret of the owner (master) user, JSON username/password, rotated by RDS: remoteRef.key of ExternalSecret usergraph-migrate-secrets; read by the backup CronJob."
  value       = module.rds.master_user_secret_arn
}

output "external_secrets_role_arn" {
  description = "Pod Identity role of external-secrets/external-secrets (associated by Terraform; no annotation needed)."
  value       = module.iam.external_secrets_role_arn
}

output "backup_role_arn" {
  description = "Pod Identity role of <namespace>/usergraph-backup (associated by Terraform; no annotation needed)."
  value       = module.iam.backup_role_arn
}

output "pod_identity_associations" {
  description = "namespace/serviceaccount => IAM role. The app's own ServiceAccount is deliberately absent: it never calls AWS."
  value       = module.iam.pod_identity_associations
}

# ------------------------------------------------------------------- mail ----

output "mail_from_address" {
  description = "The only sender the SES SMTP user may use: the address of MAIL_FROM (e.g. MAIL_FROM=\"usergraph <this>\")."
  value       = module.mail.from_address
}

output "mail_domain_name" {
  description = "SES domain identity (Easy DKIM); its MAIL FROM domain is bounce.<this>."
  value       = module.mail.domain_name
}

output "mail_smtp_host" {
  description = "SES SMTP endpoint the app connects to on TCP 465 (TLS): the egress its NetworkPolicy must allow (through the NAT gateways)."
  value       = module.mail.smtp_host
}

# ------------------------------------------------------------ data stores ----

output "db_address" {
  description = "RDS primary endpoint (DATABASE_URL host; TLS verify-full against the RDS CA bundle)."
  value       = module.rds.address
}

output "db_reader_address" {
  description = "Read replica endpoint (DATABASE_READ_URL host); null when db_read_replica is false."
  value       = module.rds.reader_address
}

output "db_port" {
  description = "RDS port."
  value       = module.rds.port
}

output "db_name" {
  description = "Database name."
  value       = local.db_name
}

output "db_owner_username" {
  description = "Owner (master) user: migrations and backups."
  value       = module.rds.master_username
}

output "db_app_username" {
  description = "Application user (DML only), password in <project>/<env>/db-app."
  value       = module.secrets.db_app_username
}

output "redis_configuration_endpoint" {
  description = "ElastiCache cluster-mode configuration endpoint (REDIS_URL rediss+cluster://:<auth_token>@<this>:<port>)."
  value       = module.redis.configuration_endpoint
}

output "redis_port" {
  description = "Redis port."
  value       = module.redis.port
}

output "backup_bucket" {
  description = "Backup bucket; the backup CronJob may write under backup_prefix only."
  value       = module.s3.backup_bucket_name
}

output "backup_prefix" {
  description = "Key prefix for database backups."
  value       = var.backup_prefix
}

# ------------------------------------------------------------- monitoring ----

output "alarm_topic_arn" {
  description = "SNS topic of every alarm."
  value       = module.cloudwatch.alarm_topic_arn
}

output "app_log_group" {
  description = "CloudWatch log group for the pods' logs."
  value       = module.cloudwatch.app_log_group_name
}
