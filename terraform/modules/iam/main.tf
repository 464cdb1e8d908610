# Who may call AWS, and who may call the cluster.
#
#   EKS Pod Identity (no IRSA, no OIDC provider for the cluster):
#     external-secrets/external-secrets  read the usergraph secrets (ESO)
#     <namespace>/usergraph-backup       write backups under one prefix, read
#                                        the owner DB secret
#   The app's own ServiceAccount (<namespace>/usergraph) gets no AWS role: the
#   app never calls AWS; its secrets arrive as a Kubernetes Secret.
#
#   GitHub Actions (OIDC): a deploy role trusted only by this repository's
#   deployment environment, allowed eks:DescribeCluster, and in the cluster an
#   access entry with edit rights in the app namespace only.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
}

# ------------------------------------------------------- EKS Pod Identity ----

locals {
  pod_identities = {
    external_secrets = {
      namespace       = var.external_secrets_namespace
      service_account = var.external_secrets_service_account
      description     = "External Secrets Operator: read the usergraph secrets"
    }
    backup = {
      namespace       = var.namespace
      service_account = var.backup_service_account
      description     = "usergraph backup CronJob: write database dumps, read the owner DB secret"
    }
  }
}

# Pod Identity's service principal assumes the role and tags the session with
# the cluster, namespace and ServiceAccount of the pod: the trust admits only
# the one ServiceAccount of this cluster and account, even if another
# association pointed at the role.
data "aws_iam_policy_document" "pod_identity_assume" {
  for_each = local.pod_identities

  statement {
    sid     = "EksPodIdentity"
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-name"
      values   = [var.cluster_name]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [each.value.namespace]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [each.value.service_account]
    }
  }
}

resource "aws_iam_role" "pod" {
  for_each = local.pod_identities

  name                 = "${var.name}-${replace(each.key, "_", "-")}"
  description          = "${each.value.description} (Pod Identity ${each.value.namespace}/${each.value.service_account})"
  assume_role_policy   = data.aws_iam_policy_document.pod_identity_assume[each.key].json
  max_session_duration = 3600
}

resource "aws_eks_pod_identity_association" "this" {
  for_each = local.pod_identities

  cluster_name    = var.cluster_name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.pod[each.key].arn
}

# Reading secrets: the same two statements for both roles, each with its own
# list. ESO: the usergraph secrets (db-app, jwt, redis, connection, mailer)
# and the RDS-managed owner secret, nothing else (no ListSecrets:
# ExternalSecrets name their keys). The backup: the owner secret and the
# connection secret (the database host) only.
locals {
  secret_readers = {
    external_secrets = concat(values(var.app_secret_arns), [var.db_owner_secret_arn])
    backup           = [var.db_owner_secret_arn, var.app_secret_arns["connection"]]
  }
}

data "aws_iam_policy_document" "read_secrets" {
  for_each = local.secret_readers

  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = each.value
  }

  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "external_secrets" {
  name   = "read-usergraph-secrets"
  role   = aws_iam_role.pod["external_secrets"].id
  policy = data.aws_iam_policy_document.read_secrets["external_secrets"].json
}

data "aws_iam_policy_document" "backup" {
  source_policy_documents = [data.aws_iam_policy_document.read_secrets["backup"].json]

  statement {
    sid       = "WriteBackupPrefix"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.backup_bucket_arn}/${var.backup_prefix}/*"]
  }

  # SSE-KMS uploads need a data key; multipart uploads also decrypt it.
  statement {
    sid       = "EncryptBackups"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.backup_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "backup" {
  name   = "write-db-backups"
  role   = aws_iam_role.pod["backup"].id
  policy = data.aws_iam_policy_document.backup.json
}

# ------------------------------------------------------ GitHub Actions OIDC ----

# One provider per account and URL: when dev and prod share an account, the
# second environment passes the first one's ARN in github_oidc_provider_arn.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.github_oidc_provider_arn == null ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  # AWS validates GitHub's tokens against its own library of trusted root CAs
  # and ignores this list for token.actions.githubusercontent.com; GitHub's
  # documented intermediate thumbprints are given for older API callers.
  thumbprint_list = [
    "6938fd4d98bab03faadb97b34396831e3780aea1",
    "1c58a3a8518e8759bf075b76b750d4f2df264fcd",
  ]
}

locals {
  github_oidc_provider_arn = coalesce(var.github_oidc_provider_arn, one(aws_iam_openid_connect_provider.github[*].arn))
}

data "aws_iam_policy_document" "deploy_assume" {
  statement {
    sid     = "GithubDeployEnvironmentOnly"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    # Only jobs of this repository that run in the deployment environment
    # (whose protection rules decide which branches and reviewers may deploy).
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${var.name}-deploy"
  description          = "GitHub Actions deploy (repo ${var.github_repository}, environment ${var.github_environment})"
  assume_role_policy   = data.aws_iam_policy_document.deploy_assume.json
  max_session_duration = 3600
}

# aws eks update-kubeconfig needs DescribeCluster; everything else happens in
# Kubernetes, authorised by the access entry below.
data "aws_iam_policy_document" "deploy" {
  statement {
    sid       = "DescribeTheCluster"
    actions   = ["eks:DescribeCluster"]
    resources = [var.cluster_arn]
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "describe-cluster"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

resource "aws_eks_access_entry" "deploy" {
  cluster_name  = var.cluster_name
  principal_arn = aws_iam_role.deploy.arn
  type          = "STANDARD"
  # RBAC group for what AmazonEKSEditPolicy does not cover; bound by the
  # ClusterRoleBinding of the platform manifests (docs/platform.md).
  kubernetes_groups = [var.deploy_kubernetes_group]
}

# edit (Deployments, Jobs, CronJobs, ConfigMaps, Services, Ingresses, HPAs,
# PDBs, NetworkPolicies, ServiceAccounts, ExternalSecrets ...) in the app
# namespace only; no RBAC, no cluster-scoped objects.
resource "aws_eks_access_policy_association" "deploy_edit" {
  cluster_name  = var.cluster_name
  principal_arn = aws_iam_role.deploy.arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"

  access_scope {
    type       = "namespace"
    namespaces = [var.namespace]
  }

  depends_on = [aws_eks_access_entry.deploy]
}
