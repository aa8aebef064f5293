"""`actrec run` end to end into both real warehouses: Parquet partition, warehouse rows, Great
Expectations on the events, reruns, a forced validation failure, rescoring and search.

One synthetic night (two cameras and one corrupt file) is inferred once on a local Ray by the
module fixture; every later run finds its units checkpointed and its features cached, so it
exercises validation, publishing and the warehouse without paying for decoding again.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from handshake import run_together

from actrec_batch import layout
from actrec_batch.config import load_settings
from actrec_batch.errors import ValidationFailed
from actrec_batch.evaluation import load_truth
from actrec_batch.model import DEFAULT_MODEL
from actrec_batch.model.refs import SHIPPED_DIR
from actrec_batch.pipeline.nightly import infer_stage, publish_stage, run_nightly, validate_stage
from actrec_batch.pipeline.spec import RunSpec
from actrec_batch.runs import RunFolder, ValidationRecord
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage
from actrec_batch.warehouse import open_warehouse

DATE = dt.date(2026, 11, 5)
VERSION = DEFAULT_MODEL.split("@")[1]  # the shipped default model's version
ACTREC = str(Path(sys.executable).with_name("actrec"))


def _env(root: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ACTREC_STORE": str(root),
        "ACTREC_WAREHOUSE_URL": url,
        "ACTREC_SEGMENT_S": "20",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }


def _actrec(args: list[str], root: Path, url: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [ACTREC, *args], env=_env(root, url), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"actrec {' '.join(args)} failed: {proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A store with a synthetic night (2 cameras x 1 min, plus a corrupt file) whose units are all
    inferred and checkpointed once, on a real local Ray, by `actrec infer --discover`."""
    base = tmp_path_factory.mktemp("publish")
    root = base / "store"
    store = open_store(str(root))
    synth_footage(store, date=DATE, cameras=2, minutes=1.0, seed=4242, progress=False)
    store.put_bytes(
        f"{layout.camera_prefix(DATE, 'cam-01')}broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 4000
    )
    _actrec(["infer", "--discover", "--date", DATE.isoformat()], root, f"duckdb:///{base}/warmup.duckdb")
    return root, store


def _counts(url: str) -> dict[str, int]:
    wh = open_warehouse(url)
    with wh.connect() as conn:
        out = {
            table: conn.execute(
                sa.text(f"SELECT COUNT(*) FROM {table} WHERE logical_date = :d"), {"d": DATE}
            ).scalar_one()
            for table in ("action_events", "current_action_events", "videos", "quarantine", "runs")
        }
    wh.dispose()
    return out


def _published(root: Path) -> pa.Table:
    dataset = ds.dataset(str(root / "events"), format="parquet", partitioning="hive")
    return dataset.to_table(
        filter=(ds.field("date") == DATE.isoformat()) & (ds.field("model_version") == VERSION)
    )


