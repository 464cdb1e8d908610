output "replication_group_id" {
  description = "Replication group id."
  value       = aws_elasticache_replication_group.this.id
}

output "configuration_endpoint" {
  description = "Cluster-mode configuration endpoint (clients discover the shards from it)."
  value       = aws_elasticache_replication_group.this.configuration_endpoint_address
}

output "port" {
  description = "Listener port (TLS)."
  value       = aws_elasticache_replication_group.this.port
}

output "member_clusters" {
  description = "Node ids of the replication group."
  value       = aws_elasticache_replication_group.this.member_clusters
}

output "security_group_id" {
  description = "Security group of the cluster."
  value       = aws_security_group.this.id
}

output "kms_key_arn" {
  description = "KMS key of at-rest encryption."
  value       = module.kms.key_arn
}
