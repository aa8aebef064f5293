variable "name" {
  description = "Name prefix (DB identifier <name>-warehouse)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the DB subnet group (2+ AZs)."
  type        = list(string)
}

variable "security_group_id" {
  description = "The warehouse security group (5432 from Airflow and Ray)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for storage, Performance Insights and the master user secret."
  type        = string
}

variable "engine_version" {
  description = "PostgreSQL major (or major.minor) version."
  type        = string
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "allocated_storage_gb" {
  description = "Initial storage (GiB)."
  type        = number
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
}

variable "db_name" {
  description = "Database created on the instance."
  type        = string
}

variable "master_username" {
  description = "Master user name; its password is generated and kept by RDS in Secrets Manager."
  type        = string
}

variable "backup_retention_period" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse to delete the instance."
  type        = bool
}

variable "skip_final_snapshot" {
  description = "Delete without a final snapshot (throwaway environments only)."
  type        = bool
}

variable "multi_az" {
  description = "Run a synchronous standby in a second AZ."
  type        = bool
}

variable "performance_insights_enabled" {
  description = "Enable Performance Insights (encrypted with the KMS key)."
  type        = bool
}

variable "monitoring_interval" {
  description = "Enhanced monitoring interval in seconds (0 disables it)."
  type        = number
}

variable "log_statement" {
  description = "PostgreSQL log_statement: none, ddl, mod or all."
  type        = string
}

variable "log_min_duration_statement_ms" {
  description = "PostgreSQL log_min_duration_statement: log statements slower than this (ms; -1 disables)."
  type        = number
}

variable "tags" {
  description = "Extra tags for every resource of the module."
  type        = map(string)
  default     = {}
}
