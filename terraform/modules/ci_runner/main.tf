# CodeBuild-hosted GitHub Actions runners inside the VPC: the only way CD
# reaches the private Kubernetes API endpoint.
#
# The webhook sends every WORKFLOW_JOB_QUEUED event of the repository to
# CodeBuild, which starts an ephemeral runner in the private subnets for each
# job whose label names this project:
#
#   runs-on: codebuild-<project name>-${{ github.run_id }}-${{ github.run_attempt }}
#
# (output runs_on_label). Jobs with other labels are ignored, so dev and prod
# projects can listen to the same repository. The runner SG may open
# connections on 443 only; the cluster's API security group admits it.
#
# CodeBuild reaches GitHub through an AWS CodeConnections connection (created
# once in the console: the GitHub App installation is an OAuth handshake), or,
# when codeconnection_arn is null, through the account's default CodeBuild
# source credential for GitHub.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  ec2_arn    = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"
}

resource "aws_security_group" "runner" {
  name_prefix = "${var.name}-"
  description = "CodeBuild-hosted GitHub Actions runners (HTTPS out only)"
  vpc_id      = var.vpc_id

  tags = { Name = var.name }

  lifecycle {
    create_before_destroy = true
  }
}

# GitHub, ghcr.io, Sigstore, the AWS APIs and the cluster's private endpoint
# all speak HTTPS; DNS goes to the VPC resolver, which security groups do not
# filter.
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.runner.id
  description       = "HTTPS (GitHub, registries, AWS APIs, Kubernetes API)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_cloudwatch_log_group" "runner" {
  name              = "/aws/codebuild/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "runner" {
  name               = "${var.name}-codebuild"
  description        = "CodeBuild service role of the ${var.name} GitHub Actions runners (logs and VPC networking only; deploys assume the GitHub OIDC deploy role)"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "runner" {
  statement {
    sid       = "WriteBuildLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.runner.arn}:*"]
  }

  # What CodeBuild needs to place the build in the VPC.
  statement {
    sid = "DescribeVpcNetworking"
    actions = [
      "ec2:DescribeDhcpOptions",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeVpcs",
    ]
    resources = ["*"]
  }

  statement {
    sid     = "ManageBuildEnis"
    actions = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"]
    resources = concat(
      [
        "${local.ec2_arn}:network-interface/*",
        "${local.ec2_arn}:security-group/${aws_security_group.runner.id}",
      ],
      [for s in var.subnet_ids : "${local.ec2_arn}:subnet/${s}"],
    )
  }

  statement {
    sid       = "AttachBuildEnis"
    actions   = ["ec2:CreateNetworkInterfacePermission"]
    resources = ["${local.ec2_arn}:network-interface/*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:AuthorizedService"
      values   = ["codebuild.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "ec2:Subnet"
      values   = [for s in var.subnet_ids : "${local.ec2_arn}:subnet/${s}"]
    }
  }

  statement {
    sid       = "UseEncryptionKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = var.codeconnection_arn == null ? [] : [var.codeconnection_arn]

    content {
      sid = "UseGithubConnection"
      actions = [
        "codeconnections:GetConnection",
        "codeconnections:GetConnectionToken",
        "codestar-connections:GetConnection",
        "codestar-connections:GetConnectionToken",
      ]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "runner" {
  name   = "runner"
  role   = aws_iam_role.runner.id
  policy = data.aws_iam_policy_document.runner.json
}

resource "aws_codebuild_project" "runner" {
  name                   = var.name
  description            = "GitHub Actions runners for ${var.github_repository}, inside the VPC"
  service_role           = aws_iam_role.runner.arn
  build_timeout          = var.build_timeout_minutes
  queued_timeout         = 30
  concurrent_build_limit = var.concurrent_build_limit
  encryption_key         = var.kms_key_arn

  artifacts {
    type = "NO_ARTIFACTS"
  }

  environment {
    compute_type                = var.compute_type
    image                       = var.image
    type                        = "LINUX_CONTAINER"
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false
  }

  source {
    type     = "GITHUB"
    location = "https://github.com/${var.github_repository}.git"

    dynamic "auth" {
      for_each = var.codeconnection_arn == null ? [] : [var.codeconnection_arn]

      content {
        type     = "CODECONNECTIONS"
        resource = auth.value
      }
    }
  }

  vpc_config {
    vpc_id             = var.vpc_id
    subnets            = var.subnet_ids
    security_group_ids = [aws_security_group.runner.id]
  }

  logs_config {
    cloudwatch_logs {
      status     = "ENABLED"
      group_name = aws_cloudwatch_log_group.runner.name
    }

    s3_logs {
      status = "DISABLED"
    }
  }

  depends_on = [aws_iam_role_policy.runner]
}

resource "aws_codebuild_webhook" "runner" {
  project_name = aws_codebuild_project.runner.name
  build_type   = "BUILD"

  filter_group {
    filter {
      type    = "EVENT"
      pattern = "WORKFLOW_JOB_QUEUED"
    }
  }
}
