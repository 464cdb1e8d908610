output "usergraph_role_arn" {
  description = "Annotate the usergraph ServiceAccount with this (eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.usergraph.arn
}

output "usergraph_role_name" {
  description = "Name of the usergraph IRSA role."
  value       = aws_iam_role.usergraph.name
}
