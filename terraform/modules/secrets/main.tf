# Generated credentials live in Secrets Manager, encrypted with a dedicated
# key. The values also pass through the Terraform state: keep the state in
# the encrypted S3 backend (see versions.tf).

module "kms" {
  source = "../kms"

  name        = "${var.name}-secrets"
  description = "${var.name} Secrets Manager encryption"
}

# ------------------------------------------------------------ generators ----

# Only URL-unreserved specials, so the password can be placed in
# DATABASE_URL without percent-encoding (RDS itself refuses / @ " and space).
resource "random_password" "db" {
  length           = 40
  special          = true
  override_special = "-_.~"
}

# HS256 signing secret: >= 32 bytes required by usergraph; 64 alphanumerics.
resource "random_password" "jwt" {
  length  = 64
  special = false
}

# ElastiCache AUTH: 16-128 printable characters, a restricted special set;
# alphanumerics avoid any escaping in REDIS_URL.
resource "random_password" "redis" {
  length  = 64
  special = false
}

# ------------------------------------------------------------ DB secret ----

resource "aws_secretsmanager_secret" "db" {
  #checkov:skip=CKV2_AWS_57:Rotation is wired below (aws_secretsmanager_secret_rotation) and switched on by setting db_rotation_lambda_arn; the Lambda is deployed separately.
  name                    = "${var.name}/database"
  description             = "usergraph PostgreSQL master credentials (RDS rotation-function JSON format)"
  kms_key_id              = module.kms.key_arn
  recovery_window_in_days = var.recovery_window_days
}

# The value (JSON: engine, host, port, dbname, username, password, the format
# the AWS RDS rotation functions expect) is written by the rds module, the one
# place that knows the endpoint; that keeps the module graph one-way.

resource "aws_secretsmanager_secret_rotation" "db" {
  count = var.db_rotation_lambda_arn == null ? 0 : 1

  secret_id           = aws_secretsmanager_secret.db.id
  rotation_lambda_arn = var.db_rotation_lambda_arn
  # First rotation at the next scheduled window, by when the rds module has
  # written the initial value.
  rotate_immediately = false

  rotation_rules {
    automatically_after_days = var.db_rotation_days
  }
}

# ----------------------------------------------------------- JWT secret ----

resource "aws_secretsmanager_secret" "jwt" {
  #checkov:skip=CKV2_AWS_57:Rotating JWT_SECRET signs every user out, so an operator rotates it on purpose (terraform apply -replace=module.secrets.random_password.jwt, then a rolling restart), never on a schedule.
  name                    = "${var.name}/jwt-secret"
  description             = "usergraph JWT_SECRET (HS256 signing key)"
  kms_key_id              = module.kms.key_arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "jwt" {
  secret_id     = aws_secretsmanager_secret.jwt.id
  secret_string = jsonencode({ JWT_SECRET = random_password.jwt.result })
}

# --------------------------------------------------------- Redis secret ----

resource "aws_secretsmanager_secret" "redis" {
  #checkov:skip=CKV2_AWS_57:The AUTH token must change on the replication group and in this secret together; Terraform does both (apply -replace=module.secrets.random_password.redis, strategy ROTATE keeps the old token valid while pods restart), no Lambda.
  name                    = "${var.name}/redis-auth"
  description             = "usergraph ElastiCache Redis AUTH token"
  kms_key_id              = module.kms.key_arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "redis" {
  secret_id     = aws_secretsmanager_secret.redis.id
  secret_string = jsonencode({ auth_token = random_password.redis.result })
}
