"""One job, two runners: the same footage through the local runner (this process) and the Ray
runner (a real local Ray the job starts itself, ``address="local"``) gives byte-identical events.

Both stores are copies of one discovered store, so the manifests (and the URIs in them) are the
same, and both runs get the same run id: every column of the staged events table, ``run_id``
included, is compared, as bytes. One video is cut after discovery, so the quarantine is compared too.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from actrec_batch import layout
from actrec_batch.config import load_settings
from actrec_batch.discovery import discover
from actrec_batch.manifest import read_manifest
from actrec_batch.pipeline.job import InferenceJob, RunSpec
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage

DATE = dt.date(2026, 11, 25)
RUN_ID = f"{DATE}-equivalence"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("runners") / "template"
    store = open_store(str(root))
    synth_footage(store, date=DATE, cameras=3, minutes=0.5, seed=5656, progress=False)
    discover(load_settings({"store": str(root)}, env={}), DATE, store=store)
    cut = read_manifest(store, DATE).to_pylist()[2]
    data = store.get_bytes(cut["key"])
    store.put_bytes(cut["key"], data[: len(data) // 3])  # truncated after discovery: quarantined
    return root


def _run(template, dest, runner: str):
    root = shutil.copytree(template, dest)
    settings = load_settings(
        {"store": str(root), "segment_s": 10, "runner": runner, "local_ray_cpus": 2, "batch_frames": 64},
        env={},
    )
    store = open_store(str(root))
    result = InferenceJob(settings, RunSpec(DATE, run_id=RUN_ID), store=store).run()
    return store, result


def test_local_and_ray_runners_write_byte_identical_events(template, tmp_path):
    local_store, local = _run(template, tmp_path / "local", "local")
    ray_store, on_ray = _run(template, tmp_path / "ray", "ray")
    assert not local.ray_used and on_ray.ray_used
    assert local.units_computed == on_ray.units_computed == 6 and local.events > 0
    assert len(local.quarantine) == len(on_ray.quarantine) == 1
    events = layout.staging_events_key(DATE, RUN_ID)
    assert local.staging_uri == local_store.uri(events)  # staged for validation; nothing published yet
    assert not [o.key for o in local_store.list("events/")]
    assert local_store.get_bytes(events) == ray_store.get_bytes(events)
    quarantine = layout.quarantine_key(DATE, "infer")
    assert local_store.get_bytes(quarantine) == ray_store.get_bytes(quarantine)
    # The same computed units; only the Ray run has a resource plan.
    metrics = [
        json.loads(s.get_bytes(layout.run_prefix(DATE, RUN_ID) + "metrics.json"))
        for s in (local_store, ray_store)
    ]
    units = [
        sorted((u["video_id"], u["segment"], u["clips"], u["frames_decoded"]) for u in m["units"])
        for m in metrics
    ]
    assert units[0] == units[1] and len(units[0]) == 6
    assert metrics[0]["ray"] == {} and metrics[1]["ray"]["plan"]["actors"] >= 1
