variable "name" {
  description = "Name prefix; also the Secrets Manager prefix <name>/airflow/..."
  type        = string
}

variable "environment_name" {
  description = "Name of the MWAA environment."
  type        = string
}

variable "dags_bucket_name" {
  description = "Name of the DAGs bucket (fixed, so identity can scope the execution role to it before it exists)."
  type        = string
}

variable "airflow_version" {
  description = "Airflow version MWAA runs. actrec-batch needs 3.3 (infra/airflow/requirements.txt pins apache-airflow 3.3.x)."
  type        = string
}

variable "environment_class" {
  description = "MWAA environment class (mw1.small, mw1.medium, ...)."
  type        = string
}

variable "max_workers" {
  description = "Most Airflow workers MWAA scales to."
  type        = number
}

variable "execution_role_arn" {
  description = "The airflow role of modules/identity (trusted by airflow(-env).amazonaws.com)."
  type        = string
}

variable "subnet_ids" {
  description = "Two private subnets in different AZs."
  type        = list(string)
}

variable "security_group_id" {
  description = "The airflow security group."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the DAGs bucket and the environment."
  type        = string
}

variable "requirements_file" {
  description = "Local path of the requirements file to upload (infra/airflow/requirements.txt)."
  type        = string
}

variable "dags_dir" {
  description = "Local folder whose *.py files are uploaded to dags/."
  type        = string
}

variable "plugins_zip" {
  description = "Local path of plugins.zip (the actrec-batch wheel and constraints.txt; see infra/airflow/README.md); null: none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags for every resource of the module."
  type        = map(string)
  default     = {}
}
