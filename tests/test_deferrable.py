"""The infer operator's deferrable mode and extra links inside a real Airflow 3.3 (scheduler,
dag-processor, api-server and a triggerer process; tests/airflow_server.py), on a real Ray head
with token authentication (issue [8/11], Deliver 5):

- the task submits its Ray job and defers: its state is ``deferred``, it holds no pool slot, and
  with one executor slot (parallelism 1) another DAG's task runs while the job goes on;
- the trigger streams the job's log while it runs (Airflow keeps the trigger's log beside the
  task's and shows it in the task log); it sees the job end, ``execute_complete`` writes only the
  lines the trigger had not, and the run succeeds;
- the finished task instance has its "Ray job" and "Data Docs" links;
- marking a deferred task failed stops its Ray job (the trigger's ``on_kill``).
"""

from __future__ import annotations

import time

import pytest
from airflow.sdk.exceptions import TaskDeferred
from airflow_server import AirflowServer
from handshake import HANG_S
from ray.job_submission import JobSubmissionClient
from test_ray_jobs_api import DATE, client_token_auth, night, ray_head  # noqa: F401 - fixtures

from actrec_batch.layout import run_report_prefix
from actrec_batch.pipeline.outputs import data_docs_prefix
from actrec_batch.storage import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DAGS = """
import pendulum
from airflow.sdk import DAG, task

from actrec_batch.orchestration.ray_operator import RayInferOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")

# The first holds a slot of the actrec_inference pool; the second is killed while deferred.
for dag_id, run_id, pool in (
    ("harness_deferred", "af-deferred", "actrec_inference"),
    ("harness_deferred_kill", "af-deferred-kill", "default_pool"),
):
    with DAG(dag_id, schedule=None, start_date=START, catchup=False):
        RayInferOperator(
            task_id="infer",
            date="{date}",
            run_id=run_id,
            force=True,
            ray_address="{ray_head}",
            poll_s=1.0,
            retries=0,
            deferrable=True,
            pool=pool,
        )

with DAG("harness_other", schedule=None, start_date=START, catchup=False):

    @task
    def other():
        return "ran"

    other()
"""
SID = "actrec-af-deferred-try1"


def _wait(what: str, check, timeout: float = HANG_S * 4):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} not seen in {timeout:g} s"
        time.sleep(1)
    return value


def test_the_trigger_fires_on_a_failed_job_and_execute_complete_raises(ray_head, night, monkeypatch):  # noqa: F811
    """The trigger and ``execute_complete`` without Airflow: a job that fails (an unknown model)."""
    import asyncio

    from actrec_batch.errors import ActrecError
    from actrec_batch.orchestration.ray_operator import RayInferOperator
    from actrec_batch.orchestration.triggers import RayJobTrigger

    monkeypatch.setenv("ACTREC_STORE", str(night))
    monkeypatch.delenv("ACTREC_FAULT_SLOW", raising=False)
    op = RayInferOperator(
        task_id="infer",
        date=DATE.isoformat(),
        run_id="df-bad",
        model="no-such-model@9",
        ray_address=ray_head,
        deferrable=True,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context={})
    trigger = deferred.value.trigger
    assert isinstance(trigger, RayJobTrigger) and deferred.value.method_name == "execute_complete"
    path, kwargs = trigger.serialize()
    again = RayJobTrigger(**kwargs)  # what the triggerer rebuilds from the database
    assert (
        path == "actrec_batch.orchestration.triggers.RayJobTrigger"
        and again.submission_id == "actrec-df-bad-try1"
    )

    async def first_event():
        async for event in again.run():
            return event

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=HANG_S * 4))
    assert event.payload["status"] == "FAILED", event.payload
    with pytest.raises(ActrecError) as err:
        op.execute_complete(context={}, event=event.payload)
    assert err.value.reason == "ray_job_failed" and "actrec-df-bad-try1" in str(err.value)
    assert "no-such-model" in str(err.value)  # the job's own error, from its log


