"""Object storage for footage, manifests, caches and reports: one interface, two backends.

``open_store(uri)`` returns a :class:`LocalStore` for a local path or ``file:///abs/path`` and an
:class:`S3Store` for ``s3://bucket/prefix``. One contract holds for both, and one shared test suite
(``tests/test_storage.py``) checks it against a directory and against S3 over real HTTP:

* Keys are "/"-separated paths relative to the store root; :func:`normalize_key` says which are valid.
* Listing is recursive and sorted by key in UTF-8 byte order, the order S3 uses. Prefixes match as plain
  strings, as in S3: ``"a/b"`` also matches ``"a/bc"``, and ``"a/b/"`` does not.
* A "directory" exists only while it holds an object. The local backend removes the directories that a
  delete leaves empty.
* Every write is atomic: a reader sees the old object or the new one, never a part. Local writes go to a
  temporary file in the target's directory, which is fsynced and then renamed over the target. S3 publishes
  whole objects, through PUT or CompleteMultipartUpload.
* Deleting a key that is not there is not an error, as in S3.
* Failures raise :class:`StorageError` with the reason ``invalid_key``, ``not_found``, ``io_error`` or
  ``bad_uri``, and a one-line message that names the key or the URI.

This is the only module in the project that imports boto3 and botocore.
"""

from __future__ import annotations

import builtins
import errno
import io
import logging
import os
import re
import secrets
import shutil
import stat as stat_mode
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from actrec_batch.errors import StorageError

log = logging.getLogger(__name__)

MiB = 2**20
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
READ_AHEAD = 1 * MiB  # bytes fetched per ranged GET by S3 readers
TMP_PREFIX = ".actrec-tmp-"  # in-progress local writes; never listed, never a valid key segment

_COPY_CHUNK = 1 * MiB
_SPOOL_IN_MEMORY = 8 * MiB  # S3 open_write keeps smaller objects in memory, bigger ones in a temp file
_MIN_PART = 5 * MiB  # S3's minimum size for every multipart part except the last
_DEFAULT_PART = 8 * MiB
_DELETE_BATCH = 1000  # most keys one DeleteObjects request accepts
_MAX_KEY_BYTES = 1024  # S3's key limit
_MAX_SEGMENT_BYTES = 255  # NAME_MAX on common filesystems
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")  # two letters or more, so "C:" is not a scheme
_ACCEPTED_FORMS = "expected a local path, file:///abs/path or s3://bucket/prefix"
_CREDENTIALS_HINT = (
    "check the AWS credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, "
    "instance role) and the bucket policy"
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "403",
        "Forbidden",
    }
)


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


def normalize_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key, or raise ``StorageError(reason="invalid_key")``.

    A key is a "/"-separated path relative to the store root. Any Unicode text is allowed, spaces
    included, and keys are never rewritten, so they round-trip exactly. These are rejected rather than
    normalised: empty keys, absolute paths ("/a"), empty segments ("a//b", "a/"), "." and ".." segments,
    backslashes, NUL and other control characters, segments over 255 UTF-8 bytes, keys over 1024 UTF-8
    bytes, and segments that start with ``TMP_PREFIX``. Rejecting "a//b" instead of collapsing it keeps the
    backends in agreement: S3 stores "a//b" and "a/b" as two objects, and a filesystem as one.
    """
    problem = _key_problem(key)
    if problem:
        raise StorageError(f"invalid object key {key!r}: {problem}", reason="invalid_key")
    return key


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"expected a str, got {type(key).__name__}"
    if not key:
        return "the key is empty"
    if key.startswith("/"):
        return "absolute paths are not allowed; keys are relative to the store root"
    if "\\" in key:
        return "backslashes are not allowed; use '/' as the separator"
    if _CONTROL_CHARS.search(key):
        return "control characters (NUL, newline, ...) are not allowed"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode text"
    if size > _MAX_KEY_BYTES:
        return f"it is {size} UTF-8 bytes long; the limit is {_MAX_KEY_BYTES}"
    for segment in key.split("/"):
        if not segment:
            return "empty path segments ('a//b', a trailing '/') are not allowed"
        if segment in (".", ".."):
            return "'.' and '..' segments are not allowed"
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            return f"a path segment is over {_MAX_SEGMENT_BYTES} UTF-8 bytes"
        if segment.startswith(TMP_PREFIX):
            return f"segments starting with {TMP_PREFIX!r} are reserved for in-progress writes"
    return None


def _normalize_prefix(prefix: str, what: str = "key prefix") -> str:
    """Check a prefix: "" (everything), a key, or a key followed by "/"."""
    if prefix == "":
        return prefix
    problem = _key_problem(prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix)
    if problem:
        raise StorageError(f"invalid {what} {prefix!r}: {problem}", reason="invalid_key")
    return prefix


def _directory_prefix(prefix: str) -> str:
    prefix = _normalize_prefix(prefix)
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


def _deletable_prefix(prefix: str) -> str:
    prefix = _normalize_prefix(prefix)
    if not prefix:
        raise StorageError(
            "refusing to delete the whole store: delete_prefix needs a prefix", reason="invalid_key"
        )
    return prefix


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
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, sorted by key; lazy and paginated."""

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


