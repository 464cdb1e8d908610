# Production mail: Amazon SES sends the app's verification and reset mails.
#
#   SES domain identity <domain_name>    Easy DKIM (2048-bit), three CNAMEs
#                                        in the Route 53 zone
#   MAIL FROM <mail_from_subdomain>.<domain_name>
#                                        MX + SPF TXT, so bounces and SPF
#                                        align with the domain, not amazonses.com
#   IAM user <name>-ses-smtp             ses:SendRawEmail/SendEmail on this
#                                        identity only, From: from_address only
#   access key(s) -> SMTP password (SigV4) -> output smtp_url (sensitive), which
#                                        the secrets module writes to
#                                        <project>/<env>/mailer as MAILER
#
# SES starts in the sandbox (only verified recipients, 200 mails a day);
# production access is requested once per account and region, by hand
# (docs/runbook.md, "Mail (SES)").

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region = data.aws_region.current.name
  # Built, not read from the identity, so the SMTP user's policy does not wait
  # for (or depend on) the SES API.
  identity_arn     = "arn:${data.aws_partition.current.partition}:ses:${local.region}:${data.aws_caller_identity.current.account_id}:identity/${var.domain_name}"
  mail_from_domain = "${var.mail_from_subdomain}.${var.domain_name}"
  from_address     = "${var.from_local_part}@${var.domain_name}"
  smtp_host        = "email-smtp.${local.region}.amazonaws.com"
}

# ------------------------------------------------------------- identity ----

resource "aws_sesv2_email_identity" "this" {
  email_identity = var.domain_name

  dkim_signing_attributes {
    next_signing_key_length = "RSA_2048_BIT"
  }

  lifecycle {
    precondition {
      condition     = var.domain_name == var.zone_name || endswith(var.domain_name, ".${var.zone_name}")
      error_message = "The mail domain must be the Route 53 zone or a name inside it: its DKIM and MAIL FROM records go into that zone."
    }
  }
}

# Easy DKIM always hands out three tokens; SES verifies the domain once it
# sees these records (no _amazonses TXT record needed).
resource "aws_route53_record" "dkim" {
  count = 3

  zone_id = var.zone_id
  name    = "${aws_sesv2_email_identity.this.dkim_signing_attributes[0].tokens[count.index]}._domainkey.${var.domain_name}"
  type    = "CNAME"
  ttl     = 1800
  records = ["${aws_sesv2_email_identity.this.dkim_signing_attributes[0].tokens[count.index]}.dkim.amazonses.com"]
}

# ------------------------------------------------------------ MAIL FROM ----

resource "aws_sesv2_email_identity_mail_from_attributes" "this" {
  email_identity         = aws_sesv2_email_identity.this.email_identity
  mail_from_domain       = local.mail_from_domain
  behavior_on_mx_failure = "USE_DEFAULT_VALUE"

  depends_on = [aws_route53_record.mail_from]
}

resource "aws_route53_record" "mail_from" {
  for_each = {
    MX  = "10 feedback-smtp.${local.region}.amazonses.com"
    TXT = "v=spf1 include:amazonses.com ~all"
  }

  zone_id = var.zone_id
  name    = local.mail_from_domain
  type    = each.key
  ttl     = 1800
  records = [each.value]
}

# ------------------------------------------------------ SMTP credentials ----

# SES SMTP authenticates with an IAM access key; there is no role-based
# alternative for SMTP, hence one user that can do nothing but send.
resource "aws_iam_user" "smtp" {
  #checkov:skip=CKV_AWS_273:SES SMTP authenticates only with an IAM user's access key (SigV4 SMTP password); the user can send mail from one address of one identity and nothing else.
  name = "${var.name}-ses-smtp"
  path = "/ses/"
}

data "aws_iam_policy_document" "send" {
  statement {
    sid       = "SendFromTheIdentityOnly"
    actions   = ["ses:SendRawEmail", "ses:SendEmail"]
    resources = [local.identity_arn]

    condition {
      test     = "StringEquals"
      variable = "ses:FromAddress"
      values   = [local.from_address]
    }
  }
}

resource "aws_iam_user_policy" "send" {
  #checkov:skip=CKV_AWS_40:A group for the one SMTP user would only add indirection; the inline policy is the user's whole permission.
  name   = "ses-send-${replace(var.domain_name, ".", "-")}"
  user   = aws_iam_user.smtp.name
  policy = data.aws_iam_policy_document.send.json
}

# The secret key and the SMTP password derived from it are in the Terraform
# state (encrypted bucket, see versions.tf) and in <project>/<env>/mailer;
# never in an output. One key per entry of key_generations; MAILER uses the
# last one. Rotation without a gap (docs/runbook.md, "Rotate secrets"): add a
# generation and apply (both keys valid, the secret holds the new one), sync
# and restart the pods, then drop the old generation and apply.
resource "aws_iam_access_key" "smtp" {
  for_each = toset(var.key_generations)

  user = aws_iam_user.smtp.name
}

locals {
  smtp_key = aws_iam_access_key.smtp[var.key_generations[length(var.key_generations) - 1]]
}
