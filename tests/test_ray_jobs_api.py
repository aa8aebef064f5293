"""The infer task's Ray Jobs API path on a real Ray head (``ray start --head``, dashboard on
127.0.0.1, token authentication): submit and stream, idempotent resubmission, stop on kill, a failed
job, an unreachable address, and the Airflow operator's ``execute`` without an Airflow database.

The head runs as ``ray start --head --block`` and is stopped by signalling that process, which takes
down exactly its own Ray processes (``ray stop`` would stop every Ray on the machine).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from ray.job_submission import JobSubmissionClient
from ray_head import dashboard_head_args, driver_auth_mode, free_port, own_ray_head, wait_for_dashboard

from actrec_batch.config import load_settings
from actrec_batch.discovery import discover
from actrec_batch.errors import ActrecError, ConfigError
from actrec_batch.pipeline.ray_jobs_api import (
    STOP_WAIT_S,
    infer_entrypoint,
    job_env,
    stop_job,
    submit_infer_job,
)
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage

DATE = dt.date(2026, 11, 21)
JOB_TIMEOUT_S = 120.0
KILL_HANG_S = 4 * STOP_WAIT_S  # how long a kill may take before the test calls it a hang
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def client_token_auth():
    """This process as a token-authenticated Jobs API client: RAY_AUTH_MODE=token, as an Airflow
    worker would have it in its environment (Ray's cached mode and token refreshed on the way in and
    out: :func:`ray_head.driver_auth_mode`)."""
    if not (os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").is_file()):
        subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], check=True, capture_output=True)
    with driver_auth_mode("token"):
        yield


@pytest.fixture(scope="module")
def ray_head(client_token_auth):
    """The Jobs API address of a fresh 2-CPU Ray head on 127.0.0.1, with token authentication."""
    temp = tempfile.mkdtemp(prefix="rj-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    args = dashboard_head_args(port, temp)
    address = f"http://127.0.0.1:{port}"
    log = Path(temp) / "ray-start.log"
    with own_ray_head(args, env=env, log=log) as head:
        wait_for_dashboard(head, address, log)
        JobSubmissionClient(address)  # the Jobs API answers this process, token-authenticated
        yield address
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    """A store with one tiny synthetic camera-night, discovered (its manifest written)."""
    root = tmp_path_factory.mktemp("rayjobs") / "store"
    store = open_store(str(root))
    synth_footage(store, date=DATE, cameras=1, minutes=0.3, seed=2121, progress=False)
    discover(load_settings({"store": str(root)}, env={}), DATE, store=store)
    return root


def _jobs(address: str, submission_id: str) -> list:
    return [j for j in JobSubmissionClient(address).list_jobs() if j.submission_id == submission_id]


def _wait_for_log(client, address: str, sid: str, text: str, alive, about: object = None) -> None:
    """Until the job's log has ``text`` (its Ray work has started: "in the middle of the run")."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while text not in (client.get_job_logs(sid) if _jobs(address, sid) else ""):
        assert alive(), about
        assert time.monotonic() < deadline, f"job {sid} did not log {text!r} in {JOB_TIMEOUT_S:g} s"
        time.sleep(0.5)
    assert client.get_job_status(sid) == "RUNNING"


def test_entrypoint_and_env_for_the_job():
    cmd = infer_entrypoint(date=DATE, run_id="r 1", model="m@1", cameras=("cam-a", "cam-b"), force=True)
    assert cmd == (
        "python -m actrec_batch.ray_job --date 2026-11-21 --run-id 'r 1' --model m@1 "
        "--camera cam-a --camera cam-b --force --json"
    )
    env = job_env(
        {
            "ACTREC_STORE": "s3://b/p",
            "ACTREC_RAY_ADDRESS": "http://h:8265",
            "AWS_ENDPOINT_URL": "http://s3:9000",
        }
        | {"AWS_SECRET_ACCESS_KEY": "x", "HOME": "/root", "RAY_ADDRESS": "auto"}
    )
    assert env == {"ACTREC_STORE": "s3://b/p", "AWS_ENDPOINT_URL": "http://s3:9000"}  # no secret (job_env)


def test_an_unreachable_address_is_a_config_error_naming_the_setting():
    address = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError) as err:
        submit_infer_job(address, date=DATE, run_id="r", model="m", on_log=lambda _: None)
    message = str(err.value)
    assert "ray_address (--ray-address / ACTREC_RAY_ADDRESS)" in message and "Fix:" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="http"):
        stop_job("ray://127.0.0.1:10001", "x")


