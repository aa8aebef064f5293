"""infra/terraform validates offline (scripts/infra_check.sh --terraform-only: fmt -check, init
-backend=false through the machine's provider mirror when there is one, validate, and `terraform
test`: infra/terraform/tests/*.tftest.hcl, where the variables refuse a store at the bucket root,
a cache that never expires and a budget threshold over 100%, with the provider mocked).

CI has no registry access; real users download the hashicorp/aws provider from the registry as
usual. Nothing is applied here: the apply against moto is tests/test_iam_emulator.py's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
TF_DIR = ROOT / "infra" / "terraform"


def _terraform() -> str:
    tf = shutil.which("terraform")
    if tf is None:
        pytest.skip("terraform is not installed")  # a failure under ACTREC_REQUIRE_SERVICES=1 (conftest)
    return tf


def test_terraform_is_formatted_and_validates_offline():
    _terraform()
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "infra_check.sh"), "--terraform-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success!" in run.stdout and "0 failed" in run.stdout, run.stdout
