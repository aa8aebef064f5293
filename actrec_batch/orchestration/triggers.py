"""The deferrable infer task's trigger: it waits for a Ray job in the Airflow triggerer, so a long
job holds no worker slot (:class:`~actrec_batch.orchestration.ray_operator.RayInferOperator` with
``deferrable=True``).

:class:`RayJobTrigger` polls the job's status through the Ray Jobs API every ``poll_s`` seconds
(Ray's ``JobSubmissionClient`` in a thread, so the triggerer's event loop never blocks, and token
authentication works as on the workers: run the triggerer with ``RAY_AUTH_MODE=token``). It logs
each change of status and fires one event when the job is terminal:
``{"status", "address", "submission_id", "message"}``, the status being the job's (``SUCCEEDED``,
``FAILED``, ``STOPPED``), ``unreachable`` (no answer for :data:`UNREACHABLE_GRACE_S`) or
``config_error`` (the address or the token cannot be used).
The job's log is not carried in the event: the task's ``execute_complete`` reads the whole log from
the Jobs API and writes it to the task log (the trigger's own lines show in the triggerer's log).

A user who marks the deferred task failed, or clears it, gets the job stopped (:meth:`on_kill`);
a triggerer restart does not stop it (the trigger is picked up again and goes on polling).
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

    def __init__(self, address: str, submission_id: str, poll_s: float = 5.0) -> None:
        super().__init__()
        self.address = address
        self.submission_id = submission_id
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"address": self.address, "submission_id": self.submission_id, "poll_s": self.poll_s},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from actrec_batch.errors import ConfigError
        from actrec_batch.pipeline.ray_jobs_api import _client

        sid, last, failing_since = self.submission_id, None, None
        client = None
        while True:
            try:
                client = client or await asyncio.to_thread(_client, self.address)
                status = await asyncio.to_thread(client.get_job_status, sid)
            except ConfigError as exc:  # the address or the token cannot be used: no point waiting
                yield self._event("config_error", str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - the Jobs API briefly away: keep polling a while
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > UNREACHABLE_GRACE_S:
                    yield self._event("unreachable", f"the Ray Jobs API has not answered: {exc}")
                    return
                await asyncio.sleep(self.poll_s)
                continue
            failing_since = None
            if status != last:
                self.log.info("ray job %s on %s: %s", sid, self.address, status)
                last = status
            if status.is_terminal():
                yield self._event(status.value, "")
                return
            await asyncio.sleep(self.poll_s)

    async def on_kill(self) -> None:
        """The deferred task was marked failed or cleared: stop its job."""
        from actrec_batch.pipeline.ray_jobs_api import stop_job

        stopped = await asyncio.to_thread(stop_job, self.address, self.submission_id)
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
            }
        )
