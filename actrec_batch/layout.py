"""Where everything lives in the object store, relative to the store root.

The footage and published-events layouts are public (docs/reference.md#object-store-layout). The rest is ours and
documented in the README:

- ``footage/date=D/camera=C/<file>`` and ``<file>.labels.json`` sidecars (input)
- ``manifests/date=D/manifest.parquet``: the validated manifest of one date
- ``manifests/date=D/discovery.json``: the discovery summary (counts, quarantine)
- ``quarantine/date=D/<stage>.parquet``: quarantined inputs with reason codes
- ``reports/date=D/...``: validation summaries and later Data Docs
- ``cache/features/<extractor>/<sampling>/<content_id>/<segment>.npz``: clip embeddings of one work
  unit, shared by every date, run and head that uses the same extractor and sampling
- ``checkpoints/date=D/<model>/<segmenting>/<video_id>/<segment>.json``: a unit committed for
  this date and model (a rerun or resume skips it)
- ``runs/date=D/run=<run_id>/``: one run's records, one per stage, and its summary; the keys
  inside are :mod:`actrec_batch.runs`'s, which alone reads and writes them
- ``staging/date=D/run=<run_id>/events.parquet``: a run's events before they are published
"""

from __future__ import annotations

import datetime as dt
import re

SIDECAR_SUFFIX = ".labels.json"
_CAMERA_DIR = re.compile(r"^camera=(?P<camera>[^/]+)$")


def footage_prefix(date: dt.date) -> str:
    return f"footage/date={date.isoformat()}/"


def camera_prefix(date: dt.date, camera_id: str) -> str:
    return f"{footage_prefix(date)}camera={camera_id}/"


def sidecar_key(video_key: str) -> str:
    return video_key + SIDECAR_SUFFIX


def manifest_key(date: dt.date) -> str:
    return f"manifests/date={date.isoformat()}/manifest.parquet"


def discovery_summary_key(date: dt.date) -> str:
    return f"manifests/date={date.isoformat()}/discovery.json"


def quarantine_key(date: dt.date, stage: str) -> str:
    return f"quarantine/date={date.isoformat()}/{stage}.parquet"


def report_prefix(date: dt.date) -> str:
    return f"reports/date={date.isoformat()}/"


def camera_of(key: str, date: dt.date) -> str | None:
    """The camera id of a footage key, or None if the key is not under ``camera=*/`` of ``date``."""
    prefix = footage_prefix(date)
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 2:
        return None
    m = _CAMERA_DIR.match(parts[0])
    return m["camera"] if m else None


def is_sidecar(key: str) -> bool:
    return key.endswith(SIDECAR_SUFFIX)


def feature_cache_key(extractor: str, sampling: str, content_id: str, segment: str) -> str:
    return f"cache/features/{extractor}/{sampling}/{content_id}/{segment}.npz"


def checkpoint_prefix(date: dt.date, model: str, segmenting: str) -> str:
    return f"checkpoints/date={date.isoformat()}/{model}/{segmenting}/"


def runs_prefix(date: dt.date) -> str:
    """``runs/date=D/``: every run of date D, one ``run=<run_id>/`` folder each."""
    return f"runs/date={date.isoformat()}/"


def run_prefix(date: dt.date, run_id: str) -> str:
    return f"{runs_prefix(date)}run={run_id}/"


def run_report_prefix(date: dt.date, run_id: str) -> str:
    """``reports/date=D/run=<run_id>/``: a run's human-facing reports (Data Docs, quality)."""
    return f"{report_prefix(date)}run={run_id}/"


def cost_report_key(date: dt.date, run_id: str) -> str:
    """``reports/date=D/run=<run_id>/cost.html``: a run's cost report (plots and ledger)."""
    return run_report_prefix(date, run_id) + "cost.html"


def staging_events_key(date: dt.date, run_id: str) -> str:
    return f"staging/date={date.isoformat()}/run={run_id}/events.parquet"