# ---------------------------------------------------------------------------------------------- local


class LocalStore(ObjectStore):
    """Objects are files under ``root``, and a key is a file's path relative to it.

    The root is created on the first write. Every key is checked to resolve inside the root, so a symlink
    cannot lead a key outside it. Listing does not descend into symlinked directories. It lists a
    symlinked file only if the file resolves inside the root.
    """

    def __init__(self, root: Path) -> None:
        try:
            self.root = Path(root).expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise _bad_uri(str(root), f"cannot resolve the path ({exc})") from exc
        if self.root.exists() and not self.root.is_dir():
            raise _bad_uri(str(root), "it is a file, not a directory")
        self.root_uri = self.root.as_uri()

    def uri(self, key: str) -> str:
        key = _normalize_prefix(key, "object key")
        if not key:
            return self.root_uri
        return (self.root / key).as_uri() + ("/" if key.endswith("/") else "")

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def _path(self, key: str) -> Path:
        path = self.root / normalize_key(key)
        self._check_inside(path, key)
        return path

    def _check_inside(self, path: Path, key: str) -> None:
        try:
            inside = path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise StorageError(f"cannot resolve {path}: {exc}", reason="io_error") from exc
        if not inside:
            raise StorageError(
                f"invalid object key {key!r}: it resolves outside the store root {self.root_uri} through a symlink",
                reason="invalid_key",
            )

    @contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise StorageError(f"no object at {self.uri(key)}", reason="not_found") from exc
        except OSError as exc:
            raise StorageError(
                f"cannot read {self.uri(key)}: {exc.strerror or exc}", reason="io_error"
            ) from exc

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with self._reading(key):
            st = path.stat()
        if not stat_mode.S_ISREG(st.st_mode):
            raise StorageError(f"no object at {self.uri(key)} (it is a directory)", reason="not_found")
        return _local_info(key, st)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        prefix = _normalize_prefix(prefix)
        start_key = prefix[: prefix.rfind("/") + 1]
        if start_key:
            self._check_inside(self.root / start_key, prefix)
        return self._walk(self.root / start_key, start_key, prefix)

    def _walk(self, directory: Path, dir_key: str, prefix: str) -> Iterator[ObjectInfo]:
        # Sorting each directory's names, with "/" appended to subdirectories, yields keys in global order.
        try:
            with os.scandir(directory) as scan:
                entries = [
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in scan
                    if not entry.name.startswith(TMP_PREFIX)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"cannot list {directory}: {exc.strerror or exc}", reason="io_error") from exc
        entries.sort(key=lambda named: named[0])
        for name, entry in entries:
            key = dir_key + name
            if name.endswith("/"):
                if key.startswith(prefix) or prefix.startswith(key):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif key.startswith(prefix):
                info = self._entry_info(key, entry)
                if info is not None:
                    yield info

    def _entry_info(self, key: str, entry: os.DirEntry) -> ObjectInfo | None:
        if _key_problem(key):
            log.warning("skipping %s: its name is not a valid object key (%s)", entry.path, _key_problem(key))
            return None
        try:
            st = entry.stat()  # follows a symlink
            if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(self.root):
                log.warning("skipping %s: the symlink points outside the store root", entry.path)
                return None
        except (OSError, RuntimeError):  # vanished meanwhile, a dangling symlink or a loop
            return None
        return _local_info(key, st) if stat_mode.S_ISREG(st.st_mode) else None

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        prefix = _directory_prefix(prefix)
        directory = self.root / prefix
        if prefix:
            self._check_inside(directory, prefix)
        try:
            with os.scandir(directory) as scan:
                candidates = [
                    entry
                    for entry in scan
                    if entry.is_dir(follow_symlinks=False) and not _key_problem(entry.name)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {directory}: {exc.strerror or exc}", reason="io_error") from exc
        # A directory holding no object (only in-progress writes, say) does not exist in S3 either.
        return sorted(
            entry.name
            for entry in candidates
            if next(self._walk(Path(entry.path), f"{prefix}{entry.name}/", ""), None) is not None
        )

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        with self._reading(key):
            return open(path, "rb")  # noqa: SIM115 - the caller owns and closes it

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._reading(key):
            return path.read_bytes()

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        with self.open_write(key) as out:
            out.write(data)
        return self.stat(key)

    def put_file(self, key: str, src: Path) -> ObjectInfo:
        with open(src, "rb") as source, self.open_write(key) as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
        return self.stat(key)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        with _atomic_local_file(path, self.uri(key)) as out:
            yield out

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageError(
                f"cannot delete {self.uri(key)}: {exc.strerror or exc}", reason="io_error"
            ) from exc
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        prefix = _deletable_prefix(prefix)
        deleted, parents = 0, set()
        for info in self.list(prefix):
            path = self.root / info.key
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(
                    f"cannot delete {path.as_uri()}: {exc.strerror or exc}", reason="io_error"
                ) from exc
            deleted += 1
            parents.add(path.parent)
        for directory in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            self._prune(directory)
        return deleted

    def _prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents, up to the root, while they are empty."""
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _local_info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, st.st_size, None, datetime.fromtimestamp(st.st_mtime, tz=UTC))


@contextmanager
def _atomic_local_file(dest: Path, what: str) -> Iterator[BinaryIO]:
    """Yield a new temporary file beside ``dest``. On a clean exit, fsync it and rename it over ``dest``.

    If the block raises, the temporary file is removed and ``dest`` is left as it was. ``what`` names the
    target in error messages. Errors raised by the block itself pass through unchanged.
    """
    try:
        out, tmp = _create_temp_beside(dest)
    except OSError as exc:
        raise StorageError(f"cannot write {what}: {exc.strerror or exc}", reason="io_error") from exc
    try:
        yield out
    except BaseException:
        _discard(out, tmp)
        raise
    try:
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(tmp, dest)
    except BaseException as exc:
        _discard(out, tmp)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {what}: {exc.strerror or exc}", reason="io_error") from exc
        raise
    _fsync_directory(dest.parent)  # makes the rename itself durable


def _discard(out: BinaryIO, tmp: Path) -> None:
    with suppress(OSError):
        out.close()
    with suppress(OSError):
        os.unlink(tmp)


def _create_temp_beside(dest: Path) -> tuple[BinaryIO, Path]:
    for attempt in range(3):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            # Mode 0o666 lets the umask decide, as for any new file; mkstemp would force 0o600.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # a concurrent delete pruned the directory we just made
            if attempt == 2:
                raise
            continue
        return os.fdopen(fd, "wb"), tmp
    raise AssertionError("unreachable")


def _fsync_directory(directory: Path) -> None:
    with suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------------------- S3


def make_s3_client():
    """A boto3 S3 client from the standard credential chain that honours ``AWS_ENDPOINT_URL``.

    It retries up to 5 times in "standard" mode and pools 32 connections, enough for the transfer
    manager's threads.
    """
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
    try:
        return boto3.session.Session().client(
            "s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None, config=config
        )
    except BotoCoreError as exc:
        raise StorageError(
            f"cannot create an S3 client: {exc}; {_CREDENTIALS_HINT}", reason="io_error"
        ) from exc


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into ``(bucket, prefix)``.

    The prefix has no trailing "/" and may be "". It must be a valid key (see :func:`normalize_key`), so
    ``s3://models/x3d/v1.safetensors`` gives ``("models", "x3d/v1.safetensors")``. Raises ``bad_uri``.
    """
    if not isinstance(uri, str) or uri[:5].lower() != "s3://":
        raise _bad_uri(uri, "it does not start with s3://")
    bucket, _, prefix = uri[5:].partition("/")
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise _bad_uri(
            uri, f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')"
        )
    prefix = prefix.removesuffix("/")
    problem = _key_problem(prefix) if prefix else None
    if problem:
        raise _bad_uri(uri, f"invalid prefix: {problem}")
    return bucket, prefix


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``. Keys are relative to the prefix.

    Opening it does no I/O. A missing bucket shows up at the first request as ``not_found``. Uploads use
    the transfer manager, which switches to a parallel multipart upload from ``multipart_threshold``
    bytes.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client=None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    ) -> None:
        if multipart_threshold <= 0:
            raise ValueError(f"multipart_threshold must be positive, got {multipart_threshold}")
        self.bucket = bucket
        self.prefix = prefix
        self.root_uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._base = f"{prefix}/" if prefix else ""
        self._client = client if client is not None else make_s3_client()
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(_MIN_PART, min(multipart_threshold, _DEFAULT_PART)),
        )
        self._bucket_seen = False

    def uri(self, key: str) -> str:
        key = _normalize_prefix(key, "object key")
        return f"s3://{self.bucket}/{self._base}{key}" if key else self.root_uri

    def local_path(self, key: str) -> None:
        normalize_key(key)
        return None

    def _full(self, key: str) -> str:
        return self._base + normalize_key(key)

    def stat(self, key: str) -> ObjectInfo:
        full = self._full(key)
        with self._errors(full):
            head = self._client.head_object(Bucket=self.bucket, Key=full)
        return ObjectInfo(
            key, head["ContentLength"], _unquote_etag(head.get("ETag")), head.get("LastModified")
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._list(self._base + _normalize_prefix(prefix))

    def _list(self, full_prefix: str) -> Iterator[ObjectInfo]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
        with self._errors(full_prefix):
            for page in pages:
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(self._base) :]
                    problem = _key_problem(key)
                    if problem:
                        if key and not key.endswith("/"):  # "folder" markers are expected; others odd
                            log.warning("skipping s3://%s/%s: %s", self.bucket, obj["Key"], problem)
                        continue
                    yield ObjectInfo(
                        key, obj["Size"], _unquote_etag(obj.get("ETag")), obj.get("LastModified")
                    )

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        full = self._base + _directory_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/"
        )
        names = []
        with self._errors(full):
            for page in pages:
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][len(full) : -1]
                    if not _key_problem(name):
                        names.append(name)
        return sorted(names)

    def open_read(self, key: str) -> BinaryIO:
        info = self.stat(key)
        full = self._full(key)
        return _S3RangeReader(
            lambda start, stop: self._get_range(full, start, stop, info.etag), info.size, self.uri(key)
        )

    def _get_range(self, full: str, start: int, stop: int, etag: str | None) -> bytes:
        # If-Match pins the version we opened: a concurrent overwrite fails loudly instead of mixing two.
        pin = {"IfMatch": f'"{etag}"'} if etag else {}
        with self._errors(full):
            response = self._client.get_object(
                Bucket=self.bucket, Key=full, Range=f"bytes={start}-{stop - 1}", **pin
            )
            return response["Body"].read()

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        with self._errors(full):
            return self._client.get_object(Bucket=self.bucket, Key=full)["Body"].read()

    def _download_into(self, key: str, out: BinaryIO) -> None:
        full = self._full(key)
        with self._errors(full):
            self._client.download_fileobj(self.bucket, full, out, Config=self._transfer)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        full = self._full(key)
        with self._errors(full):
            response = self._client.put_object(Bucket=self.bucket, Key=full, Body=data)
        # No HEAD for last_modified: it would double the cost of every small write.
        return ObjectInfo(key, len(data), _unquote_etag(response.get("ETag")), None)

    def put_file(self, key: str, src: Path) -> ObjectInfo:
        full = self._full(key)
        with open(src, "rb") as source:
            self._upload(source, full)
        return self.stat(key)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        full = self._full(key)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            yield spool
            spool.seek(0)
            self._upload(spool, full)

    def _upload(self, source: BinaryIO, full: str) -> None:
        with self._errors(full):
            self._client.upload_fileobj(source, self.bucket, full, Config=self._transfer)

    def delete(self, key: str) -> None:
        full = self._full(key)
        with self._errors(full):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    def delete_prefix(self, prefix: str) -> int:
        full = self._base + _deletable_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        deleted = 0
        with self._errors(full):
            for page in pages:
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
                for start in range(0, len(keys), _DELETE_BATCH):
                    batch = keys[start : start + _DELETE_BATCH]
                    response = self._client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                    )
                    failed = response.get("Errors", [])
                    if failed:
                        raise StorageError(
                            f"could not delete {len(failed)} object(s) under s3://{self.bucket}/{full}; "
                            f"first: {failed[0].get('Key')}: {failed[0].get('Code')} {failed[0].get('Message')}",
                            reason="io_error",
                        )
                    deleted += len(batch)
        return deleted

    @contextmanager
    def _errors(self, full_key: str) -> Iterator[None]:
        """Turn boto3/botocore failures into ``StorageError``s that name ``s3://bucket/<full_key>``."""
        try:
            yield
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise self._storage_error(exc, f"s3://{self.bucket}/{full_key}") from exc

    def _storage_error(self, exc: Exception, uri: str) -> StorageError:
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            exc = exc.__context__  # the transfer manager wraps the real ClientError
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return StorageError(
                f"no usable AWS credentials for {uri} ({exc}); {_CREDENTIALS_HINT}", reason="io_error"
            )
        if isinstance(exc, EndpointConnectionError):
            return StorageError(
                f"cannot reach S3 for {uri} ({exc}); check AWS_ENDPOINT_URL", reason="io_error"
            )
        if not isinstance(exc, ClientError):
            return StorageError(f"S3 request for {uri} failed: {exc}", reason="io_error")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return self._bucket_not_found()
        if code in _NOT_FOUND_CODES:
            # A HEAD's 404 carries no error code, so it cannot tell a missing bucket from a missing key.
            return self._missing_bucket() or StorageError(f"no object at {uri}", reason="not_found")
        if code in _ACCESS_CODES or status == 403:
            return StorageError(f"S3 denied access to {uri} ({code}); {_CREDENTIALS_HINT}", reason="io_error")
        if code == "PreconditionFailed" or status == 412:
            return StorageError(
                f"{uri} was replaced while it was being read; open it again", reason="io_error"
            )
        return StorageError(
            f"S3 request for {uri} failed: {code} {error.get('Message', '')}", reason="io_error"
        )

    def _missing_bucket(self) -> StorageError | None:
        if self._bucket_seen:
            return None
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                return self._bucket_not_found()
            return None  # forbidden, say: we cannot tell, so report the key
        except BotoCoreError:
            return None
        self._bucket_seen = True
        return None

    def _bucket_not_found(self) -> StorageError:
        return _BucketNotFound(
            f"S3 bucket {self.bucket!r} does not exist (store {self.root_uri}); create it or fix ACTREC_STORE",
            reason="not_found",
        )