def test_a_connections_token_replaces_rays_own_and_a_wrong_one_is_refused(ray_head, monkeypatch):
    """Headers given to the client (a Ray connection's password) are the token it presents, even
    where Ray's own settings give none; a wrong one is a one-line ConfigError naming the fix."""
    from actrec_batch.orchestration.connections import RayTarget
    from actrec_batch.pipeline.ray_jobs_api import _client

    token = os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").read_text().strip()
    monkeypatch.delenv("RAY_AUTH_MODE")  # read per call by the HTTP client: no token from Ray's settings
    with pytest.raises(ConfigError, match="refused this client's token"):
        _client(ray_head)
    assert stop_job(ray_head, "actrec-no-such-job", RayTarget(ray_head, "ray", token).headers()) is False
    with pytest.raises(ConfigError) as err:
        _client(ray_head, headers=RayTarget(ray_head, "ray", "wrong-token").headers())
    assert "Ray connection's password (ACTREC_RAY_CONN_ID)" in str(err.value) and "\n" not in str(err.value)
    assert "wrong-token" not in str(err.value) and token not in repr(RayTarget(ray_head, "ray", token))


def test_submit_streams_the_log_and_returns_the_summary_then_a_rerun_resubmits_nothing(ray_head, night):
    lines: list[str] = []
    secret = "not-for-the-log-0d9f"
    env = {"ACTREC_STORE": str(night), "AWS_SECRET_ACCESS_KEY": secret}
    t0 = time.perf_counter()
    job = submit_infer_job(
        ray_head,
        date=DATE,
        run_id="rj-first",
        model="reference@2",
        env=env,
        submission_id="actrec-rj-first-try1",
        on_log=lines.append,
        poll_s=1.0,
        timeout_s=JOB_TIMEOUT_S,
    )
    first_s = time.perf_counter() - t0
    assert job.status == "SUCCEEDED" and job.job_id == "actrec-rj-first-try1" and job.address == ray_head
    assert job.summary["run_id"] == "rj-first" and job.summary["units_total"] > 0
    assert job.summary["videos_processed"] == 1
    assert any(f"infer {DATE}" in ln for ln in lines), lines[-30:]  # the job's progress line, streamed
    assert any("AWS_SECRET_ACCESS_KEY" in ln for ln in lines)  # named ...
    assert not any(secret in ln for ln in lines)  # ... never shown

    total = len(JobSubmissionClient(ray_head).list_jobs())
    replay: list[str] = []
    t0 = time.perf_counter()
    again = submit_infer_job(
        ray_head,
        date=DATE,
        run_id="rj-first",
        model="reference@2",
        env=env,
        submission_id="actrec-rj-first-try1",
        on_log=replay.append,
        poll_s=1.0,
        timeout_s=JOB_TIMEOUT_S,
    )
    assert again == job
    assert len(_jobs(ray_head, "actrec-rj-first-try1")) == 1
    assert len(JobSubmissionClient(ray_head).list_jobs()) == total
    print(f"first job {first_s:.1f} s; idempotent rerun {time.perf_counter() - t0:.1f} s")


def test_a_failed_job_raises_naming_the_job_and_its_last_lines(ray_head, night):
    lines: list[str] = []
    with pytest.raises(ActrecError) as err:
        submit_infer_job(
            ray_head,
            date=DATE,
            run_id="rj-bad-model",
            model="no-such-model@9",
            env={"ACTREC_STORE": str(night)},
            submission_id="actrec-rj-bad-model-try1",
            on_log=lines.append,
            poll_s=1.0,
            timeout_s=JOB_TIMEOUT_S,
        )
    assert err.value.reason == "ray_job_failed"
    message = str(err.value)
    assert "actrec-rj-bad-model-try1" in message and ray_head in message and "\n" not in message
    assert "no-such-model" in message  # the job's own one-line error, among its last lines
    assert JobSubmissionClient(ray_head).get_job_status("actrec-rj-bad-model-try1") == "FAILED"


