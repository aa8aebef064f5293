"""Great Expectations suites, written as code. The only module that imports great_expectations.

A suite runs against a pandas DataFrame in an ephemeral GX context (no project folder to keep
in sync). A failing suite raises :class:`ValidationFailed` whose message lists each failing
expectation with its column and a few offending values. Given a ``docs_dir``, a run also writes
GX Data Docs (static HTML: an index, the suite, the validation result) under that directory.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from actrec_batch import tables
from actrec_batch.errors import ValidationFailed

log = logging.getLogger(__name__)

# The columns are declared in actrec_batch.tables; these names are kept for callers.
MANIFEST_COLUMNS = tuple(c for c in tables.MANIFEST.columns if not tables.MANIFEST.nullable(c))
EVENT_COLUMNS = tables.EVENTS_VALIDATED.columns
CAMERA_ID_REGEX = tables.CAMERA_ID_REGEX

_DOCS_SITE = "actrec"


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int | None = None
    examples: tuple[Any, ...] = ()
    # Why a check without per-row counts failed: an error, missing columns, an observed dtype.
    detail: str | None = None
    # With result_format COMPLETE: every offending row, as (the frame's index label, its value).
    unexpected_rows: tuple[tuple[Any, Any], ...] = ()
    # The expectation's arguments other than its column, e.g. {"min_value": 16, "max_value": 16384}.
    arguments: tuple[tuple[str, Any], ...] = ()

    @property
    def per_row(self) -> bool:
        """Whether this failure is explained by the rows it lists (not a table-level or error failure)."""
        return not self.success and bool(self.unexpected_rows) and self.detail is None

    def describe_value(self, value: Any) -> str:
        """One row's failure: ``width=8 fails expect_column_values_to_be_between(min_value=16, ...)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments)
        return f"{self.column}={_plain(value)!r} fails {self.expectation}({args})"

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        if self.success:
            return f"{self.expectation}{where}: ok"
        if self.unexpected_count is None:
            return f"{self.expectation}{where}: {self.detail or 'failed'}"
        ex = f", e.g. {list(self.examples)[:3]}" if self.examples else ""
        return f"{self.expectation}{where}: {self.unexpected_count} unexpected{ex}"


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    success: bool
    outcomes: tuple[ExpectationOutcome, ...] = field(default_factory=tuple)
    docs_index: str | None = None  # path of the Data Docs index.html, when docs were written

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
            "docs_index": self.docs_index,
        }

    def failures_by_row(self) -> dict[Any, list[str]]:
        """The per-row failures (needs result_format COMPLETE): the frame's index label -> one
        :meth:`ExpectationOutcome.describe_value` line per expectation the row fails."""
        rows: dict[Any, list[str]] = {}
        for outcome in self.failed:
            for index, value in outcome.unexpected_rows:
                rows.setdefault(_plain(index), []).append(outcome.describe_value(value))
        return rows


def _gx() -> Any:
    """The great_expectations package, imported with its loggers quiet."""
    quiet = max(logging.WARNING, log.getEffectiveLevel())
    # Before the import: importing GX logs INFO lines about every API it registers.
    logging.getLogger("great_expectations").setLevel(quiet)
    import great_expectations as gx

    # GX pins this logger to INFO at import; its ephemeral-context chatter is not ours to show.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(quiet)
    return gx


def _table_expectations(E: Any, table: tables.Table, logical_date: dt.date) -> list[Any]:
    """What ``table`` declares: its required and unique columns, its date, and the value constraints
    of its ``checked`` columns (allowed values, regex, ranges, and one column above another)."""
    out = [E.ExpectColumnValuesToBeUnique(column=c) for c in table.unique]
    out += [E.ExpectColumnValuesToNotBeNull(column=c) for c in table.columns if not table.nullable(c)]
    out.append(E.ExpectColumnValuesToBeInSet(column="logical_date", value_set=[logical_date.isoformat()]))
    for name in table.checked:
        col = tables.COLUMNS[name]
        if col.regex is not None:
            out.append(E.ExpectColumnValuesToMatchRegex(column=name, regex=col.regex))
        if col.values is not None:
            out.append(
                E.ExpectColumnValuesToBeInSet(column=name, value_set=[_plain_value(v) for v in col.values])
            )
        if col.min is not None or col.max is not None:
            bounds = {"min_value": col.min, "max_value": col.max, "strict_min": col.strict_min or None}
            out.append(
                E.ExpectColumnValuesToBeBetween(
                    column=name, **{k: v for k, v in bounds.items() if v is not None}
                )
            )
        if col.above is not None:
            other, or_equal = col.above
            out.append(
                E.ExpectColumnPairValuesAToBeGreaterThanB(column_A=name, column_B=other, or_equal=or_equal)
            )
    return out


