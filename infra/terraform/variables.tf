# --- identity of the deployment ---

variable "name" {
  description = "Name prefix of every resource and of the Secrets Manager prefix <name>/airflow/... (e.g. actrec-prod)."
  type        = string
  default     = "actrec"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "project" {
  description = "Value of the `project` tag on every resource; the budget filters costs on it."
  type        = string
  default     = "actrec-batch"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.:/=+@-]{0,254}$", var.project))
    error_message = "project must be a valid tag value (letters, digits, _.:/=+-@)."
  }
}

variable "environment" {
  description = "Environment name, tagged on every resource (dev, staging, prod, ...)."
  type        = string
  default     = "dev"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment must be 1-16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of everything."
  type        = string
  default     = "us-east-1"
  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

# --- network ---

variable "vpc_cidr" {
  description = "CIDR of the VPC; private subnets are /4 slices of it (one per AZ), the NAT subnet the last slice."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "az_count" {
  description = "Availability zones (private subnets) to use; MWAA and RDS need at least 2."
  type        = number
  default     = 3
  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6
    error_message = "az_count must be between 2 and 6."
  }
}

variable "enable_nat_gateway" {
  description = "One NAT gateway so private subnets reach PyPI and AWS APIs (S3 always goes through the gateway endpoint)."
  type        = bool
  default     = true
}

variable "enable_flow_logs" {
  description = "VPC flow logs to a KMS-encrypted CloudWatch log group."
  type        = bool
  default     = true
}

variable "flow_log_retention_days" {
  description = "Days CloudWatch keeps VPC flow logs."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ...)."
  }
}

# --- storage ---

variable "bucket_name_prefix" {
  description = "Prefix of the store bucket's name (AWS appends a unique suffix); null: \"<name>-store-\"."
  type        = string
  default     = null
  validation {
    condition     = var.bucket_name_prefix == null || can(regex("^[a-z0-9][a-z0-9.-]{1,35}$", var.bucket_name_prefix))
    error_message = "bucket_name_prefix must be 2-36 lowercase letters, digits, dots or dashes."
  }
}

variable "store_prefix" {
  description = "Key prefix of the store inside the bucket: ACTREC_STORE=s3://<bucket>/<store_prefix>. Never the bucket root."
  type        = string
  default     = "actrec"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$", var.store_prefix))
    error_message = "store_prefix must be non-empty (the store is never the bucket root) and have no leading or trailing slash, e.g. actrec or prod/actrec."
  }
}

variable "store_force_destroy" {
  description = "Let terraform destroy empty and delete the store bucket (throwaway environments only)."
  type        = bool
  default     = false
}

variable "cache_retention_days" {
  description = "Objects under <store_prefix>/cache/ (cached features) expire this many days after they were written; rescoring older dates re-decodes."
  type        = number
  default     = 90
  validation {
    condition     = var.cache_retention_days > 0
    error_message = "cache_retention_days must be > 0."
  }
}

variable "checkpoints_retention_days" {
  description = "Objects under <store_prefix>/checkpoints/ (run checkpoints) expire this many days after they were written."
  type        = number
  default     = 14
  validation {
    condition     = var.checkpoints_retention_days > 0
    error_message = "checkpoints_retention_days must be > 0."
  }
}

variable "staging_retention_days" {
  description = "Objects under <store_prefix>/staging/ (run staging areas) expire this many days after they were written."
  type        = number
  default     = 14
  validation {
    condition     = var.staging_retention_days > 0
    error_message = "staging_retention_days must be > 0."
  }
}

variable "quarantine_retention_days" {
  description = "Objects under <store_prefix>/quarantine/ (records of rejected footage) expire this many days after they were written."
  type        = number
  default     = 30
  validation {
    condition     = var.quarantine_retention_days > 0
    error_message = "quarantine_retention_days must be > 0."
  }
}

variable "archive_ia_days" {
  description = "Objects under <store_prefix>/events/, runs/ and reports/ move to STANDARD_IA this many days after they were written (S3 requires >= 30)."
  type        = number
  default     = 30
  validation {
    condition     = var.archive_ia_days >= 30
    error_message = "archive_ia_days must be >= 30 (S3's minimum for STANDARD_IA)."
  }
}

variable "archive_glacier_ir_days" {
  description = "Objects under <store_prefix>/events/, runs/ and reports/ move to GLACIER_IR this many days after they were written (at least 30 days after STANDARD_IA)."
  type        = number
  default     = 90
  validation {
    condition     = var.archive_glacier_ir_days > 0
    error_message = "archive_glacier_ir_days must be > 0."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Noncurrent (overwritten or deleted) object versions anywhere in the bucket expire after this many days."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_version_retention_days > 0
    error_message = "noncurrent_version_retention_days must be > 0."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Incomplete multipart uploads anywhere in the bucket are aborted after this many days."
  type        = number
  default     = 2
  validation {
    condition     = var.abort_incomplete_multipart_days > 0
    error_message = "abort_incomplete_multipart_days must be > 0."
  }
}

# --- Airflow ---

variable "airflow_hosting" {
  description = "\"ec2\": self-hosted Airflow on EC2 with the airflow instance profile; \"mwaa\": Amazon MWAA (needs enable_mwaa = true)."
  type        = string
  default     = "ec2"
  validation {
    condition     = contains(["mwaa", "ec2"], var.airflow_hosting)
    error_message = "airflow_hosting must be \"mwaa\" or \"ec2\"."
  }
}

variable "enable_mwaa" {
  description = "Create the MWAA environment and its DAGs bucket (modules/airflow). Requires airflow_hosting = \"mwaa\"; MWAA does not offer Airflow 3.3 yet (README)."
  type        = bool
  default     = false
}

variable "mwaa_airflow_version" {
  description = "Airflow version of the MWAA environment; must be one MWAA offers and that infra/airflow/requirements.txt accepts (3.3.x)."
  type        = string
  default     = "3.3.2"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.mwaa_airflow_version))
    error_message = "mwaa_airflow_version must be a version like 3.3.2."
  }
}

