variable "name" {
  description = "Name prefix for every resource."
  type        = string
}

variable "cidr" {
  description = "VPC CIDR block."
  type        = string
}

variable "azs" {
  description = "Availability zones to span, pinned by name (one public and one private subnet each)."
  type        = list(string)

  validation {
    condition     = length(var.azs) >= 2 && length(var.azs) <= 8
    error_message = "Give 2-8 availability zones (3 for the reference deployment)."
  }
}

variable "single_nat_gateway" {
  description = "true = one NAT gateway shared by all private subnets; false = one per AZ."
  type        = bool
  default     = false
}

variable "cluster_name" {
  description = "EKS cluster name, used for the subnet discovery tags of the EKS Auto Mode load balancer controller."
  type        = string
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the flow-log log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the flow-log log group."
  type        = number
}
