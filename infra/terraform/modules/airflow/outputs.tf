output "environment_arn" {
  value = aws_mwaa_environment.this.arn
}

output "webserver_url" {
  value = aws_mwaa_environment.this.webserver_url
}

output "dags_bucket_name" {
  value = aws_s3_bucket.dags.bucket
}
