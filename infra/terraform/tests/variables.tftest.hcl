# `terraform test` (scripts/infra_check.sh, offline): the variables refuse what would break the
# pipeline or its least privilege. The AWS provider is mocked: nothing is called, no credentials.

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["us-east-1a", "us-east-1b", "us-east-1c"]
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
}

# The defaults plan: every reference resolves and every variable's validation passes.
run "defaults_plan" {
  command = plan
}

run "store_prefix_empty_is_the_bucket_root" {
  command = plan
  variables { store_prefix = "" }
  expect_failures = [var.store_prefix]
}

run "store_prefix_slash" {
  command = plan
  variables { store_prefix = "/" }
  expect_failures = [var.store_prefix]
}

run "store_prefix_trailing_slash" {
  command = plan
  variables { store_prefix = "actrec/" }
  expect_failures = [var.store_prefix]
}

run "store_prefix_leading_slash" {
  command = plan
  variables { store_prefix = "/actrec" }
  expect_failures = [var.store_prefix]
}

run "cache_never_expiring_is_refused" {
  command = plan
  variables { cache_retention_days = 0 }
  expect_failures = [var.cache_retention_days]
}

run "budget_alert_threshold_over_100_is_refused" {
  command = plan
  variables { budget_alert_threshold_percent = 150 }
  expect_failures = [var.budget_alert_threshold_percent]
}
