output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster (scope of the deploy role's eks:DescribeCluster)."
  value       = aws_eks_cluster.this.arn
}

output "cluster_version" {
  description = "Kubernetes version of the control plane."
  value       = aws_eks_cluster.this.version
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the API endpoint."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "EKS-managed cluster security group. Auto Mode nodes (default NodeClass) and therefore every pod carry it: RDS and Redis admit this group."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_role_name" {
  description = "IAM role of the Auto Mode nodes (spec.role of any custom NodeClass)."
  value       = aws_iam_role.node.name
}

output "node_role_arn" {
  description = "ARN of the Auto Mode node role."
  value       = aws_iam_role.node.arn
}

output "metrics_server_addon" {
  description = "Name of the metrics-server add-on (serves metrics.k8s.io for the HPA)."
  value       = aws_eks_addon.metrics_server.addon_name
}
