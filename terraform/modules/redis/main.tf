# -------------------------------------------------------------------- KMS ----

module "kms" {
  source = "../kms"

  name        = var.replication_group_id
  description = "${var.replication_group_id} at-rest encryption"
}

# ------------------------------------------------------------- network ----

resource "aws_elasticache_subnet_group" "this" {
  name        = var.replication_group_id
  description = "Private subnets of ${var.replication_group_id}"
  subnet_ids  = var.subnet_ids
}

resource "aws_security_group" "this" {
  name_prefix = "${var.replication_group_id}-"
  description = "Redis ${var.replication_group_id}: only the EKS cluster may connect"
  vpc_id      = var.vpc_id

  tags = { Name = var.replication_group_id }

  lifecycle {
    create_before_destroy = true
  }
}

# No egress rule: Redis never opens connections.
resource "aws_vpc_security_group_ingress_rule" "from_nodes" {
  for_each = var.allowed_security_group_ids

  security_group_id            = aws_security_group.this.id
  description                  = "Redis (TLS) from the EKS cluster (Auto Mode nodes and pods)"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

# ------------------------------------------------------ parameter group ----

resource "aws_elasticache_parameter_group" "this" {
  name        = "${var.replication_group_id}-redis7-cluster"
  family      = "redis7"
  description = "usergraph Redis 7, cluster mode"

  parameter {
    name  = "cluster-enabled"
    value = "yes"
  }

  parameter {
    name  = "maxmemory-policy"
    value = var.maxmemory_policy
  }
}

# ------------------------------------------------------------- logging ----

resource "aws_cloudwatch_log_group" "this" {
  for_each = toset(["slow-log", "engine-log"])

  name              = "/aws/elasticache/${var.replication_group_id}/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

# ---------------------------------------------------- replication group ----

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = var.replication_group_id
  description          = "usergraph cache, rate limits and event bus"
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  port                 = var.port
  parameter_group_name = aws_elasticache_parameter_group.this.name

  # Cluster mode enabled: data sharded over num_node_groups shards.
  num_node_groups         = var.num_shards
  replicas_per_node_group = var.replicas_per_shard

  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.this.id]
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = module.kms.key_arn
  transit_encryption_enabled = true
  auth_token                 = var.auth_token
  auth_token_update_strategy = var.auth_token_update_strategy

  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = var.snapshot_window
  maintenance_window         = var.maintenance_window
  auto_minor_version_upgrade = true
  apply_immediately          = false

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.this["slow-log"].name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.this["engine-log"].name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "engine-log"
  }
}
