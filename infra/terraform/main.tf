# actrec-batch on AWS: the network, the object store, one IAM role per component, the PostgreSQL
# warehouse, the Ray cluster launcher's wiring, an optional MWAA environment and a cost budget.
# See README.md next to this file.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  mwaa_environment_name = "${var.name}-airflow"
  # Fixed (not generated) so the airflow role can be scoped to it before the bucket exists.
  mwaa_dags_bucket_name = "${var.name}-mwaa-dags-${data.aws_caller_identity.current.account_id}"
  mwaa_dags_bucket_arn  = "arn:${data.aws_partition.current.partition}:s3:::${local.mwaa_dags_bucket_name}"
}

# Rules across variables (variable validation blocks may not refer to other variables before 1.9).
resource "terraform_data" "config_checks" {
  lifecycle {
    precondition {
      condition     = !var.enable_mwaa || var.airflow_hosting == "mwaa"
      error_message = "enable_mwaa = true needs airflow_hosting = \"mwaa\" (the execution role must trust MWAA)."
    }
    precondition {
      condition     = var.archive_glacier_ir_days >= var.archive_ia_days + 30
      error_message = "archive_glacier_ir_days must be at least 30 days after archive_ia_days (S3's minimum stay in STANDARD_IA)."
    }
    precondition {
      condition     = var.db_max_allocated_storage_gb >= var.db_allocated_storage_gb
      error_message = "db_max_allocated_storage_gb must be >= db_allocated_storage_gb."
    }
  }
}

module "storage" {
  source = "./modules/storage"

  name                              = var.name
  bucket_prefix                     = coalesce(var.bucket_name_prefix, "${var.name}-store-")
  store_prefix                      = var.store_prefix
  force_destroy                     = var.store_force_destroy
  cache_retention_days              = var.cache_retention_days
  checkpoints_retention_days        = var.checkpoints_retention_days
  staging_retention_days            = var.staging_retention_days
  quarantine_retention_days         = var.quarantine_retention_days
  archive_ia_days                   = var.archive_ia_days
  archive_glacier_ir_days           = var.archive_glacier_ir_days
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  abort_incomplete_multipart_days   = var.abort_incomplete_multipart_days
}

module "network" {
  source = "./modules/network"

  name                    = var.name
  vpc_cidr                = var.vpc_cidr
  az_count                = var.az_count
  enable_nat_gateway      = var.enable_nat_gateway
  enable_flow_logs        = var.enable_flow_logs
  flow_log_retention_days = var.flow_log_retention_days
  kms_key_arn             = module.storage.kms_key_arn
}

module "warehouse" {
  source = "./modules/warehouse"

  name                          = var.name
  subnet_ids                    = module.network.private_subnet_ids
  security_group_id             = module.network.security_group_ids.warehouse
  kms_key_arn                   = module.storage.kms_key_arn
  engine_version                = var.db_engine_version
  instance_class                = var.db_instance_class
  allocated_storage_gb          = var.db_allocated_storage_gb
  max_allocated_storage_gb      = var.db_max_allocated_storage_gb
  db_name                       = var.db_name
  master_username               = var.db_master_username
  backup_retention_period       = var.db_backup_retention_days
  deletion_protection           = var.db_deletion_protection
  skip_final_snapshot           = var.db_skip_final_snapshot
  multi_az                      = var.db_multi_az
  performance_insights_enabled  = var.db_performance_insights
  monitoring_interval           = var.db_monitoring_interval
  log_statement                 = var.db_log_statement
  log_min_duration_statement_ms = var.db_log_min_duration_statement_ms
}

module "identity" {
  source = "./modules/identity"

  name                        = var.name
  bucket_arn                  = module.storage.bucket_arn
  store_prefix                = var.store_prefix
  kms_key_arn                 = module.storage.kms_key_arn
  airflow_hosting             = var.airflow_hosting
  mwaa_environment_name       = local.mwaa_environment_name
  mwaa_dags_bucket_arn        = local.mwaa_dags_bucket_arn
  warehouse_master_secret_arn = module.warehouse.master_secret_arn
  ray_cluster_name            = var.ray_cluster_name
}

module "ray" {
  source = "./modules/ray"

  cluster_name                = var.ray_cluster_name
  subnet_ids                  = module.network.private_subnet_ids
  availability_zones          = module.network.availability_zones
  security_group_id           = module.network.security_group_ids.ray
  head_instance_profile_arn   = module.identity.instance_profiles.ray_head.arn
  worker_instance_profile_arn = module.identity.instance_profiles.ray_worker.arn
}

module "airflow" {
  source = "./modules/airflow"
  count  = var.enable_mwaa ? 1 : 0

  name               = var.name
  environment_name   = local.mwaa_environment_name
  dags_bucket_name   = local.mwaa_dags_bucket_name
  airflow_version    = var.mwaa_airflow_version
  environment_class  = var.mwaa_environment_class
  max_workers        = var.mwaa_max_workers
  execution_role_arn = module.identity.role_arns.airflow
  subnet_ids         = module.network.private_subnet_ids
  security_group_id  = module.network.security_group_ids.airflow
  kms_key_arn        = module.storage.kms_key_arn
  requirements_file  = "${path.root}/../airflow/requirements.txt"
  dags_dir           = "${path.root}/../../dags"
  plugins_zip        = var.mwaa_plugins_zip

  depends_on = [terraform_data.config_checks]
}
