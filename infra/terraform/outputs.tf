output "store_uri" {
  description = "Set ACTREC_STORE to this: s3://<bucket>/<store_prefix>."
  value       = module.storage.store_uri
}

output "store_bucket_name" {
  value = module.storage.bucket_name
}

output "store_bucket_arn" {
  value = module.storage.bucket_arn
}

output "kms_key_arn" {
  description = "Customer-managed key of the store, the warehouse and the logs."
  value       = module.storage.kms_key_arn
}

output "role_arns" {
  description = "IAM role ARN per component (airflow, ray_head, ray_worker)."
  value       = module.identity.role_arns
}

output "role_names" {
  description = "IAM role name per component."
  value       = module.identity.role_names
}

output "instance_profiles" {
  description = "Instance profile {name, arn} per component that runs on EC2."
  value       = module.identity.instance_profiles
}

output "component_policies" {
  description = "Component -> S3 + KMS policy document (JSON string) generated from the access matrix."
  value       = module.identity.component_policies
}

output "access_matrix" {
  description = "Component -> {read, write, delete} store prefixes."
  value       = module.identity.access_matrix
}

output "warehouse_endpoint" {
  value = module.warehouse.endpoint
}

output "warehouse_port" {
  value = module.warehouse.port
}

output "warehouse_db_name" {
  value = module.warehouse.db_name
}

output "warehouse_master_secret_arn" {
  description = "RDS-managed Secrets Manager secret of the warehouse's master user."
  value       = module.warehouse.master_secret_arn
}

output "vpc_id" {
  value = module.network.vpc_id
}

output "private_subnet_ids" {
  value = module.network.private_subnet_ids
}

output "security_group_ids" {
  value = module.network.security_group_ids
}

output "ray_cluster" {
  description = "Input of infra/ray/render_cluster.py: region, subnets, security group, instance profile ARNs."
  value       = module.ray.ray_cluster
}

output "mwaa_webserver_url" {
  description = "MWAA web server (null unless enable_mwaa)."
  value       = var.enable_mwaa ? module.airflow[0].webserver_url : null
}
