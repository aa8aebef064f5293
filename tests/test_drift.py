"""The nightly drift report on real nights: synthetic footage run through the whole pipeline in this
process (`--runner local`), into a real warehouse.

The module fixture runs five small nights of three cameras: three of half a minute like each other
(the window), a fourth like them, and a fifth whose action mix is shifted (nearly every action a
wave) with two extra cameras, one black and one frozen on a single frame. The window is three
nights. The last two nights are a minute long, so that tonight's mix is measured on two dozen events
rather than ten (the chi-square test needs them; rates are per hour, so a longer night alone
changes no rate).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from actrec_batch import layout
from actrec_batch.config import load_settings
from actrec_batch.drift import chi_square_p, psi, rate_p
from actrec_batch.errors import DriftAlert
from actrec_batch.pipeline.nightly import quality_stage, run_nightly
from actrec_batch.pipeline.spec import RunSpec
from actrec_batch.runs import QualityRecord, RunFolder
from actrec_batch.storage import open_store
from actrec_batch.synth import synth_footage
from actrec_batch.video import VideoWriter
from actrec_batch.video.health import frame_health
from actrec_batch.warehouse import open_warehouse

ROOT = Path(__file__).parents[1]
DATES = [dt.date(2026, 11, d) for d in range(1, 6)]
WINDOW, SIMILAR, SHIFTED = DATES[:3], DATES[3], DATES[4]
SHIFT = "wave=40"  # the shifted night: waving forty times likelier than usual
BLACK, FROZEN = "cam-08", "cam-09"


def _settings(root: Path, url: str, **more):
    values = {"store": str(root), "warehouse_url": url, "runner": "local", "segment_s": 20}
    return load_settings({**values, "drift_window_nights": 3, **more}, env={})


def _write_dead_camera(store, date: dt.date, camera: str, frame: np.ndarray) -> None:
    """20 s of one frame repeated (all black, or a frozen picture) at 10 fps, as ``camera``'s footage."""
    path = store.root / layout.camera_prefix(date, camera) / f"{camera}_{date:%Y%m%d}T120000Z.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    start = dt.datetime.combine(date, dt.time(12), tzinfo=dt.UTC)
    h, w = frame.shape[:2]
    with VideoWriter(path, fps=10, width=w, height=h, codec="h264", creation_time=start) as out:
        for _ in range(200):
            out.write(frame)


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """The five nights in one store and one DuckDB warehouse; {date: that night's quality report}."""
    base = tmp_path_factory.mktemp("drift")
    root, url = base / "store", f"duckdb:///{base}/warehouse.duckdb"
    store = open_store(str(root))
    settings = _settings(root, url)
    reports = {}
    for k, date in enumerate(DATES):
        mix = SHIFT if date == SHIFTED else ""
        minutes = 0.5 if date in WINDOW else 1.0
        synth_footage(
            store, date=date, cameras=3, minutes=minutes, seed=100 + k, action_mix=mix, progress=False
        )
        if date == SHIFTED:
            _write_dead_camera(store, date, BLACK, np.zeros((120, 160, 3), np.uint8))
            picture = np.random.default_rng(5).integers(0, 256, (120, 160, 3), dtype=np.uint8)
            _write_dead_camera(store, date, FROZEN, picture)
        summary = run_nightly(settings, RunSpec(date))
        reports[date] = RunFolder(store, date, summary["run_id"]).read(QualityRecord).to_json()
    return root, url, reports


def _status(report: dict, metric: str, subject: str = "all") -> str:
    rows = [r for r in report["drift"]["metrics"] if (r["metric"], r["subject"]) == (metric, subject)]
    assert len(rows) == 1, (metric, subject, report["drift"]["metrics"])
    return rows[0]["alert_status"]


def test_the_statistics_on_hand_worked_cases():
    assert psi({"a": 10, "b": 10}, {"a": 30, "b": 30}) == pytest.approx(0.0)
    assert psi({"a": 20, "b": 0}, {"a": 10, "b": 10}) > 0.25 > psi({"a": 11, "b": 9}, {"a": 10, "b": 10})
    assert chi_square_p({"a": 40, "b": 0}, {"a": 20, "b": 20}) < 0.01 < chi_square_p({"a": 3}, {"b": 3})
    # half the hours and half the events: one rate; 30 events where about 3 were due: not one rate
    assert rate_p(5, 1.0, 10, 2.0) == pytest.approx(1.0)
    assert rate_p(30, 1.0, 6, 2.0) < 1e-6
    black = frame_health(np.zeros((5, 8, 8, 3), np.uint8))
    assert (black.black_fraction, black.static_fraction) == (1.0, 1.0)
    live = frame_health(np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8))
    assert (live.black_fraction, live.static_fraction) == (0.0, 0.0)


def test_a_first_night_has_no_baseline_and_no_alert(nights):
    _, _, reports = nights
    drift = reports[DATES[0]]["drift"]
    assert drift["baseline"] is False and drift["window"]["dates"] == []
    assert drift["alert"] is False and drift["alerts"] == []
    assert _status(reports[DATES[0]], "label_psi") == "no_baseline"
    assert _status(reports[DATES[0]], "quarantine_rate") == "no_baseline"