def test_a_deferred_infer_task_frees_its_slot_and_succeeds(pg_url, ray_head, night, tmp_path):  # noqa: F811
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "harness_deferred.py").write_text(DAGS.format(date=DATE.isoformat(), ray_head=ray_head))
    env = {
        "ACTREC_STORE": str(night),
        "ACTREC_FAULT_SLOW": "60",  # each decode sleeps 60 s: the job is certainly running meanwhile
        "RAY_AUTH_MODE": "token",
    }
    with AirflowServer(pg_url, dags, env=env, home=tmp_path / "airflow", parallelism=1) as af:
        af._spawn("triggerer")
        _wait(
            "a healthy triggerer",
            lambda: (af.api("GET", "/monitor/health")["triggerer"] or {}).get("status") == "healthy",
        )
        af.create_pool("actrec_inference", 1, "actrec inference")
        for dag_id in ("harness_deferred", "harness_deferred_kill", "harness_other"):
            af.wait_dag(dag_id)
            af.unpause(dag_id)
        run_id = af.api("POST", "/dags/harness_deferred/dagRuns", json={"logical_date": None})["dag_run_id"]

        def infer_state() -> str:
            return af.api("GET", f"/dags/harness_deferred/dagRuns/{run_id}/taskInstances/infer")["state"]

        def deferred() -> bool:
            state = infer_state()
            assert state not in ("failed", "success"), af.task_logs(
                "harness_deferred", run_id, states=(state,)
            )
            return state == "deferred"

        _wait("the infer task deferred", deferred)
        pool = af.api("GET", "/pools/actrec_inference")
        assert (pool["deferred_slots"], pool["running_slots"], pool["open_slots"]) == (1, 0, 1), pool
        # The one executor slot is free: another DAG's task runs while the job goes on.
        other = af.api("POST", "/dags/harness_other/dagRuns", json={"logical_date": None})["dag_run_id"]
        assert af.wait_run("harness_other", other, timeout=HANG_S * 4)["state"] == "success"
        assert infer_state() == "deferred", "the job ended before the other task ran: no proof of a free slot"
        # Task logs stream the job's log while it runs: the trigger's lines, which Airflow keeps
        # beside the task's log and shows in it, already have the job's progress line.
        folder = af.home / "logs" / "dag_id=harness_deferred" / f"run_id={run_id}" / "task_id=infer"

        def streamed() -> bool:
            text = "".join(p.read_text(errors="replace") for p in folder.glob("attempt=1.log.trigger.*.log"))
            return f"infer {DATE}" in text

        _wait("the job's progress line in the trigger's log while it runs", streamed)
        assert infer_state() == "deferred"

        run = af.wait_run("harness_deferred", run_id, timeout=HANG_S * 8)
        logs = af.task_logs("harness_deferred", run_id, states=("success", "failed"))
        assert run["state"] == "success", logs
        [ti] = af.task_instances("harness_deferred", run_id)
        assert (ti["state"], ti["try_number"]) == ("success", 1)
        assert "deferred to the triggerer" in logs, logs
        assert f"infer {DATE}" in logs, logs  # the job's own progress line, in the task log
        assert "log lines are in the trigger's log above" in logs, logs  # not written twice
        xcom = af.api(
            "GET", f"/dags/harness_deferred/dagRuns/{run_id}/taskInstances/infer/xcomEntries/return_value"
        )
        assert SID in str(xcom["value"]), xcom  # execute_complete's result: the infer record and the job

        links = af.api("GET", f"/dags/harness_deferred/dagRuns/{run_id}/taskInstances/infer/links")
        store = open_store(str(night))
        pages = store.uri(run_report_prefix(DATE, "af-deferred"))
        assert links["extra_links"] == {
            "Ray job": f"{ray_head}/#/jobs/{SID}",
            "Data Docs": store.uri(data_docs_prefix(DATE, "af-deferred") + "index.html"),
            "Cost report": pages + "cost.html",
            "Quality report": pages + "quality.html",
        }, links

        # Marking a deferred task failed (the UI's "Mark as failed") stops its Ray job: the trigger's on_kill.
        kill_run = af.api("POST", "/dags/harness_deferred_kill/dagRuns", json={"logical_date": None})[
            "dag_run_id"
        ]
        path = f"/dags/harness_deferred_kill/dagRuns/{kill_run}/taskInstances/infer"
        _wait("the second infer task deferred", lambda: af.api("GET", path)["state"] == "deferred")
        # Once the triggerer runs its trigger (a trigger deleted before it ever ran has no on_kill).
        kill_logs = af.home / "logs" / "dag_id=harness_deferred_kill" / f"run_id={kill_run}" / "task_id=infer"

        def following() -> bool:
            text = "".join(
                p.read_text(errors="replace") for p in kill_logs.glob("attempt=1.log.trigger.*.log")
            )
            return "following its log" in text

        _wait("the second task's trigger running", following)
        af.api("PATCH", path, json={"new_state": "failed"})
        client = JobSubmissionClient(ray_head)
        _wait(
            "the deferred task's job stopped",
            lambda: client.get_job_status("actrec-af-deferred-kill-try1") == "STOPPED",
        )
