# One IAM role per component (airflow, ray_head, ray_worker), each with its own inline policy. The
# S3 and KMS statements of all three come from var.access_matrix; what only one component needs
# (Airflow's secrets and MWAA basics, the Ray autoscaler's EC2 rights) is added beside them.

locals {
  tags       = merge(var.tags, { component = "identity" })
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  store_arn  = "${var.bucket_arn}/${var.store_prefix}"
  ec2_arn    = "arn:${local.partition}:ec2:${local.region}:${local.account_id}"
  mwaa       = var.airflow_hosting == "mwaa"
  role_names = {
    airflow    = "${var.name}-airflow"
    ray_head   = "${var.name}-ray-head"
    ray_worker = "${var.name}-ray-worker"
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

# --- S3 + KMS, one document per component, from the access matrix ---

data "aws_iam_policy_document" "store" {
  for_each = var.access_matrix

  statement {
    sid       = "ListStorePrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.store_prefix}/*", "${var.store_prefix}/"]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.read) > 0 ? [1] : []
    content {
      sid       = "ReadStore"
      actions   = ["s3:GetObject"]
      resources = [for p in each.value.read : "${local.store_arn}/${p}/*"]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.write) > 0 ? [1] : []
    content {
      sid       = "WriteStore"
      actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
      resources = [for p in each.value.write : "${local.store_arn}/${p}/*"]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.delete) > 0 ? [1] : []
    content {
      sid       = "DeleteStore"
      actions   = ["s3:DeleteObject"]
      resources = [for p in each.value.delete : "${local.store_arn}/${p}/*"]
    }
  }

  statement {
    sid       = "UseStoreKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

# --- trust ---

data "aws_iam_policy_document" "trust_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "trust_mwaa" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }
  }
}

# --- airflow ---

