output "kms_key_arn" {
  description = "KMS key for every log group of the stack and the alarm topic."
  value       = module.kms.key_arn
}

output "alarm_topic_arn" {
  description = "SNS topic receiving every alarm."
  value       = aws_sns_topic.alarms.arn
}

output "app_log_group_name" {
  description = "Application log group (ship container logs here, e.g. with Fluent Bit)."
  value       = aws_cloudwatch_log_group.app.name
}

output "alarm_names" {
  description = "Names of every alarm created."
  value       = concat([for a in aws_cloudwatch_metric_alarm.db : a.alarm_name], [for a in aws_cloudwatch_metric_alarm.redis : a.alarm_name])
}
