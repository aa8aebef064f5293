provider "aws" {
  region = var.region

  # Every resource carries these (cost allocation: activate `project` as a cost allocation tag so
  # the budget's filter sees it); each module adds `component`.
  default_tags {
    tags = {
      project     = var.project
      environment = var.environment
      managed_by  = "terraform"
    }
  }
}
