"""The demo's Airflow: a local Airflow 3.3 (scheduler, DAG processor and API server on 127.0.0.1,
LocalExecutor, a SQLite metadata DB under ``.actrec/airflow``) that runs the nightly DAG over one
footage date as a backfill, the way an operator runs a past day.

Why not ``dag.test()``: it gives the run its logical date as start date (apache/airflow#66127), so
the UI shows a run of a night two weeks back as lasting two weeks; and it runs the tasks in its own
process, so no task log lands where the UI reads it. Here the scheduler starts the run (its true
start and end), and the task runner writes each task's log to
``$AIRFLOW_HOME/logs/dag_id=.../run_id=.../task_id=.../attempt=N.log``, which `make airflow`
(scripts/airflow_ui.sh, the same ``AIRFLOW_HOME``) shows.

Cron runs are off while the demo's scheduler runs (``[scheduler] use_job_schedule = False``):
unpausing the DAG would otherwise also start the run of the latest interval, over a day with no
footage. The DAG is paused again afterwards, so `make airflow` starts nothing of its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from actrec_batch.config import Settings
from actrec_batch.errors import ActrecError

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
DAG_ID = "actrec_nightly"
LOGIN = ("admin", "admin")  # the local development login of scripts/airflow_ui.sh
PROCESSES = ("scheduler", "dag-processor", "api-server")
UI_PORT = int(os.environ.get("ACTREC_AIRFLOW_PORT", "8080"))  # `make airflow`'s port
_UNITS_LINE = re.compile(r"infer \d{4}-\d\d-\d\d: \d+/\d+ units[^\[]*")


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def airflow_env(settings: Settings, home: Path) -> dict[str, str]:
    """The environment of an Airflow on the embedded defaults: SQLite metadata DB under ``home``,
    this repo's ``dags/``, and the actrec settings passed through as ``ACTREC_*``."""
    store = settings.store if "://" in settings.store else str(Path(settings.store).resolve())
    warehouse = settings.warehouse_url
    if warehouse.startswith("duckdb:///") and not warehouse.startswith("duckdb:////"):
        warehouse = "duckdb:///" + str(Path(warehouse[len("duckdb:///") :]).resolve())
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "ACTREC_STORE": store,
        "ACTREC_WAREHOUSE_URL": warehouse,
        "ACTREC_SEGMENT_S": str(settings.segment_s),
        "ACTREC_LOCAL_RAY_CPUS": str(settings.local_ray_cpus),
    }


def prepare_airflow(env: dict[str, str]) -> float:
    """Migrate the metadata DB and create the inference pool (both idempotent); return seconds."""
    t0 = time.perf_counter()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    for cmd in (["db", "migrate"], ["pools", "set", "actrec_inference", "1", "actrec inference capacity"]):
        proc = subprocess.run([airflow_bin(), *cmd], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.split()[-40:])
            raise ActrecError(
                f"airflow {' '.join(cmd)} failed in {env['AIRFLOW_HOME']}: {tail}", reason="airflow_error"
            )
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_quietly(proc: subprocess.Popen, seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=max(0.1, seconds))


def run_url(run_id: str, port: int = UI_PORT) -> str:
    """The run's page in `make airflow`'s UI."""
    return f"http://127.0.0.1:{port}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"


