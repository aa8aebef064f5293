"""The wheel alone is enough: build it, install it into a fresh venv outside the repository, and run
``actrec report`` and the Airflow infer task's Ray Jobs API path from there.

The fresh venv gets actrec-batch only from the wheel (``pip install --no-deps``); a ``.pth`` file
written after that install lends it this environment's third-party packages (nothing is downloaded),
but not its editable actrec-batch, whose import hook lives in a ``.pth`` file that a ``.pth`` line
does not run. Every command runs from a folder outside the checkout, without ``PYTHONPATH``.

The Ray head runs from that venv, so the job's ``python -m actrec_batch.ray_job`` runs the wheel;
the submitting process (the DAG files parsed, the operator's ``execute``) runs with torch, av and
Ray made unimportable, as in an image with only ``[airflow]``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import ray_head
from footage import discovered_night
from ray_head import dashboard_head_args, free_port, own_ray_head, wait_for_dashboard

from actrec_batch.pipeline.ray_rest import JobsApiClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATE = dt.date(2026, 11, 23)
JOB_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the package's sources (no stale build/ of the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "actrec_batch", src / "actrec_batch", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    dist = tmp_path_factory.mktemp("dist")
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(src),
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
    ]
    out = subprocess.run([*build, "-w", str(dist)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    [whl] = dist.glob("actrec_batch-*-py3-none-any.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel) -> Path:
    """A fresh venv outside the repository with actrec-batch installed from the wheel only."""
    home = Path(tempfile.mkdtemp(prefix="whl-", dir="/tmp"))  # short: Ray's socket paths must fit
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    install = [str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check"]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True, timeout=300)
    # Now (not before the install: pip would see this environment's editable actrec-batch) lend the
    # venv this environment's third-party packages.
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    lent = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_lent_deps.pth").write_text("".join(f"{p}\n" for p in lent))
    (venv / "bin" / "ray").write_text(
        f"#!{py}\nimport sys\nfrom ray.scripts.scripts import main\nsys.exit(main())\n"
    )
    (venv / "bin" / "ray").chmod(0o755)
    yield venv
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A working folder outside the checkout."""
    cwd = tmp_path_factory.mktemp("outside")
    assert ROOT not in cwd.parents
    return cwd


def _env(venv: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACTREC_", "PYTHON", "RAY_ADDRESS"))}
    env.pop("VIRTUAL_ENV", None)
    return {**env, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv), **extra}


def _run(venv: Path, cwd: Path, args: list[str], **extra: str) -> subprocess.CompletedProcess:
    out = subprocess.run(args, cwd=cwd, env=_env(venv, **extra), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{args}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_the_wheel_carries_the_reports_the_migrations_the_models_and_the_ray_entrypoint(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    reports = {Path(n).name for n in names if n.startswith("actrec_batch/sql/") and n.endswith(".sql")}
    assert reports == {p.name for p in (ROOT / "sql").glob("*.sql")} and reports
    for needed in (
        "actrec_batch/warehouse/migrations/env.py",
        "actrec_batch/warehouse/migrations/script.py.mako",
        "actrec_batch/warehouse/migrations/versions/0001_initial.py",
        "actrec_batch/model/weights/reference-v3/card.json",
        "actrec_batch/model/weights/reference-v3/extractor.safetensors",
        "actrec_batch/model/weights/reference-v3/head.safetensors",
        "actrec_batch/ray_job.py",
        "actrec_batch/pipeline/ray_rest.py",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "ray_jobs/", "dags/")) for n in names)


