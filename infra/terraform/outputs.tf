output "store_uri" {
  description = "Set ACTREC_STORE to this."
  value       = "s3://${aws_s3_bucket.store.bucket}"
}

output "worker_role_arn" {
  value = aws_iam_role.worker.arn
}

output "worker_instance_profile" {
  description = "Attach to Ray head/worker nodes."
  value       = aws_iam_instance_profile.worker.name
}
