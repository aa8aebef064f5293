"""The :class:`ObjectStore` interface that both backends implement, and the :class:`ObjectInfo` it returns.

The contract is described in the package docstring (:mod:`actrec_batch.storage`).
"""

from __future__ import annotations

import builtins
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from actrec_batch.errors import StorageError
from actrec_batch.storage._atomic_file import _atomic_local_file

MiB = 2**20
_COPY_CHUNK = 1 * MiB


@dataclass(frozen=True)
class ObjectInfo:
    """One object. ``size`` is in bytes. ``last_modified`` is timezone-aware UTC, or ``None`` where the call
    did not learn it (S3 ``put_bytes``, which skips the extra HEAD).

    ``etag`` is the S3 ETag without its quotes. It changes when the object does, but it is not a content
    hash: multipart uploads end in ``-N``. The local backend has no ETag and reports ``None``.
    """

    key: str
    size: int
    etag: str | None
    last_modified: datetime | None


@dataclass(frozen=True)
class RejectedKey:
    """An object that listing found but the key rules (:func:`normalize_key`) reject, so it cannot be
    read through the store. ``key`` and ``uri`` name it with backslashes, control characters and
    undecodable bytes percent-encoded (``camera=a%5Cb/x.mp4``), so they can be logged and stored;
    ``problem`` is the rule it breaks, ``size`` its bytes."""

    key: str
    uri: str
    size: int
    problem: str


class ObjectStore(ABC):
    """A flat namespace of immutable-once-written objects under ``root_uri``. See the module docstring."""

    root_uri: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"

    @abstractmethod
    def uri(self, key: str) -> str:
        """The full URI of a key, e.g. ``s3://bucket/prefix/key`` or ``file:///root/key`` (percent-encoded).

        A prefix ending in "/" gives a "directory" URI that ends in "/", and "" gives ``root_uri``.
        """

    @abstractmethod
    def list(
        self, prefix: str = "", *, rejected: builtins.list[RejectedKey] | None = None
    ) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, sorted by key; lazy and paginated.

        Objects whose names the key rules reject are skipped with a warning, or, given a
        ``rejected`` list, appended to it (as the listing reaches them), so a caller can account for them.
        """

    @abstractmethod
    def list_dirs(self, prefix: str) -> builtins.list[str]:
        """Sorted names of the "directories" directly under ``prefix`` (a "/" is appended if missing)."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """The object's size, ETag and time. Raises ``not_found``."""

    def exists(self, key: str) -> bool:
        """Whether the object exists. A missing S3 bucket still raises ``not_found``."""
        try:
            self.stat(key)
        except _BucketNotFound:
            raise
        except StorageError as exc:
            if exc.reason == "not_found":
                return False
            raise
        return True

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A seekable binary reader for the object. Raises ``not_found``. Close it when done."""

    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory; for small objects. Raises ``not_found``."""
        with self.open_read(key) as reader:
            return reader.read()

    def download(self, key: str, dest: Path) -> Path:
        """Copy the object to the local file ``dest`` in chunks, creating its directory, and return ``dest``.

        ``dest`` appears whole or not at all (temporary file, fsync, rename). Raises ``not_found``, and then
        leaves ``dest`` as it was.
        """
        dest = Path(dest)
        with _atomic_local_file(dest, str(dest)) as out:
            self._download_into(key, out)
        return dest

    def _download_into(self, key: str, out: BinaryIO) -> None:
        with self.open_read(key) as reader:
            shutil.copyfileobj(reader, out, _COPY_CHUNK)

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Write ``data`` as the object atomically, replacing any old one."""

    @abstractmethod
    def put_file(self, key: str, src: Path) -> ObjectInfo:
        """Upload the local file ``src`` atomically, streaming it (S3: multipart above the threshold)."""

    @abstractmethod
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """``with store.open_write(key) as out:`` publishes what was written when the block exits cleanly.

        Until then, nobody sees a new object. If the block raises, nothing is published, and an old object
        stays as it was.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object; a missing one is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (a non-empty string) and return how many."""

    @abstractmethod
    def local_path(self, key: str) -> Path | None:
        """The object's real file for readers that want a path (such as PyAV), or ``None`` if not local."""


class _BucketNotFound(StorageError):
    """A missing S3 bucket. ``exists()`` raises it instead of answering ``False``."""

    reason = "not_found"
