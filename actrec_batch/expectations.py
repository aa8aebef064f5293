"""Great Expectations suites, written as code. The only module that imports great_expectations.

A suite runs against a pandas DataFrame in an ephemeral GX context (no project folder to keep
in sync). A failing suite raises :class:`ValidationFailed` whose message lists each failing
expectation with its column and a few offending values.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from actrec_batch.errors import ValidationFailed

log = logging.getLogger(__name__)

# Probe fields a manifest row must carry, with the range a sane archived video lies in.
MANIFEST_COLUMNS = (
    "video_id",
    "uri",
    "key",
    "camera_id",
    "logical_date",
    "content_id",
    "content_id_method",
    "size_bytes",
    "container",
    "codec",
    "width",
    "height",
    "fps",
    "fps_mode",
    "duration_s",
    "frame_count",
    "rotation",
)


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None = None
    examples: tuple[Any, ...] = ()

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        if self.success:
            return f"{self.expectation}{where}: ok"
        detail = f"{self.unexpected_count} unexpected" if self.unexpected_count is not None else "failed"
        ex = f", e.g. {list(self.examples)[:3]}" if self.examples else ""
        return f"{self.expectation}{where}: {detail}{ex}"


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    outcomes: tuple[ExpectationOutcome, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def summary(self) -> str:
        if self.success:
            return f"suite {self.suite}: {len(self.outcomes)} expectations passed"
        fails = "; ".join(o.describe() for o in self.failed)
        return f"suite {self.suite}: {len(self.failed)} of {len(self.outcomes)} expectations failed: {fails}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated": len(self.outcomes),
            "failed": [o.describe() for o in self.failed],
        }


def manifest_expectations(logical_date: dt.date) -> list[Any]:
    """The manifest suite: schema, identity, and probe values in physically sane ranges."""
    import great_expectations as gx

    E = gx.expectations
    return [
        E.ExpectTableColumnsToMatchSet(column_set=list(MANIFEST_COLUMNS), exact_match=False),
        E.ExpectColumnValuesToBeUnique(column="video_id"),
        E.ExpectColumnValuesToBeUnique(column="uri"),
        *[E.ExpectColumnValuesToNotBeNull(column=c) for c in MANIFEST_COLUMNS],
        E.ExpectColumnValuesToBeInSet(column="logical_date", value_set=[logical_date.isoformat()]),
        E.ExpectColumnValuesToMatchRegex(column="content_id", regex=r"^[0-9a-f]{64}$"),
        E.ExpectColumnValuesToMatchRegex(column="camera_id", regex=r"^[A-Za-z0-9._\-]+$"),
        E.ExpectColumnValuesToBeInSet(column="content_id_method", value_set=["sha256", "fast"]),
        E.ExpectColumnValuesToBeInSet(column="fps_mode", value_set=["constant", "variable"]),
        E.ExpectColumnValuesToBeInSet(column="rotation", value_set=[0, 90, 180, 270]),
        E.ExpectColumnValuesToBeBetween(column="size_bytes", min_value=1),
        E.ExpectColumnValuesToBeBetween(column="fps", min_value=1.0, max_value=300.0),
        E.ExpectColumnValuesToBeBetween(
            column="duration_s", min_value=0.0, strict_min=True, max_value=7 * 86400.0
        ),
        E.ExpectColumnValuesToBeBetween(column="width", min_value=16, max_value=16384),
        E.ExpectColumnValuesToBeBetween(column="height", min_value=16, max_value=16384),
        E.ExpectColumnValuesToBeBetween(column="frame_count", min_value=1),
    ]


def run_suite(name: str, df: Any, expectations: list[Any]) -> SuiteResult:
    """Validate ``df`` (a pandas DataFrame) against ``expectations``; never raises on failure."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX pins one of its own loggers to INFO at import; its ephemeral-context chatter is not ours to show.
    quiet = max(logging.WARNING, log.getEffectiveLevel())
    for logger_name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(logger_name).setLevel(quiet)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = ctx.data_sources.add_pandas(f"{name}_source").add_dataframe_asset(name)
    batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_batch")
    suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    validation = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch_def, suite=suite)
    )
    result = validation.run(batch_parameters={"dataframe": df})
    outcomes = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        outcomes.append(
            ExpectationOutcome(
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                success=bool(r.success),
                unexpected_count=res.get("unexpected_count"),
                examples=tuple(res.get("partial_unexpected_list") or ())[:5],
            )
        )
    return SuiteResult(suite=name, success=bool(result.success), outcomes=tuple(outcomes))


def validate_manifest(df: Any, logical_date: dt.date) -> SuiteResult:
    """Run the manifest suite; raise :class:`ValidationFailed` naming the date and failures."""
    if len(df) == 0:
        # GX treats an empty table as vacuously valid; an empty manifest is valid too (a quiet night).
        return SuiteResult(suite="manifest", success=True, outcomes=())
    result = run_suite("manifest", df, manifest_expectations(logical_date))
    if not result.success:
        raise ValidationFailed(
            f"manifest for {logical_date.isoformat()} failed validation: {result.summary()}"
        )
    log.info("manifest for %s: %s", logical_date, result.summary())
    return result
