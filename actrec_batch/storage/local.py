"""The local-directory backend: :class:`LocalStore`, where each object is a file under the root."""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import stat as stat_mode
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from actrec_batch.errors import StorageError
from actrec_batch.storage._atomic_file import _atomic_local_file
from actrec_batch.storage.base import _COPY_CHUNK, ObjectInfo, ObjectStore, RejectedKey
from actrec_batch.storage.io_counts import IO
from actrec_batch.storage.keys import (
    TMP_PREFIX,
    _bad_uri,
    _deletable_prefix,
    _directory_prefix,
    _key_problem,
    _normalize_prefix,
    escaped_key,
    file_uri,
    normalize_key,
)

log = logging.getLogger(__name__)


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
        self.root_uri = file_uri(self.root)

    def uri(self, key: str) -> str:
        key = _normalize_prefix(key, "object key")
        if not key:
            return self.root_uri
        return file_uri(self.root / key) + ("/" if key.endswith("/") else "")

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if path.is_file():  # handed to a reader (a decoder) that reads it: counted as one whole GET
            IO.add(get=1, read=path.stat().st_size)
        return path

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
        IO.add(get=1)  # a HEAD on S3
        return self._stat(key)

    def _stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with self._reading(key):
            st = path.stat()
        if not stat_mode.S_ISREG(st.st_mode):
            raise StorageError(f"no object at {self.uri(key)} (it is a directory)", reason="not_found")
        return _local_info(key, st)

    def list(
        self, prefix: str = "", *, rejected: builtins.list[RejectedKey] | None = None
    ) -> Iterator[ObjectInfo]:
        prefix = _normalize_prefix(prefix)
        start_key = prefix[: prefix.rfind("/") + 1]
        if start_key:
            self._check_inside(self.root / start_key, prefix)
        return _counted_listing(self._walk(self.root / start_key, start_key, prefix, rejected))

    def _walk(
        self,
        directory: Path,
        dir_key: str,
        prefix: str,
        rejected: builtins.list[RejectedKey] | None = None,
    ) -> Iterator[ObjectInfo]:
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
                    yield from self._walk(Path(entry.path), key, prefix, rejected)
            elif key.startswith(prefix):
                info = self._entry_info(key, entry, rejected)
                if info is not None:
                    yield info

    def _entry_info(
        self, key: str, entry: os.DirEntry, rejected: builtins.list[RejectedKey] | None
    ) -> ObjectInfo | None:
        problem = _key_problem(key)
        if problem:
            if rejected is None:
                log.warning("skipping %s: its name is not a valid object key (%s)", entry.path, problem)
                return None
            try:
                st = entry.stat()
            except OSError:  # vanished meanwhile, or a dangling symlink
                return None
            if stat_mode.S_ISREG(st.st_mode):
                uri = file_uri(Path(entry.path))
                rejected.append(RejectedKey(escaped_key(key), uri, st.st_size, problem))
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
        IO.add(put=1)  # one LIST with a delimiter on S3
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
            reader = open(path, "rb")  # noqa: SIM115 - the caller owns and closes it
        IO.add(get=1, read=os.fstat(reader.fileno()).st_size)  # an upper bound: ranged reads read less
        return reader

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._reading(key):
            data = path.read_bytes()
        IO.add(get=1, read=len(data))
        return data

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        with self.open_write(key) as out:
            out.write(data)
        return self._stat(key)

    def put_file(self, key: str, src: Path) -> ObjectInfo:
        with open(src, "rb") as source, self.open_write(key) as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
        return self._stat(key)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        with _atomic_local_file(path, self.uri(key)) as out:
            yield out
        IO.add(put=1, written=path.stat().st_size)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            IO.add(free=1)
            return
        except OSError as exc:
            raise StorageError(
                f"cannot delete {self.uri(key)}: {exc.strerror or exc}", reason="io_error"
            ) from exc
        IO.add(free=1)
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
                    f"cannot delete {file_uri(path)}: {exc.strerror or exc}", reason="io_error"
                ) from exc
            deleted += 1
            IO.add(free=1)
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


def _counted_listing(objects: Iterator[ObjectInfo]) -> Iterator[ObjectInfo]:
    """``objects``, counting the LIST requests S3 would make for them (one per 1,000 keys)."""
    IO.add(put=1)
    for n, info in enumerate(objects, 1):
        if n % 1000 == 0:
            IO.add(put=1)
        yield info
