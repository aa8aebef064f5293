"""Packaging by role, the fast checks (tests/test_wheel.py builds and installs the wheel).

- The extras: ``[airflow]`` has no Ray or torch, ``[worker]`` has them, ``[dev]`` implies every role;
  every requirement has its one version in constraints.txt, so pip resolves nothing new.
- The one install recipe: the Makefile, the Ray node image and managed Airflow's requirements file
  all go through ``scripts/install.sh``; the committed requirements file is that script's output.
- The Airflow side imports no torch, av or Ray: parsing the DAGs, and the infer operator's whole
  submission path (up to the HTTP request), checked in a fresh interpreter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
HEAVY = ("torch", "av", "ray")


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if version:
            pins[_name(name)] = version
    return pins


def test_extras_split_the_roles_and_dev_implies_all_of_them():
    extras = PROJECT["optional-dependencies"]
    base = {_name(r) for r in PROJECT["dependencies"]}
    airflow = {_name(r) for r in extras["airflow"]}
    worker = {_name(r) for r in extras["worker"]}
    assert not {"torch", "ray", "apache-airflow"} & base
    assert "apache-airflow" in airflow and not {"torch", "ray"} & airflow
    assert {"ray", "torch", "av"} <= worker and "apache-airflow" not in worker
    [itself] = [r for r in extras["dev"] if _name(r) == "actrec-batch"]
    implied = set(re.search(r"\[(.*)\]", itself).group(1).split(","))
    assert implied == set(extras) - {"dev"}  # make install (.[dev]) installs every role
    assert PROJECT["scripts"]["actrec"] == "actrec_batch.cli:main"


def test_every_requirement_is_pinned_in_constraints():
    pins = _pins()
    requirements = [
        *PROJECT["dependencies"],
        *(r for rs in PROJECT["optional-dependencies"].values() for r in rs),
    ]
    unpinned = sorted({_name(r) for r in requirements} - {"actrec-batch"} - set(pins))
    assert unpinned == [], f"constraints.txt pins no version of {unpinned}: pip would resolve them"
    assert pins["torch"] == "2.13.0"  # the CPU wheel; any other version pulls CUDA


def test_the_makefile_and_the_ray_image_install_through_the_install_script():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("$(STAMP): ") :].split("\n\n")[0]
    assert "scripts/install.sh dev" in recipe and "pip install" not in recipe
    dockerfile = (ROOT / "infra" / "docker" / "Dockerfile.ray").read_text()
    assert re.search(r"^FROM (python:3\.11-slim|rayproject/ray:\S+)", dockerfile, re.M), dockerfile[:400]
    runs = re.findall(r"^RUN (?:.*\\\n)*.*$", dockerfile, re.M)  # each RUN with its continuation lines
    [run] = [block for block in runs if "install.sh" in block]
    assert re.search(r"bash scripts/install\.sh worker \"?\$wheel", run)
    assert "pip install" not in dockerfile  # no second recipe beside the script
    assert "COPY constraints.txt" in dockerfile and "dist/actrec_batch-" in dockerfile


def test_the_airflow_requirements_file_is_the_install_scripts_output_and_agrees_with_constraints():
    generated = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install.sh"), "airflow", "--requirements"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = (ROOT / "infra" / "airflow" / "requirements.txt").read_text()
    assert committed == generated, (
        "regenerate: scripts/install.sh airflow --requirements > infra/airflow/requirements.txt"
    )
    pins = _pins()
    lines = [ln for ln in committed.splitlines() if ln and not ln.startswith(("#", "-"))]
    wheel = [ln for ln in lines if ln.startswith("actrec-batch[airflow] @ ")]
    assert len(wheel) == 1 and wheel[0].endswith(f"actrec_batch-{PROJECT['version']}-py3-none-any.whl")
    pinned = {_name(ln): ln.rsplit("==", 1)[1] for ln in lines if "==" in ln}
    assert pinned and all(pins[name] == version for name, version in pinned.items())
    roles = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["airflow"]]
    assert set(pinned) == {_name(r) for r in roles}
    assert not set(pinned) & {"torch", "ray"}


_AUDIT = """
import importlib.util, json, sys
import airflow.sdk
for path in {dags!r}:
    spec = importlib.util.spec_from_file_location("dag_" + path.rsplit("/", 1)[-1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
parsed = sorted(m for m in {heavy!r} if m in sys.modules)

from actrec_batch.errors import ConfigError
from actrec_batch.orchestration.ray_operator import RayInferOperator
import actrec_batch.orchestration.tasks, actrec_batch.pipeline.ray_job_follow

op = RayInferOperator(task_id="infer", date="2026-11-21", run_id="audit", ray_address={address!r})
try:
    op.execute(context={{}})  # the whole submission path, up to the HTTP request that finds nobody
    raise SystemExit("expected a ConfigError: nothing listens at the address")
except ConfigError as exc:
    assert "cannot reach the Ray Jobs API" in str(exc), exc
submitted = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"parsed": parsed, "submitted": submitted}}))
"""


def test_the_airflow_side_imports_no_torch_av_or_ray(tmp_path):
    import json

    from ray_head import free_port

    code = _AUDIT.format(
        dags=[str(p) for p in sorted((ROOT / "dags").glob("actrec_*.py"))],
        heavy=HEAVY,
        address=f"http://127.0.0.1:{free_port()}",
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "ACTREC_STORE": str(tmp_path / "store")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"parsed": [], "submitted": []}, result


def test_the_airflow_side_task_modules_import_no_torch_or_ray():
    # discover, validate, publish, cost and quality run in the Airflow worker (av is in [airflow]: the
    # discover task probes container headers, lazily).
    code = (
        "import sys\n"
        "import actrec_batch.pipeline.nightly, actrec_batch.discovery, actrec_batch.expectations\n"
        "import actrec_batch.warehouse.queries, actrec_batch.costs, actrec_batch.quality\n"
        "print(sorted(m for m in ('torch', 'ray', 'av') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_airflow_sides_jobs_api_client_sends_the_token_as_rays_client_does(tmp_path):
    from actrec_batch.pipeline.ray_rest import auth_headers

    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert auth_headers({"RAY_AUTH_TOKEN": "t"}) == {}  # no token mode: no header
    assert auth_headers({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "t"}) == {"Authorization": "Bearer t"}
    by_path = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    assert auth_headers(by_path) == {"Authorization": "Bearer from-file"}
