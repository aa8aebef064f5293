"""The nightly inference as a Ray job: submit it through the Ray Jobs API, follow it, stop it.

This is what the Airflow infer task does when ``ACTREC_RAY_ADDRESS`` is a Jobs API address
(``http://head:8265``); without one the task runs the inference in-process on a local Ray.

* The entrypoint is ``python -m actrec_batch.ray_job --date D --run-id R --model M [--camera C ...]
  [--force] --json`` (that is ``actrec infer``), run by the package installed on the cluster's nodes
  (``scripts/install.sh worker``): no source tree is uploaded. It prints its JSON summary as the last
  line of stdout, which :func:`submit_infer_job` reads back from the job's logs.
* The Airflow side talks to the Jobs API over HTTP (:mod:`.ray_rest`) and imports no Ray, torch or
  av. For development, ``working_dir=`` a checkout (:func:`project_root`) uploads that code with the
  job (Ray puts it first on ``PYTHONPATH``), without virtualenvs, caches, git data or tests; that
  upload goes through Ray's own client, so it needs Ray installed.
* Settings travel as ``env_vars``: only the allow-list of :mod:`~actrec_batch.pipeline.job_env`
  (the store, Ray and decoding settings, the log level, the S3 endpoint and region). Secrets (AWS
  credentials, the warehouse URL) stay behind: the nodes use their own credentials, and the job
  never opens the warehouse. The names of what is sent and of what stays behind are logged, never
  their values.

Authentication. A cluster started with ``ray start`` while a token exists (``~/.ray/auth_token``,
``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``) uses token authentication. The client here (and Ray's
``JobSubmissionClient``) sends ``Authorization: Bearer <token>`` only when this process runs with
``RAY_AUTH_MODE=token``, and reads the token from those same places. Ray reads the mode once per
process, so set it in the worker's environment (not midway through a process that already used
Ray). Without it the cluster answers 401, reported here as a :class:`ConfigError`.

With a ``working_dir``, Ray's client also prefers ``RAY_API_SERVER_ADDRESS`` or ``RAY_ADDRESS`` from
the environment to the address it is given. A different address there is reported as a :class:`ConfigError` instead of
silently submitting to another cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actrec_batch.errors import ActrecError, ConfigError
from actrec_batch.pipeline.job_env import job_env, withheld
from actrec_batch.pipeline.ray_job_follow import JobFollower, last_line, request_stop

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

    from actrec_batch.pipeline.ray_rest import JobsApiClient, JobStatus

    JobsClient = JobsApiClient | JobSubmissionClient

log = logging.getLogger(__name__)

SETTING = "ray_address (--ray-address / ACTREC_RAY_ADDRESS)"
ENTRYPOINT_MODULE = "actrec_batch.ray_job"  # the installed package's entrypoint (python -m)
CHECKOUT_MARKER = "ray_jobs/nightly_inference.py"  # what makes a folder a project checkout
# Not uploaded with the working directory (Ray also honours the checkout's .gitignore).
UPLOAD_EXCLUDES = [
    "/.venv/",
    "/.actrec/",
    ".git/",
    "/tests/",
    "/bench/",
    "/infra/",
    "__pycache__/",
    "*.pyc",
    ".pytest_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    ".terraform/",
]
STOP_WAIT_S = 30.0  # after a stop request, wait this long for the job to reach STOPPED
AGENT_WAIT_S = 30.0  # a fresh head refuses jobs ("No available agent") until its job agent is up


@dataclass(frozen=True)
class SubmittedJob:
    """A finished (SUCCEEDED) Ray job, or a submitted one (``SUBMITTED``: ``wait=False``).
    ``summary`` is the JSON object the entrypoint printed as its last stdout line (``actrec infer
    --json``), or None when there was none."""

    job_id: str
    address: str
    status: str
    summary: dict | None


def is_jobs_api_address(address: str | None) -> bool:
    """True for a Ray Jobs API address (``http://head:8265``), which jobs are submitted to."""
    return bool(address) and address.startswith(("http://", "https://"))


def infer_entrypoint(
    *,
    date: dt.date,
    run_id: str,
    model: str,
    cameras: tuple[str, ...] = (),
    force: bool = False,
    python: str = "python",
) -> str:
    """The job's shell command, quoted. ``python`` is the interpreter on the nodes that has the
    package installed (default: the first ``python`` on their PATH)."""
    argv = [python, "-m", ENTRYPOINT_MODULE, "--date", date.isoformat(), "--run-id", run_id, "--model", model]
    for camera in cameras:
        argv += ["--camera", camera]
    if force:
        argv.append("--force")
    return shlex.join([*argv, "--json"])


def project_root() -> Path:
    """The checkout this package runs from, for a development ``working_dir``. Raises ConfigError
    when it runs from an installed wheel (which needs no working_dir)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / CHECKOUT_MARKER).is_file():
        raise ConfigError(
            f"bad working_dir: actrec_batch runs from {root}, which is not a project checkout (no "
            f"{CHECKOUT_MARKER}). Fix: submit without a working_dir (the nodes run their installed "
            "package), or pass working_dir= a checkout's root"
        )
    return root


def _client(address: str, *, upload: bool = False, headers: Mapping[str, str] | None = None) -> JobsClient:
    """A Jobs API client for ``address``: HTTP only (:class:`.ray_rest.JobsApiClient`, no Ray
    import), or Ray's own ``JobSubmissionClient`` when a ``working_dir`` is to be uploaded
    (``upload``). ``headers`` (a Ray connection's token, :meth:`RayTarget.headers`) replace the
    token Ray's own settings would give (``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN`` or
    ``~/.ray/auth_token``). Raises ConfigError when it cannot be used."""
    if not is_jobs_api_address(address):
        raise ConfigError(
            f"bad setting {SETTING} = {address!r}: the Ray Jobs API needs an http(s) address. "
            "Fix: use http://head:8265 (the head's dashboard port), or unset it to run in-process"
        )
    if upload:
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient as make
    else:
        from actrec_batch.pipeline.ray_rest import JobsApiAuthError as AuthenticationError
        from actrec_batch.pipeline.ray_rest import JobsApiClient as make
    try:
        client = make(address, headers=dict(headers)) if headers else make(address)
    except ConnectionError:
        raise ConfigError(
            f"bad setting {SETTING} = {address!r}: cannot reach the Ray Jobs API there. Fix: start the "
            "cluster with its dashboard on that host and port (ray start --head --dashboard-host ...), "
            "or correct the address"
        ) from None
    except AuthenticationError:
        raise ConfigError(
            f"bad setting {SETTING} = {address!r}: the cluster refused this client's token. Fix: put the "
            "cluster's token in the Ray connection's password (ACTREC_RAY_CONN_ID), or run with "
            "RAY_AUTH_MODE=token and the token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
        ) from None
    if client.get_address().rstrip("/") != address.rstrip("/"):
        raise ConfigError(
            f"bad setting {SETTING} = {address!r}: Ray's client uses {client.get_address()!r} from "
            "RAY_API_SERVER_ADDRESS / RAY_ADDRESS instead. Fix: unset those in this environment or make "
            "them agree"
        )
    return client


def stop_job(address: str, submission_id: str, headers: Mapping[str, str] | None = None) -> bool:
    """Ask the cluster to stop a job (SIGTERM to its driver, then SIGKILL; its tasks and actors go with
    it). Returns True when the job was running, False when it had finished or does not exist.
    Raises ConfigError when the address cannot be used."""
    client = _client(address, headers=headers)
    return request_stop(client, submission_id)


def parse_summary(logs: str) -> dict | None:
    """The last line of ``logs`` that is a JSON object, or None."""
    for line in reversed(logs.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
    return None


def submit_infer_job(
    address: str,
    *,
    date: dt.date,
    run_id: str,
    model: str,
    cameras: tuple[str, ...] = (),
    force: bool = False,
    env: Mapping[str, str] | None = None,
    working_dir: str | None = None,
    python: str = "python",
    submission_id: str | None = None,
    on_log: Callable[[str], None] = print,
    poll_s: float = 2.0,
    timeout_s: float | None = None,
    stop_requested: Callable[[], bool] | None = None,
    wait: bool = True,
    headers: Mapping[str, str] | None = None,
) -> SubmittedJob:
    """Run one date's inference as a Ray job on the cluster at ``address`` and wait for it.

    The job runs ``python -m actrec_batch.ray_job`` from the package installed on the nodes
    (``python``: their interpreter). ``working_dir`` (development) uploads a checkout with the job
    instead, through Ray's client.

    With ``wait=False`` it returns as soon as the job is submitted (or found), with status
    ``SUBMITTED``: the deferrable operator's first half (a trigger,
    :mod:`actrec_batch.orchestration.triggers`, waits; then :func:`finished_job` reads the end).

    Each line the job logs (its driver's stdout and stderr, Ray's set-up lines included) goes to
    ``on_log`` while it runs. With a ``submission_id`` the call is idempotent: a job of that id that
    is PENDING or RUNNING is followed instead of submitted again, and one that SUCCEEDED is returned
    (its logs replayed) without running anything. ``poll_s`` is the status poll interval in seconds;
    ``timeout_s`` (seconds, None = no limit) stops the job when it runs longer. ``stop_requested``
    is asked at every poll; once it returns True the job is stopped (this is how a kill that lands
    while the job is still being submitted reaches it). ``headers``: see :func:`_client`.

    If this call is interrupted (KeyboardInterrupt, Airflow's task timeout, any unexpected error)
    the job is stopped before the exception propagates, so no cluster time leaks.

    Raises :class:`ConfigError` (the address cannot be used), :class:`ActrecError` with reason
    ``ray_job_failed`` or ``ray_job_stopped`` (a FAILED or STOPPED job: the message names the job,
    the address and its last log lines), ``timeout``, ``ray_submit_failed`` or ``ray_unreachable``.
    """
    client = _client(address, upload=working_dir is not None, headers=headers)
    sid = submission_id
    existing = _status_or_none(client, sid) if sid else None
    if existing is not None:
        on_log(f"ray job {sid} on {address} exists ({existing}): following it instead of submitting again")
    else:
        entrypoint = infer_entrypoint(
            date=date, run_id=run_id, model=model, cameras=cameras, force=force, python=python
        )
        metadata = {"actrec_run_id": run_id, "actrec_date": date.isoformat(), "actrec_model": model}
        sid = _submit(client, address, entrypoint, metadata, env, working_dir, sid, on_log)
    if not wait:
        return SubmittedJob(job_id=sid, address=address, status="SUBMITTED", summary=None)
    follower = JobFollower(client, sid, on_log, poll_s, stop_requested)
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        status = asyncio.run(follower.run(deadline))
        if status is None:  # past the deadline
            request_stop(client, sid)
            asyncio.run(follower.run(time.monotonic() + STOP_WAIT_S))
            follower.catch_up()
            raise ActrecError(
                f"ray job {sid} on {address} ran past timeout_s = {timeout_s:g} s and was stopped; "
                f"last log lines: {follower.last_lines()}",
                reason="timeout",
            )
    except BaseException as exc:
        if not isinstance(exc, ActrecError) or exc.reason == "ray_unreachable":
            with contextlib.suppress(Exception):  # the error that got us here is the one to report
                request_stop(client, sid)
        raise
    return _outcome(client, address, sid, status, follower)


def finished_job(
    address: str,
    submission_id: str,
    on_log: Callable[[str], None] = print,
    headers: Mapping[str, str] | None = None,
    shown: int = 0,
) -> SubmittedJob:
    """The end of a job that has finished: its log from line ``shown`` on (the lines before were
    shown elsewhere: the deferrable task's trigger streams them) goes to ``on_log``; returns it when
    it SUCCEEDED, raises as :func:`submit_infer_job` does when it FAILED or was STOPPED."""
    client = _client(address, headers=headers)
    status = client.get_job_status(submission_id)
    if not status.is_terminal():
        raise ActrecError(f"ray job {submission_id} on {address} is still {status}", reason="ray_job_failed")
    follower = JobFollower(client, submission_id, on_log, 0.0, shown=shown)
    return _outcome(client, address, submission_id, status, follower)


def _outcome(
    client: JobSubmissionClient, address: str, sid: str, status: JobStatus, follower: JobFollower
) -> SubmittedJob:
    """The finished job's result (its log caught up): SubmittedJob, or ActrecError if it did not succeed."""
    logs = follower.catch_up()
    if status == "SUCCEEDED":
        return SubmittedJob(job_id=sid, address=address, status=str(status), summary=parse_summary(logs))
    info = client.get_job_info(sid)
    what = "failed" if status == "FAILED" else "was stopped"
    raise ActrecError(
        f"ray job {sid} on {address} {what} ({(info.message or str(status)).splitlines()[0]}); "
        f"last log lines: {follower.last_lines()}",
        reason="ray_job_failed" if status == "FAILED" else "ray_job_stopped",
    )


def _submit(
    client: JobsClient,
    address: str,
    entrypoint: str,
    metadata: dict[str, str],
    env: Mapping[str, str] | None,
    working_dir: str | None,
    submission_id: str | None,
    on_log: Callable[[str], None],
) -> str:
    env_vars = job_env(env)
    runtime_env: dict[str, Any] = {
        # The driver's ray.init passes ACTREC_FAULT_* on again (ray_backend.connect); Ray refuses a
        # job whose driver repeats one of the job's env var keys unless told to merge them.
        "env_vars": {**env_vars, "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"},
    }
    if working_dir is not None:  # development: this checkout's code instead of the nodes' package
        runtime_env.update(working_dir=str(working_dir), excludes=UPLOAD_EXCLUDES)
    code = f"working_dir {working_dir}" if working_dir is not None else "the nodes' installed package"
    on_log(
        f"submitting ray job {submission_id or '(new id)'} to {address}: {entrypoint} "
        f"({code}; env {', '.join(sorted(env_vars)) or 'none'}, values not shown; "
        f"not sent: {', '.join(withheld(env)) or 'none'})"
    )
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return client.submit_job(
                entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id, metadata=metadata
            )
        except RuntimeError as exc:
            if submission_id and "already exists" in str(exc):  # submitted by someone else meanwhile
                return submission_id
            # A head that has just started answers 500 until its job agent has registered.
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(1.0)
                continue
            raise ActrecError(
                f"cannot submit ray job {submission_id or ''} to {address}: {last_line(str(exc))}",
                reason="ray_submit_failed",
            ) from None


def _status_or_none(client: JobsClient, submission_id: str) -> JobStatus | None:
    try:
        return client.get_job_status(submission_id)
    except RuntimeError as exc:
        if "does not exist" in str(exc):
            return None
        raise
