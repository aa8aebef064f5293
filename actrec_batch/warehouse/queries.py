"""Reading the warehouse: event search over ``current_action_events`` and the report queries of
``actrec_batch/sql/`` (one statement per file, ``:name`` bind parameters). They ship in the wheel as
package data and are read through :mod:`importlib.resources`; the checkout's ``sql/`` links there.

Every value a user gives reaches the database as a bound parameter, never as SQL text: a label
such as ``fall'; DROP TABLE runs; --`` is just a label that matches nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import sqlalchemy as sa

from actrec_batch import tables
from actrec_batch.errors import ConfigError
from actrec_batch.warehouse import schema
from actrec_batch.warehouse.core import Warehouse

SQL_DIR = resources.files("actrec_batch") / "sql"  # package data: found from an installed wheel too
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

SEARCH_COLUMNS = tables.SEARCH_COLUMNS


@dataclass(frozen=True)
class SearchFilter:
    """What ``actrec search`` asks for. ``start``/``end`` are UTC datetimes, half-open
    ``[start, end)``, matched against an event's wall-clock start; an event without one (a
    recording whose start is unknown) matches when its logical date lies in the range's dates."""

    label: str | None = None
    camera: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    min_confidence: float | None = None
    limit: int = 100


def search_events(warehouse: Warehouse, f: SearchFilter) -> list[dict[str, Any]]:
    """The current events matching ``f``, in wall-clock order, then the events without a
    wall-clock time (by date, camera and offset); at most ``f.limit`` rows.

    Two queries, not one with ``OR start_ts IS NULL``: each is a plain range over an index
    (label + time, camera + time), which the ``OR`` would defeat, and the second runs only when
    the first leaves room under the limit.
    """
    v = schema.current_action_events
    columns = [v.c[name] for name in SEARCH_COLUMNS]
    common = []
    if f.label is not None:
        common.append(v.c.label == f.label)
    if f.camera is not None:
        common.append(v.c.camera_id == f.camera)
    if f.min_confidence is not None:
        common.append(v.c.confidence >= f.min_confidence)
    timed = [v.c.start_ts.is_not(None)]
    if f.start is not None:
        timed.append(v.c.start_ts >= f.start)
    if f.end is not None:
        timed.append(v.c.start_ts < f.end)
    untimed = [v.c.start_ts.is_(None)]
    if f.start is not None:
        untimed.append(v.c.logical_date >= f.start.date())
    if f.end is not None:
        untimed.append(v.c.logical_date <= f.end.date())
    with warehouse.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(*columns).where(*common, *timed).order_by(v.c.start_ts, v.c.event_id).limit(f.limit)
            )
        ]
        if len(rows) < f.limit:
            rest = (
                sa.select(*columns)
                .where(*common, *untimed)
                .order_by(v.c.logical_date, v.c.camera_id, v.c.start_s, v.c.event_id)
                .limit(f.limit - len(rows))
            )
            rows += [dict(r._mapping) for r in conn.execute(rest)]
    return rows