def test_on_kill_stops_the_ray_job(ray_head, night, monkeypatch):
    from actrec_batch.orchestration.ray_operator import RayInferOperator

    # Each decode sleeps 120 s, so the run is certainly in the middle when it is killed.
    monkeypatch.setenv("ACTREC_STORE", str(night))
    monkeypatch.setenv("ACTREC_FAULT_SLOW", "120")
    op = RayInferOperator(
        task_id="infer",
        date=DATE.isoformat(),
        run_id="rj-killed",
        force="True",  # as a template renders it; forget checkpoints and cache: decode again
        ray_address=ray_head,
        poll_s=1.0,
    )
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = op.execute(context={})
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    sid = "actrec-rj-killed-try1"
    client = JobSubmissionClient(ray_head)
    _wait_for_log(client, ray_head, sid, "decode slots", worker.is_alive, outcome)

    t0 = time.perf_counter()
    op.on_kill()
    worker.join(timeout=KILL_HANG_S)  # a hang catcher, far past the stop's own wait
    stop_s = time.perf_counter() - t0
    assert not worker.is_alive(), f"execute did not return within {KILL_HANG_S:g} s of on_kill"
    error = outcome.get("error")
    assert isinstance(error, ActrecError) and error.reason == "ray_job_stopped", outcome
    assert sid in str(error)
    assert client.get_job_status(sid) == "STOPPED"
    assert stop_job(ray_head, sid) is False  # already stopped: nothing to do
    print(f"on_kill -> STOPPED and execute raised in {stop_s:.1f} s")


SIGTERM_CHILD = """
import signal, sys
from actrec_batch.orchestration.ray_operator import RayInferOperator

op = RayInferOperator(task_id="infer", date=sys.argv[1], run_id="rj-sigterm", force=True,
                      ray_address=sys.argv[2], poll_s=1.0)
# What Airflow 3.3's task runner installs around execute (task_runner.py, _run_task_and_map_outcome).
signal.signal(signal.SIGTERM, lambda signum, frame: op.on_kill())
try:
    op.execute(context={})
except Exception as exc:
    print("REASON", getattr(exc, "reason", type(exc).__name__), flush=True)
    sys.exit(1)
"""


def test_sigterm_during_execute_stops_the_ray_job(ray_head, night):
    """The task process gets SIGTERM (a cleared task) while execute waits on the job."""
    env = {**os.environ, "ACTREC_STORE": str(night), "ACTREC_FAULT_SLOW": "120"}
    child = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD, DATE.isoformat(), ray_head],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    sid = "actrec-rj-sigterm-try1"
    client = JobSubmissionClient(ray_head)
    try:
        _wait_for_log(client, ray_head, sid, "decode slots", lambda: child.poll() is None)
        t0 = time.perf_counter()
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=KILL_HANG_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 1 and "REASON ray_job_stopped" in out, out
    assert client.get_job_status(sid) == "STOPPED"
    print(f"SIGTERM -> STOPPED and the task process exited in {time.perf_counter() - t0:.1f} s")


def test_a_job_past_its_timeout_is_stopped(ray_head, night):
    t0 = time.monotonic()
    with pytest.raises(ActrecError) as err:
        submit_infer_job(
            ray_head,
            date=DATE,
            run_id="rj-timeout",
            model="reference@2",
            force=True,
            env={"ACTREC_STORE": str(night), "ACTREC_FAULT_SLOW": "120"},
            submission_id="actrec-rj-timeout-try1",
            on_log=lambda _: None,
            poll_s=1.0,
            timeout_s=12,
        )
    assert err.value.reason == "timeout" and "actrec-rj-timeout-try1" in str(err.value)
    assert JobSubmissionClient(ray_head).get_job_status("actrec-rj-timeout-try1") == "STOPPED"
    # Only a hang catcher: a job that was not stopped would sleep 120 s in its first decode.
    assert time.monotonic() - t0 < 120, "the timeout did not end the wait before the job's decode would have"


def test_the_operator_executes_without_airflow_and_returns_a_small_summary(ray_head, night, monkeypatch):
    from actrec_batch.orchestration.ray_operator import RayInferOperator

    monkeypatch.setenv("ACTREC_STORE", str(night))
    monkeypatch.delenv("ACTREC_FAULT_SLOW", raising=False)
    monkeypatch.setenv("ACTREC_RAY_ADDRESS", ray_head)  # the setting, as an Airflow worker has it
    op = RayInferOperator(
        task_id="infer", date=DATE.isoformat(), run_id="rj-operator", cameras="", force="False", poll_s=1.0
    )
    out = op.execute(context={})
    assert out["run_id"] == "rj-operator" and out["units_total"] > 0
    assert out["ray_job_id"] == "actrec-rj-operator-try1"
    assert all(not isinstance(v, (list, dict)) for v in out.values())  # ids and counters only
    assert JobSubmissionClient(ray_head).get_job_status("actrec-rj-operator-try1") == "SUCCEEDED"
