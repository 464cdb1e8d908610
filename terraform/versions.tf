terraform {
  required_version = ">= 1.6.0"

  required_providers {
    # The only provider: generated secrets come from Secrets Manager
    # (aws_secretsmanager_random_password), the RDS master password is managed
    # by RDS, and the GitHub OIDC provider needs no tls lookup. 5.100.0 is the
    # version CI validates with (scripts/check.sh, filesystem mirror).
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # ---------------------------------------------------------------------------
  # Remote state (S3 + DynamoDB lock). Disabled until the state bucket exists.
  #
  # The state holds generated secrets (the app DB password, JWT secret and
  # Redis AUTH token, as written to Secrets Manager), so the bucket must be
  # private, versioned and KMS encrypted.
  #
  # 1. Bootstrap once per AWS account, with an admin profile (names are
  #    examples; bucket names are global, so keep the account id in it):
  #
  #      ACCOUNT=$(aws sts get-caller-identity --query Account --output text)
  #      REGION=eu-west-1
  #      BUCKET=usergraph-tfstate-$ACCOUNT
  #      KEY_ID=$(aws kms create-key --description "usergraph terraform state" \
  #                 --query KeyMetadata.KeyId --output text)
  #      aws kms enable-key-rotation --key-id "$KEY_ID"
  #      aws kms create-alias --alias-name alias/usergraph-tfstate --target-key-id "$KEY_ID"
  #      aws s3api create-bucket --bucket "$BUCKET" --region "$REGION" \
  #        --create-bucket-configuration LocationConstraint="$REGION"
  #      aws s3api put-bucket-versioning --bucket "$BUCKET" \
  #        --versioning-configuration Status=Enabled
  #      aws s3api put-public-access-block --bucket "$BUCKET" \
  #        --public-access-block-configuration \
  #        BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  #      aws s3api put-bucket-encryption --bucket "$BUCKET" --server-side-encryption-configuration \
  #        '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms","KMSMasterKeyID":"alias/usergraph-tfstate"},"BucketKeyEnabled":true}]}'
  #      aws dynamodb create-table --table-name usergraph-tfstate-lock \
  #        --attribute-definitions AttributeName=LockID,AttributeType=S \
  #        --key-schema AttributeName=LockID,KeyType=HASH \
  #        --billing-mode PAY_PER_REQUEST --sse-specification Enabled=true
  #
  # 2. Uncomment the block below, fill in bucket/region, and initialise one
  #    state per environment (the key is chosen at init time):
  #
  #      terraform init -backend-config="key=usergraph/dev/terraform.tfstate"
  #      terraform init -reconfigure -backend-config="key=usergraph/prod/terraform.tfstate"
  #
  #    If you already have local state, `terraform init -migrate-state` copies it.
  #    (Terraform >= 1.10 can lock with `use_lockfile = true` instead of DynamoDB.)
  # ---------------------------------------------------------------------------
  # backend "s3" {
  #   bucket         = "usergraph-tfstate-<ACCOUNT_ID>"
  #   region         = "eu-west-1"
  #   dynamodb_table = "usergraph-tfstate-lock"
  #   kms_key_id     = "alias/usergraph-tfstate"
  #   encrypt        = true
  # }
}
