variable "name" {
  description = "Name prefix for the roles and the Secrets Manager prefix <name>/airflow/..."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the store bucket."
  type        = string
}

variable "store_prefix" {
  description = "Key prefix of the store inside the bucket (no leading/trailing slash)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the store (and of the RDS master secret)."
  type        = string
}

variable "airflow_hosting" {
  description = "Where Airflow runs: \"mwaa\" (Amazon MWAA) or \"ec2\" (self-hosted, with an instance profile)."
  type        = string
  validation {
    condition     = contains(["mwaa", "ec2"], var.airflow_hosting)
    error_message = "airflow_hosting must be \"mwaa\" or \"ec2\"."
  }
}

variable "mwaa_environment_name" {
  description = "Name of the MWAA environment (its log groups are airflow-<name>-*); used when airflow_hosting = \"mwaa\"."
  type        = string
}

variable "mwaa_dags_bucket_arn" {
  description = "ARN of the MWAA DAGs bucket; used when airflow_hosting = \"mwaa\"."
  type        = string
}

variable "warehouse_master_secret_arn" {
  description = "ARN of the RDS-managed master user secret, readable by self-hosted Airflow (null: none)."
  type        = string
  default     = null
}

variable "ray_cluster_name" {
  description = "cluster_name of infra/ray/cluster-aws.yaml: the Ray autoscaler tags its instances ray-cluster-name=<this>, and the head may only manage those."
  type        = string
}

# THE access matrix: which store prefixes (under <store_prefix>/) each component may read, write and
# delete. Every S3 object statement of every role is generated from it. read = s3:GetObject;
# write = s3:PutObject + multipart; delete = s3:DeleteObject.
variable "access_matrix" {
  description = "Component -> {read, write, delete} lists of store prefixes (under <store_prefix>/)."
  type = map(object({
    read   = list(string)
    write  = list(string)
    delete = list(string)
  }))
  # What a night does, measured: tests/test_iam_emulator.py records every S3 call of a night run
  # signed with these policies and fails on any denied one (and on a prefix in the code that no
  # component may use). Deletes: Airflow replaces a run's Data Docs (reports/), a forced Ray job
  # forgets a date's checkpoints (--force); nothing else is ever deleted by the pipeline.
  default = {
    airflow = {
      read   = ["footage", "manifests", "quarantine", "staging", "runs", "reports", "events"]
      write  = ["manifests", "quarantine", "reports", "runs", "events"]
      delete = ["reports"]
    }
    ray_worker = {
      read   = ["footage", "manifests", "quarantine", "models", "cache", "checkpoints", "runs"]
      write  = ["cache", "checkpoints", "quarantine", "staging", "runs"]
      delete = ["checkpoints"]
    }
    # The head runs the Ray job's driver: the workers' S3 set, no more.
    ray_head = {
      read   = ["footage", "manifests", "quarantine", "models", "cache", "checkpoints", "runs"]
      write  = ["cache", "checkpoints", "quarantine", "staging", "runs"]
      delete = ["checkpoints"]
    }
  }
  validation {
    condition     = length(setsubtract(keys(var.access_matrix), ["airflow", "ray_head", "ray_worker"])) == 0 && length(keys(var.access_matrix)) == 3
    error_message = "access_matrix must have exactly the components airflow, ray_head and ray_worker."
  }
  validation {
    condition = alltrue(flatten([
      for c in values(var.access_matrix) : [
        for p in concat(c.read, c.write, c.delete) : can(regex("^[a-z][a-z0-9_-]*$", p))
      ]
    ]))
    error_message = "access_matrix prefixes are single path segments (lowercase letters, digits, - and _), without slashes or wildcards."
  }
  validation {
    condition = alltrue([
      for k, c in var.access_matrix : !contains(c.write, "models") && (k == "airflow" || (!contains(c.write, "events") && !contains(c.delete, "events")))
    ])
    error_message = "No component writes models/, and Ray (ray_head, ray_worker) never writes or deletes events/."
  }
}

variable "tags" {
  description = "Extra tags for every resource of the module."
  type        = map(string)
  default     = {}
}
