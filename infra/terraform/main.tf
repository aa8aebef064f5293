# The object store of actrec-batch (ACTREC_STORE=s3://<bucket>/) and the IAM role its Airflow
# workers and Ray nodes run as. Footage is read-only to the pipeline; everything else it writes.

resource "aws_s3_bucket" "store" {
  bucket_prefix = "${var.name}-store-"
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
      sse_algorithm = "aws:kms"
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

resource "aws_s3_bucket_lifecycle_configuration" "store" {
  bucket = aws_s3_bucket.store.id

  rule {
    id     = "expire-feature-cache"
    status = "Enabled"
    filter {
      prefix = "cache/"
    }
    expiration {
      days = var.cache_retention_days
    }
  }

  rule {
    id     = "expire-staging"
    status = "Enabled"
    filter {
      prefix = "staging/"
    }
    expiration {
      days = var.staging_retention_days
    }
  }

  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = var.worker_role_trusted_services
    }
  }
}

resource "aws_iam_role" "worker" {
  name_prefix        = "${var.name}-worker-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "store_access" {
  statement {
    sid       = "ListStore"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.store.arn]
  }
  statement {
    sid       = "ReadFootage"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.store.arn}/footage/*"]
  }
  statement {
    sid = "WritePipelineOutputs"
    actions = [
      "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ]
    resources = [
      for p in ["manifests", "quarantine", "cache", "checkpoints", "staging", "events", "reports", "models"] :
      "${aws_s3_bucket.store.arn}/${p}/*"
    ]
  }
}

resource "aws_iam_role_policy" "store_access" {
  name   = "${var.name}-store-access"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.store_access.json
}

resource "aws_iam_instance_profile" "worker" {
  name_prefix = "${var.name}-worker-"
  role        = aws_iam_role.worker.name
}