def _plain_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def manifest_expectations(logical_date: dt.date) -> list[Any]:
    """The manifest suite (:data:`actrec_batch.tables.MANIFEST`): schema, identity, and probe values
    in physically sane ranges."""
    E = _gx().expectations
    return [
        E.ExpectTableColumnsToMatchSet(column_set=list(MANIFEST_COLUMNS), exact_match=False),
        *_table_expectations(E, tables.MANIFEST, logical_date),
    ]


def events_expectations(logical_date: dt.date, labels: Sequence[str]) -> list[Any]:
    """The events suite for ``logical_date``, with ``labels`` the model's label map
    (:data:`actrec_batch.tables.EVENTS_VALIDATED`).

    Schema (exactly :data:`EVENT_COLUMNS`), value types, required fields, identity, the date, the
    label set, and time bounds: ``0 <= start_s < video_duration_s``, ``start_s < end_s``, and
    ``0 < end_offset_s <= end_video_duration_s`` with no tolerance, because event ends are clipped to
    the very duration the manifest holds. For an event within one video (``end_video_id`` is
    ``video_id``, ``end_offset_s`` is ``end_s``) that is ``0 <= start_s < end_s <= video_duration_s``;
    an event that spans files ends in another video, and its ``end_s`` (from the first video's start)
    exceeds that video's duration. An event whose start or end video is not in the manifest (a
    missing duration) fails a bound.
    """
    E = _gx().expectations
    t = tables.EVENTS_VALIDATED
    strings = (*t.names_of(tables.Kind.STRING), *t.names_of(tables.Kind.DATE))
    return [
        E.ExpectTableColumnsToMatchSet(column_set=list(EVENT_COLUMNS), exact_match=True),
        # "float" and "str" match numpy float64 and pandas' str/string dtypes; on object columns GX
        # checks each non-null value's Python type instead, so a stray "0.9" is caught too.
        *[E.ExpectColumnValuesToBeOfType(column=c, type_="float") for c in t.names_of(tables.Kind.FLOAT)],
        *[E.ExpectColumnValuesToBeOfType(column=c, type_="str") for c in t.columns if c in strings],
        E.ExpectColumnValuesToBeInSet(column="label", value_set=list(labels)),
        *_table_expectations(E, t, logical_date),
    ]


