variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string
}

variable "cluster_version" {
  description = "Kubernetes version (must be in EKS standard support; see docs/runbook.md, EKS upgrade)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the control-plane ENIs and the Auto Mode nodes."
  type        = list(string)
}

variable "endpoint_public_access" {
  description = "Also expose the API endpoint publicly (restricted to public_access_cidrs). The private endpoint is always on."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to the public API endpoint."
  type        = list(string)
  default     = []
}

variable "api_allowed_security_group_ids" {
  description = "Security groups (keyed by a label) whose members may reach the private API endpoint on 443, e.g. the CodeBuild-hosted GitHub Actions runners."
  type        = map(string)
  default     = {}
}

variable "admin_principal_arns" {
  description = "IAM principals granted AmazonEKSClusterAdminPolicy through access entries."
  type        = list(string)
  default     = []
}

variable "node_pools" {
  description = "Built-in Auto Mode node pools to enable (general-purpose runs the workloads, system the add-ons)."
  type        = list(string)
  default     = ["general-purpose", "system"]

  validation {
    condition     = length(var.node_pools) > 0 && alltrue([for p in var.node_pools : contains(["general-purpose", "system"], p)])
    error_message = "node_pools must be a non-empty subset of [general-purpose, system]."
  }
}

variable "metrics_server_version" {
  description = "Version of the metrics-server EKS add-on (null = the default version for the cluster's Kubernetes version)."
  type        = string
  default     = null
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the control-plane log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the control-plane log group."
  type        = number
}
