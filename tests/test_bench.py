"""The benchmark harness runs end to end (``bench/all.py --smoke``) and its report has the shape
``make bench`` promises: every goal says what was measured and whether it holds, every figure
has n >= 1 runs with median, min and max. Timings are never asserted here (bench/ measures them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def test_bench_smoke_report(tmp_path):
    results = tmp_path / "results"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [sys.executable, str(BENCH / "all.py"), "--smoke", "--results", str(results)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    report = json.loads((results / "results.json").read_text())
    assert {"cpu", "cores", "memory_gib"} <= set(report["machine"])
    assert {"python", "av", "ffmpeg", "torch", "ray", "duckdb", "psycopg"} <= set(report["versions"])
    assert "postgresql" in report and isinstance(report["gpu"]["cuda_available"], bool)
    names = {s["section"] for s in report["sections"]}
    assert {"decode", "e2e", "rescore", "memory", "warehouse"} <= names, names
    goals = [g for s in report["sections"] for g in s["goals"]]
    assert goals and report["goals_total"] == len(goals)
    for s in report["sections"]:
        assert s["figures"], s["section"]
        for f in s["figures"]:
            assert f["n"] >= 1 and len(f["runs"]) == f["n"], (s["section"], f["id"])
            assert f["min"] <= f["median"] <= f["max"], (s["section"], f["id"])
        ids = {f["id"] for f in s["figures"]}
        for g in s["goals"]:
            assert g["figure"] in ids and g["measured"] is not None, (s["section"], g)
            assert g["holds"] in (True, False) and g["op"] in (">=", "<=")
            assert g["holds"] or g["why_missed"], (s["section"], g["id"])  # a missed goal says why
        if s["section"] in ("decode", "e2e", "rescore", "memory", "warehouse"):
            assert s["smoke"] is True

    # The in-flight goal checks a measured peak against the plan's bound, never an absent one.
    memory = next(s for s in report["sections"] if s["section"] == "memory")
    inflight = next(f for f in memory["figures"] if f["id"] == "inflight.peak")
    assert min(inflight["runs"]) >= 1 and all(b >= 1 for b in inflight["detail"]["bound"]), inflight

    page = (results / "BENCHMARKS.md").read_text()
    for heading in ("## Machine", "## GPU", "## Goals"):
        assert heading in page
    assert "CUDA is " in page
    for s in report["sections"]:
        assert f"(`{s['section']}`)" in page
