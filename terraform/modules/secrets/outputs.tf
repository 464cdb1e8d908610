output "kms_key_arn" {
  description = "KMS key encrypting the secrets (the usergraph role may decrypt with it via Secrets Manager)."
  value       = module.kms.key_arn
}

output "db_secret_arn" {
  description = "Secret with the DB credentials (JSON: engine, host, port, dbname, username, password)."
  value       = aws_secretsmanager_secret.db.arn
}

output "jwt_secret_arn" {
  description = "Secret with JWT_SECRET (JSON key JWT_SECRET)."
  value       = aws_secretsmanager_secret.jwt.arn
}

output "redis_secret_arn" {
  description = "Secret with the Redis AUTH token (JSON key auth_token)."
  value       = aws_secretsmanager_secret.redis.arn
}

output "app_secret_arns" {
  description = "Every secret the usergraph pods may read."
  value = [
    aws_secretsmanager_secret.db.arn,
    aws_secretsmanager_secret.jwt.arn,
    aws_secretsmanager_secret.redis.arn,
  ]
}

output "db_password" {
  description = "Initial DB master password (handed to the rds module, which also writes it into the DB secret)."
  value       = random_password.db.result
  sensitive   = true
}

output "redis_auth_token" {
  description = "Redis AUTH token (handed to the Redis module)."
  value       = random_password.redis.result
  sensitive   = true
}