def test_actrec_run_fills_the_warehouse_and_a_rerun_changes_no_counts(night, warehouse_url):
    root, store = night
    summary = json.loads(
        _actrec(["run", "--date", DATE.isoformat(), "--json"], root, warehouse_url).stdout.splitlines()[-1]
    )
    assert summary["status"] == "success"
    assert summary["stages"] == [
        "discover",
        "validate_manifest",
        "infer",
        "validate_events",
        "publish",
        "cost",
        "quality",
    ]
    assert summary["cost_usd"] > 0 and summary["quality_uri"].endswith("quality.json")
    assert summary["videos_discovered"] == summary["videos_processed"] + summary["videos_quarantined"] == 3
    assert summary["units_skipped_checkpoint"] == summary["units_total"] and summary["frames_decoded"] == 0
    counts = _counts(warehouse_url)
    assert counts["action_events"] == counts["current_action_events"] == summary["events"] > 0
    assert counts["videos"] + counts["quarantine"] == summary["videos_discovered"]
    assert counts["quarantine"] == 1 and counts["runs"] == 1

    wh = open_warehouse(warehouse_url)
    with wh.connect() as conn:
        lineage = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM action_events WHERE logical_date = :d AND run_id = :r AND model_version = :v "
                "AND extractor_id IS NOT NULL AND code_version IS NOT NULL AND model_sha256 IS NOT NULL"
            ),
            {"d": DATE, "r": summary["run_id"], "v": VERSION},
        ).scalar_one()
        reason = conn.execute(
            sa.text("SELECT reason FROM quarantine WHERE logical_date = :d"), {"d": DATE}
        ).scalar_one()
        run = conn.execute(sa.text("SELECT status, videos_discovered, events FROM runs")).one()
    wh.dispose()
    assert lineage == summary["events"]
    assert reason in {"truncated", "decode_error", "not_a_video", "no_video_stream"}
    assert tuple(run) == ("success", 3, summary["events"])

    # The Parquet partition holds the same events, once each, sorted and readable as a Hive dataset.
    table = _published(root)
    assert table.num_rows == summary["events"]
    assert len(set(table.column("event_id").to_pylist())) == table.num_rows
    assert table.column("camera_id").to_pylist() == sorted(table.column("camera_id").to_pylist())
    docs = summary["docs_uri"]
    assert docs.endswith("index.html") and store.exists(docs.split("/store/", 1)[1])

    # A rerun of the date (a backfill, an Airflow clear) replaces the partition: same counts.
    _actrec(["run", "--date", DATE.isoformat()], root, warehouse_url)
    again = _counts(warehouse_url)
    assert {k: v for k, v in again.items() if k != "runs"} == {k: v for k, v in counts.items() if k != "runs"}
    assert again["runs"] == 2  # runs is the history of attempts, one row each
    assert _published(root).num_rows == summary["events"]

    # `actrec cost`: one job's ledger, from the store, in the three formats; it agrees with the
    # warehouse's job_costs rows and runs.cost_usd.
    def cost(*args: str) -> str:
        return _actrec(["cost", *args], root, warehouse_url).stdout

    first = json.loads(cost("--run-id", summary["run_id"], "--format", "json"))
    assert first["run_id"] == summary["run_id"] and first["status"] == "success"
    assert first["model"] == f"reference@{summary['model_version']}"
    assert first["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in first["rows"]))
    wh = open_warehouse(warehouse_url)
    with wh.connect() as conn:
        ledger = conn.execute(
            sa.text("SELECT SUM(cost_usd), COUNT(*) FROM job_costs WHERE run_id = :r"), {"r": first["run_id"]}
        ).one()
        total = conn.execute(
            sa.text("SELECT cost_usd FROM runs WHERE run_id = :r"), {"r": first["run_id"]}
        ).scalar_one()
    wh.dispose()
    assert (pytest.approx(ledger[0]), ledger[1]) == (first["cost_usd"], len(first["rows"]))
    assert total == pytest.approx(first["cost_usd"])
    latest = json.loads(cost("--date", DATE.isoformat(), "--format", "json"))
    assert latest["run_id"] != first["run_id"]  # the rerun was priced last
    table = cost("--date", DATE.isoformat())
    # priced by the catalogue as the configured GPU instance (a local Ray has no instance types)
    assert latest["run_id"] in table and "g5.xlarge" in table and "priced as:" in table and "total $" in table
    page = cost("--run-id", summary["run_id"], "--format", "html")
    assert page.startswith("<!doctype html>") and summary["run_id"] in page and "<svg" in page
    assert store.exists(layout.cost_report_key(DATE, summary["run_id"]))  # the report, under reports/
    last = json.loads(cost("--last", "2", "--format", "json"))
    assert [r["run_id"] for r in last] == sorted([summary["run_id"], latest["run_id"]])


def test_search_finds_the_ground_truth_falls(night, warehouse_url):
    root, store = night
    _actrec(["run", "--date", DATE.isoformat()], root, warehouse_url)
    out = _actrec(
        ["search", "--label", "fall", "--format", "json", "--limit", "1000"], root, warehouse_url
    ).stdout
    found = json.loads(out)
    assert found and all(r["label"] == "fall" for r in found)
    falls = [t for t in load_truth(store, DATE) if t.label == "fall"]
    assert falls, "the synthetic night should contain falls"
    for truth in falls:
        hits = [
            r
            for r in found
            if r["uri"].endswith(truth.video) and r["start_s"] < truth.end_s and r["end_s"] > truth.start_s
        ]
        assert hits, f"no fall found for the ground-truth fall {truth}"
    # Wall-clock times (the recordings' start is known for synthetic footage) and CSV/table output.
    assert all(r["when"].endswith("Z") for r in found)
    csv_out = _actrec(["search", "--label", "fall", "--format", "csv"], root, warehouse_url).stdout
    # actrec eval reads the warehouse's current events by default; the Parquet files say the same.
    evals = [
        json.loads(
            _actrec(
                ["eval", "--date", DATE.isoformat(), "--format", "json", "--source", src], root, warehouse_url
            ).stdout
        )
        for src in ("warehouse", "parquet")
    ]
    assert evals[0] == evals[1] and evals[0]["per_class"]["fall"]["recall"] == 1.0
    assert (
        csv_out.splitlines()[0].startswith("when,camera_id,label")
        and len(csv_out.splitlines()) == len(found) + 1
    )


def test_a_failed_validation_blocks_the_publish_and_keeps_the_old_data(night, warehouse_url):
    root, store = night
    settings = load_settings({"store": str(root), "warehouse_url": warehouse_url, "segment_s": 20}, env={})
    run_nightly(settings, RunSpec(DATE), discover_first=False)
    key = f"events/date=2026-11-05/events-reference-{VERSION}.parquet"
    before_bytes, before_counts = store.get_bytes(key), _counts(warehouse_url)

    job = infer_stage(settings, RunSpec(DATE), store=store)  # a new run, all from checkpoints
    staged_key = layout.staging_events_key(DATE, job.run_id)
    table = pq.read_table(io.BytesIO(store.get_bytes(staged_key)))
    conf = table.column("confidence").to_pylist()
    conf[0] = 1.7  # a corrupt event: confidence outside [0, 1]
    table = table.set_column(
        table.column_names.index("confidence"), "confidence", pa.array(conf, pa.float64())
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.put_bytes(staged_key, buf.getvalue())

    with pytest.raises(ValidationFailed, match=r"expect_column_values_to_be_between on confidence.*1\.7"):
        validate_stage(store, DATE, job.run_id)
    record = json.loads(store.get_bytes(RunFolder(store, DATE, job.run_id).key(ValidationRecord)))
    assert record["success"] is False and record["docs_uri"].endswith("index.html")
    with pytest.raises(ValidationFailed, match="have not passed validation") as exc:
        publish_stage(settings, store, DATE, job.run_id)
    assert exc.value.reason == "not_validated"
    assert store.get_bytes(key) == before_bytes
    assert _counts(warehouse_url) == before_counts


def test_rescoring_with_a_new_version_adds_rows_and_switches_the_view(night, warehouse_url, tmp_path):
    root, store = night
    settings = load_settings({"store": str(root), "warehouse_url": warehouse_url, "segment_s": 20}, env={})
    first = run_nightly(settings, RunSpec(DATE), discover_first=False)
    bundle = tmp_path / "reference-v9"  # the shipped default under a new version: same extractor
    shutil.copytree(Path(SHIPPED_DIR) / f"reference-v{VERSION}", bundle)
    card = json.loads((bundle / "card.json").read_text())
    (bundle / "card.json").write_text(json.dumps({**card, "version": "9"}))

    out = _actrec(
        ["rescore", "--from", DATE.isoformat(), "--to", DATE.isoformat(), "--model", str(bundle), "--json"],
        root,
        warehouse_url,
    )
    second = json.loads(out.stdout.splitlines()[-1])
    assert second["model"] == "reference@9" and second["frames_decoded"] == 0
    # Cached features only (or, when another test rescored first, this version's checkpoints).
    assert second["cache_hits"] + second["units_skipped_checkpoint"] == second["units_total"]
    wh = open_warehouse(warehouse_url)
    with wh.connect() as conn:
        per_version = dict(
            conn.execute(
                sa.text(
                    "SELECT model_version, COUNT(*) FROM action_events WHERE logical_date = :d GROUP BY model_version"
                ),
                {"d": DATE},
            ).all()
        )
        current = (
            conn.execute(sa.text("SELECT DISTINCT model_version FROM current_action_events")).scalars().all()
        )
    wh.dispose()
    assert per_version == {VERSION: first["events"], "9": second["events"]}
    assert current == ["9"]
    # Either version can still be evaluated from the warehouse, named by reference or by bundle path.
    for ref in (DEFAULT_MODEL, str(bundle)):
        report = json.loads(
            _actrec(
                [
                    "eval",
                    "--date",
                    DATE.isoformat(),
                    "--model",
                    ref,
                    "--source",
                    "warehouse",
                    "--format",
                    "json",
                ],
                root,
                warehouse_url,
            ).stdout
        )
        assert 0.0 <= report["f1"] <= 1.0 and report["per_class"]
    assert sorted(p.name for p in (root / "events" / f"date={DATE}").glob("*.parquet")) == [
        f"events-reference-{VERSION}.parquet",
        "events-reference-9.parquet",
    ]


_PUBLISH = """
import pathlib, sys
sys.path.insert(0, sys.argv[6])
from handshake import overlap_date_loads, ready_then_wait_for_go
from actrec_batch.config import load_settings
from actrec_batch.pipeline.nightly import publish_stage
from actrec_batch.storage import open_store
root, url, tmp, date, run_id = sys.argv[1:6]
import datetime as dt
settings = load_settings({"store": root, "warehouse_url": url}, env={})
store = open_store(root)
ready_then_wait_for_go(pathlib.Path(tmp), run_id)
overlap_date_loads(pathlib.Path(tmp), run_id)  # the first publish holds the date until the other waits on it
print(publish_stage(settings, store, dt.date.fromisoformat(date), run_id).events)
"""


def test_two_processes_publishing_the_same_date_leave_one_consistent_set(night, warehouse_url, tmp_path):
    root, store = night
    settings = load_settings({"store": str(root), "warehouse_url": warehouse_url, "segment_s": 20}, env={})
    run_ids = []
    for _ in range(2):  # two validated runs of the same date, published at the same moment
        job = infer_stage(settings, RunSpec(DATE), store=store)
        validate_stage(store, DATE, job.run_id)
        run_ids.append(job.run_id)
    open_warehouse(warehouse_url, upgrade=True).dispose()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PUBLISH,
                str(root),
                warehouse_url,
                str(tmp_path),
                DATE.isoformat(),
                run_id,
                str(Path(__file__).parent),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run_id in run_ids
    ]
    outs = run_together(tmp_path, procs, run_ids)
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert (tmp_path / "overlapped").is_file(), (
        "the two publishes never met: one was not blocked by the other"
    )
    counts = _counts(warehouse_url)
    parquet = _published(root)
    assert counts["action_events"] == counts["current_action_events"] == parquet.num_rows == job.events
    wh = open_warehouse(warehouse_url)
    with wh.connect() as conn:
        db_runs = set(conn.execute(sa.text("SELECT DISTINCT run_id FROM action_events")).scalars())
        active = conn.execute(sa.text("SELECT run_id FROM active_models")).scalar_one()
    wh.dispose()
    # Whichever publish came second won everywhere: the warehouse, the view and the Parquet file agree.
    assert db_runs == set(parquet.column("run_id").to_pylist()) == {active}
    assert active in run_ids


def test_quality_of_unlabelled_footage_reports_event_statistics_only(night, tmp_path):
    """Real footage has no ground-truth sidecars: the quality stage must still succeed."""
    from actrec_batch.pipeline.nightly import quality_stage

    root, _ = night
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    for sidecar in copy.rglob("*.labels.json"):
        sidecar.unlink()
    store = open_store(str(copy))
    settings = load_settings({"store": str(copy), "segment_s": 20}, env={})
    job = infer_stage(settings, RunSpec(DATE), store=store)  # from checkpoints: no Ray
    report = quality_stage(store, DATE, job.run_id)
    assert report["evaluation"] is None
    assert report["events"]["count"] == job.events > 0
    assert sum(v["events"] for v in report["events"]["per_label"].values()) == job.events


def test_cost_ledger_prices_reserved_hours_at_spot_or_on_demand_rates():
    from actrec_batch.costs import ledger_rows

    settings = load_settings(
        {"cpu_hour_usd": "0.05", "gpu_hour_usd": "2.0", "spot_price_ratio": "0.3"}, env={}
    )
    metrics = {
        "resources": {
            "cpu": {"decode_task_s": 7200.0, "actor_reserved_s": 3600.0},
            "gpu": {"reserved_s": 1800.0},
        },
        "ray": {"nodes": [{"market": "spot"}, {"market": "spot"}]},
    }
    rows = {
        (r["component"], r["resource"]): r for r in ledger_rows(settings, "r1", metrics, {"wall_s": 360.0})
    }
    assert rows[("decode", "cpu")]["cost_usd"] == pytest.approx(2 * 0.05 * 0.3)
    assert rows[("infer", "gpu")]["cost_usd"] == pytest.approx(0.5 * 2.0 * 0.3)
    assert rows[("driver", "cpu")]["quantity"] == pytest.approx(0.1)
    assert {r["pricing"] for r in rows.values()} == {"spot"}
    metrics["ray"]["nodes"].append({"market": "on_demand"})  # any on-demand node: never understate the bill
    rows = ledger_rows(settings, "r1", metrics, {"wall_s": 0.0})
    assert {r["pricing"] for r in rows} == {"on_demand"} and ("driver", "cpu") not in {
        (r["component"], r["resource"]) for r in rows
    }
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(2 * 0.05 + 1 * 0.05 + 0.5 * 2.0)


def _run_rows(url: str) -> list[dict]:
    wh = open_warehouse(url)
    with wh.connect() as conn:
        rows = (
            conn.execute(sa.text("SELECT * FROM runs WHERE logical_date = :d"), {"d": DATE}).mappings().all()
        )
    wh.dispose()
    return [dict(r) for r in rows]


def _actrec_in_process(args: list[str], root: Path, url: str, monkeypatch, capsys) -> tuple[int, list[str]]:
    """``actrec ARGS`` run by ``main()`` in this process (so a monkeypatch reaches the pipeline);
    returns the exit code and the command's error lines on stderr."""
    from actrec_batch.cli import main

    for name, value in _env(root, url).items():
        monkeypatch.setenv(name, value)
    rc = main(args)
    return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith(f"actrec {args[0]}: ")]


