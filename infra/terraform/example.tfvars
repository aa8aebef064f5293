# terraform apply -var-file=example.tfvars  (copy it; the values below are an example production setup)
name        = "actrec-prod"
environment = "prod"
region      = "eu-west-1"

vpc_cidr = "10.40.0.0/16"
az_count = 3

store_prefix              = "actrec"
cache_retention_days      = 90
staging_retention_days    = 14
quarantine_retention_days = 30

airflow_hosting = "ec2" # MWAA does not offer Airflow 3.3 (README.md)
enable_mwaa     = false

db_multi_az            = true
db_deletion_protection = true

monthly_budget_usd             = 800
budget_alert_threshold_percent = 80
budget_alert_emails            = ["ops@example.com"]
