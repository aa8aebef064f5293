variable "name" {
  description = "Name prefix for the network's resources."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "az_count" {
  description = "Number of availability zones to spread the private subnets over (MWAA and RDS subnet groups need 2)."
  type        = number
  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6
    error_message = "az_count must be between 2 and 6."
  }
}

variable "enable_nat_gateway" {
  description = "Create public subnets, an internet gateway and one NAT gateway so the private subnets reach PyPI, the EC2 API and other HTTPS endpoints."
  type        = bool
}

variable "enable_flow_logs" {
  description = "Send VPC flow logs to a KMS-encrypted CloudWatch log group."
  type        = bool
}

variable "flow_log_retention_days" {
  description = "Days CloudWatch keeps the VPC flow logs."
  type        = number
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts the flow log group (its key policy must allow CloudWatch Logs)."
  type        = string
}

variable "tags" {
  description = "Extra tags for every resource of the module."
  type        = map(string)
  default     = {}
}
