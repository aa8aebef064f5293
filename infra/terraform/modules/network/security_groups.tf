# One security group per component. Ingress is by security-group reference only (no CIDR opens
# anything to the internet); egress is HTTPS plus the named peers.
#
# Ray's ports (https://docs.ray.io/en/latest/ray-core/configure.html#ports-configurations). The
# ports Ray would otherwise pick at random (node manager, dashboard agent gRPC, runtime-env agent,
# metrics export) are pinned in infra/ray/cluster-aws.yaml's `ray start` commands to 8077-8080, so
# this list is complete.
locals {
  ray_ports = {
    gcs             = { from = 6379, to = 6379, what = "GCS server (ray start --port)" }
    dashboard       = { from = 8265, to = 8265, what = "dashboard and Jobs API" }
    client          = { from = 10001, to = 10001, what = "Ray client server" }
    node_managers   = { from = 8076, to = 8077, what = "object manager and node manager" }
    agents          = { from = 8078, to = 8080, what = "dashboard agent gRPC, runtime-env agent, metrics export (pinned in cluster-aws.yaml)" }
    dashboard_agent = { from = 52365, to = 52365, what = "dashboard agent HTTP" }
    workers         = { from = 10002, to = 19999, what = "worker processes (--min/max-worker-port defaults)" }
    # The cluster launcher's node updater runs on the head and SSHes into every worker it starts
    # to run the setup and `ray start` commands: without 22 between Ray nodes no worker joins.
    ssh = { from = 22, to = 22, what = "SSH from the head's autoscaler (node updater) to workers" }
  }
}

resource "aws_security_group" "ray" {
  #checkov:skip=CKV2_AWS_5:Attached by the Ray cluster launcher to the instances it starts (infra/ray/render_cluster.py writes this group's id into the cluster config), not by Terraform.
  name        = "${var.name}-ray"
  description = "Ray head and worker nodes: Ray ports between Ray nodes, the Jobs API from Airflow"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-ray" })
}

resource "aws_security_group" "airflow" {
  #checkov:skip=CKV2_AWS_5:Attached to the MWAA environment (modules/airflow, optional) or to self-hosted Airflow instances launched outside Terraform.
  name        = "${var.name}-airflow"
  description = "Airflow (MWAA or self-hosted): no ingress except from itself"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-airflow" })
}

resource "aws_security_group" "warehouse" {
  #checkov:skip=CKV2_AWS_5:Attached to the RDS instance in modules/warehouse (vpc_security_group_ids); checkov's graph does not follow the id through module outputs.
  name        = "${var.name}-warehouse"
  description = "PostgreSQL warehouse: 5432 from Airflow and Ray only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-warehouse" })
}

# --- ray ---

resource "aws_vpc_security_group_ingress_rule" "ray_self" {
  #checkov:skip=CKV_AWS_24:False positive: the source is the ray security group itself (referenced_security_group_id), not 0.0.0.0/0; checkov reads only cidr_ipv4/cidr_ipv6 on this resource type.
  for_each                     = local.ray_ports
  security_group_id            = aws_security_group.ray.id
  referenced_security_group_id = aws_security_group.ray.id
  ip_protocol                  = "tcp"
  from_port                    = each.value.from
  to_port                      = each.value.to
  description                  = "Ray nodes: ${each.value.what}"
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "ray_self" {
  for_each                     = local.ray_ports
  security_group_id            = aws_security_group.ray.id
  referenced_security_group_id = aws_security_group.ray.id
  ip_protocol                  = "tcp"
  from_port                    = each.value.from
  to_port                      = each.value.to
  description                  = "To Ray nodes: ${each.value.what}"
  tags                         = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "ray_jobs_from_airflow" {
  security_group_id            = aws_security_group.ray.id
  referenced_security_group_id = aws_security_group.airflow.id
  ip_protocol                  = "tcp"
  from_port                    = 8265
  to_port                      = 8265
  description                  = "Airflow submits and polls Ray jobs (Jobs API)"
  tags                         = local.tags
}

# HTTPS to anywhere: S3 (through the gateway endpoint, whose addresses are S3's public ranges),
# the EC2 API for the autoscaler, STS, KMS, PyPI for the nodes' setup commands (through the NAT).
# These endpoints have no fixed addresses, so 0.0.0.0/0 on 443 only is the narrowest rule that works.
resource "aws_vpc_security_group_egress_rule" "ray_https" {
  security_group_id = aws_security_group.ray.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS to AWS APIs, S3 and PyPI"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "ray_warehouse" {
  security_group_id            = aws_security_group.ray.id
  referenced_security_group_id = aws_security_group.warehouse.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL warehouse"
  tags                         = local.tags
}

# --- airflow ---

# MWAA requires its security group to admit all traffic from itself (its workers, scheduler and
# the interface endpoints of its metadata database and web server share the group).
resource "aws_vpc_security_group_ingress_rule" "airflow_self" {
  security_group_id            = aws_security_group.airflow.id
  referenced_security_group_id = aws_security_group.airflow.id
  ip_protocol                  = "-1"
  description                  = "MWAA self-reference: Airflow components and MWAA's endpoints"
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "airflow_self" {
  security_group_id            = aws_security_group.airflow.id
  referenced_security_group_id = aws_security_group.airflow.id
  ip_protocol                  = "-1"
  description                  = "MWAA self-reference: Airflow components and MWAA's endpoints"
  tags                         = local.tags
}

# HTTPS to anywhere: S3, Secrets Manager, SQS, CloudWatch Logs, STS (no fixed addresses); see ray_https.
resource "aws_vpc_security_group_egress_rule" "airflow_https" {
  security_group_id = aws_security_group.airflow.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS to AWS APIs and S3"
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "airflow_ray_jobs" {
  security_group_id            = aws_security_group.airflow.id
  referenced_security_group_id = aws_security_group.ray.id
  ip_protocol                  = "tcp"
  from_port                    = 8265
  to_port                      = 8265
  description                  = "Ray Jobs API on the head node"
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "airflow_warehouse" {
  security_group_id            = aws_security_group.airflow.id
  referenced_security_group_id = aws_security_group.warehouse.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL warehouse"
  tags                         = local.tags
}

# --- warehouse: ingress only; no egress rule (replies to allowed connections are stateful) ---

resource "aws_vpc_security_group_ingress_rule" "warehouse" {
  for_each = {
    airflow = aws_security_group.airflow.id
    ray     = aws_security_group.ray.id
  }
  security_group_id            = aws_security_group.warehouse.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from ${each.key}"
  tags                         = local.tags
}
