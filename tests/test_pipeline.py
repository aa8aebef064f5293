"""The Ray inference job on a real local Ray (2 CPUs, 127.0.0.1): feature cache, checkpoints,
rescoring with another head, bad input, and agreement with the single-process path.

No GPU here: the inference actors are CPU actors; with a GPU they would reserve ``actor_gpus``.
The decoder crash and hang are injected (ACTREC_FAULT_* in the Ray workers' environment) because
no real file crashes FFmpeg on demand; the crash is a real SIGSEGV of the worker process.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray

from actrec_batch import layout
from actrec_batch.config import load_settings
from actrec_batch.discovery import discover
from actrec_batch.model import DEFAULT_MODEL
from actrec_batch.pipeline.cache import Checkpoints, FeatureCache, segment_name
from actrec_batch.pipeline.job import InferenceJob, RunSpec, plan_units
from actrec_batch.pipeline.nightly import run_nightly
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage

DATE = dt.date(2026, 11, 21)
FAULT_DATE = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def local_ray(s3_endpoint):
    from s3_server import s3_test_env

    env = {"ACTREC_FAULT_CRASH": "crashme", "ACTREC_FAULT_HANG": "hangme", **s3_test_env(s3_endpoint)}
    ray.init(
        address="local",  # a Ray of our own, never one another process started
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        namespace="actrec-test",
        runtime_env={"env_vars": env},  # the workers reach moto's S3 server as the driver does
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline") / "store"
    store = open_store(str(root))
    synth_footage(store, date=DATE, cameras=2, minutes=1.0, seed=5151, progress=False)
    return root, store


def _settings(root: Path, **extra):
    warehouse = f"duckdb:///{root.parent}/warehouse.duckdb"
    return load_settings({"store": str(root), "segment_s": 20, "warehouse_url": warehouse, **extra}, env={})


def _staged(store, result) -> list[tuple]:
    key = result.staging_uri.split("/store/", 1)[1]
    rows = pq.read_table(io.BytesIO(store.get_bytes(key))).to_pylist()
    return [(r["event_id"], r["label"], r["start_s"], r["end_s"], round(r["confidence"], 4)) for r in rows]


def test_plan_units_covers_the_video_without_gaps():
    row = {"video_id": "v", "key": "k", "uri": "u", "content_id": "c", "duration_s": 61.0}
    units = plan_units(row, 20.0)
    assert [(u.start_s, u.end_s) for u in units] == [(0, 20), (20, 40), (40, 60), (60, 61.0)]
    assert [u.segment for u in units] == [segment_name(20.0, k) for k in range(4)]
    assert len(plan_units({**row, "duration_s": 0.0}, 20.0)) == 1


def test_cold_warm_rescore_and_corrupt_cache(local_ray, night, tmp_path):
    root, store = night
    settings = _settings(root)
    found = run_nightly(settings, RunSpec(DATE))
    assert found["status"] == "success"
    assert found["videos_discovered"] == found["videos_processed"] + found["videos_quarantined"] == 2
    assert found["units_total"] == 6 and found["cache_misses"] == 6 and found["frames_decoded"] > 0
    assert found["units_skipped_checkpoint"] == 0 and found["events"] > 0
    metrics = json.loads(store.get_bytes(layout.run_prefix(DATE, found["run_id"]) + "metrics.json"))
    assert len(metrics["units"]) == 6
    assert all(u["decode_s"] > 0 and u["infer_s"] > 0 and u["frames_decoded"] > 0 for u in metrics["units"])
    res = metrics["resources"]
    assert res["cpu"]["reserved_s"] > 0 and res["actor_seconds"] >= res["actor_busy_s"] > 0
    plan = metrics["ray"]["plan"]
    assert 1 <= metrics["ray"]["peak_units_inflight"] <= plan["max_inflight_units"] == 3  # bounded memory

    # A run over one camera replaces only that camera's published events, quarantine and markers.
    def published():
        key = found["events_uri"].split("/store/", 1)[1]
        return sorted(pq.read_table(io.BytesIO(store.get_bytes(key))).column("camera_id").to_pylist())

    before = published()
    assert set(before) == {"cam-01", "cam-02"}
    one = run_nightly(settings, RunSpec(DATE, cameras=("cam-01",), force=True))
    assert one["videos_discovered"] == 1 and one["units_computed"] == 3 and published() == before
    from actrec_batch.model import read_card, resolve_model_ref

    card = read_card(open_store(resolve_model_ref(DEFAULT_MODEL)))
    assert len(Checkpoints.for_run(store, DATE, card, 20.0).committed()) == 6  # cam-02's markers were kept

    # The same events as the local runner in this process, which scores each whole video as one unit.
    cold = InferenceJob(settings, RunSpec(DATE, model_ref=DEFAULT_MODEL), store=store)
    whole = load_settings({"store": str(root), "segment_s": 86400, "runner": "local"}, env={})
    local = InferenceJob(whole, RunSpec(DATE), store=store).run()
    assert local.units_total == 2 and not local.ray_used
    ours = _staged(store, cold.run())
    theirs = pq.read_table(io.BytesIO(store.get_bytes(local.staging_uri.split("/store/", 1)[1]))).to_pylist()
    assert [e[:4] for e in ours] == [(r["event_id"], r["label"], r["start_s"], r["end_s"]) for r in theirs]
    np.testing.assert_allclose([e[4] for e in ours], [r["confidence"] for r in theirs], atol=2e-3)

    # Warm rerun: every unit comes from its checkpoint, nothing is decoded, Ray is not even started.
    warm = InferenceJob(settings, RunSpec(DATE, model_ref=DEFAULT_MODEL), store=store).run()
    assert warm.units_skipped_checkpoint == 6 and warm.frames_decoded == 0 and not warm.ray_used
    assert _staged(store, warm) == ours

    # A different head on the same extractor: cache hits, nothing decoded.
    bundle = _new_head_bundle(tmp_path / "rehead")
    rescored = InferenceJob(settings, RunSpec(DATE, model_ref=str(bundle)), store=store).run()
    assert rescored.cache_hits == 6 and rescored.frames_decoded == 0 and not rescored.ray_used
    assert rescored.units_skipped_checkpoint == 0 and rescored.model_id == "rehead@1"

    # A damaged cache entry is detected and recomputed, never trusted.
    card = cold.model.card
    cache = FeatureCache.for_model(store, card)
    from actrec_batch.manifest import read_manifest

    row = read_manifest(store, DATE).to_pylist()[0]
    first = cache.key(row["content_id"], segment_name(20.0, 0))
    data = bytearray(store.get_bytes(first))
    data[len(data) // 2] ^= 0xFF
    store.put_bytes(first, bytes(data))
    again = InferenceJob(settings, RunSpec(DATE, model_ref=DEFAULT_MODEL), store=store).run()
    assert again.cache_corrupt == 1 and again.units_computed == 1 and again.units_skipped_checkpoint == 5
    assert _staged(store, again) == ours
    assert cache.get(first) is not None  # rewritten whole

    # --force forgets the checkpoints and recomputes everything.
    forced = InferenceJob(settings, RunSpec(DATE, model_ref=DEFAULT_MODEL, force=True), store=store).run()
    assert forced.units_computed == 6 and forced.units_skipped_checkpoint == 0
    assert len(Checkpoints.for_run(store, DATE, card, 20.0).committed()) == 6


def test_events_do_not_depend_on_the_segment_length(local_ray, night):
    root, store = night
    a = InferenceJob(_settings(root, segment_s=20), RunSpec(DATE, model_ref=DEFAULT_MODEL), store=store).run()
    b = InferenceJob(_settings(root, segment_s=13), RunSpec(DATE, model_ref=DEFAULT_MODEL), store=store).run()
    assert b.units_total == 10 and b.units_computed == 10  # other cuts: other units, other cache entries
    assert [e[:4] for e in _staged(store, a)] == [e[:4] for e in _staged(store, b)]


def test_bad_videos_are_quarantined_with_reasons_and_the_run_goes_on(local_ray, tmp_path):
    root = tmp_path / "store"
    store = open_store(str(root))
    synth_footage(store, date=FAULT_DATE, cameras=4, minutes=0.3, seed=5252, progress=False)
    keys = sorted(o.key for o in store.list(layout.footage_prefix(FAULT_DATE)) if o.key.endswith(".mp4"))
    for key, tag in zip(keys, ("crashme", "hangme"), strict=False):
        new = key.rsplit("/", 1)[0] + f"/{tag}.mp4"
        store.put_bytes(new, store.get_bytes(key))
        store.delete(key)
        store.delete(layout.sidecar_key(key))
    store.put_bytes(keys[3].rsplit("/", 1)[0] + "/junk.mp4", b"\x00not a video" * 100)  # fails discovery
    settings = load_settings({"store": str(root), "unit_timeout_s": 40, "task_retries": 1}, env={})
    discover(settings, FAULT_DATE, store=store)
    cut = store.get_bytes(keys[2])
    store.put_bytes(keys[2], cut[: len(cut) // 3])  # truncated after discovery: fails in the decode task
    summary = run_nightly(settings, RunSpec(FAULT_DATE), discover_first=False)
    assert summary["videos_discovered"] == 5 == summary["videos_processed"] + summary["videos_quarantined"]
    reasons = {(q["uri"].rsplit("/", 1)[1], q["stage"]): q["reason"] for q in summary["quarantine"]}
    truncated = keys[2].rsplit("/", 1)[1]
    assert reasons.pop((truncated, "infer")) in {"truncated", "decode_error"}
    assert reasons.pop(("junk.mp4", "discover"))
    assert reasons == {("crashme.mp4", "infer"): "decode_crash", ("hangme.mp4", "infer"): "timeout"}
    assert summary["videos_processed"] == 1 and summary["status"] == "success"
    from actrec_batch.manifest import read_quarantine

    rows = read_quarantine(store, FAULT_DATE, "infer").to_pylist()
    assert len(rows) == 3 and all(r["detail"] and r["uri"] for r in rows)


def test_a_night_on_s3_is_decoded_by_the_workers_through_ranged_reads(local_ray, s3_bucket):
    store_uri = f"s3://{s3_bucket}/actrec"
    store = open_store(store_uri)
    synth_footage(store, date=DATE, cameras=1, minutes=0.5, seed=5454, progress=False)
    settings = load_settings({"store": store_uri, "segment_s": 10}, env={})
    summary = run_nightly(settings, RunSpec(DATE))
    assert summary["status"] == "success" and summary["videos_processed"] == 1
    assert summary["units_total"] == 3 and summary["frames_decoded"] > 0 and summary["events"] > 0
    assert summary["events_uri"].startswith(store_uri + "/events/date=")
    assert store.exists(f"events/date={DATE}/events-{DEFAULT_MODEL.replace('@', '-')}.parquet")
    again = run_nightly(settings, RunSpec(DATE))
    assert again["units_skipped_checkpoint"] == 3 and again["frames_decoded"] == 0


def test_resources_that_cannot_fit_are_one_line_errors():
    from actrec_batch.errors import ConfigError
    from actrec_batch.pipeline.ray_backend import plan_resources

    s = load_settings({"actor_cpus": 2, "inference_actors": 1}, env={})
    with pytest.raises(ConfigError, match="--actor-cpus"):
        plan_resources(s, 2.0, 0.0)
    with pytest.raises(ConfigError, match="GPUs"):
        plan_resources(load_settings({"actor_gpus": 1}, env={}), 4.0, 0.0)
    r = plan_resources(load_settings({}, env={}), 2.0, 0.0)
    assert (r.actors, r.actor_gpus, r.actor_cpus, r.decode_slots) == (1, 0.0, 0.0, 2)
    g = plan_resources(load_settings({"actor_gpus": 0.5}, env={}), 16.0, 2.0)
    assert (g.actors, g.actor_gpus, g.actor_cpus, g.decode_slots) == (4, 0.5, 1.0, 12)


def _new_head_bundle(dest: Path) -> Path:
    from actrec_batch.model import save_with_new_head

    save_with_new_head(DEFAULT_MODEL, dest, name="rehead", version="1", seed=7)
    return dest