def test_a_run_that_does_not_reconcile_fails_loudly_with_the_numbers(
    night, warehouse_url, tmp_path, monkeypatch, capsys
):
    """One processed video's record is lost on the way (monkeypatched): the run must fail, say
    which counts disagree, record a failed ``runs`` row and publish nothing."""
    from actrec_batch.pipeline.stages.assemble import AssembleStage

    root = tmp_path / "store"
    shutil.copytree(night[0], root)  # units checkpointed: no Ray; the module's store stays clean
    assemble = AssembleStage.process

    def losing_a_record(self):
        rows = assemble(self)
        self.state.result.videos_processed -= 1
        return rows

    monkeypatch.setattr(AssembleStage, "process", losing_a_record)
    rc, errors = _actrec_in_process(
        ["run", "--date", DATE.isoformat()], root, warehouse_url, monkeypatch, capsys
    )
    assert rc == 1 and len(errors) == 1, errors
    # 2 good videos (and 1 quarantined at discovery): 1 processed is what is left after the loss.
    numbers = r"does not reconcile: \d+ (discovered|manifested) != 1 processed \+ \d+ quarantined"
    assert re.search(r"\[reconcil\w*\]: .*" + numbers, errors[0]), errors
    [run] = _run_rows(warehouse_url)
    assert run["status"] == "failed" and run["finished_at"] is not None
    assert re.search(numbers, run["error"]), run["error"]
    assert _counts(warehouse_url)["action_events"] == 0  # nothing of the failed run was published


def test_a_failed_run_gets_its_runs_row_with_the_reason(night, warehouse_url, tmp_path, monkeypatch, capsys):
    """Any failure of `actrec run` (here, a model that does not exist) leaves a ``runs`` row with
    status failed and the error, beside the one-line error and exit code 1."""
    root = tmp_path / "store"
    shutil.copytree(night[0], root)
    args = ["run", "--date", DATE.isoformat(), "--model", "no-such-model@9"]
    rc, errors = _actrec_in_process(args, root, warehouse_url, monkeypatch, capsys)
    assert rc == 1 and len(errors) == 1 and "no-such-model" in errors[0], errors
    [run] = _run_rows(warehouse_url)
    assert run["status"] == "failed" and run["finished_at"] is not None
    assert "no-such-model" in run["error"] and run["error"] in errors[0]
    assert (run["events"], run["videos_processed"]) == (None, None)  # nothing is claimed for it
    assert _counts(warehouse_url)["action_events"] == 0