data "aws_iam_policy_document" "airflow_extra" {
  statement {
    sid     = "ReadAirflowSecrets"
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.name}/airflow/connections/*",
      "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.name}/airflow/variables/*",
    ]
  }

  # Self-hosted Airflow builds its warehouse connection from the RDS-managed master secret.
  dynamic "statement" {
    for_each = !local.mwaa && var.warehouse_master_secret_arn != null ? [1] : []
    content {
      sid       = "ReadWarehouseMasterSecret"
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = [var.warehouse_master_secret_arn]
    }
  }

  # MWAA execution-role basics (https://docs.aws.amazon.com/mwaa/latest/userguide/mwaa-create-role.html).
  dynamic "statement" {
    for_each = local.mwaa ? [1] : []
    content {
      sid       = "MwaaPublishMetrics"
      actions   = ["airflow:PublishMetrics"]
      resources = ["arn:${local.partition}:airflow:${local.region}:${local.account_id}:environment/${var.mwaa_environment_name}"]
    }
  }
  dynamic "statement" {
    for_each = local.mwaa ? [1] : []
    content {
      sid       = "MwaaReadDagsBucket"
      actions   = ["s3:GetObject*", "s3:GetBucket*", "s3:List*"]
      resources = [var.mwaa_dags_bucket_arn, "${var.mwaa_dags_bucket_arn}/*"]
    }
  }
  dynamic "statement" {
    for_each = local.mwaa ? [1] : []
    content {
      sid = "MwaaLogs"
      actions = [
        "logs:CreateLogStream", "logs:CreateLogGroup", "logs:PutLogEvents", "logs:GetLogEvents",
        "logs:GetLogRecord", "logs:GetLogGroupFields", "logs:GetQueryResults",
      ]
      resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:airflow-${var.mwaa_environment_name}-*"]
    }
  }
  dynamic "statement" {
    for_each = local.mwaa ? [1] : []
    content {
      sid       = "MwaaAccountLevel"
      actions   = ["logs:DescribeLogGroups", "cloudwatch:PutMetricData", "s3:GetAccountPublicAccessBlock"]
      resources = ["*"] # these actions support no resource-level permissions
    }
  }
  dynamic "statement" {
    for_each = local.mwaa ? [1] : []
    content {
      sid = "MwaaCeleryQueues"
      actions = [
        "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage",
      ]
      resources = ["arn:${local.partition}:sqs:${local.region}:*:airflow-celery-*"]
    }
  }
  dynamic "statement" {
    for_each = local.mwaa ? [1] : []
    content {
      sid       = "MwaaKeyForSqs"
      actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
      resources = [var.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sqs.${local.region}.amazonaws.com"]
      }
    }
  }
}

data "aws_iam_policy_document" "airflow" {
  source_policy_documents = [
    data.aws_iam_policy_document.store["airflow"].json,
    data.aws_iam_policy_document.airflow_extra.json,
  ]
}

resource "aws_iam_role" "airflow" {
  name               = local.role_names.airflow
  description        = "actrec-batch Airflow (${var.airflow_hosting})"
  assume_role_policy = local.mwaa ? data.aws_iam_policy_document.trust_mwaa.json : data.aws_iam_policy_document.trust_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "airflow" {
  name   = "actrec-airflow"
  role   = aws_iam_role.airflow.id
  policy = data.aws_iam_policy_document.airflow.json
}

resource "aws_iam_instance_profile" "airflow" {
  count = local.mwaa ? 0 : 1
  name  = local.role_names.airflow
  role  = aws_iam_role.airflow.name
  tags  = local.tags
}

# --- ray worker ---

resource "aws_iam_role" "ray_worker" {
  name               = local.role_names.ray_worker
  description        = "actrec-batch Ray worker nodes"
  assume_role_policy = data.aws_iam_policy_document.trust_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "ray_worker" {
  name   = "actrec-ray-worker"
  role   = aws_iam_role.ray_worker.id
  policy = data.aws_iam_policy_document.store["ray_worker"].json
}

resource "aws_iam_instance_profile" "ray_worker" {
  name = local.role_names.ray_worker
  role = aws_iam_role.ray_worker.name
  tags = local.tags
}

# --- ray head: the driver's S3 set plus what the Ray autoscaler does to EC2 ---

data "aws_iam_policy_document" "ray_autoscaler" {
  #checkov:skip=CKV_AWS_356:Only ec2:Describe* has Resource "*": EC2 Describe calls do not support resource-level permissions; every mutating statement is scoped to ARNs and the ray-cluster-name tag.
  # Launch only instances tagged with this cluster's name (Ray tags instances at launch).
  statement {
    sid       = "LaunchClusterInstances"
    actions   = ["ec2:RunInstances"]
    resources = ["${local.ec2_arn}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/ray-cluster-name"
      values   = [var.ray_cluster_name]
    }
  }
  # The other resources a RunInstances call touches carry no request tags; they cannot be conditioned.
  statement {
    sid     = "LaunchUsesResources"
    actions = ["ec2:RunInstances"]
    resources = [
      "${local.ec2_arn}:volume/*",
      "${local.ec2_arn}:network-interface/*",
      "${local.ec2_arn}:subnet/*",
      "${local.ec2_arn}:security-group/*",
      "${local.ec2_arn}:key-pair/*",
      "${local.ec2_arn}:spot-instances-request/*",
      "arn:${local.partition}:ec2:${local.region}::image/*",
    ]
  }
  statement {
    sid       = "TagAtLaunch"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:spot-instances-request/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances"]
    }
  }
  statement {
    sid       = "ManageClusterInstances"
    actions   = ["ec2:CreateTags", "ec2:TerminateInstances", "ec2:StartInstances", "ec2:StopInstances"]
    resources = ["${local.ec2_arn}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/ray-cluster-name"
      values   = [var.ray_cluster_name]
    }
  }
  statement {
    sid       = "DescribeEc2"
    actions   = ["ec2:Describe*"]
    resources = ["*"] # EC2 Describe actions support no resource-level permissions
  }
  statement {
    sid       = "PassWorkerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.ray_worker.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "ray_head" {
  source_policy_documents = [
    data.aws_iam_policy_document.store["ray_head"].json,
    data.aws_iam_policy_document.ray_autoscaler.json,
  ]
}

resource "aws_iam_role" "ray_head" {
  name               = local.role_names.ray_head
  description        = "actrec-batch Ray head node (job driver and autoscaler)"
  assume_role_policy = data.aws_iam_policy_document.trust_ec2.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "ray_head" {
  name   = "actrec-ray-head"
  role   = aws_iam_role.ray_head.id
  policy = data.aws_iam_policy_document.ray_head.json
}

resource "aws_iam_instance_profile" "ray_head" {
  name = local.role_names.ray_head
  role = aws_iam_role.ray_head.name
  tags = local.tags
}
