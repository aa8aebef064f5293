# Monthly cost budget over everything tagged project=<project> (the provider's default_tags).
# AWS only filters on a tag after it is activated as a cost allocation tag (Billing console, or
# aws_ce_cost_allocation_tag from the payer account).

resource "aws_budgets_budget" "monthly" {
  count        = var.enable_budget ? 1 : 0
  account_id   = data.aws_caller_identity.current.account_id
  name         = "${var.name}-monthly"
  budget_type  = "COST"
  limit_amount = format("%.2f", var.monthly_budget_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  cost_filter {
    name   = "TagKeyValue"
    values = [format("user:project$%s", var.project)]
  }

  dynamic "notification" {
    for_each = length(var.budget_alert_emails) > 0 ? ["ACTUAL", "FORECASTED"] : []
    content {
      comparison_operator        = "GREATER_THAN"
      threshold                  = var.budget_alert_threshold_percent
      threshold_type             = "PERCENTAGE"
      notification_type          = notification.value
      subscriber_email_addresses = var.budget_alert_emails
    }
  }

  tags = { component = "cost" }
}
