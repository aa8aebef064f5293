"""The Ray Jobs API over plain HTTP: submit, follow and stop a job without importing Ray.

The Airflow side (``pip install 'actrec-batch[airflow]'``) has no Ray, torch or av. Its infer task
only talks to the head's dashboard (``http://head:8265``), so it does that with ``requests`` through
the endpoints Ray's own ``JobSubmissionClient`` calls: ``GET /api/version``, ``POST /api/jobs/``,
``GET /api/jobs/{id}``, ``GET /api/jobs/{id}/logs``, ``POST /api/jobs/{id}/stop``. Errors are the
ones Ray's client raises (``RuntimeError("Request failed with status code ...: <body>.")``), so
callers match the same texts ("does not exist", "already exists", "No available agent").

Token authentication as Ray's client does it: with ``RAY_AUTH_MODE=token`` every request carries
``Authorization: Bearer <token>``, the token read from ``RAY_AUTH_TOKEN``, the file
``RAY_AUTH_TOKEN_PATH`` names, or ``~/.ray/auth_token``.

This client uploads nothing: a job it submits runs the package installed on the cluster's nodes. A
development ``working_dir`` (a local folder to upload) needs Ray's own client
(:func:`actrec_batch.pipeline.ray_jobs_api.submit_infer_job` picks it then).
"""

from __future__ import annotations

import asyncio
import enum
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import requests

TAIL_POLL_S = 1.0  # how often tail_job_logs reads the log again
TIMEOUT_S = 30.0  # per HTTP request


class JobStatus(enum.StrEnum):
    """A Ray job's status, as the Jobs API reports it (the values of Ray's ``JobStatus``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def is_terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobsApiUnreachable(ConnectionError):
    """Nothing answers HTTP at the address."""


class JobsApiAuthError(RuntimeError):
    """The cluster refused this client's token (HTTP 401 or 403)."""


def auth_headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``Authorization: Bearer <token>`` when ``RAY_AUTH_MODE=token`` and a token is found, else {}.
    ``env``: where the mode and token are read (default: ``os.environ``)."""
    env = os.environ if env is None else env
    if env.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        return {}
    token = env.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        path = Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
        token = path.read_text().strip() if path.is_file() else ""
    return {"Authorization": f"Bearer {token}"} if token else {}


class JobsApiClient:
    """The part of Ray's ``JobSubmissionClient`` this project uses, over HTTP. Connecting checks
    that the Jobs API answers (:class:`JobsApiUnreachable`, :class:`JobsApiAuthError`). ``env``:
    where the token settings are read (default: ``os.environ``)."""

    def __init__(
        self, address: str, env: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.address = address.rstrip("/")
        self.headers = dict(headers) if headers else auth_headers(env)  # given: a connection's token
        try:
            r = self._request("GET", "/api/version")
        except requests.ConnectionError:
            raise JobsApiUnreachable(f"Failed to connect to Ray at address: {self.address}.") from None
        if r.status_code != 200 or "ray_version" not in r.json():
            self._raise(r)
        # The version answers without a token; a job lookup (404 for this id) checks the token now.
        self._request("GET", "/api/jobs/actrec-token-check")

    def get_address(self) -> str:
        return self.address

    def _request(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        r = requests.request(
            method, self.address + endpoint, headers=self.headers, timeout=TIMEOUT_S, **kwargs
        )
        if r.status_code in (401, 403):
            raise JobsApiAuthError(f"Authentication failed ({r.status_code}) at {self.address}: {r.text}")
        return r

    @staticmethod
    def _raise(r: requests.Response) -> None:
        raise RuntimeError(f"Request failed with status code {r.status_code}: {r.text}.")

    def submit_job(
        self,
        *,
        entrypoint: str,
        runtime_env: dict[str, Any] | None = None,
        submission_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> str:
        if runtime_env and "working_dir" in runtime_env:
            raise ValueError("JobsApiClient uploads nothing: submit a working_dir with Ray's client")
        body = {
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": runtime_env or {},
            "metadata": metadata or {},
        }
        r = self._request("POST", "/api/jobs/", json=body)
        if r.status_code != 200:
            self._raise(r)
        return r.json()["submission_id"]

    def get_job_info(self, job_id: str) -> Any:
        """The job's details (``status``, ``message``, ...) as an object with attributes."""
        r = self._request("GET", f"/api/jobs/{job_id}")
        if r.status_code != 200:
            self._raise(r)
        info = r.json()
        return _Info(status=JobStatus(info["status"]), message=info.get("message"), raw=info)

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        r = self._request("GET", f"/api/jobs/{job_id}/logs")
        if r.status_code != 200:
            self._raise(r)
        return r.json().get("logs", "")

    def stop_job(self, job_id: str) -> bool:
        r = self._request("POST", f"/api/jobs/{job_id}/stop")
        if r.status_code != 200:
            self._raise(r)
        return bool(r.json().get("stopped"))

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """The job's log as it grows (read again every TAIL_POLL_S), until the job is terminal."""
        sent = 0
        while True:
            logs, status = await asyncio.to_thread(self._logs_and_status, job_id)
            if len(logs) > sent:
                yield logs[sent:]
                sent = len(logs)
            if status.is_terminal():
                return
            await asyncio.sleep(TAIL_POLL_S)

    def _logs_and_status(self, job_id: str) -> tuple[str, JobStatus]:
        status = self.get_job_status(job_id)  # first: a log read after it holds every line of that status
        return self.get_job_logs(job_id), status


class _Info:
    def __init__(self, *, status: JobStatus, message: str | None, raw: dict[str, Any]) -> None:
        self.status, self.message, self.raw = status, message, raw
