"""Write: the run's events to its staging area and its quarantine records (stage ``infer``), then
its reports, ``metrics.json`` (per unit, per video index, per resource) and ``infer.json``, through
the run folder (:mod:`actrec_batch.runs`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from actrec_batch import layout
from actrec_batch.errors import StorageError
from actrec_batch.manifest import QuarantineRecord, write_quarantine
from actrec_batch.pipeline.result import resource_ledger
from actrec_batch.pipeline.stages import Stage
from actrec_batch.pipeline.stages.assemble import STAGE
from actrec_batch.pipeline.state import JobState
from actrec_batch.runs import InferRecord, MetricsDocument, RunFolder
from actrec_batch.storage import ObjectStore


class WriteStage(Stage):
    """``process(rows)`` writes the staged events and the date's ``infer`` quarantine."""

    def __init__(self, state: JobState) -> None:
        self.state = state

    def process(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        from actrec_batch.pipeline.outputs import STAGED_EVENTS_SCHEMA

        state, spec = self.state, self.state.spec
        table = pa.Table.from_pylist(rows, schema=STAGED_EVENTS_SCHEMA)
        staging_uri = RunFolder(state.store, spec.date, spec.run_id).write_staged_events(table)
        records = list(state.result.quarantine)
        if spec.cameras:  # a run over some cameras keeps the other cameras' records
            records += [
                QuarantineRecord(**r)
                for r in _existing_quarantine(state.store, spec.date)
                if layout.camera_of(r["key"], spec.date) not in spec.cameras
            ]
        write_quarantine(state.store, spec.date, STAGE, records)
        state.result.events = table.num_rows
        state.result.staging_uri = staging_uri


class ReportStage(Stage):
    """``process()`` writes the run's ``metrics.json`` and ``infer.json`` (once the wall time is in)."""

    def __init__(self, state: JobState) -> None:
        self.state = state

    def process(self) -> None:
        state, spec, result = self.state, self.state.spec, self.state.result
        folder = RunFolder(state.store, spec.date, spec.run_id)
        metrics = MetricsDocument(
            run_id=spec.run_id,
            logical_date=spec.date.isoformat(),
            model=result.model_id,
            segment_s=state.settings.segment_s,
            units=state.unit_metrics,
            index=state.index_metrics,
            # the driver process's store traffic goes with the resources, not the Ray section (empty
            # when no Ray ran): metrics.json's `ray` describes the cluster only
            resources={
                **resource_ledger(state.unit_metrics, state.index_metrics, result.resources),
                "io": result.io,
            },
            ray=result.resources,
        )
        result.metrics_uri = folder.write(metrics)
        card = state.model.card
        infer = InferRecord(  # the later stages (validation, publishing) read the model's identity from here
            **result.to_json(),
            model_name=card.name,
            model_version=card.version,
            model_labels=list(card.labels),
            model_sha256=card.weights_sha256,
            extractor_id=card.extractor_id,
            # how files were chained into camera chains (the quality stage scores on the same chains)
            chaining={
                "file_time_pattern": state.settings.file_time_pattern,
                "tolerance_s": state.settings.chain_tolerance_s,
            },
        )
        folder.write(infer)


def _existing_quarantine(store: ObjectStore, date: dt.date) -> list[dict[str, Any]]:
    from actrec_batch.manifest import read_quarantine

    try:
        return read_quarantine(store, date, STAGE).to_pylist()
    except StorageError as exc:
        if exc.reason == "not_found":
            return []
        raise
