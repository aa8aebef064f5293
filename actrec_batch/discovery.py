"""Nightly discovery: list a date's footage, probe every file in parallel, write the manifest.

Flow: ``footage/date=D/camera=*/`` listing (names the storage rules refuse: ``bad_key``) ->
parallel probe + content id -> manifest rows or quarantine records -> GX manifest suite (a row it
refuses: ``invalid_metadata``) -> manifest + quarantine Parquet (atomic, replaced on rerun) ->
summary. Every discovered object ends in exactly one of manifest or quarantine, and
:func:`discover` checks that before it returns.

Probing reads the container header (and, for the truncation check, the last GOP), so its cost
grows with header size, not file size. The content id is separate, see :func:`content_id`.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.errors import ActrecError, QuarantineReason, QuarantineStage, VideoError
from actrec_batch.manifest import QuarantineRecord, manifest_table, write_manifest, write_quarantine
from actrec_batch.reconcile import reconcile
from actrec_batch.storage import ObjectInfo, ObjectStore, RejectedKey, open_store

log = logging.getLogger(__name__)

STAGE = QuarantineStage.DISCOVER
_HASH_CHUNK = 4 * 2**20
_FAST_SAMPLE = 2**20


@dataclass(frozen=True)
class DiscoveryResult:
    """What discovery found for one logical date. ``to_json()`` gives the CLI/XCom payload."""

    logical_date: dt.date
    videos_discovered: int
    videos_manifested: int
    quarantine: tuple[QuarantineRecord, ...]
    manifest_uri: str
    quarantine_uri: str
    wall_s: float
    probe_s_total: float
    probe_bytes_read: int
    bytes_hashed: int
    content_id_method: str
    validation: dict[str, Any] = field(default_factory=dict)

    @property
    def videos_quarantined(self) -> int:
        return len(self.quarantine)

    def to_json(self) -> dict[str, Any]:
        n = max(self.videos_discovered, 1)
        return {
            "logical_date": self.logical_date.isoformat(),
            "videos_discovered": self.videos_discovered,
            "videos_manifested": self.videos_manifested,
            "videos_quarantined": self.videos_quarantined,
            "quarantine": [{"uri": q.uri, "reason": q.reason, "detail": q.detail} for q in self.quarantine],
            "quarantine_reasons": dict(Counter(q.reason for q in self.quarantine)),
            "manifest_uri": self.manifest_uri,
            "quarantine_uri": self.quarantine_uri,
            "content_id_method": self.content_id_method,
            "validation": self.validation,
            "wall_s": round(self.wall_s, 3),
            "probe_s_per_file": round(self.probe_s_total / n, 4),
            "probe_bytes_read": self.probe_bytes_read,
            "bytes_hashed": self.bytes_hashed,
        }


def video_id_for(key: str) -> str:
    """Deterministic video id: stable across reruns and across store roots for the same key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def content_id(store: ObjectStore, obj: ObjectInfo, method: str) -> tuple[str, int]:
    """Content id of an object as 64 hex chars, and the number of bytes read to compute it.

    ``sha256`` streams every byte (exact; costs a full read of the file).
    ``fast`` hashes the size with the S3 ETag when there is one, else the size with the first,
    middle and last MiB. Trade-off: it reads almost nothing, but an ETag depends on the upload's
    part size (same bytes uploaded differently -> a different id -> a needless cache miss), and
    sampled bytes cannot see an edit in an unsampled region (a false cache hit). Use ``fast`` only
    for footage that is written once and never edited in place.
    """
    h = hashlib.sha256()
    read = 0
    if method == "fast":
        h.update(f"size:{obj.size}\n".encode())
        if obj.etag:
            h.update(f"etag:{obj.etag}\n".encode())
            return h.hexdigest(), 0
        if obj.size <= 3 * _FAST_SAMPLE:  # the samples would cover the file: hash it whole, once
            return content_id(store, obj, "sha256")[0], obj.size
        with store.open_read(obj.key) as f:
            for offset in (0, obj.size // 2 - _FAST_SAMPLE // 2, obj.size - _FAST_SAMPLE):
                f.seek(offset)
                chunk = f.read(_FAST_SAMPLE)
                read += len(chunk)
                h.update(chunk)
        return h.hexdigest(), read
    with store.open_read(obj.key) as f:
        while chunk := f.read(_HASH_CHUNK):
            read += len(chunk)
            h.update(chunk)
    return h.hexdigest(), read


def _probe_object(store: ObjectStore, obj: ObjectInfo, settings: Settings) -> tuple[Any, int]:
    """Probe one object; returns (VideoInfo, bytes read). Raises VideoError with a reason."""
    from actrec_batch import video

    uri = store.uri(obj.key)
    local = store.local_path(obj.key)
    if local is not None:
        info = video.probe(local, size_bytes=obj.size, max_bytes=settings.max_video_bytes, uri=uri)
        return info, 0
    with store.open_read(obj.key) as f:
        info = video.probe(f, size_bytes=obj.size, max_bytes=settings.max_video_bytes, uri=uri)
        return info, int(getattr(f, "bytes_fetched", 0))


def _manifest_row(
    store: ObjectStore,
    obj: ObjectInfo,
    date: dt.date,
    camera: str,
    info: Any,
    cid: str,
    method: str,
    probe_bytes: int,
    keys: set[str],
) -> dict[str, Any]:
    sidecar = layout.sidecar_key(obj.key)
    return {
        "video_id": video_id_for(obj.key),
        "uri": store.uri(obj.key),
        "key": obj.key,
        "camera_id": camera,
        "logical_date": date.isoformat(),
        "content_id": cid,
        "content_id_method": method,
        "size_bytes": obj.size,
        "etag": obj.etag,
        "container": info.container,
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "display_width": info.display_width,
        "display_height": info.display_height,
        "fps": float(info.fps),
        "fps_mode": info.fps_mode,
        "duration_s": float(info.duration_s),
        "frame_count": int(info.frame_count),
        "frame_count_exact": bool(info.frame_count_exact),
        "rotation": int(info.rotation),
        "creation_time": info.creation_time,
        "has_audio": bool(info.has_audio),
        "labels_key": sidecar if sidecar in keys else None,
        "probe_bytes_read": probe_bytes,
    }


class _Prober:
    """Probes objects on a thread pool, with a per-file timeout that quarantines hung files."""

    def __init__(self, store: ObjectStore, settings: Settings, date: dt.date, keys: set[str]) -> None:
        self.store, self.settings, self.date, self.keys = store, settings, date, keys
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()
        self.probe_s = 0.0
        self.probe_bytes = 0
        self.hashed_bytes = 0

    def one(self, obj: ObjectInfo, camera: str) -> dict[str, Any]:
        with self.lock:
            self.started[obj.key] = time.monotonic()
        t0 = time.perf_counter()
        info, probe_bytes = _probe_object(self.store, obj, self.settings)
        dt_probe = time.perf_counter() - t0
        cid, hashed = content_id(self.store, obj, self.settings.content_id)
        with self.lock:
            self.probe_s += dt_probe
            self.probe_bytes += probe_bytes
            self.hashed_bytes += hashed
        return _manifest_row(
            self.store, obj, self.date, camera, info, cid, self.settings.content_id, probe_bytes, self.keys
        )


def _quarantine(
    store: ObjectStore, obj: ObjectInfo, date: dt.date, reason: QuarantineReason | str, detail: str
) -> QuarantineRecord:
    return _record(store.uri(obj.key), obj.key, obj.size, date, reason, detail)


def _bad_key(rejected: RejectedKey, date: dt.date) -> QuarantineRecord:
    why = f"{rejected.uri}: its name is not a valid object key ({rejected.problem}); rename it"
    return _record(rejected.uri, rejected.key, rejected.size, date, QuarantineReason.BAD_KEY, why)


def _record(
    uri: str, key: str, size: int | None, date: dt.date, reason: QuarantineReason | str, detail: str
) -> QuarantineRecord:
    """A discovery quarantine record; ``detail`` made one line of at most 500 characters."""
    return QuarantineRecord(
        uri=uri,
        key=key,
        logical_date=date.isoformat(),
        stage=STAGE,
        reason=reason,
        detail=" ".join(detail.split())[:500],
        size_bytes=size,
    )


def _probe_all(
    prober: _Prober,
    candidates: list[tuple[ObjectInfo, str]],
    progress: bool,
) -> tuple[list[dict[str, Any]], list[QuarantineRecord]]:
    from tqdm import tqdm

    store, date, settings = prober.store, prober.date, prober.settings
    rows: list[dict[str, Any]] = []
    bad: list[QuarantineRecord] = []
    pool = cf.ThreadPoolExecutor(max_workers=settings.probe_workers, thread_name_prefix="probe")
    pending = {pool.submit(prober.one, obj, cam): obj for obj, cam in candidates}
    bar = tqdm(
        total=len(pending), desc=f"probe {date.isoformat()}", unit="file", disable=not progress, leave=False
    )
    try:
        while pending:
            done, _ = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                obj = pending.pop(fut)
                try:
                    rows.append(fut.result())
                except VideoError as exc:
                    bad.append(_quarantine(store, obj, date, exc.reason, str(exc)))
                except ActrecError as exc:
                    bad.append(_quarantine(store, obj, date, exc.reason, str(exc)))
                except Exception as exc:  # noqa: BLE001 - an unexpected failure must quarantine, not crash
                    bad.append(
                        _quarantine(
                            store, obj, date, QuarantineReason.PROBE_ERROR, f"{type(exc).__name__}: {exc}"
                        )
                    )
                bar.update(1)
            now = time.monotonic()
            for fut, obj in list(pending.items()):
                started = prober.started.get(obj.key)
                if started is not None and now - started > settings.probe_timeout_s and not fut.done():
                    pending.pop(fut)
                    bad.append(
                        _quarantine(
                            store,
                            obj,
                            date,
                            QuarantineReason.TIMEOUT,
                            f"probe of {store.uri(obj.key)} exceeded {settings.probe_timeout_s:g} s",
                        )
                    )
                    bar.update(1)
    finally:
        bar.close()
        pool.shutdown(wait=False, cancel_futures=True)
    return rows, bad


def _screen(
    rows: list[dict[str, Any]], date: dt.date
) -> tuple[list[dict[str, Any]], list[QuarantineRecord], Any]:
    """Split probed rows into those the manifest suite accepts and ``invalid_metadata`` records for
    the rest, each naming the expectations its row fails and the values; returns (rows, records,
    suite result). Raises ValidationFailed for a failure that is not about one row."""
    import pandas as pd

    from actrec_batch.expectations import screen_manifest

    table = manifest_table(rows)
    suite = screen_manifest(table.to_pandas(types_mapper=pd.ArrowDtype) if rows else pd.DataFrame(), date)
    failures = suite.failures_by_row()
    ordered = table.to_pylist()  # the frame's index labels are positions in the sorted table
    records = [
        QuarantineRecord.for_video(
            ordered[i],
            STAGE,
            QuarantineReason.INVALID_METADATA,
            f"{ordered[i]['uri']} probes to values the manifest does not accept: " + "; ".join(why),
        )
        for i, why in sorted(failures.items())
    ]
    return [r for i, r in enumerate(ordered) if i not in failures], records, suite


def discover(
    settings: Settings, date: dt.date, *, store: ObjectStore | None = None, progress: bool = False
) -> DiscoveryResult:
    """Discover, probe, validate and record the footage of ``date``.

    Writes (replacing any earlier run of the same date) the manifest, the discovery quarantine
    file and a JSON summary. A video whose manifest row fails a per-row expectation is quarantined
    (``invalid_metadata``) and the rest of the date goes on. Raises :class:`ValidationFailed` when
    an expectation about the whole manifest fails (nothing is written then) and
    :class:`ReconcileError` (reason ``reconcile``) if the counts do not add up.
    """
    t0 = time.perf_counter()
    store = store or open_store(settings.store)
    rejected: list[RejectedKey] = []
    listed = list(store.list(layout.footage_prefix(date), rejected=rejected))
    keys = {o.key for o in listed}
    objects = [o for o in listed if not layout.is_sidecar(o.key)]
    candidates: list[tuple[ObjectInfo, str]] = []
    # A name the storage rules reject cannot be read through the store, but it was discovered.
    bad = [_bad_key(r, date) for r in rejected if not layout.is_sidecar(r.key)]
    discovered = len(objects) + len(bad)
    for obj in objects:
        camera = layout.camera_of(obj.key, date)
        if camera is None:
            bad.append(
                _quarantine(
                    store,
                    obj,
                    date,
                    QuarantineReason.BAD_LAYOUT,
                    f"{store.uri(obj.key)} is not under footage/date={date}/camera=<id>/",
                )
            )
        else:
            candidates.append((obj, camera))
    log.info("discover %s: %d objects under %s", date, discovered, store.uri(layout.footage_prefix(date)))

    prober = _Prober(store, settings, date, keys)
    rows, probe_bad = _probe_all(prober, candidates, progress)
    bad.extend(probe_bad)

    rows, invalid, suite = _screen(rows, date)
    bad.extend(invalid)
    table = manifest_table(rows)
    manifest_uri = write_manifest(store, date, table)
    quarantine_uri = write_quarantine(store, date, STAGE, bad)

    reconcile(f"discovery of {date}", discovered, len(rows), len(bad), processed_as="manifested")
    result = DiscoveryResult(
        logical_date=date,
        videos_discovered=discovered,
        videos_manifested=len(rows),
        quarantine=tuple(sorted(bad, key=lambda q: q.key)),
        manifest_uri=manifest_uri,
        quarantine_uri=quarantine_uri,
        wall_s=time.perf_counter() - t0,
        probe_s_total=prober.probe_s,
        probe_bytes_read=prober.probe_bytes,
        bytes_hashed=prober.hashed_bytes,
        content_id_method=settings.content_id,
        validation={**suite.to_dict(), "rows_quarantined": len(invalid)},
    )
    store.put_bytes(layout.discovery_summary_key(date), json.dumps(result.to_json(), indent=2).encode())
    return result
