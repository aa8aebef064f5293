"""Handshakes that start a race for real, instead of sleeping and hoping.

Between processes the signals are files in a folder both sides know:

- each child writes ``ready-<name>`` once it has imported and set up, then waits for ``go``;
  the parent waits for every ``ready-*`` (:func:`start_together`) before it writes ``go``;
- :func:`overlap_date_loads` (called in each child after ``go``) makes the first child inside
  ``Warehouse.date_load`` hold its transaction open until another child is seen *blocked* on that
  date (PostgreSQL: a waiting advisory lock on the date in ``pg_locks``; DuckDB: the warehouse's
  "busy in another process; waiting" log line), then write ``overlapped``. The parent asserts that
  file, so a test whose loads ran one after the other without ever meeting fails instead of passing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HANG_S = 120.0  # a handshake that takes longer than this is a hang


def wait_until(done: Callable[[], bool], what: str, *, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``done`` until it holds; fail naming ``what`` if ``alive`` stops holding or after HANG_S."""
    deadline = time.monotonic() + HANG_S
    while not done():
        assert alive(), f"gave up waiting for {what}: the other side is gone"
        assert time.monotonic() < deadline, f"{what} did not happen in {HANG_S:g} s"
        time.sleep(0.01)


def start_together(folder: Path, procs: Sequence[subprocess.Popen], names: Sequence[str]) -> None:
    """Wait until each child in ``procs`` has written ``ready-<name>``, then write ``go``."""

    def alive() -> bool:
        return all(p.poll() is None for p in procs)

    for name in names:
        wait_until(lambda name=name: (folder / f"ready-{name}").exists(), f"child {name} ready", alive=alive)
    (folder / "go").touch()


def run_together(
    folder: Path, procs: Sequence[subprocess.Popen], names: Sequence[str], timeout: float = 300
) -> list[tuple[str, str]]:
    """:func:`start_together`, then each child's (stdout, stderr); a child left behind by a failed
    start is killed."""
    try:
        start_together(folder, procs, names)
        return [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def ready_then_wait_for_go(folder: Path, name: str) -> None:
    """Child side of :func:`start_together`."""
    (folder / f"ready-{name}").touch()
    wait_until((folder / "go").exists, "the parent's go")


def overlap_date_loads(folder: Path, name: str) -> None:
    """In this (child) process, make the first ``date_load`` of any child hold its transaction
    until another child is blocked on the same date, then write ``folder/overlapped``."""
    from actrec_batch.warehouse import core

    class _Waiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "busy in another process" in record.getMessage():
                (folder / f"blocked-{name}").touch()

    logger = logging.getLogger(core.__name__)
    logger.addHandler(_Waiting())
    logger.setLevel(logging.INFO)
    real = core.Warehouse.date_load

    @contextlib.contextmanager
    def date_load(self, date):
        with real(self, date) as load:
            try:
                os.close(os.open(folder / "holder", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass  # another child held the date first, and has seen this one blocked
            else:
                with _other_blocked(self, date, folder, name) as blocked:
                    wait_until(blocked, "another load blocked on the date")
                (folder / "overlapped").write_text(name)
            yield load

    core.Warehouse.date_load = date_load


@contextlib.contextmanager
def _other_blocked(warehouse, date, folder: Path, name: str):
    """A check: is another process blocked on ``date`` of ``warehouse`` right now?"""
    if warehouse.dialect != "postgresql":
        yield lambda: any(p.name != f"blocked-{name}" for p in folder.glob("blocked-*"))
        return
    import sqlalchemy as sa

    from actrec_batch.warehouse.core import _lock_key

    key = _lock_key(date.isoformat())
    query = sa.text(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1 AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    engine = sa.create_engine(warehouse.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield lambda: bool(
                conn.execute(query, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).scalar_one()
            )
    finally:
        engine.dispose()
