output "project_name" {
  description = "CodeBuild project of the runners."
  value       = aws_codebuild_project.runner.name
}

output "runs_on_label" {
  description = "runs-on value of a workflow job that must run inside the VPC."
  value       = "codebuild-${aws_codebuild_project.runner.name}-$${{ github.run_id }}-$${{ github.run_attempt }}"
}

output "security_group_id" {
  description = "Security group of the runners (admitted by the cluster API)."
  value       = aws_security_group.runner.id
}

output "service_role_arn" {
  description = "CodeBuild service role of the runners."
  value       = aws_iam_role.runner.arn
}
