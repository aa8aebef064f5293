"""Following a submitted Ray job from the client: its log lines streamed while its status is polled,
a stop request, and the last lines quoted in a failure (:mod:`.ray_jobs_api` submits the job)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from actrec_batch.errors import ActrecError

if TYPE_CHECKING:
    from ray.job_submission import JobStatus, JobSubmissionClient

log = logging.getLogger(__name__)

LAST_LINES = 20  # log lines quoted in a failure message
LINE_CHARS = 300  # ... each cut to this length
UNREACHABLE_GRACE_S = 60.0  # the Jobs API may be unreachable this long (a dashboard restart) mid-job


def request_stop(client: JobSubmissionClient, submission_id: str) -> bool:
    try:
        stopped = bool(client.stop_job(submission_id))
    except RuntimeError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    log.info("ray job %s: stop requested (%s)", submission_id, "was running" if stopped else "not running")
    return stopped


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:LINE_CHARS] if lines else ""


class JobFollower:
    """Streams a job's log lines to ``on_log`` while it polls the job's status.

    Live lines come from ``tail_job_logs`` (a websocket). It replays the log from its start, so a
    tail that drops (a dashboard restart) is reopened and skips the lines already shown. When the job
    ends, :meth:`catch_up` reads the whole log once and shows whatever the tail had not reached: the
    stored log is the source of truth, the websocket only makes it live.
    """

    def __init__(
        self,
        client: JobSubmissionClient,
        submission_id: str,
        on_log: Callable[[str], None],
        poll_s: float,
        stop_requested: Callable[[], bool] | None = None,
        shown: int = 0,
        unreachable_grace_s: float = UNREACHABLE_GRACE_S,
    ) -> None:
        self.client, self.sid, self.on_log, self.poll_s = client, submission_id, on_log, poll_s
        self.stop_requested = stop_requested
        self.stop_sent = False
        self.shown = shown  # lines already shown elsewhere (the deferrable task's trigger)
        self.unreachable_grace_s = unreachable_grace_s
        self.recent: collections.deque[str] = collections.deque(maxlen=LAST_LINES)
        self.unreachable_since: float | None = None

    async def run(self, deadline: float | None) -> JobStatus | None:
        """Follow until the job is terminal (returns its status) or ``deadline`` (monotonic seconds)
        passes (returns None)."""
        tail = asyncio.create_task(self._tail())
        try:
            while True:
                status = await asyncio.to_thread(self._status)
                if status is not None and status.is_terminal():
                    return status
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                if self.stop_requested is not None and not self.stop_sent and self.stop_requested():
                    self.stop_sent = True
                    await asyncio.to_thread(request_stop, self.client, self.sid)
                if tail.done():
                    if not tail.cancelled() and tail.exception() is not None:
                        log.debug("ray job %s: log tail dropped (%s); reopening", self.sid, tail.exception())
                    tail = asyncio.create_task(self._tail())
                    await asyncio.sleep(self.poll_s)
                else:
                    await asyncio.wait({tail}, timeout=self.poll_s)
        finally:
            tail.cancel()
            with contextlib.suppress(BaseException):
                await tail

    async def _tail(self) -> None:
        seen, partial = 0, ""
        async for chunk in self.client.tail_job_logs(self.sid):
            *lines, partial = (partial + chunk).split("\n")
            for line in lines:
                seen += 1
                if seen > self.shown:
                    self._show(line)

    def _status(self) -> JobStatus | None:
        """The job's status; None while the Jobs API is briefly unreachable. Raises ActrecError
        ``ray_unreachable`` after UNREACHABLE_GRACE_S of failures."""
        import requests

        try:
            status = self.client.get_job_status(self.sid)
        except (requests.RequestException, RuntimeError) as exc:
            now = time.monotonic()
            self.unreachable_since = self.unreachable_since or now
            if now - self.unreachable_since > self.unreachable_grace_s:
                raise ActrecError(
                    f"ray job {self.sid}: the Ray Jobs API has not answered for {self.unreachable_grace_s:g} s "
                    f"({last_line(str(exc))})",
                    reason="ray_unreachable",
                ) from None
            return None
        self.unreachable_since = None
        return status

    def _show(self, line: str) -> None:
        line = line.rstrip("\r")
        self.shown += 1
        self.recent.append(line)
        self.on_log(line)

    def catch_up(self) -> str:
        """Show the log lines not shown yet; returns the whole log."""
        logs = self.client.get_job_logs(self.sid)
        lines = logs.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not self.recent:  # the lines shown elsewhere still end a failure's message
            self.recent.extend(ln.rstrip("\r") for ln in lines[: self.shown][-LAST_LINES:])
        for line in lines[self.shown :]:
            self._show(line)
        return logs

    def last_lines(self) -> str:
        """The last LAST_LINES log lines as one line: ``a | b | c``."""
        return " | ".join(ln[:LINE_CHARS] for ln in self.recent if ln.strip()) or "(no log lines)"