def test_actrec_report_runs_from_the_installed_package(venv, outside):
    where = _run(venv, outside, ["python", "-c", "import actrec_batch; print(actrec_batch.__file__)"])
    installed = Path(where.stdout.strip().splitlines()[-1])
    assert venv in installed.parents and ROOT not in installed.parents, installed

    listed = _run(venv, outside, ["actrec", "report"]).stdout
    for report in (ROOT / "sql").glob("*.sql"):
        assert report.stem in listed, listed
    url = f"duckdb:///{outside / 'wh.duckdb'}"
    _run(venv, outside, ["actrec", "warehouse", "upgrade"], ACTREC_WAREHOUSE_URL=url)
    ran = _run(
        venv,
        outside,
        [
            "actrec",
            "report",
            "reconciliation",
            "--param",
            "from_date=2026-11-01",
            "--param",
            "to_date=2026-11-30",
        ],
        ACTREC_WAREHOUSE_URL=url,
    )
    assert "Traceback" not in ran.stderr


_SUBMIT = """
import importlib.util, json, sys

class NotInstalled:  # an [airflow] image: torch, av and Ray are not there
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "av", "ray"):
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the [airflow] role)")
        return None

sys.meta_path.insert(0, NotInstalled())
import airflow.sdk
for path in {dags!r}:
    spec = importlib.util.spec_from_file_location("dag_" + path.rsplit("/", 1)[-1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))

import actrec_batch
from actrec_batch.orchestration.ray_operator import RayInferOperator

op = RayInferOperator(task_id="infer", date={date!r}, run_id="wheel-run", poll_s=1.0)
out = op.execute(context={{}})
print(json.dumps({{"out": out, "file": actrec_batch.__file__}}))
"""


def test_the_infer_task_submits_a_ray_job_that_runs_the_installed_package(
    venv, outside, tmp_path, monkeypatch
):
    store_root = tmp_path / "store"
    store = discovered_night(str(store_root), DATE, cameras=1, minutes=0.3, seed=2323)

    temp = tempfile.mkdtemp(prefix="rw-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = _env(venv, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", **auth)
    log = Path(temp) / "ray-start.log"
    saved = ray_head.RAY
    ray_head.RAY = str(venv / "bin" / "ray")  # the head (and so every job) runs the venv's Python
    # ... from outside the checkout: a job's `python -m` puts its working folder (the head's) on sys.path
    monkeypatch.chdir(outside)
    try:
        with own_ray_head(dashboard_head_args(port, temp), env=env, log=log) as head:
            wait_for_dashboard(head, address, log)
            code = _SUBMIT.format(
                dags=[str(p) for p in sorted((ROOT / "dags").glob("actrec_*.py"))], date=DATE.isoformat()
            )
            extra = {
                "ACTREC_RAY_ADDRESS": address,
                "ACTREC_STORE": str(store_root),
                "AIRFLOW_HOME": str(tmp_path / "af"),
            }
            t0 = time.perf_counter()
            done = _run(venv, outside, ["python", "-c", code], **extra, **auth)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"infer through the installed package's operator: {time.perf_counter() - t0:.1f} s")

            out = result["out"]
            assert venv in Path(result["file"]).parents
            assert out["run_id"] == "wheel-run" and out["videos_processed"] == 1 and out["units_total"] > 0
            assert out["ray_job_id"] == "actrec-wheel-run-try1"
            assert store.exists(out["staging_uri"][len(store.root_uri) + 1 :])  # the infer record's output

            client = JobsApiClient(address, env=auth)  # this process as a client of the same head
            job = client.get_job_info(out["ray_job_id"]).raw
            assert job["status"] == "SUCCEEDED"
            assert job["entrypoint"].startswith("python -m actrec_batch.ray_job --date")
            assert "working_dir" not in (job.get("runtime_env") or {}), job.get("runtime_env")
            sid = client.submit_job(
                entrypoint="python -c 'import actrec_batch; print(actrec_batch.__file__)'"
            )
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while not client.get_job_status(sid).is_terminal():
                assert time.monotonic() < deadline
                time.sleep(0.5)
            where = client.get_job_logs(sid).strip().splitlines()[-1]
            assert venv in Path(where).parents, where  # a job runs the wheel, not the checkout
    finally:
        ray_head.RAY = saved
        shutil.rmtree(temp, ignore_errors=True)
