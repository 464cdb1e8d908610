data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
}

# ------------------------------------------------------------------ KMS ----
# One key for observability data: every log group of the stack (VPC flow
# logs, EKS, RDS, ElastiCache, application) and the alarm SNS topic.

module "kms" {
  source = "../kms"

  name        = "${var.name}-observability"
  description = "${var.name} CloudWatch Logs and alarm SNS encryption"

  extra_statements = [
    {
      sid        = "CloudWatchLogs"
      principals = ["logs.${local.region}.amazonaws.com"]
      actions = [
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
      ]
      conditions = [{
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
      }]
    },
    # CloudWatch alarms publish to the encrypted SNS topic.
    {
      sid        = "CloudWatchAlarmsToSns"
      principals = ["cloudwatch.amazonaws.com"]
      actions    = ["kms:Decrypt", "kms:GenerateDataKey*"]
      conditions = [{
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }]
    },
  ]
}

# ----------------------------------------------------------- log groups ----
# The infrastructure log groups live next to their resource (vpc, eks, rds,
# redis modules) with this key; this one receives the pods' logs (shipped by
# the cluster's log agent, e.g. Fluent Bit).

resource "aws_cloudwatch_log_group" "app" {
  name              = "/${var.name}/application"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.kms.key_arn
}

# -------------------------------------------------------------------- SNS ----

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = module.kms.key_arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# ------------------------------------------------------------- RDS alarms ----

locals {
  db_alarms = {
    cpu = {
      metric      = "CPUUtilization"
      statistic   = "Average"
      comparison  = "GreaterThanThreshold"
      threshold   = var.db_cpu_alarm_percent
      periods     = 3
      description = "RDS CPU above ${var.db_cpu_alarm_percent}% for 15 minutes."
    }
    free_storage = {
      metric      = "FreeStorageSpace"
      statistic   = "Minimum"
      comparison  = "LessThanThreshold"
      threshold   = var.db_allocated_storage_gb * 0.1 * 1024 * 1024 * 1024
      periods     = 1
      description = "RDS free storage below 10% of the allocated ${var.db_allocated_storage_gb} GiB."
    }
    connections = {
      metric      = "DatabaseConnections"
      statistic   = "Maximum"
      comparison  = "GreaterThanThreshold"
      threshold   = var.db_connections_alarm_threshold
      periods     = 2
      description = "RDS connections above ${var.db_connections_alarm_threshold}: check pool sizes x replicas against max_connections."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "db" {
  for_each = local.db_alarms

  alarm_name          = "${var.name}-rds-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = "AWS/RDS"
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  period              = 300
  evaluation_periods  = each.value.periods
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    DBInstanceIdentifier = var.db_instance_id
  }
}

# ----------------------------------------------------------- Redis alarms ----
# ElastiCache publishes host metrics per node (CacheClusterId). In cluster
# mode the node ids are <group>-<shard 0001..>-<node 001..>, so they can be
# derived at plan time.

locals {
  redis_nodes = flatten([
    for shard in range(1, var.redis_num_shards + 1) : [
      for node in range(1, var.redis_replicas_per_shard + 2) :
      format("%s-%04d-%03d", var.redis_replication_group_id, shard, node)
    ]
  ])

  redis_metrics = {
    cpu = {
      metric    = "EngineCPUUtilization"
      statistic = "Average"
      threshold = var.redis_cpu_alarm_percent
      periods   = 3
      reason    = "Redis engine CPU above ${var.redis_cpu_alarm_percent}% for 15 minutes."
    }
    memory = {
      metric    = "DatabaseMemoryUsagePercentage"
      statistic = "Maximum"
      threshold = var.redis_memory_alarm_percent
      periods   = 2
      reason    = "Redis memory above ${var.redis_memory_alarm_percent}%: evictions will follow."
    }
    evictions = {
      metric    = "Evictions"
      statistic = "Sum"
      threshold = var.redis_evictions_alarm_threshold
      periods   = 1
      reason    = "Redis evicted more than ${var.redis_evictions_alarm_threshold} keys in 5 minutes (cache too small)."
    }
  }

  redis_alarms = {
    for pair in setproduct(local.redis_nodes, keys(local.redis_metrics)) :
    "${pair[0]}-${pair[1]}" => merge(local.redis_metrics[pair[1]], { node = pair[0] })
  }
}

resource "aws_cloudwatch_metric_alarm" "redis" {
  for_each = local.redis_alarms

  alarm_name          = each.key
  alarm_description   = "${each.value.reason} Node ${each.value.node}."
  namespace           = "AWS/ElastiCache"
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  period              = 300
  evaluation_periods  = each.value.periods
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    CacheClusterId = each.value.node
  }
}
