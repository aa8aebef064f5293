"""Preemption on a real multi-node Ray (``ray.cluster_utils.Cluster`` on 127.0.0.1).

* Worker nodes are removed in the middle of a run, twice (a reclaimed spot instance): the run
  completes through Ray's task retries and actor restarts, and its events equal a clean run's.
* The driver process is SIGKILLed in the middle of a run, then run again: it resumes from the
  committed units and ends with the clean run's events.

Decoding is slowed down on purpose (ACTREC_FAULT_SLOW, a sleep in each decode task) so "the middle
of a run" lasts long enough to hit on a 2-core machine.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
from footage import discovered_night
from ray.cluster_utils import Cluster

from actrec_batch.config import load_settings
from actrec_batch.model import DEFAULT_MODEL, read_card, resolve_model_ref
from actrec_batch.pipeline.cache import Checkpoints
from actrec_batch.pipeline.job import InferenceJob, RunSpec
from actrec_batch.storage import open_store

DATE = dt.date(2026, 11, 23)
SEGMENT_S = 6
SLOW_S = "0.8"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("preempt") / "template"
    discovered_night(str(root), DATE, cameras=2, minutes=1.0, seed=5353)
    return root


def _copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1) for _ in range(4)]  # two of them get "reclaimed"
    c.wait_for_nodes()
    yield c, nodes
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def _settings(root: Path, address: str | None = None):
    flags = {"store": str(root), "segment_s": SEGMENT_S, "actor_cpus": 0.5, "task_retries": 5}
    if address:
        flags["ray_address"] = address
    return load_settings(flags, env={})


def _events(store, result) -> list[tuple]:
    key = result["staging_uri"].split(store.root_uri + "/", 1)[1]
    rows = pq.read_table(io.BytesIO(store.get_bytes(key))).to_pylist()
    return [(r["event_id"], r["label"], r["start_s"], r["end_s"]) for r in rows]


def _markers(store) -> int:
    card = read_card(open_store(resolve_model_ref(DEFAULT_MODEL)))
    return len(Checkpoints.for_run(store, DATE, card, SEGMENT_S).committed())


def test_two_worker_nodes_lost_mid_run_and_the_events_are_a_clean_runs(cluster, footage, tmp_path):
    c, nodes = cluster
    ray.init(
        address=c.address, namespace="actrec-test", runtime_env={"env_vars": {"ACTREC_FAULT_SLOW": SLOW_S}}
    )
    try:
        clean_root = _copy(footage, tmp_path / "clean")
        clean = InferenceJob(_settings(clean_root), RunSpec(DATE, model_ref=DEFAULT_MODEL)).run()
        total = clean.units_total
        assert total == 20 and clean.units_computed == total

        root = _copy(footage, tmp_path / "preempted")
        store = open_store(str(root))
        removed: list[int] = []

        def preempt() -> None:
            # A spot reclaim at ~25% of the units, of the node that hosts the inference actor (so
            # the actor must come back elsewhere), and another reclaim at ~60%.
            while _markers(store) < 0.25 * total:
                time.sleep(0.1)
            actor = ray.get_actor(f"actrec-embedder-{job.run_id}-1")
            host = ray.get(actor.usage.remote())["node_id"]
            first = next(n for n in nodes if n.node_id == host)
            c.remove_node(first, allow_graceful=False)
            removed.append(_markers(store))
            while _markers(store) < 0.6 * total:
                time.sleep(0.1)
            c.remove_node(
                next(n for n in nodes if n is not first and n.node_id != host), allow_graceful=False
            )
            removed.append(_markers(store))

        job = InferenceJob(_settings(root), RunSpec(DATE, model_ref=DEFAULT_MODEL))
        killer = threading.Thread(target=preempt, daemon=True)
        killer.start()
        run = job.run()
        killer.join(timeout=5)
        assert len(removed) == 2 and all(n < total for n in removed), removed
        assert run.videos_processed == 2 and not run.quarantine
        assert run.units_computed == total
        assert _events(store, run.to_json()) == _events(open_store(str(clean_root)), clean.to_json())
        assert run.retries >= 1  # Ray re-ran work that was on the lost nodes
    finally:
        ray.shutdown()


def test_driver_killed_mid_run_resumes_from_committed_units(cluster, footage, tmp_path):
    c, _ = cluster
    clean_root = _copy(footage, tmp_path / "clean")
    root = _copy(footage, tmp_path / "killed")
    store = open_store(str(root))
    env = {**os.environ, "ACTREC_FAULT_SLOW": SLOW_S}
    cmd = [
        sys.executable,
        str(REPO / "ray_jobs" / "nightly_inference.py"),
        "--date",
        DATE.isoformat(),
        "--ray-address",
        c.address,
        "--segment-s",
        str(SEGMENT_S),
        "--actor-cpus",
        "0.5",
        "--json",
    ]
    t0 = time.perf_counter()
    clean = json.loads(
        subprocess.run(
            [*cmd, "--store", str(clean_root)], env=env, check=True, capture_output=True, text=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    clean_wall = time.perf_counter() - t0
    total = clean["units_total"]

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "--store", str(root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    while _markers(store) < total // 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = _markers(store)
    rerun = json.loads(
        subprocess.run([*cmd, "--store", str(root)], env=env, check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    both_wall = time.perf_counter() - t0
    assert total // 2 <= at_kill < total
    assert rerun["units_skipped_checkpoint"] + rerun["cache_hits"] >= at_kill
    assert rerun["units_skipped_checkpoint"] + rerun["cache_hits"] + rerun["units_computed"] == total
    # In flight when the driver died, and so computed again: at most the in-flight cap (3 here:
    # 2 decode slots + 1 actor); the rest was committed.
    assert rerun["units_computed"] <= total - at_kill
    assert _events(store, rerun) == _events(open_store(str(clean_root)), clean)
    print(
        f"driver kill: {at_kill}/{total} units committed at the kill, rerun computed {rerun['units_computed']}; "
        f"wall kill+rerun {both_wall:.1f} s vs clean {clean_wall:.1f} s"
    )
