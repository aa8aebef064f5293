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
    import os

    _terraform()
    env = {
        k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "ACTREC_TF_MIRROR") if k in os.environ
    }
    # Terraform in a process group of its own, without this process's stdin or environment; past
    # its time, SIGQUIT first (Go prints every goroutine's stack into the output), then kill.
    proc = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "infra_check.sh"), "--terraform-only"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        from moto_iam import _group_dump_and_kill

        _group_dump_and_kill(proc)
        out, _ = proc.communicate()
        pytest.fail(f"scripts/infra_check.sh --terraform-only ran past 300 s:\n{(out or '')[-8000:]}")
    assert proc.returncode == 0, out
    assert "Success!" in out and "0 failed" in out, out
