"""The one reconciliation check: every video discovered is either processed or quarantined.

Discovery, the inference job, the run summary (and so the DAG and the CLI) all call
:func:`reconcile`; a mismatch raises :class:`~actrec_batch.errors.ReconcileError` (reason
``reconcile``) naming the date or run and the counts. See docs/reference.md.
"""

from __future__ import annotations

from actrec_batch.errors import ReconcileError


def reconcile(
    what: str,
    discovered: int,
    processed: int,
    quarantined: int,
    *,
    discovered_as: str = "discovered",
    processed_as: str = "processed",
) -> None:
    """Check ``discovered == processed + quarantined`` for ``what`` (e.g. ``"run R of 2026-11-24"``).

    ``discovered_as`` and ``processed_as`` name the counts in the message (discovery counts
    ``manifested`` videos as processed; the job counts the ``manifested`` videos it was given as
    discovered). Raises :class:`ReconcileError`, e.g. ``discovery of 2026-11-24 does not reconcile:
    5 discovered != 3 manifested + 1 quarantined``.
    """
    if discovered != processed + quarantined:
        raise ReconcileError(
            f"{what} does not reconcile: {discovered} {discovered_as} != "
            f"{processed} {processed_as} + {quarantined} quarantined"
        )
