variable "name" {
  description = "Name prefix (KMS alias)."
  type        = string
}

variable "bucket_prefix" {
  description = "Prefix of the store bucket's name; AWS appends a unique suffix."
  type        = string
}

variable "store_prefix" {
  description = "Key prefix under which actrec-batch keeps everything (ACTREC_STORE=s3://<bucket>/<store_prefix>); never the bucket root."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$", var.store_prefix))
    error_message = "store_prefix must be non-empty, without a leading or trailing slash (e.g. actrec or prod/actrec)."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket (throwaway environments only)."
  type        = bool
  default     = false
}

variable "cache_retention_days" {
  description = "Days after which objects under <store_prefix>/cache/ (cached features) expire."
  type        = number
}

variable "checkpoints_retention_days" {
  description = "Days after which objects under <store_prefix>/checkpoints/ (run checkpoints) expire."
  type        = number
}

variable "staging_retention_days" {
  description = "Days after which objects under <store_prefix>/staging/ (run staging areas) expire."
  type        = number
}

variable "quarantine_retention_days" {
  description = "Days after which objects under <store_prefix>/quarantine/ (rejected footage records) expire."
  type        = number
}

variable "archive_ia_days" {
  description = "Days after which objects under <store_prefix>/events/, runs/ and reports/ move to STANDARD_IA."
  type        = number
}

variable "archive_glacier_ir_days" {
  description = "Days after which objects under <store_prefix>/events/, runs/ and reports/ move to GLACIER_IR."
  type        = number
}

variable "noncurrent_version_retention_days" {
  description = "Days after which noncurrent (overwritten or deleted) object versions expire, bucket-wide."
  type        = number
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads are aborted, bucket-wide."
  type        = number
}

variable "tags" {
  description = "Extra tags for every resource of the module."
  type        = map(string)
  default     = {}
}
