"""The scheduler's vocabulary: the states of a unit and a video with their allowed transitions,
the typed messages of what is in flight, and the interfaces of its backend and its sink.

A unit moves QUEUED -> DECODING -> DECODED -> EMBEDDING -> DONE, through RETRY_WAIT when its batch
must be resubmitted, and to FAILED from any state before DONE where it (or its video) fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from actrec_batch.pipeline.work import DecodedUnit, EmbeddedUnit, Failure, UnitSpec, VideoIndex


class UnitState(Enum):
    QUEUED = "queued"  # waiting for its video's index and a decode slot
    DECODING = "decoding"
    DECODED = "decoded"  # frames in the object store, waiting for an embedder
    EMBEDDING = "embedding"
    RETRY_WAIT = "retry_wait"  # its batch failed; resubmitted after a backoff
    DONE = "done"
    FAILED = "failed"  # it failed, or its video did


class VideoState(Enum):
    QUEUED = "queued"
    INDEXING = "indexing"
    READY = "ready"  # indexed: its units are being submitted
    SUBMITTED = "submitted"  # every unit submitted
    FAILED = "failed"


INFLIGHT = frozenset({UnitState.DECODING, UnitState.DECODED, UnitState.EMBEDDING, UnitState.RETRY_WAIT})
UNIT_TRANSITIONS: dict[UnitState, frozenset[UnitState]] = {
    UnitState.QUEUED: frozenset({UnitState.DECODING, UnitState.FAILED}),
    UnitState.DECODING: frozenset({UnitState.DECODED, UnitState.FAILED}),
    UnitState.DECODED: frozenset({UnitState.EMBEDDING}),
    UnitState.EMBEDDING: frozenset({UnitState.DONE, UnitState.FAILED, UnitState.RETRY_WAIT}),
    UnitState.RETRY_WAIT: frozenset({UnitState.EMBEDDING}),
    UnitState.DONE: frozenset(),
    UnitState.FAILED: frozenset(),
}
VIDEO_TRANSITIONS: dict[VideoState, frozenset[VideoState]] = {
    VideoState.QUEUED: frozenset({VideoState.INDEXING, VideoState.FAILED}),
    VideoState.INDEXING: frozenset({VideoState.READY, VideoState.FAILED}),
    VideoState.READY: frozenset({VideoState.SUBMITTED, VideoState.FAILED}),
    VideoState.SUBMITTED: frozenset({VideoState.FAILED}),
    VideoState.FAILED: frozenset({VideoState.FAILED}),
}


# ----------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class IndexTask:
    video_id: str
    uri: str
    deadline: float

    @property
    def what(self) -> str:
        return "indexing"


@dataclass(frozen=True)
class DecodeTask:
    spec: UnitSpec
    frames_ref: Any
    deadline: float

    @property
    def what(self) -> str:
        return f"segment {self.spec.segment}"


Batch = list[tuple[DecodedUnit, Any]]  # decoded units with their frames' refs


@dataclass(frozen=True)
class EmbedCall:
    actor: int
    generation: int  # of the embedder in that slot when the call was made
    batch: Batch
    attempts: int
    lost_since: float | None = None  # when its units' embedder was first found unavailable


@dataclass(frozen=True)
class RetryBatch:
    not_before: float
    attempts: int
    batch: Batch
    lost_since: float | None = None


# What an embed call came back with, when not its units (the backend classifies Ray's errors):
# ActorLost: the embedder is unavailable (its node was lost); ``dead``: past its restarts, replace it.
# CallFailed: the call raised; a batch is split, and a unit that fails alone is quarantined.
@dataclass(frozen=True)
class ActorLost:
    error: str  # the exception's type name, and the start of its message
    dead: bool


@dataclass(frozen=True)
class CallFailed:
    error: Exception


@dataclass(frozen=True)
class Capacity:
    """What the run may keep busy, re-planned as an autoscaling cluster's nodes join: the backend
    grows its actor pool to ``actors`` and the scheduler keeps ``decode_slots`` index/decode tasks
    and at most ``max_inflight_units`` units in flight. ``cpus``, ``gpus`` and ``nodes`` are the
    cluster's size it was planned from."""

    actors: int
    decode_slots: int
    max_inflight_units: int
    cpus: float = 0.0
    gpus: float = 0.0
    nodes: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Backend(Protocol):
    """What the scheduler needs from a cluster (see RayBackend for the meaning of each call)."""

    lost_wait_s: float  # how long units of a lost embedder may wait for capacity to come back

    def index(self, video: dict[str, Any]) -> Any: ...
    def decode(self, spec: UnitSpec, index_ref: Any) -> tuple[Any, Any]: ...
    def free_actor(self, avoid: frozenset[int] = frozenset()) -> int | None: ...
    def embed(self, actor: int, units: list[DecodedUnit], frame_refs: list[Any]) -> tuple[Any, int]: ...
    def embed_done(self, actor: int, generation: int) -> None: ...
    def replace_actor(self, actor: int, generation: int) -> None: ...
    def cancel(self, ref: Any) -> None: ...
    def wait(self, refs: list[Any], timeout: float) -> list[Any]: ...
    def task_result(self, ref: Any, uri: str) -> Any: ...
    def embed_result(self, ref: Any) -> list[EmbeddedUnit] | ActorLost | CallFailed: ...
    def failure(self, exc: Exception, uri: str, default: str) -> Failure: ...
    def capacity(self) -> Capacity | None: ...  # re-planned from the cluster now; None: unchanged


class Sink(Protocol):
    """Where the scheduler's results go (:class:`~actrec_batch.pipeline.state.JobState`)."""

    spec: Any  # RunSpec: its date names the run in errors
    videos: dict[str, dict[str, Any]]
    failed: dict[str, Failure]
    result: Any  # JobResult: the scheduler counts retries into it

    def fail_video(self, video_id: str, failure: Failure) -> None: ...
    def index_done(self, video_id: str, index: VideoIndex) -> None: ...
    def embedded(self, unit: DecodedUnit, out: EmbeddedUnit | None) -> None: ...
