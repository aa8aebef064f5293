"""The inference job on an autoscaling Ray cluster: Ray's fake multi-node provider (what
``ray.cluster_utils.AutoscalingCluster`` starts) on 127.0.0.1, with the node types of
``infra/ray/cluster-aws.yaml`` scaled down to this machine.

The cluster starts as a head with no CPU and no GPU. The job asks for 2 GPU embedders and their
decode slots; the autoscaler launches ``gpu_spot`` and ``cpu_decode`` nodes; the job's pool and
decode slots grow as they join. One spot node is killed mid-run (its raylet and every process of
that node, as a reclaim would); the run completes with the events of a clean run, and once it has
withdrawn its request the idle nodes scale down to the head.

``AutoscalingCluster`` itself is not used to start the cluster: its base config is missing from the
ray wheel, and its ``start()``/``shutdown()`` run ``ray stop --force``, which would stop every Ray on
this host. The fixture writes the same kind of config and runs the same ``ray start --head
--autoscaling-config`` (with ``RAY_FAKE_CLUSTER=1``), in its own process group, and stops that group.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from footage import discovered_night
from ray_head import AGENT_PORTS, driver_auth_mode, free_port, own_ray_head

from actrec_batch import layout
from actrec_batch.config import load_settings
from actrec_batch.pipeline.job import InferenceJob, RunSpec
from actrec_batch.storage import open_store

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "infra" / "ray" / "cluster-aws.yaml"
DATE = dt.date(2026, 11, 27)
RUN_ID = f"{DATE}-elastic"
SLOW_S = "1.0"  # each decode task sleeps this long, so the run lasts while nodes join and one is lost
HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head's type


def fake_cluster_config(aws: dict) -> dict:
    """The fake provider's config from the AWS one: its head's resources, its first GPU type as
    ``gpu_spot`` and its first CPU type as ``cpu_decode``, with their resources and min/max scaled
    down to 2 cores (2 CPUs per node, at most 2 GPU nodes and one decode node)."""
    types = aws["available_node_types"]
    head = aws["head_node_type"]
    gpu = next(t for t in types.values() if t["resources"].get("GPU"))
    cpu = next(t for n, t in types.items() if n != head and not t["resources"].get("GPU"))

    def scaled(node_type: dict, cpus: int, max_workers: int) -> dict:
        resources = {**node_type["resources"], "CPU": min(node_type["resources"]["CPU"], cpus)}
        return {
            "resources": resources,
            "min_workers": node_type["min_workers"],
            "max_workers": min(node_type["max_workers"], max_workers),
            "node_config": {},
        }

    return {
        "cluster_name": "actrec-fake",
        "max_workers": 3,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.2,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "auth": {},
        "docker": {},
        "available_node_types": {
            HEAD_TYPE: {"resources": dict(types[head]["resources"]), "node_config": {}, "max_workers": 0},
            "gpu_spot": scaled(gpu, 2, 2),
            "cpu_decode": scaled(cpu, 2, 1),
        },
        "head_node_type": HEAD_TYPE,
        "file_mounts": {},
        "cluster_synced_files": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def test_the_fake_cluster_takes_its_node_types_from_the_aws_config():
    aws = yaml.safe_load(CLUSTER_YAML.read_text())
    cfg = fake_cluster_config(aws)["available_node_types"]
    assert cfg[HEAD_TYPE]["resources"] == {"CPU": 0}
    assert cfg["gpu_spot"]["resources"] == {"CPU": 2, "GPU": 1, "spot": 1}
    assert (cfg["gpu_spot"]["min_workers"], cfg["gpu_spot"]["max_workers"]) == (0, 2)
    assert cfg["cpu_decode"]["resources"]["CPU"] == 2 and "GPU" not in cfg["cpu_decode"]["resources"]


def _node_pids(node_id: str) -> list[int]:
    """This host's processes of one fake node (they carry its id in their environment)."""
    marker = f"RAY_OVERRIDE_NODE_ID_FOR_TESTING={node_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The GCS address of a fake autoscaling cluster of this test's own (stopped by signalling its
    head's process group, never `ray stop`)."""
    work = tmp_path_factory.mktemp("autoscaling")
    config = work / "fake-cluster.json"
    port = free_port()
    cfg = fake_cluster_config(yaml.safe_load(CLUSTER_YAML.read_text()))
    cfg["provider"]["gcs_address"] = f"127.0.0.1:{port}"  # the fake nodes join this head
    config.write_text(json.dumps(cfg))
    temp = tempfile.mkdtemp(prefix="ray-as-", dir="/tmp")  # short: Ray's socket paths live here
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "RAY_FAKE_CLUSTER": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "AUTOSCALER_HEARTBEAT_TIMEOUT_S": "10",  # a killed node is terminated (and replaced) sooner
    }
    args = [
        f"--port={port}",
        "--num-cpus=0",
        "--num-gpus=0",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=false",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
        f"--autoscaling-config={config}",
        *(f"--{name}={free_port()}" for name in AGENT_PORTS),
    ]
    log = work / "head.log"
    try:
        # the head and its fake nodes run without auth, and so must this process as their driver
        with driver_auth_mode("disabled"), own_ray_head(args, env=env, log=log, grace_s=30) as head:
            _wait(lambda: _listening(port) or head.poll() is not None, 60, "the head to start")
            assert head.poll() is None, log.read_text()[-3000:]
            yield f"127.0.0.1:{port}"
            import ray

            if ray.is_initialized():
                ray.shutdown()
    finally:
        for f in Path(temp).glob("session_latest/logs/monitor*"):  # the autoscaler's log, kept
            shutil.copy(f, work)
        logs = Path(temp) / "session_latest" / "logs"  # every process's log, kept beside it
        with contextlib.suppress(OSError):
            shutil.copytree(logs, work / "ray-logs", ignore=shutil.ignore_patterns("*.sock", "events"))
        shutil.rmtree(temp, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(check, timeout_s: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp("elastic") / "template"
    discovered_night(str(root), DATE, cameras=2, minutes=1.0, seed=2727)
    return root


def _settings(root: Path, **flags):
    base = {
        "store": str(root),
        "segment_s": 5,
        "actor_gpus": 1,
        "inference_actors": 2,  # the pool the job asks the autoscaler for
        "max_inflight_units": 6,  # 2 embedders + 4 decode slots asked for
        "task_retries": 5,
        "batch_frames": 64,
    }
    return load_settings({**base, **flags}, env={})


def _events(store) -> list[dict]:
    return pq.read_table(io.BytesIO(store.get_bytes(layout.staging_events_key(DATE, RUN_ID)))).to_pylist()


def _alive(ray) -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


@pytest.mark.slow
def test_the_job_grows_with_the_cluster_survives_a_lost_spot_node_and_the_nodes_scale_down(
    cluster, footage, tmp_path, request
):
    import ray
    import torch

    # The clean run: the local runner, one torch thread as a 1-CPU Ray actor has.
    clean_root = shutil.copytree(footage, tmp_path / "clean")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clean_store = open_store(str(clean_root))
        clean = InferenceJob(
            _settings(clean_root, runner="local"), RunSpec(DATE, run_id=RUN_ID), store=clean_store
        ).run()
    finally:
        torch.set_num_threads(threads)

    root = shutil.copytree(footage, tmp_path / "elastic")
    store = open_store(str(root))
    job = InferenceJob(_settings(root, ray_address=cluster), RunSpec(DATE, run_id=RUN_ID), store=store)
    # The job joins this connection; its decode tasks get ACTREC_FAULT_SLOW.
    ray.init(
        address=cluster, namespace="actrec-test", runtime_env={"env_vars": {"ACTREC_FAULT_SLOW": SLOW_S}}
    )
    request.addfinalizer(ray.shutdown)  # a failed run must not leave this process connected
    assert len(_alive(ray)) == 1  # the head only
    killed: list[str] = []

    def reclaim() -> None:
        # A spot reclaim: once both embedders are up, the node of the first one loses every process.
        # They are found in the GCS's actor table, not with ray.get_actor: a handle that lookup
        # gives this process (their owner) removes the owner's references when it is dropped, and
        # Ray then kills the actor ("all references to the actor were removed").
        from ray._private.state import actors

        def actor_node():
            prefix = f"actrec-embedder-{RUN_ID}-"
            alive = {
                int(a["Name"][len(prefix) :]): a["Address"]["NodeID"]
                for a in actors(actor_state_name="ALIVE").values()
                if a["Name"].startswith(prefix)
            }
            return alive[min(alive)] if len(alive) >= 2 else None

        node_id = _wait(actor_node, 240, "the second embedder", every=1.0)
        pids = _node_pids(node_id)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.append(node_id)

    killer = threading.Thread(target=reclaim, daemon=True)
    killer.start()
    result = job.run()
    killer.join(timeout=10)

    # Nodes launched and used: the job grew from the head alone.
    metrics = json.loads(store.get_bytes(layout.run_prefix(DATE, RUN_ID) + "metrics.json"))
    capacity = metrics["ray"]["capacity"]
    assert capacity[0]["nodes"] == 1 and capacity[0]["actors"] == 0  # the head, as the job found it
    assert max(c["nodes"] for c in capacity) >= 3
    assert capacity[-1]["actors"] == 2 and capacity[1]["actors"] < capacity[-1]["actors"]  # the pool grew
    assert capacity[-1]["decode_slots"] >= 1 and capacity[-1]["cpus"] > 0
    assert {n["market"] for n in metrics["ray"]["nodes"] if n["resources"].get("GPU")} == {"spot"}
    # One spot node terminated mid-run, and the run completed with a clean run's events.
    assert killed and killed[0].startswith("fff"), killed
    assert any(n["NodeID"] == killed[0] and not n["Alive"] for n in ray.nodes())
    assert result.units_computed == clean.units_computed == result.units_total and not result.quarantine
    # Identical events: every column of every row equal, floats to the bit, and the same Parquet
    # bytes. The batches through the lost embedder were regrouped, but a unit's features do not
    # depend on its batch, and the head scores on one thread in either driver.
    rows, clean_rows = _events(store), _events(clean_store)
    assert len(rows) == len(clean_rows) == clean.events > 0
    diffs = [
        (i, k, row[k], want[k])
        for i, (row, want) in enumerate(zip(rows, clean_rows, strict=True))
        for k in row
        if row[k] != want[k]
    ]
    assert not diffs, diffs[:6]
    assert store.get_bytes(layout.staging_events_key(DATE, RUN_ID)) == clean_store.get_bytes(
        layout.staging_events_key(DATE, RUN_ID)
    )
    # The job withdrew its request, and its driver ends as a Ray job's does (here: this process
    # disconnects, so no object it owned stays pinned on a node, which Ray counts as not idle):
    # the idle nodes scale down to the head.
    del job
    gc.collect()
    ray.shutdown()
    ray.init(address=cluster, namespace="actrec-test")
    _wait(lambda: len(_alive(ray)) == 1, 150, "the idle nodes to scale down", every=2.0)
    print(f"capacity: {capacity}; killed {killed}")
