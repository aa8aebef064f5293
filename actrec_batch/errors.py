"""Error types shared by every stage.

Each error carries a short ``reason`` code that users see (in ``quarantine.reason``,
in CLI output) and a message that names the object it is about (a URI, a date,
a setting).
"""

from __future__ import annotations


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

    Reason codes: ``empty``, ``truncated``, ``no_video_stream``, ``unsupported_codec``,
    ``decode_error``, ``too_large``, ``not_a_video``, ``timeout``.
    """

    reason = "decode_error"


class ValidationFailed(ActrecError):
    """A Great Expectations suite failed; the message summarises the failing expectations.

    ``docs_index`` is the path of the Data Docs ``index.html`` written for the failed run, if any.
    """

    reason = "validation_failed"

    def __init__(self, message: str, *, reason: str | None = None, docs_index: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.docs_index = docs_index