class LocalAirflow:
    """Scheduler, DAG processor and API server over ``env`` (:func:`airflow_env`), each in its own
    process group and logging to ``$AIRFLOW_HOME/<name>.log``, on free loopback ports; as a context
    manager, started and healthy on entry, logged in (``LOGIN``) and stopped on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        import requests

        self.home = Path(env["AIRFLOW_HOME"])
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({LOGIN[0]: LOGIN[1]}))
        secret = secrets.token_urlsafe(24)  # the API server and the task runners must agree on it
        self.env = {
            **env,
            "PATH": f"{Path(airflow_bin()).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API__SECRET_KEY": secret,
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{LOGIN[0]}:admin",  # user:role
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: never through a proxy from the environment

    def __enter__(self) -> LocalAirflow:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, timeout: float = 300) -> None:
        for name in PROCESSES:
            args = [airflow_bin(), name, *(["--skip-serve-logs"] if name == "scheduler" else [])]
            with open(self.home / f"{name}.log", "ab") as log:
                self.procs[name] = subprocess.Popen(
                    args,
                    env=self.env,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        parts = ("metadatabase", "scheduler", "dag_processor")
        self.until(
            lambda: all((self._health().get(p) or {}).get("status") == "healthy" for p in parts),
            timeout,
            "healthy (metadata DB, scheduler, DAG processor)",
        )
        resp = self.http.post(
            f"{self.base_url}/auth/token", json={"username": LOGIN[0], "password": LOGIN[1]}, timeout=60
        )
        if resp.status_code >= 400:
            raise self.error(
                f"login at {self.base_url}/auth/token: HTTP {resp.status_code} {resp.text[:300]}"
            )
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def stop(self, grace: float = 30) -> None:
        """SIGTERM each process; after ``grace`` s, SIGKILL whatever is left of its process group
        (LocalExecutor workers, a task's local Ray)."""
        for proc in [p for p in self.procs.values() if p.poll() is None]:
            proc.terminate()
        end = time.monotonic() + grace
        for proc in self.procs.values():
            _wait_quietly(proc, end - time.monotonic())
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            _wait_quietly(proc, 10)
        self.procs.clear()
        self.http.close()

    def _health(self) -> dict[str, Any]:
        import requests

        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise self.error(f"airflow {name} exited with code {proc.returncode}")
        try:
            return self.http.get(f"{self.base_url}/api/v2/monitor/health", timeout=10).json()
        except (requests.RequestException, ValueError):
            return {}

    def until(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise self.error(f"not {what} after {timeout:.0f} s")
            time.sleep(1)

    def error(self, message: str) -> ActrecError:
        logs = ", ".join(str(self.home / f"{name}.log") for name in PROCESSES)
        return ActrecError(
            f"local Airflow in {self.home}: {message}; its logs: {logs}", reason="airflow_error"
        )

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """``/api/v2{path}`` as JSON; an HTTP error raises ``airflow_error`` with its body."""
        resp = self.http.request(method, f"{self.base_url}/api/v2{path}", timeout=60, **kwargs)
        if resp.status_code >= 400:
            raise self.error(f"{method} /api/v2{path}: HTTP {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    def wait_dag(self, dag_id: str, timeout: float = 300) -> None:
        """Until the DAG processor has parsed ``dag_id``; an import error raises at once."""

        def parsed() -> bool:
            self._health()  # a process that died raises
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise self.error("; ".join(f"{e['filename']}: {e['stack_trace'][-500:]}" for e in errors))
            return self.http.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=60).status_code == 200

        self.until(parsed, timeout, f"done parsing DAG {dag_id} from {DAGS}")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def task_log(self, run_id: str, ti: dict[str, Any]) -> Path:
        """Where the task runner writes ``ti``'s log (Airflow's default ``log_filename_template``)."""
        run = f"dag_id={ti['dag_id']}/run_id={run_id}/task_id={ti['task_id']}"
        return self.home / "logs" / run / f"attempt={max(ti['try_number'], 1)}.log"


def backfill_date(af: LocalAirflow, date: dt.date) -> tuple[int, str]:
    """Backfill the nightly DAG over footage ``date`` (the run of the data interval that starts on
    ``date``; an earlier demo's run of it runs again); return the backfill's id and the run's id.
    An unfinished backfill of an interrupted demo is cancelled first (Airflow allows one per DAG)."""
    for old in af.api("GET", "/backfills", params={"dag_id": DAG_ID, "limit": 100})["backfills"]:
        if old["completed_at"] is None:
            af.api("PUT", f"/backfills/{old['id']}/cancel")
    window = {"from_date": f"{date}T00:00:00Z", "to_date": f"{date}T23:59:59Z"}
    body = {"dag_id": DAG_ID, **window, "max_active_runs": 1, "reprocess_behavior": "completed"}
    body.update(run_backwards=False, run_on_latest_version=True, dag_run_conf=None)
    backfill = af.api("POST", "/backfills", json=body)
    runs = af.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill", "limit": 100})
    found = [r["dag_run_id"] for r in runs["dag_runs"] if r["logical_date"][:10] == str(date)]
    if not found:
        raise af.error(f"the backfill of {date} created no run of {DAG_ID}")
    return backfill["id"], found[0]


def follow_run(af: LocalAirflow, run_id: str, timeout: float = 3 * 3600) -> dict[str, Any]:
    """Print a line per task as it starts and ends and the infer task's progress lines (from its
    log) until the run ends; return the run. A failed task try fails the run at once, with its log."""
    started: set[str] = set()
    done: set[str] = set()
    seen_lines: dict[Path, int] = {}
    deadline = time.monotonic() + timeout
    path = f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
    while time.monotonic() < deadline:
        run = af.api("GET", path)
        for ti in af.api("GET", f"{path}/taskInstances", params={"limit": 100})["task_instances"]:
            task, state = ti["task_id"], ti["state"]
            if state in ("running", "success") and task not in started:
                started.add(task)
                print(f"      task {task:<18} running", flush=True)
            if state in ("running", "success"):
                _print_progress(af.task_log(run_id, ti), seen_lines)
            if state == "success" and task not in done:
                done.add(task)
                print(f"      task {task:<18} done in {ti['duration'] or 0:.1f} s", flush=True)
            if state in ("failed", "up_for_retry", "upstream_failed"):
                with contextlib.suppress(ActrecError, OSError):
                    af.api("PATCH", path, json={"state": "failed"})
                log = af.task_log(run_id, ti)
                tail = "\n".join(_log_events(log)[-15:])
                raise ActrecError(
                    f"the nightly DAG run {run_id}: task {task} {state}; its log: {log}\n{tail}",
                    reason="dag_failed",
                )
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(1)
    raise af.error(f"run {run_id} of {DAG_ID} not finished after {timeout:.0f} s")


def _log_events(log: Path) -> list[str]:
    """The messages of a task log (JSON lines, one record each)."""
    out = []
    text = log.read_text(errors="replace") if log.is_file() else ""
    for line in text.splitlines():
        try:
            out.append(str(json.loads(line).get("event", "")))
        except (ValueError, AttributeError):
            out.append(line)
    return out


def _print_progress(log: Path, seen_lines: dict[Path, int]) -> None:
    events = _log_events(log)
    for event in events[seen_lines.get(log, 0) :]:
        if m := _UNITS_LINE.search(event):
            print(f"        {m.group(0).strip()}", flush=True)
    seen_lines[log] = len(events)


def run_backfill(env: dict[str, str], date: dt.date) -> dict[str, Any]:
    """Start the demo's Airflow, run the nightly DAG over ``date`` as a backfill and stop it again;
    return the run (``dag_run_id``, ``state``, ``start_date``, ``end_date``, ...)."""
    t0 = time.perf_counter()
    with LocalAirflow(env) as af:
        af.wait_dag(DAG_ID)
        print(
            f"      scheduler, DAG processor and API server up in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        af.set_paused(DAG_ID, False)
        try:
            backfill_id, run_id = backfill_date(af, date)
            run = follow_run(af, run_id)
            # The scheduler marks a finished backfill complete every 30 s; until then the UI shows
            # "Backfill in progress" and Airflow refuses the next backfill of the DAG.
            with contextlib.suppress(ActrecError):
                af.until(
                    lambda: af.api("GET", f"/backfills/{backfill_id}")["completed_at"] is not None,
                    90,
                    f"done with backfill {backfill_id}",
                )
        finally:
            with contextlib.suppress(ActrecError, OSError):  # requests' errors are OSErrors
                af.set_paused(DAG_ID, True)
    if run["state"] != "success":
        raise ActrecError(
            f"the nightly DAG run {run['dag_run_id']} for {date}: {run['state']}", reason="dag_failed"
        )
    return run
