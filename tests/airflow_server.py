"""A real Airflow 3.3 for tests: `airflow db migrate`, then scheduler, dag-processor and api-server,
each its own process, with LocalExecutor and the metadata DB on the test PostgreSQL.

Everything binds to 127.0.0.1 on free ports. Each harness gets its own metadata database (dropped
on stop), so reruns start clean. The REST helpers make the same calls as the UI (``/api/v2``, the
simple auth manager with ``ALL_ADMINS``, so no login)::

    with AirflowServer(pg_url, dags_folder=..., env={"ACTREC_STORE": ...}) as af:
        af.wait_dag("my_dag")
        af.unpause("my_dag")
        af.backfill("my_dag", "2026-11-01", "2026-11-03")
        runs = af.wait_runs("my_dag", "backfill", 3, timeout=600)

Each process logs to ``$AIRFLOW_HOME/<name>.log``; a failed wait raises ``AirflowHarnessError``
with the tails of those logs and of the failed tasks' logs in its message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
PROCESSES = ("scheduler", "dag-processor", "api-server")
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
DB_PREFIX = "actrec_airflow_"


class AirflowHarnessError(RuntimeError):
    """Airflow did not start, or a run did not get where a wait expected it within its timeout."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _day(value: str | dt.date | dt.datetime, *, end: bool) -> str:
    """ISO-8601 UTC instant: a date becomes its first (``end=False``) or last second."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value) if len(value) == 10 else dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(23, 59, 59) if end else dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _format_task_log_line(line: str) -> str:
    """Airflow 3 task logs are JSON lines; keep them readable in a failure message."""
    try:
        rec = json.loads(line)
    except ValueError:
        return line
    if not isinstance(rec, dict):
        return line
    out = f"{rec.get('timestamp', '')} {rec.get('level', '')} {rec.get('logger', '')}: {rec.get('event', '')}"
    for detail in rec.get("error_detail") or ():
        out += f"\n    {detail.get('exc_type')}: {detail.get('exc_value')}"
        for frame in (detail.get("frames") or ())[-6:]:
            out += f"\n      {frame.get('filename')}:{frame.get('lineno')} in {frame.get('name')}"
    return out


class AirflowServer:
    """A scheduler + dag-processor + api-server with LocalExecutor, started by `start()` (or `with`).

    ``pg_url`` is a SQLAlchemy URL of a PostgreSQL role with CREATEDB; ``dags_folder`` becomes
    ``AIRFLOW__CORE__DAGS_FOLDER``; ``env`` is added to every process's environment (the tasks
    inherit it). ``home`` (default: a new temporary folder) is ``AIRFLOW_HOME``, which holds the
    process logs and the task logs; it is kept after `stop()` for a post-mortem.
    """

    def __init__(
        self,
        pg_url: str,
        dags_folder: str | Path,
        *,
        env: Mapping[str, str] | None = None,
        home: str | Path | None = None,
        parallelism: int = 4,
    ) -> None:
        self.pg_url = pg_url
        self.dags_folder = Path(dags_folder).resolve()
        self.extra_env = dict(env or {})
        self.home = Path(home) if home else Path(tempfile.mkdtemp(prefix="airflow-home-"))
        self.parallelism = parallelism
        self.db_name = f"{DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        self.port = free_port()
        self.log_server_ports = (free_port(), free_port())  # worker, triggerer
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A Ray temp dir of the harness's own: `ray.init()` without an address otherwise joins the
        # cluster named in /tmp/ray/ray_current_cluster (any `ray start` on this machine, such as
        # another test suite's). Short, because Ray's socket paths must fit in 107 bytes.
        self.ray_tmpdir = Path(tempfile.mkdtemp(prefix="af-ray-", dir="/tmp"))
        self.procs: dict[str, subprocess.Popen] = {}
        self._http = requests.Session()
        self._http.trust_env = False  # never send loopback traffic through a proxy from the environment
        self._db_created = False

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> AirflowServer:
        return self.start()

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:  # a failed assertion in the block: show what Airflow was doing
            print(f"Airflow (AIRFLOW_HOME={self.home}) at the failure:\n{self.log_tails()}")
        self.stop()

    def start(self, timeout: float = 300) -> AirflowServer:
        """Create the metadata DB, migrate it, start the three processes and wait until healthy."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self._create_database()
            self._migrate()
            for name in PROCESSES:
                self._spawn(name)
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 30) -> None:
        """SIGTERM each process by pid, wait up to ``grace`` s, then SIGKILL what is left of its
        process group (LocalExecutor workers, a task's local Ray); drop the metadata DB."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Each process leads its own group (start_new_session): whatever of it survived goes.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs.clear()
        self._http.close()
        shutil.rmtree(self.ray_tmpdir, ignore_errors=True)
        self._drop_database()

    @property
    def metadata_url(self) -> str:
        url = sa.make_url(self.pg_url).set(drivername="postgresql+psycopg", database=self.db_name)
        return url.render_as_string(hide_password=False)

    def environment(self) -> dict[str, str]:
        """The environment of every Airflow process (and so of every task)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        bin_dir = str(AIRFLOW_BIN.parent)
        secret = "actrec-test-harness-secret"  # the API server and the workers must agree on it
        env.update(
            {
                "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
                # asyncpg is not installed; without this start-up fails.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.metadata_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                # The defaults (8793/8794) clash between harnesses; the scheduler runs with
                # --skip-serve-logs anyway (the API server reads task logs from AIRFLOW_HOME).
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_server_ports[1]),
                "AIRFLOW__API__SECRET_KEY": secret,
                "AIRFLOW__API_AUTH__JWT_SECRET": secret,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # tests only: no login
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_TMPDIR": str(self.ray_tmpdir),
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _admin_engine(self) -> sa.Engine:
        return sa.create_engine(self.pg_url, isolation_level="AUTOCOMMIT")

    def _create_database(self) -> None:
        engine = self._admin_engine()
        try:
            with engine.connect() as conn:
                # Databases left by harnesses whose process died (a killed pytest) go first.
                names = conn.execute(
                    sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"{DB_PREFIX}%"}
                ).scalars()
                for name in list(names):
                    pid = name[len(DB_PREFIX) :].partition("_")[0]
                    if pid.isdigit() and not _pid_alive(int(pid)):
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
            self._db_created = True
        finally:
            engine.dispose()

    def _drop_database(self) -> None:
        if not self._db_created:
            return
        engine = self._admin_engine()
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            self._db_created = False
        finally:
            engine.dispose()

    def _log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def _migrate(self) -> None:
        with open(self._log_path("db-migrate"), "wb") as log:
            rc = subprocess.run(
                [str(AIRFLOW_BIN), "db", "migrate"],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=600,
                check=False,
            ).returncode
        if rc != 0:
            raise AirflowHarnessError(
                f"`airflow db migrate` exited {rc}:\n{_tail(self._log_path('db-migrate'), 60)}"
            )

    def _spawn(self, name: str) -> None:
        args = [str(AIRFLOW_BIN), name]
        if name == "scheduler":
            args.append("--skip-serve-logs")  # its log server would bind every interface
        log = open(self._log_path(name), "ab")  # noqa: SIM115 - the child writes it until stop()
        try:
            self.procs[name] = subprocess.Popen(
                args,
                env=self.environment(),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    # ----------------------------------------------------------------- diagnostics
    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` of each process's log, for a failure message."""
        parts = []
        for name in ("db-migrate", *PROCESSES):
            proc = self.procs.get(name)
            state = "" if proc is None else f" (pid {proc.pid}, exit code {proc.poll()})"
            parts.append(f"----- {name}{state}: {self._log_path(name)}\n{_tail(self._log_path(name), lines)}")
        return "\n".join(parts)

    def task_logs(
        self, dag_id: str, run_id: str, *, states: Iterable[str] = ("failed", "up_for_retry")
    ) -> str:
        """The logs of the run's task instances in ``states`` (all tries), read from AIRFLOW_HOME."""
        wanted = set(states)
        out = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] not in wanted:
                continue
            folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
            for path in sorted(folder.glob("attempt=*.log")):
                body = "\n".join(
                    _format_task_log_line(x) for x in path.read_text(errors="replace").splitlines()
                )
                out.append(f"----- {ti['task_id']} ({ti['state']}) {path}\n{body[-6000:]}")
        return "\n".join(out) or f"(no task in {sorted(wanted)} for {run_id})"

    def _fail(self, message: str) -> AirflowHarnessError:
        return AirflowHarnessError(f"{message}\n{self.log_tails()}")

    # ----------------------------------------------------------------- REST
    def api(self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``/api/v2{path}`` and return the decoded JSON; raises on an HTTP error with its body."""
        resp = self._http.request(
            method, f"{self.base_url}/api/v2{path}", json=json, params=params, timeout=60
        )
        if resp.status_code >= 400:
            raise AirflowHarnessError(f"{method} /api/v2{path} -> {resp.status_code}: {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def _check_processes(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise self._fail(f"airflow {name} exited with code {proc.returncode}")

    def wait_healthy(self, timeout: float = 300) -> dict:
        """Wait until the API answers and reports the metadata DB, scheduler and dag-processor healthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self._check_processes()
            try:
                last = self.api("GET", "/monitor/health")
            except (requests.RequestException, AirflowHarnessError) as exc:
                last = exc
            else:
                parts = ("metadatabase", "scheduler", "dag_processor")
                if all((last.get(p) or {}).get("status") == "healthy" for p in parts):
                    return last
            time.sleep(1)
        raise self._fail(f"Airflow not healthy after {timeout} s; last health answer: {last!r}")

    def wait_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Wait until the dag-processor has parsed ``dag_id``; an import error fails at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_processes()
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise self._fail(
                    "DAG import errors:\n" + "\n".join(f"{e['filename']}: {e['stack_trace']}" for e in errors)
                )
            resp = self._http.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=60)
            if resp.status_code == 200:
                return resp.json()
            if resp.status_code != 404:
                raise self._fail(f"GET /api/v2/dags/{dag_id} -> {resp.status_code}: {resp.text[:2000]}")
            time.sleep(1)
        raise self._fail(f"DAG {dag_id!r} not parsed from {self.dags_folder} after {timeout} s")

    def unpause(self, dag_id: str) -> dict:
        """``PATCH /dags/{dag_id}`` with ``is_paused: false``, as the UI's toggle does."""
        return self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def backfill(
        self,
        dag_id: str,
        from_date: str | dt.date | dt.datetime,
        to_date: str | dt.date | dt.datetime,
        *,
        max_active_runs: int = 1,
        dry_run: bool = False,
    ) -> dict:
        """``POST /backfills`` with the UI's body; a date covers its whole day (``to_date`` up to 23:59:59)."""
        body = {
            "dag_id": dag_id,
            "from_date": _day(from_date, end=False),
            "to_date": _day(to_date, end=True),
            "max_active_runs": max_active_runs,
            "reprocess_behavior": "none",
            "run_backwards": False,
            "run_on_latest_version": True,
            "dag_run_conf": None,
        }
        return self.api("POST", "/backfills/dry_run" if dry_run else "/backfills", json=body)

    def runs(self, dag_id: str, run_type: str | None = None) -> list[dict]:
        params = {"limit": 100, "order_by": "logical_date"}
        if run_type:
            params["run_type"] = run_type
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})[
            "task_instances"
        ]

    def _raise_on_retry(self, dag_id: str, run_ids: Iterable[str]) -> None:
        """A task that failed once fails the wait at once, with its log (instead of after its retries)."""
        for run_id in run_ids:
            bad = [
                ti for ti in self.task_instances(dag_id, run_id) if ti["state"] in ("up_for_retry", "failed")
            ]
            if bad:
                names = ", ".join(f"{ti['task_id']} ({ti['state']})" for ti in bad)
                raise self._fail(f"run {run_id} of {dag_id}: {names}\n{self.task_logs(dag_id, run_id)}")

    def wait_runs(
        self, dag_id: str, run_type: str, n: int, timeout: float = 600, *, fail_on_retry: bool = False
    ) -> list[dict]:
        """Wait until ``n`` runs of ``run_type`` (e.g. ``backfill``, ``scheduled``, ``manual``) have
        finished (success or failed) and return them, oldest logical date first. With
        ``fail_on_retry``, a task that fails (even with retries left) raises at once with its log."""
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            self._check_processes()
            runs = self.runs(dag_id, run_type)
            if len(runs) >= n and all(r["state"] in TERMINAL_RUN_STATES for r in runs):
                return runs
            if fail_on_retry:
                self._raise_on_retry(dag_id, [r["dag_run_id"] for r in runs if r["state"] == "running"])
            time.sleep(2)
        states = {r["dag_run_id"]: r["state"] for r in runs}
        raise self._fail(f"{n} {run_type} runs of {dag_id} not finished after {timeout} s: {states}")

    def wait_run(
        self, dag_id: str, run_id: str, timeout: float = 600, *, fail_on_retry: bool = False
    ) -> dict:
        """Wait until one run has finished (success or failed) and return it (``fail_on_retry``: as
        for :meth:`wait_runs`)."""
        deadline = time.monotonic() + timeout
        run: dict = {}
        while time.monotonic() < deadline:
            self._check_processes()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if fail_on_retry and run["state"] == "running":
                self._raise_on_retry(dag_id, [run_id])
            time.sleep(2)
        raise self._fail(f"run {run_id} of {dag_id} still {run.get('state')!r} after {timeout} s")

    def clear_run(self, dag_id: str, dag_run_id: str) -> dict:
        """Clear a whole run as the UI's "Clear Run" button does: a dry run that lists the task
        instances, then the confirmed clear (all tasks, not only failed ones). Returns the run, queued."""
        path = f"/dags/{dag_id}/dagRuns/{dag_run_id}/clear"
        preview = self.api("POST", path, json={"dry_run": True, "only_failed": False, "only_new": False})
        if not preview["total_entries"]:
            raise AirflowHarnessError(f"clearing {dag_run_id} would clear no task instance: {preview}")
        body = {"dry_run": False, "only_failed": False, "only_new": False, "run_on_latest_version": False}
        return self.api("POST", path, json=body)

    def create_pool(self, name: str, slots: int, description: str = "") -> dict:
        """``POST /pools``; an existing pool of that name gets ``slots`` through ``PATCH /pools/{name}``."""
        body = {"name": name, "slots": slots, "description": description or None, "include_deferred": False}
        try:
            return self.api("POST", "/pools", json=body)
        except AirflowHarnessError as exc:
            if "-> 409" not in str(exc):
                raise
        patch = {"pool": name, "slots": slots, "include_deferred": False}
        return self.api("PATCH", f"/pools/{name}", json=patch, params={"update_mask": "slots"})
