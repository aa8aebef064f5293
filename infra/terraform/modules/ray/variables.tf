variable "cluster_name" {
  description = "cluster_name of infra/ray/cluster-aws.yaml."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets the Ray nodes launch into."
  type        = list(string)
}

variable "availability_zones" {
  description = "AZs of those subnets, in the same order."
  type        = list(string)
}

variable "security_group_id" {
  description = "The ray security group."
  type        = string
}

variable "head_instance_profile_arn" {
  description = "Instance profile of the head node (modules/identity ray_head)."
  type        = string
}

variable "worker_instance_profile_arn" {
  description = "Instance profile of the worker nodes (modules/identity ray_worker)."
  type        = string
}
