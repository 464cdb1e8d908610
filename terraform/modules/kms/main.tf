# A customer-managed KMS key with automatic yearly rotation and an alias. The
# key policy always gives the account root full control, which is what lets
# IAM policies in this account grant use of the key; extra_statements add the
# service principals or IAM principals that use the key directly.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  # Keyed by zero-padded position: values() returns them in key order, which
  # is the caller's order.
  extra_statements = { for i, s in var.extra_statements : format("%03d", i) => s }
}

# One document per extra statement, merged below. (A dynamic "condition"
# nested in a dynamic "statement" would do the same in one document, but then
# checkov stops resolving the module inputs of the stack.)
data "aws_iam_policy_document" "extra" {
  for_each = local.extra_statements

  statement {
    sid       = each.value.sid
    actions   = each.value.actions
    resources = ["*"]

    principals {
      type        = each.value.principal_type
      identifiers = each.value.principals
    }

    dynamic "condition" {
      for_each = each.value.conditions

      content {
        test     = condition.value.test
        variable = condition.value.variable
        values   = condition.value.values
      }
    }
  }
}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_109:Key policy; "*" is this key only, and the account root statement is what lets IAM policies grant use of it.
  #checkov:skip=CKV_AWS_111:Key policy; "*" is this key only, and the account root statement is what lets IAM policies grant use of it.
  #checkov:skip=CKV_AWS_356:Key policy; in a key policy the resource "*" means this key.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  # Override documents are appended after this document's statement, in list
  # order; they could only replace a statement of the same sid, and the
  # extra_statements validation rules out AccountAdministration and duplicates.
  override_policy_documents = values(data.aws_iam_policy_document.extra)[*].json
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.this.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
