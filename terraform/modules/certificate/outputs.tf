output "certificate_arn" {
  description = "ARN of the validated certificate (IngressClassParams alb: spec.certificateARNs)."
  value       = aws_acm_certificate_validation.this.certificate_arn
}

output "domain_name" {
  description = "Host name on the certificate."
  value       = aws_acm_certificate.this.domain_name
}

output "zone_id" {
  description = "Id of the Route 53 zone."
  value       = data.aws_route53_zone.this.zone_id
}
