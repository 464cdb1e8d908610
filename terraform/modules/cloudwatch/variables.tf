variable "name" {
  description = "Name prefix (project-environment)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the log groups created here."
  type        = number
}

variable "alarm_emails" {
  description = "E-mail subscribers of the alarm topic."
  type        = list(string)
  default     = []
}

variable "db_instance_id" {
  description = "RDS instance identifier to alarm on."
  type        = string
}

variable "db_allocated_storage_gb" {
  description = "Allocated storage of the instance; the free-storage alarm fires below 10 % of it."
  type        = number
}

variable "db_connections_alarm_threshold" {
  description = "Alarm when DatabaseConnections stays above this."
  type        = number
}

variable "db_cpu_alarm_percent" {
  description = "Alarm when RDS CPUUtilization stays above this."
  type        = number
  default     = 80
}

variable "redis_replication_group_id" {
  description = "ElastiCache replication group id to alarm on."
  type        = string
}

variable "redis_num_shards" {
  description = "Shards of the replication group (node ids are derived from it)."
  type        = number
}

variable "redis_replicas_per_shard" {
  description = "Replicas per shard (node ids are derived from it)."
  type        = number
}

variable "redis_cpu_alarm_percent" {
  description = "Alarm when EngineCPUUtilization of a node stays above this."
  type        = number
  default     = 75
}

variable "redis_memory_alarm_percent" {
  description = "Alarm when DatabaseMemoryUsagePercentage of a node stays above this."
  type        = number
  default     = 80
}

variable "redis_evictions_alarm_threshold" {
  description = "Alarm when a node evicts more keys than this in 5 minutes."
  type        = number
  default     = 100
}
