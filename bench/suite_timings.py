"""Timings the test suite used to assert as wall-clock bounds, measured here instead.

A bound such as "parses in under a second" fails on a loaded machine and passes on a fast one
whatever the code does, so the tests check behaviour and this script reports the figures:

- dag_parse: seconds to import each DAG file on top of ``import airflow.sdk`` (goal: < 1 s);
- validate_events: seconds for Great Expectations to validate 10,000 events and write Data Docs
  (goal: < 10 s);
- s3_list: seconds to put 1,205 keys on moto's S3 over HTTP (16 threads), list them across pages
  and delete them (goal: < 15 s);
- hung_probe: seconds ``discover`` takes over a night where one probe hangs, with
  ``probe_timeout_s`` 0.5 (goal: well under the hang, < 4.5 s).

Usage: python bench/suite_timings.py   (also `python bench/run_all.py --only timings`)
Writes bench/results/suite_timings.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("ACTREC_BENCH_RESULTS") or ROOT / "bench" / "results")
DATE = dt.date(2026, 11, 24)
GOALS_S = {"dag_parse": 1.0, "validate_events": 10.0, "s3_list": 15.0, "hung_probe": 4.5}

_PARSE = """
import importlib.util, sys, time
import airflow.sdk
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("dagfile", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(time.perf_counter() - t0)
"""


def dag_parse() -> dict[str, float]:
    from actrec_batch.config import load_settings
    from actrec_batch.demo import airflow_env

    out = {}
    with tempfile.TemporaryDirectory() as home:
        env = airflow_env(load_settings({}, env={}), Path(home))
        for name in ("actrec_nightly.py", "actrec_rescore.py"):
            proc = subprocess.run(
                [sys.executable, "-c", _PARSE, str(ROOT / "dags" / name)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            out[name] = round(float(proc.stdout.strip().splitlines()[-1]), 3)
    return out


def validate_events() -> float:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_event_expectations import DATE as EVENTS_DATE
    from test_event_expectations import LABELS, events

    from actrec_batch.expectations import validate_events as validate

    df = events(10_000)
    with tempfile.TemporaryDirectory() as docs:
        t0 = time.perf_counter()
        assert validate(df, EVENTS_DATE, LABELS, docs_dir=Path(docs)).success
        return round(time.perf_counter() - t0, 3)


def s3_list() -> float:
    sys.path.insert(0, str(ROOT / "tests"))
    from s3_server import ensure_s3_server, s3_test_env

    os.environ.update(s3_test_env(ensure_s3_server()))
    from actrec_batch.storage import make_s3_client, open_store

    make_s3_client().create_bucket(Bucket="bench-list")
    store = open_store("s3://bench-list")
    keys = [f"many/{i:05d}.json" for i in range(1205)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: store.put_bytes(key, key.encode()), keys))
    assert [info.key for info in store.list("many/")] == keys
    assert store.delete_prefix("many/") == len(keys)
    return round(time.perf_counter() - t0, 3)


def hung_probe() -> float:
    sys.path.insert(0, str(ROOT / "tests"))
    from footage import write_video

    from actrec_batch import layout, video
    from actrec_batch.config import load_settings
    from actrec_batch.discovery import discover

    release = threading.Event()
    real_probe = video.probe

    def hanging_probe(source, **kw):
        if str(source).endswith("hangs.mp4"):
            release.wait(60)
        return real_probe(source, **kw)

    video.probe = hanging_probe
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "store"
            for name in ("ok.mp4", "hangs.mp4"):
                write_video(root / layout.camera_prefix(DATE, "cam-01") / name, frames=10)
            settings = load_settings({"store": str(root), "probe_timeout_s": "0.5"}, env={})
            t0 = time.perf_counter()
            discover(settings, DATE)
            return round(time.perf_counter() - t0, 3)
    finally:
        release.set()
        video.probe = real_probe


def main() -> int:
    result = {
        "dag_parse_s": dag_parse(),
        "validate_events_10k_s": validate_events(),
        "s3_list_1205_keys_s": s3_list(),
        "hung_probe_discover_s": hung_probe(),
        "goals_s": GOALS_S,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "suite_timings.json").write_text(json.dumps(result, indent=2))
    print(f"suite_timings: {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
