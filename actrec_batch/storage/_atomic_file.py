"""Atomic local file writes: a temporary file beside the target, fsynced, then renamed over it.

``LocalStore.open_write`` and ``ObjectStore.download`` both publish local files this way, so a reader
sees the old file or the new one, never a part.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from actrec_batch.errors import StorageError
from actrec_batch.storage.keys import TMP_PREFIX


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
