"""Reconciliation: discovered = processed + quarantined, checked by one function everywhere; a
mismatch fails loudly, naming the date or run and the counts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from actrec_batch.errors import ActrecError, ReconcileError
from actrec_batch.reconcile import reconcile
from actrec_batch.storage import open_store
from actrec_batch.warehouse import open_warehouse, schema

DATE = dt.date(2026, 11, 3)


def test_reconcile_passes_when_the_counts_add_up_and_names_them_when_not():
    reconcile("discovery of 2026-11-03", 5, 4, 1)
    with pytest.raises(ReconcileError) as err:
        reconcile("discovery of 2026-11-03", 5, 3, 1, processed_as="manifested")
    assert isinstance(err.value, ActrecError) and err.value.reason == "reconcile"
    assert (
        str(err.value)
        == "discovery of 2026-11-03 does not reconcile: 5 discovered != 3 manifested + 1 quarantined"
    )


def test_a_run_that_does_not_reconcile_is_recorded_failed_and_raises(warehouse_url, tmp_path, monkeypatch):
    from actrec_batch.manifest import write_quarantine
    from actrec_batch.pipeline import nightly
    from actrec_batch.pipeline.outputs import Published
    from actrec_batch.runs import InferRecord, RunFolder

    store = open_store(str(tmp_path / "store"))
    write_quarantine(store, DATE, "discover", [])
    # The job lost one of 7 manifested videos: 4 processed + 2 quarantined (no discovery quarantine).
    RunFolder(store, DATE, "r1").write(
        InferRecord(
            run_id="r1",
            logical_date=DATE.isoformat(),
            model="reference",
            videos_manifested=7,
            videos_processed=4,
            videos_quarantined=2,
            events=3,
        )
    )
    published = Published(
        events_uri="file:///events",
        events=3,
        videos=4,
        quarantined=2,
        model_name="reference",
        model_version="1",
        docs_uri=None,
    )
    wh = open_warehouse(warehouse_url, upgrade=True)
    try:
        with pytest.raises(
            ReconcileError,
            match=r"run r1 of 2026-11-03 does not reconcile: 7 discovered != 4 processed \+ 2 quarantined",
        ):
            nightly.record_run_stage(wh, store, DATE, "r1", published)
        with wh.connect() as conn:
            row = conn.execute(sa.select(schema.runs).where(schema.runs.c.run_id == "r1")).one()._mapping
    finally:
        wh.dispose()
    assert (row["status"], row["videos_discovered"], row["videos_processed"], row["videos_quarantined"]) == (
        "failed",
        7,
        4,
        2,
    )
    assert "7 discovered != 4 processed + 2 quarantined" in row["error"]
    written = json.loads(store.get_bytes(f"runs/date={DATE}/run=r1/summary.json"))
    assert written["status"] == "failed" and "does not reconcile" in written["error"]