def test_a_night_like_the_window_raises_no_alert(nights):
    _, _, reports = nights
    report = reports[SIMILAR]
    drift = report["drift"]
    assert drift["window"]["dates"] == [d.isoformat() for d in WINDOW] and drift["baseline"]
    assert drift["alerts"] == [], drift["alerts"]
    assert _status(report, "label_psi") in ("ok", "warn")
    assert {_status(report, "event_rate", f"cam-0{c}") for c in (1, 2, 3)} == {"ok"}
    # the frames were decoded this run, so frame health was measured on every camera: all alive
    health = drift["frame_health"]
    assert health["measured"] and sorted(health["cameras"]) == ["cam-01", "cam-02", "cam-03"]
    assert all(c["black_fraction"] == 0.0 and c["static_fraction"] < 0.2 for c in health["cameras"].values())
    # quality.json keeps its keys, and the evaluation's figures are rows too
    assert {"events", "evaluation", "drift"} <= set(report)
    assert _status(report, "precision") == "info"


def test_a_shifted_action_mix_and_dead_cameras_raise_alerts(nights):
    _, _, reports = nights
    report = reports[SHIFTED]
    drift = report["drift"]
    assert drift["alert"] is True
    assert _status(report, "label_psi") == "alert"
    shares = {r["subject"]: r for r in drift["metrics"] if r["metric"] == "label_share"}
    assert shares["wave"]["value"] > 2 * shares["wave"]["baseline"]
    assert _status(report, "black_fraction", BLACK) == "alert"
    assert _status(report, "static_fraction", FROZEN) == "alert"
    assert _status(report, "black_fraction", FROZEN) == "ok"  # frozen on a picture, not black
    for live in ("cam-01", "cam-02", "cam-03"):
        assert _status(report, "black_fraction", live) == _status(report, "static_fraction", live) == "ok"
    assert _status(report, "event_rate", BLACK) == "no_baseline"  # a camera new tonight
    messages = " | ".join(a["message"] for a in drift["alerts"])
    assert "label_psi all" in messages and f"black_fraction {BLACK}" in messages
    assert f"static_fraction {FROZEN}" in messages
    videos = drift["frame_health"]["videos"]
    assert [v["black_fraction"] for k, v in videos.items() if f"camera={BLACK}/" in k] == [1.0]


def test_quality_stage_warns_and_fails_when_configured(nights, tmp_path, caplog):
    root, url, reports = nights
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(url.removeprefix("duckdb:///"), copy)  # this test's quality rows stay its own
    store = open_store(str(root))
    run_id = reports[SHIFTED]["run_id"]
    settings = _settings(root, f"duckdb:///{copy}", drift_fail_on_alert="true")
    with caplog.at_level(logging.WARNING), pytest.raises(DriftAlert) as err:
        quality_stage(store, SHIFTED, run_id, settings=settings)
    page = reports[SHIFTED]["drift"]["page_uri"]
    assert err.value.reason == "drift_alert"
    assert (
        SHIFTED.isoformat() in str(err.value) and run_id in str(err.value) and "label_psi" in str(err.value)
    )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("label_psi" in w and page in w for w in warned), warned
    assert any(f"black_fraction {BLACK}" in w for w in warned), warned


def test_quality_metrics_on_both_engines_and_a_rerun_replaces_them(nights, tmp_path, warehouse_url):
    """The shifted night published into a fresh warehouse on each engine, twice: the second run's
    rows replace the first's. Both runs find every unit checkpointed, so they decode nothing and
    the report says frame health was not measured."""
    root, _, _ = nights
    store_root = tmp_path / "store"
    shutil.copytree(root, store_root)
    settings = _settings(store_root, warehouse_url)
    store = open_store(str(store_root))
    keys = []
    for _ in range(2):
        summary = run_nightly(settings, RunSpec(SHIFTED), discover_first=False)
        assert summary["frames_decoded"] == 0
        report = RunFolder(store, SHIFTED, summary["run_id"]).read(QualityRecord).to_json()
        assert report["drift"]["frame_health"]["measured"] is False
        wh = open_warehouse(warehouse_url)
        with wh.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT run_id, metric, subject, alert_status FROM quality_metrics WHERE logical_date = :d"
                ),
                {"d": SHIFTED},
            ).all()
        wh.dispose()
        assert {r.run_id for r in rows} == {summary["run_id"]}
        assert len(rows) == len(report["drift"]["metrics"]) > 5
        keys.append(sorted((r.metric, r.subject) for r in rows))
    assert keys[0] == keys[1]
    assert not any(m in ("black_fraction", "static_fraction") for m, _ in keys[1])


def test_actrec_quality_prints_the_report(nights):
    root, url, reports = nights
    env = {**os.environ, "ACTREC_STORE": str(root), "ACTREC_WAREHOUSE_URL": url, "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "actrec_batch", "quality", "--date", SHIFTED.isoformat()]
    proc = subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr  # an alert
    assert json.loads(proc.stdout)["drift"]["alerts"] == reports[SHIFTED]["drift"]["alerts"]
    first = DATES[0].isoformat()
    proc = subprocess.run(
        [*run[:-1], first, "--run-id", reports[DATES[0]]["run_id"]],
        env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no baseline" in proc.stdout and "quality.html" in proc.stdout


def test_the_quality_page_shows_the_alerts_and_its_plots(nights, chromium, tmp_path):
    root, _, reports = nights
    page = reports[SHIFTED]["drift"]["page_uri"]
    assert page.startswith("file://") and page.endswith("/quality.html")
    chromium.get(page)
    text = chromium.find_element("tag name", "body").text
    assert "DRIFT ALERT" in text and "label_psi all" in text and f"black_fraction {BLACK}" in text
    for title in (
        "Label shares",
        "Confidence distribution",
        "Event rate per camera",
        "Frame health per camera",
    ):
        assert title in text
    assert len(chromium.find_elements("css selector", "section svg")) == 4
    shot = tmp_path / "quality-report.png"
    assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    keep = ROOT / ".actrec" / "screenshots"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "quality-report.png")
