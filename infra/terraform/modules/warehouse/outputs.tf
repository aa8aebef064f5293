output "endpoint" {
  description = "host:port of the instance."
  value       = aws_db_instance.this.endpoint
}

output "address" {
  value = aws_db_instance.this.address
}

output "port" {
  value = aws_db_instance.this.port
}

output "db_name" {
  value = aws_db_instance.this.db_name
}

output "master_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master user's credentials in."
  value       = try(aws_db_instance.this.master_user_secret[0].secret_arn, null)
}
