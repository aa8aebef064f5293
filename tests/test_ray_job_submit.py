"""The Ray entrypoint submitted through the Ray Jobs API (what `ray job submit` and the DAG's
infer task do), to a real local Ray head with its dashboard on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ray_head import dashboard_head_args, free_port, own_ray_head, wait_for_dashboard

from actrec_batch.config import load_settings
from actrec_batch.discovery import discover
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage

REPO = Path(__file__).resolve().parents[1]
DATE = dt.date(2026, 11, 19)


def test_ray_job_submit_runs_the_entrypoint_on_a_cluster(tmp_path):
    root = tmp_path / "store"
    store = open_store(str(root))
    synth_footage(store, date=DATE, cameras=1, minutes=0.3, seed=5555, progress=False)
    discover(load_settings({"store": str(root)}, env={}), DATE, store=store)

    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    port = free_port()
    args = dashboard_head_args(port, temp)
    log = Path(temp) / "ray-start.log"
    # A head of this test's own, stopped by signalling it: never `ray stop`, which stops every Ray here.
    with own_ray_head(args, env=env, log=log) as head:
        wait_for_dashboard(head, f"http://127.0.0.1:{port}", log)
        submit = [
            str(Path(sys.executable).parent / "ray"),
            "job",
            "submit",
            f"--address=http://127.0.0.1:{port}",
            f"--working-dir={REPO}",
            "--",
            "python",
            "ray_jobs/nightly_inference.py",
            "--date",
            DATE.isoformat(),
            "--store",
            str(root),
            "--json",
        ]
        t0 = time.perf_counter()
        out = subprocess.run(submit, env={**env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("{") and '"run_id"' in ln)
        summary = json.loads(line)
        assert summary["videos_processed"] == 1 and summary["units_total"] == 1 and summary["ray_used"]
        assert store.exists(summary["staging_uri"][len(store.root_uri) + 1 :])
        print(f"ray job submit: {time.perf_counter() - t0:.1f} s")
    shutil.rmtree(temp, ignore_errors=True)
