"""Evaluation on cameras that write rolling files: ground truth and predictions moved onto the
camera's chains of abutting files (:mod:`actrec_batch.chains`)."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence

import pyarrow.parquet as pq

from actrec_batch import layout
from actrec_batch.chains import (
    DEFAULT_TOLERANCE_S,
    Chain,
    chain_index,
    chain_name,
    chain_videos,
    parse_file_time_pattern,
    video_clocks,
)
from actrec_batch.errors import ConfigError
from actrec_batch.evaluation.metrics import GTEvent, PredEvent
from actrec_batch.storage import ObjectStore

# Ground-truth parts of one action across a cut: one ends, and the next starts, within this many
# seconds of the cut (labels are on the frame grid; a hand label may stop a frame or two short).
SEAM_TOUCH_S = 0.1


def load_chains(
    store: ObjectStore,
    date: dt.date,
    *,
    file_time_pattern: str | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> list[Chain]:
    """The chains of ``date``'s manifested videos (:func:`actrec_batch.chains.chain_videos`); empty
    when the date has no manifest (then every file stands alone).

    Raises ``ConfigError`` for a bad ``file_time_pattern``."""
    from actrec_batch.storage import StorageError

    try:
        pattern = parse_file_time_pattern(file_time_pattern)
    except ValueError as exc:
        raise ConfigError(
            f"bad setting file_time_pattern = {file_time_pattern!r} (--file-time-pattern / "
            f"ACTREC_FILE_TIME_PATTERN): {exc}. Fix: use a strftime pattern such as %Y%m%dT%H%M%SZ",
            reason="bad_config",
        ) from None
    try:
        data = store.get_bytes(layout.manifest_key(date))
    except StorageError as exc:
        if exc.reason != "not_found":
            raise
        return []
    # Without Arrow's thread pools (pre-buffering uses the I/O pool): their threads, still alive at
    # interpreter exit, made `actrec eval` abort now and then ("terminate called without an active
    # exception", exit code 134), after it had printed its report.
    columns = ["video_id", "camera_id", "duration_s", "key", "creation_time"]
    rows = (
        pq.ParquetFile(io.BytesIO(data), pre_buffer=False)
        .read(columns=columns, use_threads=False)
        .to_pylist()
    )
    return chain_videos(video_clocks(rows, pattern), tolerance_s)


def on_chains(
    preds: Iterable[PredEvent], truths: Iterable[GTEvent], videos: Iterable[str], chains: Sequence[Chain]
) -> tuple[list[PredEvent], list[GTEvent], list[str]]:
    """Predictions, ground truth and video list moved from files onto chains: an event of file ``k``
    of a chain is placed at ``offsets_s[k]`` plus its times, and its ``video`` becomes the chain's
    name (:func:`actrec_batch.chains.chain_name`). A prediction keeps its length (its ``end_s`` is
    measured from the start of the file it starts in, even when it ends in a later file). Ground-truth
    events of one label that end and start within :data:`SEAM_TOUCH_S` of the same cut are joined.
    Files in no chain are left as they are.
    """
    where = chain_index(chains)
    names = {id(c): chain_name(c) for c in chains}

    def place(video: str) -> tuple[str, float, Chain | None]:
        chain, offset = where.get(video, (None, 0.0))
        return (video, 0.0, None) if chain is None else (names[id(chain)], offset, chain)

    moved_preds = []
    for p in preds:
        name, off, _ = place(p.video)
        moved_preds.append(PredEvent(name, p.label, p.start_s + off, p.end_s + off, p.confidence))
    seams: dict[str, tuple[float, ...]] = {}
    moved: list[GTEvent] = []
    for g in truths:
        name, off, chain = place(g.video)
        if chain is not None:
            seams[name] = chain.seams_s
        moved.append(GTEvent(name, g.label, g.start_s + off, g.end_s + off))
    joined: list[GTEvent] = []
    for g in sorted(moved, key=lambda g: (g.video, g.label, g.start_s, g.end_s)):
        cuts = [cut for cut in seams.get(g.video, ()) if abs(g.start_s - cut) <= SEAM_TOUCH_S]
        part = next(
            (
                i
                for i in range(len(joined) - 1, -1, -1)
                if (joined[i].video, joined[i].label) == (g.video, g.label)
                and any(abs(joined[i].end_s - cut) <= SEAM_TOUCH_S for cut in cuts)
            ),
            None,
        )
        if part is None:
            joined.append(g)
        else:
            joined[part] = GTEvent(g.video, g.label, joined[part].start_s, max(joined[part].end_s, g.end_s))
    joined.sort(key=lambda g: (g.video, g.start_s, g.end_s, g.label))
    return moved_preds, joined, sorted({place(v)[0] for v in videos})
