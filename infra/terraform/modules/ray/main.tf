# The Ray cluster is launched by Ray's cluster launcher (`ray up`), not by Terraform: this module
# creates nothing and gathers what the launcher's config needs from the other modules, in one map
# that infra/ray/render_cluster.py writes into infra/ray/cluster-aws.generated.yaml.

data "aws_region" "current" {}

locals {
  ray_cluster = {
    cluster_name                = var.cluster_name
    region                      = data.aws_region.current.name
    subnet_ids                  = var.subnet_ids
    availability_zones          = var.availability_zones
    security_group_id           = var.security_group_id
    head_instance_profile_arn   = var.head_instance_profile_arn
    worker_instance_profile_arn = var.worker_instance_profile_arn
  }
}
