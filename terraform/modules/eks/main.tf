# EKS in Auto Mode: AWS runs the data plane the manifests rely on.
#
#   compute_config            managed Karpenter node pools (general-purpose,
#                             system): nodes are added when pods are Pending,
#                             so the HPA's 10 replicas with a zone spread of
#                             DoNotSchedule always find room
#   elastic_load_balancing    the ALB controller (IngressClass controller
#                             eks.amazonaws.com/alb)
#   block_storage             the EBS CSI driver (StorageClass provisioner
#                             ebs.csi.eks.amazonaws.com)
#   (built in)                VPC networking with NetworkPolicy enforcement
#                             (switched on by the ConfigMap
#                             kube-system/amazon-vpc-cni), CoreDNS, kube-proxy
#                             and the EKS Pod Identity agent
#   metrics-server add-on     the metrics API the HPA reads
#
# The Kubernetes objects that select these (IngressClass, IngressClassParams,
# StorageClass, the amazon-vpc-cni ConfigMap) are manifests under k8s/; see
# docs/platform.md for the full walk-through.

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
  log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
}

# ----------------------------------------------------- secrets encryption ----

module "kms" {
  source = "../kms"

  name        = "${var.cluster_name}-eks"
  description = "${var.cluster_name} EKS secrets envelope encryption"
}

# Created before the cluster so EKS does not create it without retention/KMS.
resource "aws_cloudwatch_log_group" "cluster" {
  name              = "/aws/eks/${var.cluster_name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

# ---------------------------------------------------------- control plane ----

# The trust of both service roles of this module: the control plane (Auto
# Mode tags its sessions, hence sts:TagSession) and the Auto Mode nodes.
locals {
  service_roles = {
    cluster = { service = "eks.amazonaws.com", actions = ["sts:AssumeRole", "sts:TagSession"] }
    node    = { service = "ec2.amazonaws.com", actions = ["sts:AssumeRole"] }
  }
}

data "aws_iam_policy_document" "assume" {
  for_each = local.service_roles

  statement {
    actions = each.value.actions

    principals {
      type        = "Service"
      identifiers = [each.value.service]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.cluster_name}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.assume["cluster"].json
}

# AmazonEKSClusterPolicy plus the four policies Auto Mode needs to run
# compute, block storage, load balancers and networking on our behalf.
resource "aws_iam_role_policy_attachment" "cluster" {
  for_each = toset([
    "AmazonEKSClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
  ])

  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# Extra security group on the control-plane ENIs: the private API endpoint
# admits the in-VPC CI runners (and nothing else beyond the EKS-managed
# cluster security group's own rules).
resource "aws_security_group" "api" {
  name_prefix = "${var.cluster_name}-api-"
  description = "Kubernetes API (private endpoint) from the in-VPC CI runners"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.cluster_name}-api" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each = var.api_allowed_security_group_ids

  security_group_id            = aws_security_group.api.id
  description                  = "Kubernetes API from ${each.key}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
}

resource "aws_eks_cluster" "this" {
  name                      = var.cluster_name
  version                   = var.cluster_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = local.log_types

  # Auto Mode runs CoreDNS, kube-proxy and the VPC networking itself; the
  # self-managed copies must not be installed next to it.
  bootstrap_self_managed_addons = false

  compute_config {
    enabled       = true
    node_pools    = var.node_pools
    node_role_arn = aws_iam_role.node.arn
  }

  kubernetes_network_config {
    elastic_load_balancing {
      enabled = true
    }
  }

  storage_config {
    block_storage {
      enabled = true
    }
  }

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    security_group_ids      = [aws_security_group.api.id]
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.endpoint_public_access ? var.public_access_cidrs : []
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = module.kms.key_arn
    }
  }

  access_config {
    # Access entries only (no aws-auth ConfigMap): every principal that can
    # reach the API is listed in Terraform.
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  # STANDARD: when a version leaves standard support EKS upgrades the control
  # plane instead of silently billing extended support. Upgrade before that
  # date (docs/runbook.md, "EKS upgrade").
  upgrade_policy {
    support_type = "STANDARD"
  }

  # Let ARC zonal shift move traffic off an impaired AZ.
  zonal_shift_config {
    enabled = true
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_cloudwatch_log_group.cluster,
  ]
}

resource "aws_eks_access_entry" "admin" {
  for_each = toset(var.admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = toset(var.admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.admin]
}

# ------------------------------------------------------------------ nodes ----

# Role of the Auto Mode nodes. EKS creates the matching access entry itself
# for the built-in node pools; a custom NodeClass (spec.role) must name this
# role too (output node_role_name).
resource "aws_iam_role" "node" {
  name               = "${var.cluster_name}-eks-auto-node"
  assume_role_policy = data.aws_iam_policy_document.assume["node"].json
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodeMinimalPolicy",
    "AmazonEC2ContainerRegistryPullOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# ----------------------------------------------------------------- addons ----

# The metrics API (metrics.k8s.io) the HorizontalPodAutoscaler reads. Auto
# Mode does not include it; metrics-server is an EKS community add-on.
resource "aws_eks_addon" "metrics_server" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "metrics-server"
  addon_version               = var.metrics_server_version
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "PRESERVE"

  depends_on = [aws_iam_role_policy_attachment.node]
}
