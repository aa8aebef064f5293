"""The nightly DAG's infer task: an Airflow operator that runs one date's inference.

With ``ACTREC_RAY_ADDRESS`` (or ``ray_address=``) a Ray Jobs API address (``http://head:8265``),
the inference is submitted to that cluster as a Ray job
(:func:`~actrec_batch.pipeline.ray_jobs_api.submit_infer_job`): the task waits for it, streams its
log into the task log, and stops it when the task is killed. Its result is the run's infer record,
read from the store (:mod:`actrec_batch.runs`), not from the log. Otherwise it runs in the worker
(:func:`~actrec_batch.orchestration.tasks.infer_local`, a local Ray).

Killing. In Airflow 3.3 the task runner installs a SIGTERM handler that calls :meth:`on_kill` and
returns (``airflow/sdk/execution_time/task_runner.py``, ``_run_task_and_map_outcome``). The
supervisor sends that SIGTERM when the task is cleared or marked failed (its heartbeat is answered
404/409/410), and forwards it when the worker itself is terminated; SIGKILL follows 5 s later. Past
``execution_timeout`` the runner raises ``AirflowTaskTimeout`` inside ``execute`` and calls
``on_kill`` as well; a forwarded SIGINT raises ``KeyboardInterrupt`` there, and
:func:`~actrec_batch.pipeline.ray_jobs_api.submit_infer_job` stops the job on its way out. ``on_kill``
stops the Ray job, and the wait then ends with ``ray_job_stopped``. A kill that lands while the job
is still being submitted is caught at the next status poll. A worker killed outright (SIGKILL, a
lost node) runs no handler, so the next try stops the earlier tries' jobs before submitting its own.

Deferrable mode (``deferrable=True``). The try submits the job, then defers to
:class:`~actrec_batch.orchestration.triggers.RayJobTrigger`, which polls the job's status in the
triggerer: no worker slot (and, for a pool with ``include_deferred`` off, no pool slot) is held
while the job runs. When the job ends, :meth:`execute_complete` runs in a worker: it writes the
job's whole log to the task log (at the end, not line by line as the job runs), raises as the
synchronous mode does on a failed or stopped job, and returns the run's infer record. Marking the
deferred task failed, or clearing it, stops the job (the trigger's ``on_kill``). Without a Jobs API
address the task runs in the worker and does not defer.

Extra links (:mod:`~actrec_batch.orchestration.links`): "Ray job", the dashboard's page of the
job; "Data Docs", the run's events Data Docs; "Cost report" and "Quality report", the run's pages
that the DAG's ``cost`` and ``quality`` tasks write.

Secrets: only the allow-list of :mod:`~actrec_batch.pipeline.job_env` goes into the job.

The module imports only the Airflow SDK: Ray and the pipeline load when the task runs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from airflow.sdk import BaseOperator

from actrec_batch.orchestration.links import (
    RAY_JOB_URL,
    CostReportLink,
    DataDocsLink,
    QualityReportLink,
    RayJobLink,
    ray_job_url,
)


class RayInferOperator(BaseOperator):
    """Infer one date; returns the run's infer record (ids and counters), read from the store,
    for XCom.

    ``date`` (``YYYY-MM-DD``), ``run_id``, ``model`` (default: the shipped model), ``cameras`` (a list, or ids joined by commas) and
    ``force`` (a bool, or ``"True"``/``"False"`` as a template renders it) are templated, so they can
    come from ``params`` or an upstream task's XCom. ``submission_id`` defaults to
    ``actrec-<run_id>-try<try number>``: a retry submits a new job, and a rerun of the same try
    follows the job already there instead of starting another. ``deferrable`` waits for the job in
    the triggerer (see the module docstring); ``poll_s`` is the status poll interval either way.

    The job runs ``python -m actrec_batch.ray_job`` from the package installed on the Ray nodes
    (``job_python``: their interpreter); no checkout is needed. ``working_dir`` (development) uploads
    a checkout with the job instead.
    """

    template_fields: Sequence[str] = (
        "date",
        "run_id",
        "model",
        "cameras",
        "force",
        "ray_address",
        "submission_id",
        "working_dir",
    )
    ui_color = "#d6e4f0"
    operator_extra_links = (RayJobLink(), DataDocsLink(), CostReportLink(), QualityReportLink())

    def __init__(
        self,
        *,
        date: str,
        run_id: str,
        model: str | None = None,
        cameras: Sequence[str] | str = (),
        force: bool | str = False,
        ray_address: str | None = None,
        submission_id: str | None = None,
        working_dir: str | None = None,
        job_python: str = "python",
        poll_s: float = 2.0,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.date = date
        self.run_id = run_id
        self.model = model
        self.cameras = cameras
        self.force = force
        self.ray_address = ray_address
        self.submission_id = submission_id
        self.working_dir = working_dir  # development: upload this checkout instead of the nodes' package
        self.job_python = job_python  # the nodes' interpreter that has actrec_batch installed
        self.poll_s = poll_s
        self.deferrable = deferrable
        self._job: tuple[str, str] | None = None  # (address, submission id) of the job this try runs
        self._headers: dict[str, str] = {}  # the Ray connection's token, for this try's Jobs API calls
        self._ray_conn_id: str | None = None
        self._killed = False

    def execute(self, context: Any) -> dict[str, Any]:
        from actrec_batch.config import parse_logical_date
        from actrec_batch.model import DEFAULT_MODEL
        from actrec_batch.orchestration.tasks import infer_local, report_uris
        from actrec_batch.pipeline.ray_jobs_api import is_jobs_api_address

        date = parse_logical_date(str(self.date))
        cameras = _camera_list(self.cameras)
        force = _flag(self.force)
        model = str(self.model or DEFAULT_MODEL)
        target = self._target()
        address = target.address if target else None
        self._headers = target.headers() if target else {}
        self._ray_conn_id = target.conn_id if target else None  # the trigger reads the token itself
        for key, uri in report_uris(date.isoformat(), str(self.run_id)).items():
            _push(context, key, uri)
        if not is_jobs_api_address(address):
            self.log.info("infer %s in this worker (ray_address %s)", date, address or "unset: local Ray")
            return infer_local(date.isoformat(), str(self.run_id), model, cameras, force)

        try_number = _try_number(context)
        sid = self.submission_id or _submission_id(str(self.run_id), try_number)
        if not self.submission_id:
            self._stop_earlier_tries(address, str(self.run_id), try_number)
        self._job = (address, sid)
        _push(context, RAY_JOB_URL, ray_job_url(address, sid))
        job = {
            "date": date,
            "run_id": str(self.run_id),
            "model": model,
            "cameras": tuple(cameras),
            "force": force,
        }
        if self.deferrable:
            return self._submit_and_defer(address, sid, job)
        from actrec_batch.pipeline.ray_jobs_api import submit_infer_job

        submitted = submit_infer_job(
            address,
            **job,
            submission_id=sid,
            working_dir=self.working_dir or None,
            python=self.job_python,
            on_log=lambda line: self.log.info("%s", line),
            poll_s=self.poll_s,
            stop_requested=lambda: self._killed,  # a kill during the submission itself
            headers=self._headers,
        )
        return self._result(submitted)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the trigger: the job's log into the task log, then its result (or its error)."""
        from actrec_batch.errors import ActrecError, ConfigError
        from actrec_batch.pipeline.ray_jobs_api import finished_job

        address, sid = event["address"], event["submission_id"]
        if event["status"] == "config_error":
            raise ConfigError(event["message"])
        if event["status"] == "unreachable":
            raise ActrecError(f"ray job {sid} on {address}: {event['message']}", reason="ray_unreachable")
        target = self._target()
        shown = int(event.get("shown", 0))
        if shown:
            self.log.info("ray job %s: its first %d log lines are in the trigger's log above", sid, shown)
        job = finished_job(
            address,
            sid,
            on_log=lambda line: self.log.info("%s", line),
            headers=target.headers() if target else None,
            shown=shown,
        )
        return self._result(job)

    def _submit_and_defer(self, address: str, sid: str, job: dict[str, Any]) -> NoReturn:
        from actrec_batch.orchestration.triggers import RayJobTrigger
        from actrec_batch.pipeline.ray_jobs_api import submit_infer_job

        submit_infer_job(
            address,
            **job,
            submission_id=sid,
            working_dir=self.working_dir or None,
            python=self.job_python,
            on_log=lambda line: self.log.info("%s", line),
            wait=False,
            headers=self._headers,
        )
        self.log.info("ray job %s on %s: deferred to the triggerer until it ends", sid, address)
        self.defer(
            trigger=RayJobTrigger(address, sid, poll_s=self.poll_s, ray_conn_id=self._ray_conn_id),
            method_name="execute_complete",
            timeout=self.execution_timeout,
        )

    def _target(self):
        """The operator's ``ray_address``, else ``ACTREC_RAY_ADDRESS``, else the Ray connection (with
        its token); None: a local Ray."""
        from actrec_batch.orchestration.connections import RayTarget, ray_target, task_settings

        return RayTarget(self.ray_address) if self.ray_address else ray_target(task_settings())

    def _result(self, job: Any) -> dict[str, Any]:
        """The job's log went to the task log for people; its result is the run's infer record."""
        from actrec_batch.config import parse_logical_date
        from actrec_batch.orchestration.tasks import infer_result

        out = infer_result(parse_logical_date(str(self.date)).isoformat(), str(self.run_id))
        out["ray_job_id"] = job.job_id
        return out

    def on_kill(self) -> None:
        """Stop the Ray job this try started. Never raises: it runs inside a signal handler."""
        self._killed = True
        if self._job is None:
            return
        from actrec_batch.pipeline.ray_jobs_api import stop_job

        address, sid = self._job
        try:
            stopped = stop_job(address, sid, self._headers)
            self.log.info("ray job %s on %s: %s", sid, address, "stopped" if stopped else "already finished")
        except Exception as exc:  # noqa: BLE001 - the kill goes on; say what could not be stopped
            self.log.error("ray job %s on %s could not be stopped: %s", sid, address, exc)

    def _stop_earlier_tries(self, address: str, run_id: str, try_number: int) -> None:
        from actrec_batch.pipeline.ray_jobs_api import stop_job

        for k in range(1, try_number):
            earlier = _submission_id(run_id, k)
            with contextlib.suppress(Exception):  # best effort: the submission below reports real trouble
                if stop_job(address, earlier, self._headers):
                    self.log.warning("ray job %s of an earlier try was still running: stopped it", earlier)


def _push(context: Any, key: str, value: str | None) -> None:
    """An XCom for the extra links (none without a task instance: ``execute`` called directly)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None and value:
        ti.xcom_push(key=key, value=value)


def _submission_id(run_id: str, try_number: int) -> str:
    """``actrec-<run_id>-try<k>``, limited to characters Ray accepts in job ids and file names."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"actrec-{run_id}-try{try_number}")


def _try_number(context: Any) -> int:
    ti = context.get("ti") if hasattr(context, "get") else None
    return int(getattr(ti, "try_number", None) or 1)


def _camera_list(cameras: Sequence[str] | str | None) -> list[str]:
    if not cameras:
        return []
    if isinstance(cameras, str):
        cameras = cameras.split(",")
    return [c.strip() for c in cameras if c and c.strip()]


def _flag(value: bool | str) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
