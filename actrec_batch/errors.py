"""Error types shared by every stage.

Each error carries a short ``reason`` code that users see (in ``quarantine.reason``,
in CLI output) and a message that names the object it is about (a URI, a date,
a setting).
"""

from __future__ import annotations

from enum import StrEnum


class QuarantineReason(StrEnum):
    """Why a discovered object was quarantined (``quarantine.reason``; docs/reference.md).

    A ``StrEnum``: each member *is* its string, so JSON, Parquet and SQL see the plain code."""

    EMPTY = "empty"
    TRUNCATED = "truncated"
    NOT_A_VIDEO = "not_a_video"
    NO_VIDEO_STREAM = "no_video_stream"
    UNSUPPORTED_CODEC = "unsupported_codec"
    DECODE_ERROR = "decode_error"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    BAD_LAYOUT = "bad_layout"
    INVALID_METADATA = "invalid_metadata"
    BAD_KEY = "bad_key"
    PROBE_ERROR = "probe_error"
    DECODE_CRASH = "decode_crash"
    INFER_ERROR = "infer_error"
    WORKER_LOST = "worker_lost"


class QuarantineStage(StrEnum):
    """The stage that quarantined an object (``quarantine.stage``)."""

    DISCOVER = "discover"
    INFER = "infer"


class RunStatus(StrEnum):
    """A run's outcome (``runs.status``, the summary's ``status``). A failed run's ``error`` holds
    the reason code and message of what failed it (e.g. ``reconcile``, ``validation_failed``)."""

    SUCCESS = "success"
    FAILED = "failed"


class ActrecError(Exception):
    """Base class. ``reason`` is a short, stable, machine-readable code."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:  # one line, always
        return " ".join(super().__str__().split())


class ConfigError(ActrecError):
    """A bad setting or flag. The message names the setting and the fix."""

    reason = "bad_config"


class StorageError(ActrecError):
    """Object-store failure: ``invalid_key``, ``not_found``, ``io_error``, ``bad_uri``."""

    reason = "io_error"


class VideoError(ActrecError):
    """A video that cannot be probed or decoded.

    Its ``reason`` is a :class:`QuarantineReason` (``empty``, ``truncated``, ``no_video_stream``,
    ``unsupported_codec``, ``decode_error``, ``too_large``, ``not_a_video``, ``timeout``).
    """

    reason = QuarantineReason.DECODE_ERROR


class ValidationFailed(ActrecError):
    """A Great Expectations suite failed; the message summarises the failing expectations.

    ``docs_index`` is the path of the Data Docs ``index.html`` written for the failed run, if any.
    """

    reason = "validation_failed"

    def __init__(self, message: str, *, reason: str | None = None, docs_index: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.docs_index = docs_index


class ReconcileError(ActrecError):
    """The videos of a date or run do not add up: discovered != processed + quarantined.

    Raised by :func:`actrec_batch.reconcile.reconcile`; the message names the date or run and the
    counts."""

    reason = "reconcile"


class DriftAlert(ActrecError):
    """The nightly drift report has an alert and ``drift_fail_on_alert`` is set: the message names
    the date, the run, each alert and the report's URI."""

    reason = "drift_alert"
