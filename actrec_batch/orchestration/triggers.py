"""The deferrable infer task's trigger: it waits for a Ray job in the Airflow triggerer, so a long
job holds no worker slot (:class:`~actrec_batch.orchestration.ray_operator.RayInferOperator` with
``deferrable=True``).

:class:`RayJobTrigger` follows the job through the Ray Jobs API as the worker-bound operator does
(:class:`~actrec_batch.pipeline.ray_job_follow.JobFollower`, in the triggerer's event loop): the
job's log lines go to the trigger's log as they come, which Airflow writes beside the task's log and
shows in it (``attempt=N.log.trigger.<id>.log``), and its status is polled every ``poll_s`` seconds.
It fires one event when the job is terminal: ``{"status", "address", "submission_id", "message",
"shown"}``, the status being the job's (``SUCCEEDED``, ``FAILED``, ``STOPPED``), ``unreachable`` (no
answer for :data:`UNREACHABLE_GRACE_S`) or ``config_error`` (the address or the token cannot be
used); ``shown`` counts the log lines it logged, so ``execute_complete`` writes only the rest.

The token: with ``ray_conn_id`` the trigger reads the Ray connection's password in the triggerer
(the token is never in the trigger's serialized kwargs, which Airflow stores in its database);
without, Ray's own settings of the triggerer's environment (``RAY_AUTH_MODE=token``, the token in
``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``).

A user who marks the deferred task failed, or clears it, gets the job stopped (:meth:`on_kill`);
a triggerer restart does not stop it (the trigger is picked up again, and its log starts over).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

UNREACHABLE_GRACE_S = 300.0  # the Jobs API may be unreachable this long (a head restart) mid-job


class RayJobTrigger(BaseTrigger):
    """Fires when the Ray job ``submission_id`` on the Jobs API ``address`` is terminal."""

    def __init__(
        self, address: str, submission_id: str, poll_s: float = 5.0, ray_conn_id: str | None = None
    ) -> None:
        super().__init__()
        self.address = address
        self.submission_id = submission_id
        self.poll_s = poll_s
        self.ray_conn_id = ray_conn_id
        self.shown = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "address": self.address,
                "submission_id": self.submission_id,
                "poll_s": self.poll_s,
                "ray_conn_id": self.ray_conn_id,
            },
        )

    def _headers(self) -> dict[str, str]:
        from actrec_batch.orchestration.connections import ray_target_from_connection

        return ray_target_from_connection(self.ray_conn_id).headers() if self.ray_conn_id else {}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from actrec_batch.errors import ActrecError, ConfigError
        from actrec_batch.pipeline.ray_job_follow import JobFollower

        try:
            client = await self._connect()
        except ConfigError as exc:  # the address or the token cannot be used: no point waiting
            yield self._event("config_error", str(exc))
            return
        except ActrecError as exc:
            yield self._event("unreachable", str(exc))
            return
        self.log.info("ray job %s on %s: following its log", self.submission_id, self.address)
        follower = JobFollower(
            client, self.submission_id, self._show, self.poll_s, unreachable_grace_s=UNREACHABLE_GRACE_S
        )
        try:
            status = await follower.run(deadline=None)
            await asyncio.to_thread(follower.catch_up)
        except ActrecError as exc:  # ray_unreachable: the Jobs API stayed away past the follower's grace
            yield self._event("unreachable", str(exc))
            return
        self.log.info("ray job %s on %s: %s", self.submission_id, self.address, status)
        yield self._event(str(status.value), "")

    async def _connect(self):
        """A Jobs API client, retried while the Jobs API is briefly away (a head restart)."""
        from actrec_batch.errors import ActrecError, ConfigError
        from actrec_batch.pipeline.ray_jobs_api import _client

        failing_since = None
        while True:
            try:
                headers = await asyncio.to_thread(self._headers)
                return await asyncio.to_thread(_client, self.address, headers=headers)
            except ConfigError as exc:
                if "cannot reach" not in str(exc):
                    raise
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > UNREACHABLE_GRACE_S:
                    raise ActrecError(
                        f"the Ray Jobs API has not answered: {exc}", reason="ray_unreachable"
                    ) from None
                await asyncio.sleep(self.poll_s)

    def _show(self, line: str) -> None:
        self.shown += 1
        self.log.info("%s", line)

    async def on_kill(self) -> None:
        """The deferred task was marked failed or cleared: stop its job."""
        from actrec_batch.pipeline.ray_jobs_api import stop_job

        headers = await asyncio.to_thread(self._headers)
        stopped = await asyncio.to_thread(stop_job, self.address, self.submission_id, headers)
        self.log.info(
            "ray job %s on %s: %s", self.submission_id, self.address, "stopped" if stopped else "not running"
        )

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "address": self.address,
                "submission_id": self.submission_id,
                "message": message,
                "shown": self.shown,
            }
        )
