"""infra/terraform validates offline: `terraform init -backend=false` + `validate` + `fmt -check`.

Uses the machine's provider mirror when present (CI has no registry access); real users
download the hashicorp/aws provider from the registry as usual. Nothing is applied: AWS itself
cannot run here.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TF_DIR = Path(__file__).parents[1] / "infra" / "terraform"


def _mirror() -> str | None:
    for hit in glob.glob("/opt/*/registry.terraform.io/hashicorp/aws") + glob.glob(
        "/usr/share/*/registry.terraform.io/hashicorp/aws"
    ):
        return str(Path(hit).parents[2])
    return None


def test_terraform_validates_offline(tmp_path):
    tf = shutil.which("terraform")
    if tf is None:
        pytest.skip("terraform is not installed")  # a failure under ACTREC_REQUIRE_SERVICES=1 (conftest)
    work = tmp_path / "tf"
    shutil.copytree(TF_DIR, work, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    mirror = _mirror()
    if mirror:
        rc = tmp_path / "cli.tfrc"
        rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n')
        env["TF_CLI_CONFIG_FILE"] = str(rc)

    def tf_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([tf, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    init = tf_run("init", "-backend=false", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    validate = tf_run("validate", "-no-color")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    fmt = tf_run("fmt", "-check", "-recursive", "-no-color")
    assert fmt.returncode == 0, f"terraform fmt would change: {fmt.stdout}"
