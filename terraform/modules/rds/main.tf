data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  log_exports = ["postgresql", "upgrade"]
  replica_id  = "${var.identifier}-replica"
  instances   = var.read_replica ? [var.identifier, local.replica_id] : [var.identifier]
}

# -------------------------------------------------------------------- KMS ----

module "kms" {
  source = "../kms"

  name        = var.identifier
  description = "${var.identifier} storage, snapshots and Performance Insights"
}

# ------------------------------------------------------------- network ----

resource "aws_db_subnet_group" "this" {
  name        = var.identifier
  description = "Private subnets of ${var.identifier}"
  subnet_ids  = var.subnet_ids
}

resource "aws_security_group" "this" {
  name_prefix = "${var.identifier}-"
  description = "PostgreSQL ${var.identifier}: only the EKS cluster may connect"
  vpc_id      = var.vpc_id

  tags = { Name = var.identifier }

  lifecycle {
    create_before_destroy = true
  }
}

# No egress rule: the database never opens connections.
resource "aws_vpc_security_group_ingress_rule" "from_nodes" {
  for_each = var.allowed_security_group_ids

  security_group_id            = aws_security_group.this.id
  description                  = "PostgreSQL from the EKS cluster (Auto Mode nodes and pods)"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
}

# ------------------------------------------------------- parameter group ----

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.identifier}-pg15-"
  family      = "postgres15"
  description = "usergraph PostgreSQL 15: TLS only, slow-query and DDL logging"

  # TLS only, 1.2 or newer. Clients verify the server with sslmode=verify-full
  # against the RDS CA bundle (certificate authority rds-ca-rsa2048-g1 below;
  # bundle https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem),
  # which works because they connect to the instance endpoint, the name on
  # the server certificate.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "ssl_min_protocol_version"
    value = "TLSv1.2"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = tostring(var.slow_query_ms)
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  parameter {
    name  = "log_lock_waits"
    value = "1"
  }

  parameter {
    name  = "idle_in_transaction_session_timeout"
    value = "60000"
  }

  parameter {
    name         = "shared_preload_libraries"
    value        = "pg_stat_statements"
    apply_method = "pending-reboot"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# ------------------------------------------------------------- logging ----

# Created before the instance so RDS does not create them without retention/KMS.
resource "aws_cloudwatch_log_group" "this" {
  for_each = { for pair in setproduct(local.instances, local.log_exports) : "${pair[0]}/${pair[1]}" => pair }

  name              = "/aws/rds/instance/${each.value[0]}/${each.value[1]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

# Confused-deputy guard: only RDS acting for this account may assume it.
data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.identifier}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# ------------------------------------------------------------- instance ----

resource "aws_db_instance" "this" {
  identifier     = var.identifier
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class
  port           = var.port

  # The master user owns the database (the migration Job and the backup
  # CronJob log in as it). RDS generates its password, keeps it in a Secrets
  # Manager secret of its own (encrypted with the secrets key) and rotates it;
  # it never passes through Terraform.
  db_name                       = var.db_name
  username                      = var.username
  manage_master_user_password   = true
  master_user_secret_kms_key_id = var.master_user_secret_kms_key_arn

  allocated_storage     = var.allocated_storage_gb
  max_allocated_storage = var.max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = module.kms.key_arn

  multi_az               = var.multi_az
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.this.id]
  publicly_accessible    = false
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  parameter_group_name                = aws_db_parameter_group.this.name
  iam_database_authentication_enabled = true

  backup_retention_period   = var.backup_retention_days
  backup_window             = var.backup_window
  maintenance_window        = var.maintenance_window
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.identifier}-final"
  delete_automated_backups  = false

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  enabled_cloudwatch_logs_exports       = local.log_exports
  monitoring_interval                   = var.monitoring_interval
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = module.kms.key_arn
  performance_insights_retention_period = 7

  depends_on = [
    aws_cloudwatch_log_group.this,
    aws_iam_role_policy_attachment.monitoring,
  ]
}

# ------------------------------------------------------------ read replica ----

# Asynchronous replica for DATABASE_READ_URL (uncached reads that may lag).
# Same parameter group, security group and CA; storage encrypted with the same
# key. Its endpoint is written to <prefix>/connection as db_read_host.
resource "aws_db_instance" "replica" {
  #checkov:skip=CKV_AWS_133:A read replica is rebuilt from the primary, whose automated backups and PITR cover the data.
  #checkov:skip=CKV_AWS_157:Multi-AZ is the primary's standby; the replica only serves lag-tolerant reads and the app falls back to the primary.
  count = var.read_replica ? 1 : 0

  identifier          = local.replica_id
  replicate_source_db = aws_db_instance.this.identifier
  instance_class      = coalesce(var.replica_instance_class, var.instance_class)
  port                = var.port

  storage_type          = "gp3"
  max_allocated_storage = var.max_allocated_storage_gb
  storage_encrypted     = true
  kms_key_id            = module.kms.key_arn

  multi_az               = false
  vpc_security_group_ids = [aws_security_group.this.id]
  publicly_accessible    = false
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  parameter_group_name                = aws_db_parameter_group.this.name
  iam_database_authentication_enabled = true

  backup_retention_period = 0
  maintenance_window      = var.maintenance_window
  copy_tags_to_snapshot   = true
  deletion_protection     = var.deletion_protection
  skip_final_snapshot     = true

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  enabled_cloudwatch_logs_exports       = local.log_exports
  monitoring_interval                   = var.monitoring_interval
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = module.kms.key_arn
  performance_insights_retention_period = 7

  depends_on = [aws_cloudwatch_log_group.this]
}