def events_of_date(
    warehouse: Warehouse, date: dt.date, model_version: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """The events of ``date`` for evaluation: the current version's (``current_action_events``),
    or ``model_version``'s from ``action_events``. Returns (rows with ``uri``, ``label``,
    ``start_s``, ``end_s``, ``confidence``, ``model_version``; the active version or None)."""
    a, e, v = schema.active_models, schema.action_events, schema.current_action_events
    source = v if model_version is None else e
    q = sa.select(
        source.c.uri,
        source.c.label,
        source.c.start_s,
        source.c.end_s,
        source.c.confidence,
        source.c.model_version,
    )
    q = q.where(source.c.logical_date == date)
    if model_version is not None:
        q = q.where(e.c.model_version == model_version)
    with warehouse.connect() as conn:
        active = conn.execute(
            sa.select(a.c.model_version).where(a.c.logical_date == date)
        ).scalar_one_or_none()
        rows = [dict(r._mapping) for r in conn.execute(q)]
    return rows, active


def when(row: dict[str, Any]) -> str:
    """The wall-clock start of an event when known, else the offset into its video."""
    ts = row.get("start_ts")
    if ts is not None:
        return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{row['logical_date']} +{row['start_s']:.1f}s into video"


# ---------------------------------------------------------------- reports (actrec_batch/sql/)


def report_names() -> list[str]:
    return sorted(p.name[: -len(".sql")] for p in SQL_DIR.iterdir() if p.name.endswith(".sql"))


def report_sql(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise ConfigError(f"bad report {name!r}: no {path}. Fix: use one of {', '.join(report_names())}")
    return path.read_text(encoding="utf-8")


def report_params(name: str) -> list[str]:
    """The bind parameters ``sql/<name>.sql`` takes, in order of first use."""
    return _param_names(_without_comments(report_sql(name)))


def _param_names(sql: str) -> list[str]:
    return list(dict.fromkeys(m.group(1) for m in _PARAM.finditer(sql)))


def run_report(warehouse: Warehouse, name: str, params: dict[str, Any]) -> tuple[list[str], list[tuple]]:
    """Run ``sql/<name>.sql`` with ``params`` bound; return (column names, rows). A missing
    parameter is a ConfigError naming it."""
    sql = _without_comments(report_sql(name))
    names = _param_names(sql)
    missing = [p for p in names if p not in params]
    if missing:
        raise ConfigError(f"report {name} needs --param {missing[0]}=VALUE (parameters: {', '.join(names)})")
    with warehouse.connect() as conn:
        result = conn.execute(sa.text(sql), {k: params[k] for k in names})
        return list(result.keys()), [tuple(r) for r in result]


def _without_comments(sql: str) -> str:
    return (
        "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--")).strip().rstrip(";")
    )


# ---------------------------------------------------------------- the drift report's nights


def night_figures(
    warehouse: Warehouse, first: dt.date, last: dt.date, confidence_bins: int
) -> dict[dt.date, dict[str, Any]]:
    """What the drift report compares, for each date in ``[first, last]`` that has published
    videos or quarantined files: ``labels`` (events per label), ``confidence`` (events per
    confidence bin, ``confidence_bins`` equal bins over [0, 1]), ``camera_events`` and
    ``camera_hours`` (events and hours of footage per camera), ``videos`` and ``quarantined``.
    Events are the current model version's (``current_action_events``): a rerun or a rescore
    replaces a date's figures, never adds to them."""
    v, vid, q = schema.current_action_events, schema.videos, schema.quarantine
    in_range = lambda t: t.c.logical_date.between(first, last)  # noqa: E731
    binned = sa.cast(
        sa.func.least(sa.func.floor(v.c.confidence * confidence_bins), confidence_bins - 1), sa.Integer
    )
    out: dict[dt.date, dict[str, Any]] = {}

    def night(date: Any) -> dict[str, Any]:
        date = date if isinstance(date, dt.date) else dt.date.fromisoformat(str(date))
        return out.setdefault(
            date,
            {
                "labels": {},
                "confidence": [0] * confidence_bins,
                "camera_events": {},
                "camera_hours": {},
                "videos": 0,
                "quarantined": 0,
            },
        )

    with warehouse.connect() as conn:
        for d, camera, count, seconds in conn.execute(
            sa.select(vid.c.logical_date, vid.c.camera_id, sa.func.count(), sa.func.sum(vid.c.duration_s))
            .where(in_range(vid))
            .group_by(vid.c.logical_date, vid.c.camera_id)
        ):
            n = night(d)
            n["videos"] += int(count)
            n["camera_hours"][camera] = float(seconds or 0.0) / 3600.0
            n["camera_events"].setdefault(camera, 0)
        for d, count in conn.execute(
            sa.select(q.c.logical_date, sa.func.count()).where(in_range(q)).group_by(q.c.logical_date)
        ):
            night(d)["quarantined"] = int(count)
        for d, label, camera, count in conn.execute(
            sa.select(v.c.logical_date, v.c.label, v.c.camera_id, sa.func.count())
            .where(in_range(v))
            .group_by(v.c.logical_date, v.c.label, v.c.camera_id)
        ):
            n = night(d)
            n["labels"][label] = n["labels"].get(label, 0) + int(count)
            n["camera_events"][camera] = n["camera_events"].get(camera, 0) + int(count)
        for d, b, count in conn.execute(
            sa.select(v.c.logical_date, binned.label("bin"), sa.func.count())
            .where(in_range(v))
            .group_by(v.c.logical_date, binned)
        ):
            night(d)["confidence"][min(max(int(b), 0), confidence_bins - 1)] += int(count)
    return out
