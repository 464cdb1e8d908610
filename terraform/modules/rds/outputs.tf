output "instance_id" {
  description = "RDS instance identifier (CloudWatch dimension DBInstanceIdentifier)."
  value       = aws_db_instance.this.identifier
}

output "instance_arn" {
  description = "ARN of the instance."
  value       = aws_db_instance.this.arn
}

output "resource_id" {
  description = "DbiResourceId, needed in rds-db:connect policies for IAM authentication."
  value       = aws_db_instance.this.resource_id
}

output "address" {
  description = "DNS name of the instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Listener port."
  value       = aws_db_instance.this.port
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.this.id
}

output "kms_key_arn" {
  description = "KMS key of storage, snapshots and Performance Insights."
  value       = module.kms.key_arn
}

output "reader_address" {
  description = "DNS name of the read replica; null when none is built."
  value       = one(aws_db_instance.replica[*].address)
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed secret with the master (owner) credentials, JSON username/password; rotated by RDS."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "master_username" {
  description = "Master (owner) user name."
  value       = aws_db_instance.this.username
}
