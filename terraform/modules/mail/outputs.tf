output "smtp_url" {
  description = "MAILER value, from the newest key generation: smtps://<access key id>:<SMTP password>@email-smtp.<region>.amazonaws.com:465, user and password percent-encoded (the SMTP password holds + / =)."
  value       = "smtps://${urlencode(local.smtp_key.id)}:${urlencode(local.smtp_key.ses_smtp_password_v4)}@${local.smtp_host}:465"
  sensitive   = true
}

output "from_address" {
  description = "The only sender the SMTP user may use (MAIL_FROM's address)."
  value       = local.from_address
}

output "domain_name" {
  description = "SES domain identity."
  value       = aws_sesv2_email_identity.this.email_identity
}

output "identity_arn" {
  description = "ARN of the SES domain identity."
  value       = local.identity_arn
}

output "mail_from_domain" {
  description = "Custom MAIL FROM domain (bounces, SPF alignment)."
  value       = local.mail_from_domain
}

output "smtp_host" {
  description = "SES SMTP endpoint of the region (TLS on 465): the egress the app needs."
  value       = local.smtp_host
}

output "smtp_user_name" {
  description = "IAM user whose access key is the SMTP login."
  value       = aws_iam_user.smtp.name
}
