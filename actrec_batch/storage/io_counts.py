"""Bytes and requests of this process's object stores, by S3 price class, for the cost ledger.

Every store of the process adds to one :data:`IO` counter; a stage takes :meth:`IOCounts.snapshot`
before and after its work and records the difference (:func:`io_delta`). Request classes are
S3's price classes: ``put`` (PUT, COPY, POST, LIST: multipart parts and list pages included),
``get`` (GET, HEAD and the rest), ``free`` (DELETE, abort). The S3 backend counts each HTTP call
botocore makes (its event hooks, so retries and multipart parts count as S3 bills them); the
local backend counts the calls an S3 store would make for the same operation (one LIST per 1,000
keys listed) and the bytes of the files it reads and writes, a file handed to a decoder by path
counted as read whole.

Scope: this process. Work that Ray runs in its own worker processes (decode tasks, embedders)
counts in those processes and is not in the driver's numbers.
"""

from __future__ import annotations

import threading
from typing import Any

PUT_CLASS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "ListObjectsV2",
        "ListObjects",
        "ListMultipartUploads",
        "ListParts",
        "ListBuckets",
        "PostObject",
    }
)
FREE_CLASS = frozenset({"DeleteObject", "DeleteObjects", "AbortMultipartUpload"})
FIELDS = ("bytes_read", "bytes_written", "put_requests", "get_requests", "free_requests")


class IOCounts:
    """Thread-safe counters (see the module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = dict.fromkeys(FIELDS, 0)

    def add(self, *, read: int = 0, written: int = 0, put: int = 0, get: int = 0, free: int = 0) -> None:
        with self._lock:
            self._n["bytes_read"] += int(read)
            self._n["bytes_written"] += int(written)
            self._n["put_requests"] += put
            self._n["get_requests"] += get
            self._n["free_requests"] += free

    def request(self, operation: str, *, read: int = 0, written: int = 0) -> None:
        """One S3 API call named ``operation`` (botocore's operation name)."""
        if operation in PUT_CLASS:
            self.add(put=1, read=read, written=written)
        elif operation in FREE_CLASS:
            self.add(free=1)
        else:
            self.add(get=1, read=read, written=written)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._n)


IO = IOCounts()


def io_delta(before: dict[str, int], after: dict[str, int] | None = None) -> dict[str, int]:
    """What the process's stores did since ``before`` (a :meth:`IOCounts.snapshot`)."""
    after = after if after is not None else IO.snapshot()
    return {k: after[k] - before.get(k, 0) for k in FIELDS}


def io_sum(*parts: dict[str, Any] | None) -> dict[str, int]:
    """The field-wise sum of stage records' ``io`` (None or missing fields count 0)."""
    return {k: sum(int((p or {}).get(k, 0)) for p in parts) for k in FIELDS}


def count_s3_calls(client: Any) -> None:
    """Hook ``client`` (a boto3 S3 client) so each of its calls adds to :data:`IO` (once per client)."""
    if getattr(client, "_actrec_io_counted", False):
        return
    client._actrec_io_counted = True
    sizes: dict[int, int] = {}

    def before_send(request: Any = None, **_: Any) -> None:
        length = request.headers.get("Content-Length") if request is not None else None
        if length is not None and request.method in ("PUT", "POST"):
            sizes[threading.get_ident()] = int(length)

    def after_call(model: Any = None, parsed: Any = None, **_: Any) -> None:
        written = sizes.pop(threading.get_ident(), 0)
        read = 0
        if model is not None and model.name == "GetObject" and isinstance(parsed, dict):
            read = int(parsed.get("ContentLength") or 0)
        IO.request(model.name if model is not None else "", read=read, written=written)

    client.meta.events.register("before-send.s3", before_send)
    client.meta.events.register("after-call.s3", after_call)
