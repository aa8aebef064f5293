output "role_arns" {
  description = "Role ARN per component."
  value = {
    airflow    = aws_iam_role.airflow.arn
    ray_head   = aws_iam_role.ray_head.arn
    ray_worker = aws_iam_role.ray_worker.arn
  }
}

output "role_names" {
  description = "Role name per component."
  value = {
    airflow    = aws_iam_role.airflow.name
    ray_head   = aws_iam_role.ray_head.name
    ray_worker = aws_iam_role.ray_worker.name
  }
}

output "instance_profiles" {
  description = "Instance profile {name, arn} per component that runs on EC2 (airflow only when self-hosted)."
  value = merge(
    {
      ray_head   = { name = aws_iam_instance_profile.ray_head.name, arn = aws_iam_instance_profile.ray_head.arn }
      ray_worker = { name = aws_iam_instance_profile.ray_worker.name, arn = aws_iam_instance_profile.ray_worker.arn }
    },
    length(aws_iam_instance_profile.airflow) > 0 ? {
      airflow = { name = aws_iam_instance_profile.airflow[0].name, arn = aws_iam_instance_profile.airflow[0].arn }
    } : {},
  )
}

output "component_policies" {
  description = "Component -> its S3 + KMS policy document (JSON), generated from the access matrix."
  value       = { for c, doc in data.aws_iam_policy_document.store : c => doc.json }
}

output "access_matrix" {
  description = "The access matrix the policies were generated from."
  value       = var.access_matrix
}
