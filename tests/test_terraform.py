"""infra/terraform validates offline (scripts/infra_check.sh --terraform-only: fmt -check, init
-backend=false through the machine's provider mirror when there is one, validate), and its variables
refuse a store at the bucket root.

CI has no registry access; real users download the hashicorp/aws provider from the registry as
usual. Nothing is applied here: the apply against moto is tests/test_iam_emulator.py's.
"""

from __future__ import annotations

import os
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


def _mirror_config(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    mirror = os.environ.get("ACTREC_TF_MIRROR") or "/opt/tf-plugins"
    if Path(mirror, "registry.terraform.io").is_dir():
        rc = tmp_path / "cli.tfrc"
        rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n')
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    elif env.get("TF_CLI_CONFIG_FILE") and not Path(env["TF_CLI_CONFIG_FILE"]).is_file():
        del env["TF_CLI_CONFIG_FILE"]
    return env


def test_the_store_prefix_is_never_the_bucket_root_nor_slashed(tmp_path):
    """`terraform plan` checks variable validations before it calls AWS: the emulator override points
    the provider at a closed port, so the plan fails on the variable, with no credentials and no
    network."""
    tf = _terraform()
    work = tmp_path / "infra" / "terraform"
    shutil.copytree(TF_DIR, work, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*_override.tf"))
    template = (TF_DIR / "emulator" / "provider_override.tf.tmpl").read_text()
    (work / "emulator_override.tf").write_text(template.replace("${endpoint}", "http://127.0.0.1:9"))
    env = _mirror_config(tmp_path)

    def tf_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([tf, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    init = tf_run("init", "-backend=false", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    for prefix in ["", "/", "actrec/", "/actrec"]:
        plan = tf_run(
            "plan",
            "-refresh=false",
            "-input=false",
            "-no-color",
            "-lock=false",
            f"-var=store_prefix={prefix}",
        )
        assert plan.returncode != 0, prefix
        assert "the store is never the bucket root" in " ".join(plan.stderr.split()), (prefix, plan.stderr)
