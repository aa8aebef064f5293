output "vpc_id" {
  value = aws_vpc.this.id
}

output "private_subnet_ids" {
  value = aws_subnet.private[*].id
}

output "availability_zones" {
  value = local.azs
}

output "private_route_table_id" {
  value = aws_route_table.private.id
}

output "security_group_ids" {
  description = "Security group id per component: ray, airflow, warehouse."
  value = {
    ray       = aws_security_group.ray.id
    airflow   = aws_security_group.airflow.id
    warehouse = aws_security_group.warehouse.id
  }
}

output "s3_endpoint_id" {
  value = aws_vpc_endpoint.s3.id
}