variable "mwaa_environment_class" {
  description = "MWAA environment class."
  type        = string
  default     = "mw1.small"
  validation {
    condition     = can(regex("^mw1\\.(micro|small|medium|large|xlarge|2xlarge)$", var.mwaa_environment_class))
    error_message = "mwaa_environment_class must be mw1.micro, mw1.small, mw1.medium, mw1.large, mw1.xlarge or mw1.2xlarge."
  }
}

variable "mwaa_max_workers" {
  description = "Most workers the MWAA environment scales to."
  type        = number
  default     = 4
  validation {
    condition     = var.mwaa_max_workers >= 1 && var.mwaa_max_workers <= 25
    error_message = "mwaa_max_workers must be between 1 and 25."
  }
}

variable "mwaa_plugins_zip" {
  description = "Local path of plugins.zip (actrec-batch wheel + constraints.txt, see infra/airflow/README.md); null: none."
  type        = string
  default     = null
}

# --- Ray ---

variable "ray_cluster_name" {
  description = "cluster_name in infra/ray/cluster-aws.yaml; the head's role may only manage instances tagged ray-cluster-name=<this>."
  type        = string
  default     = "actrec-batch"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", var.ray_cluster_name))
    error_message = "ray_cluster_name must be 1-64 letters, digits, _ or -."
  }
}

# --- warehouse ---

variable "db_engine_version" {
  description = "PostgreSQL version of the warehouse (major, or major.minor)."
  type        = string
  default     = "16"
  validation {
    condition     = can(regex("^(1[3-9])(\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version must be a PostgreSQL version 13 or later, e.g. 16 or 16.4."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the warehouse."
  type        = string
  default     = "db.t4g.medium"
  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "db_instance_class must look like db.t4g.medium."
  }
}

variable "db_allocated_storage_gb" {
  description = "Initial warehouse storage (GiB)."
  type        = number
  default     = 20
  validation {
    condition     = var.db_allocated_storage_gb >= 20
    error_message = "db_allocated_storage_gb must be >= 20."
  }
}

variable "db_max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
  default     = 200
  validation {
    condition     = var.db_max_allocated_storage_gb >= 20
    error_message = "db_max_allocated_storage_gb must be >= 20."
  }
}

variable "db_name" {
  description = "Database name of the warehouse."
  type        = string
  default     = "actrec"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must start with a letter and hold lowercase letters, digits and _."
  }
}

variable "db_master_username" {
  description = "Master user of the warehouse (its password lives in the RDS-managed secret)."
  type        = string
  default     = "actrec_admin"
  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.db_master_username)) && !contains(["admin", "postgres", "rdsadmin"], var.db_master_username)
    error_message = "db_master_username must be 1-16 lowercase letters, digits or _, and not a reserved name."
  }
}

variable "db_backup_retention_days" {
  description = "Days of automated warehouse backups."
  type        = number
  default     = 7
  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the warehouse instance."
  type        = bool
  default     = true
}

variable "db_skip_final_snapshot" {
  description = "Delete the warehouse without a final snapshot (throwaway environments only)."
  type        = bool
  default     = false
}

variable "db_multi_az" {
  description = "Synchronous standby in a second AZ."
  type        = bool
  default     = false
}

variable "db_performance_insights" {
  description = "Performance Insights on the warehouse (encrypted with the store key)."
  type        = bool
  default     = true
}

variable "db_monitoring_interval" {
  description = "Enhanced monitoring interval in seconds (0 disables it)."
  type        = number
  default     = 60
  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval)
    error_message = "db_monitoring_interval must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "db_log_statement" {
  description = "PostgreSQL log_statement of the warehouse."
  type        = string
  default     = "ddl"
  validation {
    condition     = contains(["none", "ddl", "mod", "all"], var.db_log_statement)
    error_message = "db_log_statement must be none, ddl, mod or all."
  }
}

variable "db_log_min_duration_statement_ms" {
  description = "Log warehouse statements slower than this many ms (-1 disables)."
  type        = number
  default     = 1000
  validation {
    condition     = var.db_log_min_duration_statement_ms >= -1
    error_message = "db_log_min_duration_statement_ms must be >= -1."
  }
}

# --- cost ---

variable "enable_budget" {
  description = "Create the monthly AWS Budget on the project tag."
  type        = bool
  default     = true
}

variable "monthly_budget_usd" {
  description = "Monthly cost limit (USD) of everything tagged project=<project>."
  type        = number
  default     = 500
  validation {
    condition     = var.monthly_budget_usd > 0
    error_message = "monthly_budget_usd must be > 0."
  }
}

variable "budget_alert_threshold_percent" {
  description = "Alert when actual (or forecasted) monthly cost passes this percent of the limit."
  type        = number
  default     = 80
  validation {
    condition     = var.budget_alert_threshold_percent >= 1 && var.budget_alert_threshold_percent <= 100
    error_message = "budget_alert_threshold_percent must be between 1 and 100."
  }
}

variable "budget_alert_emails" {
  description = "Addresses the budget alerts go to; empty: the budget exists without notifications."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for e in var.budget_alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "budget_alert_emails must be e-mail addresses."
  }
}
