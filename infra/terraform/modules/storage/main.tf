# The object store: one bucket, encrypted with a customer-managed key that the warehouse, the flow
# logs and (optionally) MWAA share. actrec-batch keeps everything under <store_prefix>/, never at
# the bucket root, so the IAM policies (modules/identity) and the lifecycle rules address exactly it.

locals {
  tags = merge(var.tags, { component = "storage" })
  # Prefixes (under <store_prefix>/) that expire after their retention variable.
  expiring = {
    cache       = var.cache_retention_days
    checkpoints = var.checkpoints_retention_days
    staging     = var.staging_retention_days
    quarantine  = var.quarantine_retention_days
  }
  # Prefixes kept for good and moved to cheaper storage classes as they age.
  archived = ["events", "runs", "reports"]
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:A KMS key policy's Resource "*" means this key; the account root statement is what lets IAM policies administer it (AWS's default key policy).
  #checkov:skip=CKV_AWS_111:Same: a key policy grants on this key only; the root statement delegates to IAM.
  #checkov:skip=CKV_AWS_356:Same: "*" in a key policy is the key itself.
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  # CloudWatch Logs encrypts the VPC flow logs and (MWAA) Airflow's logs with this key.
  statement {
    sid       = "CloudWatchLogsUseKey"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_kms_key" "store" {
  description             = "${var.name}: actrec-batch store, warehouse and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = local.tags
}

resource "aws_kms_alias" "store" {
  name          = "alias/${var.name}-store"
  target_key_id = aws_kms_key.store.key_id
}

resource "aws_s3_bucket" "store" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a second, log-only bucket; CloudTrail data events are the audit trail of choice for this store.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage cost; footage has its own source of truth and every output can be recomputed from it.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications: Airflow discovers new footage on its nightly schedule.
  bucket_prefix = var.bucket_prefix
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_ownership_controls" "store" {
  bucket = aws_s3_bucket.store.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "store" {
  bucket = aws_s3_bucket.store.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "store" {
  bucket = aws_s3_bucket.store.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.store.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "store" {
  bucket                  = aws_s3_bucket.store.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

data "aws_iam_policy_document" "store_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.store.arn,
      "${aws_s3_bucket.store.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "store" {
  bucket     = aws_s3_bucket.store.id
  policy     = data.aws_iam_policy_document.store_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.store]
}

resource "aws_s3_bucket_lifecycle_configuration" "store" {
  bucket = aws_s3_bucket.store.id

  dynamic "rule" {
    for_each = local.expiring
    content {
      id     = "expire-${rule.key}"
      status = "Enabled"
      filter {
        prefix = "${var.store_prefix}/${rule.key}/"
      }
      expiration {
        days = rule.value
      }
    }
  }

  dynamic "rule" {
    for_each = toset(local.archived)
    content {
      id     = "archive-${rule.key}"
      status = "Enabled"
      filter {
        prefix = "${var.store_prefix}/${rule.key}/"
      }
      transition {
        days          = var.archive_ia_days
        storage_class = "STANDARD_IA"
      }
      transition {
        days          = var.archive_glacier_ir_days
        storage_class = "GLACIER_IR"
      }
    }
  }

  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.store]
}