def run_suite(
    name: str,
    df: Any,
    expectations: list[Any],
    *,
    docs_dir: Path | None = None,
    run_name: str | None = None,
    result_format: str = "SUMMARY",
) -> SuiteResult:
    """Validate ``df`` (a pandas DataFrame) against ``expectations``; never raises on failure.

    ``result_format="COMPLETE"`` makes each failing per-row expectation list every offending row
    (its index label in ``df``) in ``unexpected_rows``; the default keeps a few examples only.

    With ``docs_dir``, GX Data Docs for this validation (index, suite page, validation result
    page) are written under it, whatever the outcome, and ``docs_index`` is the index's path.
    ``run_name`` labels the run in those docs. The directory holds one validation's docs: GX
    deletes the pages of results its (ephemeral) context does not hold, so give each suite and
    run a directory of its own.
    """
    gx = _gx()
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # The ephemeral context comes with a docs site in a temporary directory; docs go only where asked.
    for site in list(ctx.list_data_docs_sites()):
        ctx.delete_data_docs_site(site)
    actions = []
    if docs_dir is not None:
        docs_dir = Path(docs_dir).resolve()
        ctx.add_data_docs_site(
            _DOCS_SITE,
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(UpdateDataDocsAction(name="update_data_docs", site_names=[_DOCS_SITE]))
    asset = ctx.data_sources.add_pandas(f"{name}_source").add_dataframe_asset(name)
    batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_batch")
    suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    validation = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch_def, suite=suite)
    )
    # A checkpoint stores the result in the context and hands it to the docs action, which renders it.
    checkpoint = ctx.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[validation],
            actions=actions,
            result_format=result_format,
        )
    )
    # Without a run_time GX parses one out of a date-like run_name, stamping every page with midnight.
    run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.UTC))
    run = checkpoint.run(batch_parameters={"dataframe": df}, run_id=run_id)
    (result,) = run.run_results.values()
    # GX returns results grouped by domain; report them in suite order (the schema check first).
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    results = sorted(result.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    columns = set(df.columns)
    return SuiteResult(
        suite=name,
        success=bool(result.success),
        outcomes=tuple(_outcome(r, columns) for r in results),
        docs_index=str(docs_dir / "index.html") if docs_dir is not None else None,
    )


def _outcome(r: Any, columns: set[str]) -> ExpectationOutcome:
    """One GX ExpectationValidationResult, on a frame with ``columns``, as an :class:`ExpectationOutcome`."""
    kwargs = r.expectation_config.kwargs
    res = r.result or {}
    used = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    column = f"({', '.join(used)})" if len(used) > 1 else (used[0] if used else None)
    missing = [c for c in used if c not in columns]
    detail = None
    if not r.success:
        # GX's own error for an absent column varies by expectation (some say "list index out of range").
        detail = f"no column {missing[0]}" if missing else _failure_detail(r.exception_info or {}, res)
    return ExpectationOutcome(
        expectation=r.expectation_config.type,
        column=column,
        success=bool(r.success),
        unexpected_count=res.get("unexpected_count"),
        examples=tuple(_plain(v) for v in (res.get("partial_unexpected_list") or ())[:5]),
        detail=detail,
        # GX lists the offending rows' index labels and values in the same order.
        unexpected_rows=tuple(
            zip(res.get("unexpected_index_list") or (), res.get("unexpected_list") or (), strict=False)
        ),
        arguments=tuple((k, v) for k, v in kwargs.items() if k not in ("column", "batch_id")),
    )


def _failure_detail(exception_info: dict[str, Any], res: dict[str, Any]) -> str | None:
    # GX reports one error as a flat dict, or several keyed by metric id.
    infos = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    errors = [i.get("exception_message") for i in infos if isinstance(i, dict) and i.get("raised_exception")]
    if errors:
        return f"error: {str(errors[0]).removeprefix('Error: ')}"
    mismatched = (res.get("details") or {}).get("mismatched")
    if mismatched:
        return ", ".join(f"{kind} {sorted(cols)}" for kind, cols in mismatched.items() if cols)
    if "observed_value" in res:
        return f"observed {_plain(res['observed_value'])!r}"
    return None


def _plain(value: Any) -> Any:
    """numpy scalars (and tuples of them, as column pairs report) as plain Python values."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def validate_manifest(df: Any, logical_date: dt.date, docs_dir: Path | None = None) -> SuiteResult:
    """Run the manifest suite; raise :class:`ValidationFailed` naming the date and failures.

    With ``docs_dir``, Data Docs are written there (see :func:`run_suite`), also before raising;
    an empty manifest passes without running the suite, so it gets no docs.
    """
    if len(df) == 0:
        # GX treats an empty table as vacuously valid; an empty manifest is valid too (a quiet night).
        return SuiteResult(suite="manifest", success=True, outcomes=())
    return _checked("manifest", df, manifest_expectations(logical_date), logical_date, docs_dir)


def screen_manifest(df: Any, logical_date: dt.date, docs_dir: Path | None = None) -> SuiteResult:
    """Run the manifest suite, naming every row that fails a per-row expectation.

    Per-row failures (a probe value out of range, a null, a duplicate id) do not raise: they are in
    the result's :meth:`SuiteResult.failures_by_row`, for discovery to quarantine those videos alone.
    An expectation about the whole table (the schema) or one that errors raises
    :class:`ValidationFailed`, whose one line says the manifest, not the footage, is at fault.
    """
    if len(df) == 0:
        return SuiteResult(suite="manifest", success=True, outcomes=())
    name = logical_date.isoformat()
    result = run_suite(
        "manifest",
        df,
        manifest_expectations(logical_date),
        docs_dir=docs_dir,
        run_name=name,
        result_format="COMPLETE",
    )
    whole = [o for o in result.failed if not o.per_row]
    if whole:
        fails = "; ".join(o.describe() for o in whole)
        raise ValidationFailed(
            f"manifest for {name} failed validation as a whole: {fails}; the manifest's columns come "
            f"from this version's probe, so this is a bug in actrec, not in the footage: report it "
            f"with this line (rerunning `actrec discover --date {name}` after upgrading rewrites it)",
            docs_index=result.docs_index,
        )
    return result


def validate_events(
    df: Any, logical_date: dt.date, labels: Sequence[str], *, docs_dir: Path | None = None
) -> SuiteResult:
    """Run the events suite (:func:`events_expectations`) on ``df``, the events of ``logical_date``.

    Raises :class:`ValidationFailed` when it fails; the message names the date and each failing
    expectation (type, column, unexpected count, a few values). An empty frame passes when its
    columns are right. With ``docs_dir``, GX Data Docs for this validation are written under it,
    also before raising, and the path of their ``index.html`` is ``docs_index`` on the result and
    on the exception.
    """
    if len(df) == 0:
        # An empty column's dtype says nothing (pandas makes it float64 or object depending on how
        # the frame was built); as object columns, the type checks are as vacuous as the others.
        df = df.astype(object)
    return _checked("events", df, events_expectations(logical_date, labels), logical_date, docs_dir)


def _checked(
    suite: str, df: Any, expectations: list[Any], logical_date: dt.date, docs_dir: Path | None
) -> SuiteResult:
    """Run ``suite`` for ``logical_date``; raise ValidationFailed naming the date, the failing
    expectations and the Data Docs index, or log the summary and return the result."""
    result = run_suite(suite, df, expectations, docs_dir=docs_dir, run_name=logical_date.isoformat())
    if not result.success:
        docs = f"; data docs: {result.docs_index}" if result.docs_index else ""
        raise ValidationFailed(
            f"{suite} for {logical_date.isoformat()} failed validation: {result.summary()}{docs}",
            docs_index=result.docs_index,
        )
    log.info("%s for %s: %s", suite, logical_date, result.summary())
    return result
