variable "region" {
  description = "AWS region for the store bucket and IAM resources."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix for every resource (e.g. actrec-prod)."
  type        = string
  default     = "actrec"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be 2-41 lowercase letters, digits or dashes."
  }
}

variable "cache_retention_days" {
  description = "Days to keep cached features (cache/) before they expire; rescoring older dates re-decodes."
  type        = number
  default     = 90
}

variable "staging_retention_days" {
  description = "Days to keep run staging areas and checkpoints (staging/, checkpoints/)."
  type        = number
  default     = 14
}

variable "worker_role_trusted_services" {
  description = "AWS services allowed to assume the worker role (EC2 for Ray nodes)."
  type        = list(string)
  default     = ["ec2.amazonaws.com"]
}
