"""Warehouse load rate and search latency, on PostgreSQL and DuckDB, through the project's own code.

- load: ``Warehouse.date_load(...).replace_events`` of N events (default 1M) for one date and one
  model version, in one transaction: COPY on PostgreSQL, the Parquet reader on DuckDB; the indexes
  are maintained during the load, as in production. Goal: >= 200k events/s on PostgreSQL.
- search: ``search_events`` (what ``actrec search`` runs) over ``current_action_events`` holding M
  events (default 5M: 50 dates x 100k, 200 cameras, 7 labels). Three query shapes, each repeated
  with random values: label + one day, camera + one day, label + min confidence over a week, all
  with ``--limit 100``. Goal: p95 < 50 ms on PostgreSQL with the indexes.

The events are synthetic rows with realistic widths (32-hex ids, URIs, shas). PostgreSQL is the
one ``make test`` starts (ACTREC_TEST_PG_URL or .actrec/test-services.env); each run uses a fresh
schema and drops it. Writes bench/results/warehouse.json.

Usage: python bench/warehouse.py [--load-events 1000000] [--search-events 5000000] [--queries 200]
       [--engines postgresql,duckdb]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actrec_batch.warehouse import open_warehouse  # noqa: E402
from actrec_batch.warehouse.queries import SearchFilter, search_events  # noqa: E402
from actrec_batch.warehouse.schema import EVENT_COLUMNS  # noqa: E402

LABELS = ["walk", "run", "wave", "jump", "fall", "sit_down", "stand_up"]
CAMERAS = 200
FIRST_DATE = dt.date(2026, 9, 1)


def events(n: int, date: dt.date, seed: int, version: str = "2") -> pa.Table:
    """``n`` events of ``date`` spread over a day and CAMERAS cameras, vectorised."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n, dtype=np.int64) + seed * 10_000_000
    cam = rng.integers(0, CAMERAS, n)
    start = rng.uniform(0, 86_000, n).round(3)
    length = rng.uniform(0.5, 8.0, n).round(3)
    midnight = np.datetime64(date.isoformat(), "us")
    start_ts = midnight + (start * 1e6).astype("timedelta64[us]")
    end_ts = midnight + ((start + length) * 1e6).astype("timedelta64[us]")
    cameras = np.char.add("cam-", np.char.zfill(cam.astype(str), 3))
    video = np.char.add(cameras, np.char.add("-", (start // 300).astype(np.int64).astype(str)))
    ts = pa.timestamp("us", tz="UTC")
    cols = {
        "event_id": pa.array(np.char.mod("%032x", idx)),
        "run_id": pa.array(np.full(n, f"{date}-bench-run")),
        "video_id": pa.array(video),
        "camera_id": pa.array(cameras),
        "logical_date": pa.array(np.full(n, date.isoformat())),
        "label": pa.array(np.array(LABELS)[rng.integers(0, len(LABELS), n)]),
        "start_s": pa.array(start % 300),
        "end_s": pa.array(start % 300 + length),
        "start_ts": pa.array(start_ts).cast(ts),
        "end_ts": pa.array(end_ts).cast(ts),
        "confidence": pa.array(rng.uniform(0.3, 1.0, n)),
        "model_name": pa.array(np.full(n, "reference")),
        "model_version": pa.array(np.full(n, version)),
        "model_sha256": pa.array(np.full(n, "ab" * 32)),
        "extractor_id": pa.array(np.full(n, "reference-extractor@2")),
        "content_id": pa.array(np.full(n, "cd" * 32)),
        "code_version": pa.array(np.full(n, "0.1.0")),
        "uri": pa.array(
            np.char.add(f"s3://footage/footage/date={date}/camera=", np.char.add(cameras, "/x.mp4"))
        ),
        "end_video_id": pa.array(video),
        "end_offset_s": pa.array(start % 300 + length),
    }
    return pa.table({c: cols[c] for c in EVENT_COLUMNS})


def _pg_base() -> str:
    url = os.environ.get("ACTREC_TEST_PG_URL")
    env_file = ROOT / ".actrec" / "test-services.env"
    if not url and env_file.is_file():
        url = env_file.read_text().strip().partition("=")[2]
    if not url:
        sys.exit("bench/warehouse.py: no PostgreSQL; run `make services` or set ACTREC_TEST_PG_URL")
    return url


class Engine:
    """A fresh warehouse on one engine, removed on close."""

    def __init__(self, kind: str, tmp: Path) -> None:
        import sqlalchemy as sa

        self.kind, self._sa = kind, sa
        if kind == "duckdb":
            self.url = f"duckdb:///{tmp}/bench-{uuid.uuid4().hex[:8]}.duckdb"
            self._admin = None
        else:
            base = _pg_base()
            self.schema = f"bench_{uuid.uuid4().hex[:10]}"
            self._admin = sa.create_engine(base)
            with self._admin.begin() as c:
                c.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            self.url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{self.schema}"
        self.wh = open_warehouse(self.url, upgrade=True)

    def load(self, table: pa.Table, date: dt.date, tmp: Path) -> float:
        path = tmp / f"load-{date}.parquet"
        pq.write_table(table, path, row_group_size=128 * 1024)
        t0 = time.perf_counter()
        with self.wh.date_load(date) as dl:
            dl.replace_events("reference", "2", table, parquet_path=path)
            dl.activate("reference", "2", f"{date}-bench-run", dt.datetime.now(dt.UTC))
        wall = time.perf_counter() - t0
        path.unlink()
        return wall

    def analyze(self) -> None:
        with self.wh.begin() as c:
            c.execute(self._sa.text("ANALYZE"))

    def close(self) -> None:
        self.wh.dispose()
        if self._admin is not None:
            with self._admin.begin() as c:
                c.execute(self._sa.text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            self._admin.dispose()


def bench_load(kind: str, n: int, tmp: Path) -> dict:
    table = events(n, FIRST_DATE, seed=1)
    eng = Engine(kind, tmp)
    try:
        cold = eng.load(table, FIRST_DATE, tmp)
        replace = eng.load(table, FIRST_DATE, tmp)  # a rerun: delete the date's rows, load again
    finally:
        eng.close()
    out = {
        "events": n,
        "load_s": round(cold, 2),
        "events_per_s": round(n / cold),
        "rerun_replace_s": round(replace, 2),
        "rerun_events_per_s": round(n / replace),
    }
    print(
        f"load {kind}: {n:,} events in {cold:.2f} s = {n / cold:,.0f} events/s; rerun (replace) {replace:.2f} s",
        flush=True,
    )
    return out


def bench_search(kind: str, total: int, queries: int, tmp: Path) -> dict:
    per_date = 100_000 if total >= 100_000 else total
    dates = [FIRST_DATE + dt.timedelta(days=k) for k in range(max(1, total // per_date))]
    eng = Engine(kind, tmp)
    try:
        t0 = time.perf_counter()
        for k, date in enumerate(dates):
            eng.load(events(per_date, date, seed=100 + k), date, tmp)
            if (k + 1) % 10 == 0 or k + 1 == len(dates):
                print(f"  {kind}: loaded {(k + 1) * per_date:,}/{len(dates) * per_date:,} events", flush=True)
        load_s = time.perf_counter() - t0
        eng.analyze()
        rng = np.random.default_rng(7)
        shapes = {
            "label_day": lambda d: SearchFilter(
                label=str(rng.choice(LABELS)), start=d, end=d + dt.timedelta(days=1)
            ),
            "camera_day": lambda d: SearchFilter(
                camera=f"cam-{rng.integers(0, CAMERAS):03d}", start=d, end=d + dt.timedelta(days=1)
            ),
            "label_week_confident": lambda d: SearchFilter(
                label=str(rng.choice(LABELS)), start=d, end=d + dt.timedelta(days=7), min_confidence=0.95
            ),
        }
        out: dict = {"events": len(dates) * per_date, "load_s": round(load_s, 1), "queries": {}}
        all_ms = []
        for name, make in shapes.items():
            search_events(eng.wh, make(dt.datetime.combine(dates[0], dt.time(), dt.UTC)))  # warm-up
            ms = []
            for _ in range(queries):
                day = dates[int(rng.integers(0, len(dates)))]
                f = make(dt.datetime.combine(day, dt.time(), dt.UTC))
                t = time.perf_counter()
                rows = search_events(eng.wh, f)
                ms.append((time.perf_counter() - t) * 1000)
                assert len(rows) <= 100
            ms.sort()
            all_ms += ms
            out["queries"][name] = {
                "p50_ms": round(statistics.median(ms), 2),
                "p95_ms": round(ms[int(0.95 * len(ms)) - 1], 2),
            }
            print(
                f"search {kind} {name}: p50 {out['queries'][name]['p50_ms']} ms, p95 {out['queries'][name]['p95_ms']} ms",
                flush=True,
            )
        all_ms.sort()
        out["p50_ms"] = round(statistics.median(all_ms), 2)
        out["p95_ms"] = round(all_ms[int(0.95 * len(all_ms)) - 1], 2)
        print(
            f"search {kind} over {out['events']:,} events: p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms",
            flush=True,
        )
    finally:
        eng.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load-events", type=int, default=1_000_000)
    ap.add_argument("--search-events", type=int, default=5_000_000)
    ap.add_argument("--queries", type=int, default=200, help="per query shape")
    ap.add_argument("--engines", default="postgresql,duckdb")
    args = ap.parse_args()
    results: dict = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores",
        "load": {},
        "search": {},
    }
    with tempfile.TemporaryDirectory(prefix="actrec-bench-wh-") as tmp:
        for kind in args.engines.split(","):
            results["load"][kind] = bench_load(kind, args.load_events, Path(tmp))
            results["search"][kind] = bench_search(kind, args.search_events, args.queries, Path(tmp))
    out = ROOT / "bench" / "results" / "warehouse.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