class _S3RangeReader(io.RawIOBase):
    """A seekable reader over one S3 object that fetches it by ranged GETs through a read-ahead buffer.

    A read fetches at least ``READ_AHEAD`` bytes from the current position, so the many small reads of a
    demuxer (PyAV, for one) cost one request per MiB. A seek costs nothing until the next read, so probing
    a header and the index at the end of a file fetches only those parts. ``bytes_fetched`` counts the
    bytes received. ``size`` is the object's size, and ``name`` is its URI.
    """

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, name: str) -> None:
        super().__init__()
        self._fetch = fetch  # (start, stop) -> bytes of [start, stop)
        self.size = size
        self.name = name
        self.bytes_fetched = 0
        self._pos = 0
        self._buffer = b""
        self._buffer_start = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:  # as a local file does
            raise OSError(errno.EINVAL, f"negative seek position {position}")
        self._pos = position
        return position

    def readinto(self, target) -> int:
        self._checkClosed()
        view = memoryview(target).cast("B")
        wanted = max(0, min(len(view), self.size - self._pos))
        done = 0
        while done < wanted:
            offset = self._pos - self._buffer_start
            if 0 <= offset < len(self._buffer):
                n = min(wanted - done, len(self._buffer) - offset)
                view[done : done + n] = self._buffer[offset : offset + n]
            elif wanted - done >= READ_AHEAD:  # a big read: fetch exactly that, skip the buffer
                chunk = self._fetch_range(self._pos, self._pos + wanted - done)
                n = len(chunk)
                view[done : done + n] = chunk
            else:
                self._buffer = self._fetch_range(self._pos, min(self.size, self._pos + READ_AHEAD))
                self._buffer_start = self._pos
                continue
            done += n
            self._pos += n
        return done

    def _fetch_range(self, start: int, stop: int) -> bytes:
        data = self._fetch(start, stop)
        self.bytes_fetched += len(data)
        if not data:
            raise StorageError(
                f"{self.name} ended before byte {start}; it changed while being read", reason="io_error"
            )
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self.size - self.tell())
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        self._buffer = b""
        super().close()


