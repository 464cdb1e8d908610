output "backup_bucket_name" {
  description = "Name of the backup bucket."
  value       = aws_s3_bucket.backups.bucket
}

output "backup_bucket_arn" {
  description = "ARN of the backup bucket."
  value       = aws_s3_bucket.backups.arn
}

output "log_bucket_name" {
  description = "Bucket receiving the S3 access logs."
  value       = aws_s3_bucket.logs.bucket
}

output "kms_key_arn" {
  description = "KMS key of the backup bucket."
  value       = module.kms.key_arn
}
