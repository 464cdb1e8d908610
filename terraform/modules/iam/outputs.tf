output "deploy_role_arn" {
  description = "Role GitHub Actions assumes to deploy (environment variable AWS_DEPLOY_ROLE_ARN)."
  value       = aws_iam_role.deploy.arn
}

output "github_oidc_provider_arn" {
  description = "IAM OIDC provider of GitHub Actions."
  value       = local.github_oidc_provider_arn
}

output "external_secrets_role_arn" {
  description = "Pod Identity role of the External Secrets Operator."
  value       = aws_iam_role.pod["external_secrets"].arn
}

output "backup_role_arn" {
  description = "Pod Identity role of the backup CronJob."
  value       = aws_iam_role.pod["backup"].arn
}

output "pod_identity_associations" {
  description = "namespace/serviceaccount => role ARN, as associated in the cluster."
  value       = { for k, a in aws_eks_pod_identity_association.this : "${a.namespace}/${a.service_account}" => a.role_arn }
}
