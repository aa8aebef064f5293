"""`make demo`: render a small labelled synthetic night, then run the stages that exist.

Today that is synth -> discovery (probe, content id, quarantine, GX-validated manifest). The
demo prints only what it measured; later stages (inference, warehouse, Airflow) join it as they
land.
"""

from __future__ import annotations

import datetime as dt
import time

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.storage import open_store

DEMO_SEED = 20261124


def _inject_truncated_copy(store, date: dt.date, video_key: str) -> str:
    """Write a deliberately truncated copy of one video, so the demo shows quarantine at work."""
    data = store.get_bytes(video_key)
    camera = layout.camera_of(video_key, date)
    key = f"{layout.camera_prefix(date, camera)}zz_demo_truncated_copy.mp4"
    store.put_bytes(key, data[: len(data) // 2])
    return key


def run_demo(settings: Settings, *, date: dt.date, cameras: int = 2, minutes: float = 2.0) -> int:
    from actrec_batch.discovery import discover
    from actrec_batch.synth import synth_footage

    t0 = time.perf_counter()
    store = open_store(settings.store)
    print(f"actrec demo: store {store.root_uri}, logical date {date}")
    print(
        f"[1/2] synth: rendering {cameras} camera(s) x {minutes:g} min of labelled footage (seed {DEMO_SEED})"
    )
    report = synth_footage(store, date=date, cameras=cameras, minutes=minutes, seed=DEMO_SEED, progress=True)
    synth = report.to_json()
    bad_key = _inject_truncated_copy(store, date, synth["videos"][0])
    print(
        f"      {len(synth['videos'])} videos, {synth['footage_s']:.0f} s of footage, {synth['events']} labelled "
        f"events, {synth['footage_s'] / max(synth['wall_s'], 1e-9):.1f}x real time; "
        f"added a deliberately truncated copy: {bad_key}"
    )
    print("[2/2] discover: probe, content id, quarantine, Great Expectations manifest suite")
    found = discover(settings, date, store=store, progress=True).to_json()
    print(
        f"      {found['videos_discovered']} discovered = {found['videos_manifested']} manifested + "
        f"{found['videos_quarantined']} quarantined"
    )
    for q in found["quarantine"]:
        print(f"      quarantined [{q['reason']}] {q['uri']}")
    print(f"      manifest: {found['manifest_uri']}")
    print(f"      probe: {found['probe_s_per_file'] * 1000:.1f} ms per file")
    print(
        f"done in {time.perf_counter() - t0:.1f} s. Not yet in the demo: inference, the warehouse and the "
        "Airflow DAG (they land with the next issues; see README 'Status')."
    )
    return 0
