output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "azs" {
  description = "Availability zones in use."
  value       = local.azs
}

output "public_subnet_ids" {
  description = "Public subnets (load balancers, NAT gateways)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (EKS nodes, RDS, ElastiCache)."
  value       = aws_subnet.private[*].id
}

output "nat_public_ips" {
  description = "Egress IPs of the NAT gateways (allow-list these at third parties, e.g. SMTP)."
  value       = aws_eip.nat[*].public_ip
}

output "flow_log_group_name" {
  description = "CloudWatch log group receiving the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}

output "public_subnet_cidrs" {
  description = "CIDRs of the public subnets, where the internet-facing ALB places its nodes: the only sources whose X-Forwarded-For the app may trust."
  value       = aws_subnet.public[*].cidr_block
}

output "private_subnet_cidrs" {
  description = "CIDRs of the private subnets (nodes and pods, RDS, ElastiCache, CI runners)."
  value       = aws_subnet.private[*].cidr_block
}
