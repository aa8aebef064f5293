"""The feature cache and the per-date unit checkpoints, both in the object store.

**Feature cache.** The clip embeddings of one work unit (a segment of one video), keyed by what
decides them and nothing else: the extractor (id, version and weights sha256), the sampling (frame
size, frame rate, clip length and hop; for a ``video``-arch backbone also the resize policy and a
digest of its whole preprocessing, :meth:`VideoSampling.tag`), the video's content id and the
segment (length and index).
No date, run or head is in the key, so a rerun, a rescore with another head, or the same file
showing up on another date all reuse it. An entry is one ``.npz`` written atomically; it carries a
sha256 of its own arrays, so a torn or bit-rotted entry is detected on read, reported, and
recomputed, never trusted.

**Checkpoints.** A marker per unit committed by a run of (date, model, segmenting): an empty-ish
JSON object whose key names the video, its content id and the segment. A rerun lists the markers
once (one LIST call) and skips those units; a marker is only written after its cache entry, so a
marker never points at features that were not written whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import threading
from dataclasses import dataclass, field

import numpy as np

from actrec_batch import layout
from actrec_batch.model.features import SegmentFeatures
from actrec_batch.storage import ObjectStore

log = logging.getLogger(__name__)

_FORMAT = 1


def _tag(text: str) -> str:
    """A key-safe rendering of an identity such as ``reference-extractor@2``."""
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in text)


def extractor_tag(card) -> str:
    return _tag(f"{card.extractor_id}-{card.extractor.sha256[:12]}")


def sampling_tag(card) -> str:
    """How grid frames are taken from a video, as a key: the card's sampling, then the decode
    mode (:data:`~actrec_batch.model.sampling.STAND_IN_TAG`: a neighbouring frame within half a grid
    step may stand in for a grid frame), so features of another mode are never mixed in."""
    from actrec_batch.model.sampling import STAND_IN_TAG

    if card.is_video_arch:
        return _tag(f"{card.video_sampling().tag()}-{STAND_IN_TAG}")
    c = card.extractor.config
    return _tag(
        f"{c['frame_width']}x{c['frame_height']}-{c['sample_fps']:g}fps-c{c['clip_len']}h{c['clip_hop']}-{STAND_IN_TAG}"
    )


def model_tag(card) -> str:
    return _tag(f"{card.model_id}-{card.weights_sha256[:12]}")


def segment_name(segment_s: float, index: int) -> str:
    return f"{segment_s:g}s-{index:05d}"


def _digest(clips: range, centers: np.ndarray, embeddings: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{_FORMAT}:{clips.start}:{clips.stop}:{embeddings.shape}".encode())
    h.update(np.ascontiguousarray(centers, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
    return h.hexdigest()


class CorruptEntry(Exception):
    """A cache entry that exists but does not read back to what was written."""


@dataclass
class FeatureCache:
    """Clip embeddings per (content id, segment) for one extractor and sampling."""

    store: ObjectStore
    extractor: str
    sampling: str
    corrupt: int = 0  # entries found damaged (and recomputed) since this object was made
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def for_model(cls, store: ObjectStore, card) -> FeatureCache:
        return cls(store, extractor_tag(card), sampling_tag(card))

    def key(self, content_id: str, segment: str) -> str:
        return layout.feature_cache_key(self.extractor, self.sampling, _tag(content_id), segment)

    def put(self, key: str, feats: SegmentFeatures) -> str:
        """Write one entry atomically; returns its digest."""
        digest = _digest(feats.clips, feats.centers_s, feats.embeddings)
        buf = io.BytesIO()
        np.savez(
            buf,
            clips=np.array([feats.clips.start, feats.clips.stop], dtype=np.int64),
            centers=np.asarray(feats.centers_s, dtype=np.float64),
            embeddings=np.asarray(feats.embeddings, dtype=np.float32),
            digest=np.array(digest),
            format=np.array(_FORMAT),
        )
        self.store.put_bytes(key, buf.getvalue())
        return digest

    def get(self, key: str) -> SegmentFeatures | None:
        """The entry, or None when it is missing or damaged (a damaged one is logged and counted)."""
        from actrec_batch.errors import StorageError

        try:
            data = self.store.get_bytes(key)
        except StorageError as exc:
            if exc.reason == "not_found":
                return None
            raise
        try:
            return _parse(data)
        except CorruptEntry as exc:
            with self._lock:  # get() runs on a thread pool during resume
                self.corrupt += 1
            log.warning("feature cache entry %s is corrupt (%s): recomputing it", self.store.uri(key), exc)
            return None


def _parse(data: bytes) -> SegmentFeatures:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if int(z["format"]) != _FORMAT:
                raise CorruptEntry(f"format {int(z['format'])}, expected {_FORMAT}")
            lo, hi = (int(v) for v in z["clips"])
            centers, emb, digest = z["centers"], z["embeddings"], str(z["digest"])
    except CorruptEntry:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable npz is corrupt
        raise CorruptEntry(f"unreadable: {type(exc).__name__}: {exc}") from None
    clips = range(lo, hi)
    if _digest(clips, centers, emb) != digest:
        raise CorruptEntry("checksum mismatch")
    try:
        return SegmentFeatures(clips, centers, emb)
    except ValueError as exc:
        raise CorruptEntry(str(exc)) from None


@dataclass(frozen=True)
class Checkpoints:
    """Unit markers of one (date, model, segmenting)."""

    store: ObjectStore
    prefix: str

    @classmethod
    def for_run(cls, store: ObjectStore, date: dt.date, card, segment_s: float) -> Checkpoints:
        return cls(store, layout.checkpoint_prefix(date, model_tag(card), f"seg{segment_s:g}s"))

    def key(self, video_id: str, content_id: str, segment: str) -> str:
        return f"{self.prefix}{_tag(video_id)}/{_tag(content_id)}/{segment}.json"

    def committed(self) -> set[str]:
        """Keys of every marker (one listing)."""
        return {o.key for o in self.store.list(self.prefix)}

    def commit(self, key: str, record: dict) -> None:
        self.store.put_bytes(key, json.dumps(record, sort_keys=True).encode())

    def clear(self, video_ids: list[str]) -> int:
        """Forget the markers of these videos (``--force``): the next run recomputes their units."""
        return sum(self.store.delete_prefix(f"{self.prefix}{_tag(v)}/") for v in video_ids)
