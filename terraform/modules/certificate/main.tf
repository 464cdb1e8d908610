# The ALB's TLS certificate: ACM, validated through DNS records in the
# environment's public Route 53 zone. Its ARN (output certificate_arn, known
# once validation has succeeded) goes into IngressClassParams "alb"
# (spec.certificateARNs); the ALB terminates TLS with it.

data "aws_route53_zone" "this" {
  name         = var.zone_name
  private_zone = false
}

resource "aws_acm_certificate" "this" {
  domain_name               = var.domain_name
  subject_alternative_names = var.subject_alternative_names
  validation_method         = "DNS"
  key_algorithm             = "EC_prime256v1"

  options {
    certificate_transparency_logging_preference = "ENABLED"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = {
    for o in aws_acm_certificate.this.domain_validation_options : o.domain_name => {
      name   = o.resource_record_name
      type   = o.resource_record_type
      record = o.resource_record_value
    }
  }

  zone_id         = data.aws_route53_zone.this.zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

# The API host name -> the ALB that EKS Auto Mode creates for the Ingress.
# Its DNS name exists only after the first deploy: set alb_hostname then
# (kubectl -n usergraph get ingress usergraph) and apply again.
resource "aws_route53_record" "api" {
  count = var.alb_hostname == null ? 0 : 1

  zone_id = data.aws_route53_zone.this.zone_id
  name    = var.domain_name
  type    = "CNAME"
  ttl     = 300
  records = [var.alb_hostname]
}