def _unquote_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


# --------------------------------------------------------------------------------------------- opening


def open_store(
    uri: str, *, s3_client=None, multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
) -> ObjectStore:
    """Open the store at ``uri`` (the ``ACTREC_STORE`` setting) without doing any I/O.

    The accepted forms are a local path (relative paths resolve against the working directory, and "~"
    expands), ``file:///abs/path`` (percent-encoded, host empty or ``localhost``) and
    ``s3://bucket/prefix``. Any other ``scheme:`` prefix raises ``StorageError(reason="bad_uri")``, as
    does a malformed URI; write ``./x:y`` for a local directory whose name has a colon. For S3,
    ``s3_client`` replaces the client built by :func:`make_s3_client`, and ``multipart_threshold``
    (bytes) is the size from which uploads go multipart.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise _bad_uri(uri, "it is empty")
    scheme = _URI_SCHEME.match(uri)
    scheme_name = scheme.group(1).lower() if scheme else None
    if scheme_name == "s3":
        bucket, prefix = parse_s3_uri(uri)
        return S3Store(bucket, prefix, client=s3_client, multipart_threshold=multipart_threshold)
    if scheme_name == "file":
        return LocalStore(_file_uri_path(uri))
    if scheme_name is not None:
        raise _bad_uri(uri, f"unsupported scheme {scheme_name!r}")
    return LocalStore(Path(uri))


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise _bad_uri(uri, f"a file URI needs an absolute path, file:///abs/path, not host {parts.netloc!r}")
    if parts.query or parts.fragment:
        raise _bad_uri(uri, "it has a query or fragment; percent-encode '?' and '#' in paths")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise _bad_uri(uri, "a file URI needs an absolute path")
    return Path(path)


def _bad_uri(uri: object, why: str) -> StorageError:
    return StorageError(f"bad store URI {uri!r}: {why}; {_ACCEPTED_FORMS}", reason="bad_uri")
