"""Failure paths inside a real Airflow 3.3 scheduler (tests/airflow_server.py), driven by REST as
the UI drives them:

- a task whose first try fails is retried by the scheduler, and the run succeeds on the retry;
- marking a running infer task failed (the UI's "Mark as failed") makes Airflow SIGTERM the task,
  and the Ray operator's ``on_kill`` stops the Ray job it started on a real Ray head;
- the same kill of an infer task that runs on a local Ray in the worker leaves no process behind:
  neither the task's process nor its Ray.
"""

from __future__ import annotations

import contextlib
import time

import psutil
import pytest
from airflow_server import AirflowServer
from handshake import HANG_S
from ray.job_submission import JobSubmissionClient
from test_ray_jobs_api import DATE, _wait_for_log, client_token_auth, night, ray_head  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DAGS = '''
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from actrec_batch.orchestration.ray_operator import RayInferOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("harness_retry", schedule=None, start_date=START, catchup=False):

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def flaky(ti=None):
        """Fails its first try (a lost worker, a flaky store), succeeds on the next."""
        with (Path(os.environ["HARNESS_OUT"]) / "flaky.txt").open("a") as f:
            f.write(f"try {{ti.try_number}}\\n")
        if ti.try_number == 1:
            raise RuntimeError("the first try fails on purpose")
        return ti.try_number

    flaky()

with DAG("harness_kill", schedule=None, start_date=START, catchup=False):
    RayInferOperator(
        task_id="infer",
        date="{date}",
        run_id="af-killed",
        force=True,
        ray_address="{ray_head}",
        poll_s=1.0,
        retries=0,
    )

with DAG("harness_kill_local", schedule=None, start_date=START, catchup=False):
    RayInferOperator(task_id="infer", date="{date}", run_id="af-killed-local", force=True, retries=0)
'''


@pytest.fixture(scope="module")
def airflow(pg_url, ray_head, night, tmp_path_factory):  # noqa: F811 - fixtures imported above
    """A real Airflow whose workers infer on ``ray_head`` with every decode slowed to 120 s (so a
    job is certainly in the middle when it is killed)."""
    base = tmp_path_factory.mktemp("af-kill-retry")
    dags, out = base / "dags", base / "out"
    dags.mkdir()
    out.mkdir()
    (dags / "harness_kill_retry.py").write_text(DAGS.format(date=DATE.isoformat(), ray_head=ray_head))
    env = {
        "HARNESS_OUT": str(out),
        "ACTREC_STORE": str(night),
        "ACTREC_FAULT_SLOW": "120",
        "ACTREC_LOCAL_RAY_CPUS": "1",
        "RAY_AUTH_MODE": "token",
    }
    with AirflowServer(pg_url, dags, env=env, home=base / "airflow") as af:
        for dag_id in ("harness_retry", "harness_kill", "harness_kill_local"):
            af.wait_dag(dag_id)
            af.unpause(dag_id)
        yield af, out


def _trigger(af: AirflowServer, dag_id: str) -> str:
    return af.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})["dag_run_id"]


def _mark_failed(af: AirflowServer, dag_id: str, run_id: str, task_id: str = "infer") -> None:
    """The UI's "Mark as failed" on a running task instance."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    af.api("PATCH", path, json={"new_state": "failed"})


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _local_ray_of_the_task(af: AirflowServer) -> list[psutil.Process]:
    """The Ray processes under the scheduler (a LocalExecutor task's local Ray: GCS, raylet,
    workers and the rest), with the task process that started them (the GCS server's parent)."""
    found = []
    for proc in psutil.Process(af.procs["scheduler"].pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            cmdline = " ".join(proc.cmdline())
            if "ray" in proc.name() or "/ray/" in cmdline or cmdline.startswith("ray::"):
                found.append(proc)
                if "gcs_server" in cmdline:
                    found.append(proc.parent())
    return found


def test_a_task_whose_first_try_fails_is_retried_by_the_scheduler(airflow):
    af, out = airflow
    run_id = _trigger(af, "harness_retry")
    run = af.wait_run("harness_retry", run_id, timeout=600)
    assert run["state"] == "success", af.task_logs("harness_retry", run_id, states=("failed",))
    [ti] = af.task_instances("harness_retry", run_id)
    assert (ti["task_id"], ti["state"], ti["try_number"]) == ("flaky", "success", 2)
    assert (out / "flaky.txt").read_text() == "try 1\ntry 2\n"  # two tries, the first one failed
    logs = af.task_logs("harness_retry", run_id, states=("success",))
    assert "the first try fails on purpose" in logs, logs


def test_marking_the_infer_task_failed_stops_its_ray_job(airflow, ray_head):  # noqa: F811
    af, _ = airflow
    run_id = _trigger(af, "harness_kill")
    sid = "actrec-af-killed-try1"
    client = JobSubmissionClient(ray_head)

    def running() -> bool:
        return af.api("GET", f"/dags/harness_kill/dagRuns/{run_id}")["state"] in ("queued", "running")

    # The task has submitted its job and the job is decoding: the middle of the run.
    _wait_for_log(
        client, ray_head, sid, "decode slots", running, f"run {run_id} ended before its job decoded"
    )
    _mark_failed(af, "harness_kill", run_id)
    deadline = time.monotonic() + HANG_S
    while client.get_job_status(sid) != "STOPPED":
        assert time.monotonic() < deadline, (
            f"{sid} is {client.get_job_status(sid)} {HANG_S:g} s after the kill"
        )
        time.sleep(1)
    run = af.wait_run("harness_kill", run_id, timeout=HANG_S)
    assert run["state"] == "failed"
    [ti] = af.task_instances("harness_kill", run_id)
    assert (ti["state"], ti["try_number"]) == ("failed", 1)
    logs = af.task_logs("harness_kill", run_id, states=("failed",))
    assert f"ray job {sid} on {ray_head}: stopped" in logs, logs  # on_kill stopped it, nothing else
    assert not [j for j in client.list_jobs() if j.status == "RUNNING"]  # no job of the task left running


def test_marking_a_local_infer_task_failed_leaves_no_process_behind(airflow):
    af, _ = airflow
    run_id = _trigger(af, "harness_kill_local")
    deadline = time.monotonic() + HANG_S * 2
    while "decode slots" not in af.task_logs("harness_kill_local", run_id, states=("running",)):
        state = af.api("GET", f"/dags/harness_kill_local/dagRuns/{run_id}")["state"]
        assert state in ("queued", "running"), af.task_logs("harness_kill_local", run_id)
        assert time.monotonic() < deadline, "the local infer task never started decoding"
        time.sleep(1)
    procs = _local_ray_of_the_task(af)
    names = sorted({p.name() for p in procs if _alive(p)})
    assert any("raylet" in n for n in names) and any("gcs_server" in n for n in names), names
    _mark_failed(af, "harness_kill_local", run_id)
    deadline = time.monotonic() + HANG_S
    while left := [p for p in procs if _alive(p)]:
        assert time.monotonic() < deadline, f"still running {HANG_S:g} s after the kill: {left}"
        time.sleep(1)
    run = af.wait_run("harness_kill_local", run_id, timeout=HANG_S)
    assert run["state"] == "failed"
