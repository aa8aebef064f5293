# Optional Amazon MWAA environment (root variable enable_mwaa).
#
# MWAA does not offer Apache Airflow 3.3, which actrec-batch requires: the versions MWAA supports are
# listed at https://docs.aws.amazon.com/mwaa/latest/userguide/airflow-versions.html (its API
# reference lists airflowVersion values 1.10.12 ... 2.10.3, and the user guide's upgrade path goes
# through 2.11.x to 3.x; no 3.3). The module is kept ready for when it does: CreateEnvironment
# rejects an airflow_version MWAA does not offer. Until then run Airflow self-hosted
# (airflow_hosting = "ec2", see infra/terraform/README.md).

locals {
  tags = merge(var.tags, { component = "airflow" })
  dags = fileset(var.dags_dir, "**/*.py")
}

resource "aws_s3_bucket" "dags" {
  #checkov:skip=CKV_AWS_18:Server access logs would need another bucket; the DAG bucket only holds files deployed from git.
  #checkov:skip=CKV_AWS_144:Cross-region replication is pointless for files deployed from git.
  #checkov:skip=CKV2_AWS_62:MWAA polls the bucket; nothing consumes event notifications.
  bucket = var.dags_bucket_name
  tags   = local.tags
}

resource "aws_s3_bucket_ownership_controls" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "dags" {
  bucket = aws_s3_bucket.dags.id
  versioning_configuration {
    status = "Enabled" # MWAA requires a versioned bucket
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "dags" {
  bucket                  = aws_s3_bucket.dags.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    id     = "expire-old-deploys"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }
  depends_on = [aws_s3_bucket_versioning.dags]
}

data "aws_iam_policy_document" "dags_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.dags.arn, "${aws_s3_bucket.dags.arn}/*"]
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

resource "aws_s3_bucket_policy" "dags" {
  bucket     = aws_s3_bucket.dags.id
  policy     = data.aws_iam_policy_document.dags_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.dags]
}

resource "aws_s3_object" "requirements" {
  bucket      = aws_s3_bucket.dags.id
  key         = "requirements.txt"
  source      = var.requirements_file
  source_hash = filemd5(var.requirements_file)
  tags        = local.tags
  depends_on  = [aws_s3_bucket_versioning.dags]
}

resource "aws_s3_object" "dags" {
  for_each    = local.dags
  bucket      = aws_s3_bucket.dags.id
  key         = "dags/${each.value}"
  source      = "${var.dags_dir}/${each.value}"
  source_hash = filemd5("${var.dags_dir}/${each.value}")
  tags        = local.tags
}

resource "aws_s3_object" "plugins" {
  count       = var.plugins_zip == null ? 0 : 1
  bucket      = aws_s3_bucket.dags.id
  key         = "plugins.zip"
  source      = var.plugins_zip
  source_hash = filemd5(var.plugins_zip)
  tags        = local.tags
  depends_on  = [aws_s3_bucket_versioning.dags]
}

resource "aws_mwaa_environment" "this" {
  name               = var.environment_name
  airflow_version    = var.airflow_version
  environment_class  = var.environment_class
  max_workers        = var.max_workers
  execution_role_arn = var.execution_role_arn
  kms_key            = var.kms_key_arn

  source_bucket_arn              = aws_s3_bucket.dags.arn
  dag_s3_path                    = "dags/"
  requirements_s3_path           = aws_s3_object.requirements.key
  requirements_s3_object_version = aws_s3_object.requirements.version_id
  plugins_s3_path                = var.plugins_zip == null ? null : aws_s3_object.plugins[0].key
  plugins_s3_object_version      = var.plugins_zip == null ? null : aws_s3_object.plugins[0].version_id

  # Connections and variables come from Secrets Manager (<name>/airflow/connections/<conn_id>),
  # as on self-hosted Airflow: the same secrets serve both.
  airflow_configuration_options = {
    "secrets.backend" = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    "secrets.backend_kwargs" = jsonencode({
      connections_prefix = "${var.name}/airflow/connections"
      variables_prefix   = "${var.name}/airflow/variables"
    })
  }

  webserver_access_mode = "PRIVATE_ONLY"
  network_configuration {
    security_group_ids = [var.security_group_id]
    subnet_ids         = slice(var.subnet_ids, 0, 2)
  }

  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = "INFO"
    }
    scheduler_logs {
      enabled   = true
      log_level = "INFO"
    }
    task_logs {
      enabled   = true
      log_level = "INFO"
    }
    webserver_logs {
      enabled   = true
      log_level = "WARNING"
    }
    worker_logs {
      enabled   = true
      log_level = "INFO"
    }
  }

  tags       = local.tags
  depends_on = [aws_s3_bucket_policy.dags, aws_s3_object.dags]
}
