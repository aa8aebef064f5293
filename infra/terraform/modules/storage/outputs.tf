output "bucket_name" {
  value = aws_s3_bucket.store.bucket
}

output "bucket_arn" {
  value = aws_s3_bucket.store.arn
}

output "store_prefix" {
  value = var.store_prefix
}

output "store_uri" {
  description = "Set ACTREC_STORE to this."
  value       = "s3://${aws_s3_bucket.store.bucket}/${var.store_prefix}"
}

output "kms_key_arn" {
  value = aws_kms_key.store.arn
}
