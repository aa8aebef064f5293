"""Run records (actrec_batch.runs): each stage writes its own record once, the summary is assembled
from them, and the cost and quality stages, which the nightly DAG runs side by side, lose nothing
when they finish at the same moment (on the local store and on S3)."""

from __future__ import annotations

import datetime as dt
import threading

import pyarrow as pa
import pytest

from actrec_batch.config import load_settings
from actrec_batch.pipeline.nightly import cost_stage, quality_stage
from actrec_batch.runs import (
    STAGE_RECORDS,
    CostRecord,
    InferRecord,
    MetricsDocument,
    PublishRecord,
    QualityRecord,
    RunFolder,
)
from actrec_batch.storage import StorageError, open_store

DATE = dt.date(2026, 3, 14)
ROUNDS = 8  # the old read-modify-write lost an update in about 3 rounds of 10 with this handshake
LABELS = ["walk", "fall"]
# docs/reference.md#summaryjson: `actrec run --json` keys
CONTRACT_KEYS = {
    "run_id",
    "logical_date",
    "status",
    "videos_discovered",
    "videos_processed",
    "videos_quarantined",
    "units_total",
    "units_skipped_checkpoint",
    "frames_decoded",
    "cache_hits",
    "cache_misses",
    "events",
    "wall_s",
    "cost_usd",
}


class _Warehouse:
    """What the cost stage needs of a warehouse: its job_costs (and job_cost_usage) rows, recorded (thread-safe)."""

    def __init__(self) -> None:
        self.costs: dict[str, float] = {}
        self._lock = threading.Lock()

    def replace_costs(self, run_id: str, rows: list, total: float, usage: list | tuple = ()) -> None:
        with self._lock:
            self.costs[run_id] = total


def _published_run(store, run_id: str) -> RunFolder:
    """A run as the publish stage leaves it: infer and publish records, metrics, staged events and
    the summary written at publishing (without cost and quality)."""
    folder = RunFolder(store, DATE, run_id)
    folder.write_staged_events(pa.table({"label": ["walk", "fall", "walk"], "confidence": [0.9, 0.7, 0.8]}))
    folder.write(
        MetricsDocument(
            run_id=run_id,
            logical_date=DATE.isoformat(),
            model="reference@3",
            segment_s=15,
            units=[],
            index=[],
            resources={"cpu": {"decode_task_s": 120.0, "actor_reserved_s": 60.0}, "gpu": {}},
            ray={"nodes": []},
        )
    )
    folder.write(
        InferRecord(
            run_id=run_id,
            logical_date=DATE.isoformat(),
            model="reference@3",
            videos_manifested=2,
            videos_processed=2,
            units_total=4,
            events=3,
            video_seconds=120.0,
            wall_s=12.5,
            model_name="reference",
            model_version="3",
            model_labels=LABELS,
        )
    )
    folder.write(
        PublishRecord(
            run_id=run_id,
            logical_date=DATE.isoformat(),
            status="success",
            videos_discovered=2,
            videos_quarantined=0,
            quarantine=[],
            events_uri=store.uri("events/date=2026-03-14/events-reference-3.parquet"),
            events=3,
            videos=2,
            quarantined=0,
            model_name="reference",
            model_version="3",
            docs_uri=None,
            cameras=[],
            started_at=None,
            wall_s=13.0,
            code_version="test",
        )
    )
    folder.write_summary()
    return folder


def _run_side_by_side(*stages) -> list[BaseException]:
    """Run each callable in its own thread; all start together once every thread is ready."""
    ready = threading.Barrier(len(stages))
    errors: list[BaseException] = []

    def worker(stage) -> None:
        try:
            ready.wait(timeout=60)  # the handshake: nobody starts before everybody is ready
            stage()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stages]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a stage did not finish within 120 s"
    return errors


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/actrec")


def test_cost_and_quality_side_by_side_lose_nothing(store):
    settings = load_settings({"cpu_hour_usd": "0.05", "gpu_hour_usd": "2.0"}, env={})
    warehouse = _Warehouse()
    for k in range(ROUNDS):
        run_id = f"{DATE.isoformat()}-race-{k}"
        folder = _published_run(store, run_id)
        assert folder.stored_summary()["stages"] == ["infer", "publish"]
        assert folder.stored_summary()["cost_usd"] is None
        errors = _run_side_by_side(
            lambda r=run_id: cost_stage(settings, store, DATE, r, warehouse=warehouse),
            lambda r=run_id: quality_stage(store, DATE, r),
        )
        assert not errors, errors
        assert folder.has(CostRecord) and folder.has(QualityRecord), f"round {k}"
        cost, quality = folder.read(CostRecord), folder.read(QualityRecord)
        stored = folder.stored_summary()
        assert stored["stages"] == ["infer", "publish", "cost", "quality"], f"round {k}"
        assert stored["cost_usd"] == cost.cost_usd == warehouse.costs[run_id] > 0
        assert stored["quality_uri"] == folder.uri(QualityRecord)
        assert "f1" in stored and stored["f1"] is None  # no ground truth beside this footage
        assert quality.events["count"] == 3 and quality.events["per_label"]["walk"]["events"] == 2
        assert stored == folder.summary()  # the file is the assembly of the records, nothing else
        assert store.exists(folder.cost_page_key)


def test_the_summary_names_only_stages_that_have_a_record(tmp_path):
    store = open_store(str(tmp_path / "store"))
    folder = _published_run(store, f"{DATE.isoformat()}-partial")
    summary = folder.summary()
    assert set(summary) >= CONTRACT_KEYS
    assert summary["stages"] == ["infer", "publish"]
    assert summary["cost_usd"] is None and "quality_uri" not in summary and "f1" not in summary
    assert summary["videos_discovered"] == summary["videos_processed"] + summary["videos_quarantined"]
    assert "model_labels" not in summary and summary["infer_wall_s"] == 12.5 and summary["wall_s"] == 13.0
    assert folder.summary(wall_s=20.0)["video_s_per_wall_s"] == 6.0
    # Only the stage itself writes its record; nothing else in the summary comes from elsewhere.
    assert [k.STAGE for k in STAGE_RECORDS] == [
        "discover",
        "validate_manifest",
        "infer",
        "validate_events",
        "publish",
        "cost",
        "quality",
    ]


def test_records_keep_their_json_keys_and_order(tmp_path):
    store = open_store(str(tmp_path / "store"))
    folder = _published_run(store, f"{DATE.isoformat()}-keys")
    infer = folder.read(InferRecord)
    assert InferRecord.from_json(infer.to_json()) == infer
    assert list(infer.to_json())[:4] == ["run_id", "logical_date", "model", "videos_manifested"]
    assert folder.key(InferRecord).endswith(f"runs/date={DATE}/run={DATE}-keys/infer.json")
    assert folder.key(QualityRecord) == f"reports/date={DATE}/run={DATE}-keys/quality.json"
    assert folder.summary_key == f"runs/date={DATE}/run={DATE}-keys/summary.json"
    with pytest.raises(StorageError) as missing:
        folder.read(CostRecord)
    assert missing.value.reason == "not_found" and "cost.json" in str(missing.value)
