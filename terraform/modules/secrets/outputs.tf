output "kms_key_arn" {
  description = "KMS key encrypting the secrets (also the RDS-managed master secret)."
  value       = module.kms.key_arn
}

output "secret_names" {
  description = "Names of the secrets by key (db_app, jwt, redis, connection, mailer)."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.name }
}

output "secret_arns" {
  description = "ARNs of the secrets by key (db_app, jwt, redis, connection, mailer)."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "redis_auth_token" {
  description = "Redis AUTH token as stored in <prefix>/redis (stable across plans; handed to the redis module)."
  value       = jsondecode(aws_secretsmanager_secret_version.redis.secret_string).auth_token
  sensitive   = true
}

output "db_app_username" {
  description = "Application database user name."
  value       = var.db_app_username
}
