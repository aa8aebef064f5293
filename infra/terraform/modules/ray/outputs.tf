output "ray_cluster" {
  description = "What infra/ray/render_cluster.py fills into the cluster config: region, subnets, security group, instance profiles."
  value       = local.ray_cluster
}
