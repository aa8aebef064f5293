"""``actrec search``, ``report``, ``warehouse``, ``eval`` and ``cost``: reading the results."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from actrec_batch.cli.base import command, positive, print_json, print_rows
from actrec_batch.config import Settings, parse_logical_date
from actrec_batch.errors import ActrecError, ConfigError

_SEARCH_COLUMNS = [
    "when",
    "camera_id",
    "label",
    "confidence",
    "start_s",
    "end_s",
    "uri",
    "model_version",
    "event_id",
]


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.evaluation import (
        evaluate,
        labelled_videos,
        load_chains,
        load_predictions_parquet,
        load_truth,
        on_chains,
    )
    from actrec_batch.model import read_card, resolve_model_ref
    from actrec_batch.storage import open_store

    store = open_store(settings.store)
    version = labels = None
    if args.model:  # the card has the version and the label map: no need to deserialise the weights
        card = read_card(open_store(resolve_model_ref(args.model, store_uri=settings.store)))
        version, labels = card.version, list(card.labels)
    preds = _warehouse_predictions(settings, store, date, version) if args.source != "parquet" else None
    if preds is None:
        if args.source == "warehouse":
            raise ActrecError(
                f"no events for {date} in the warehouse; run `actrec run --date {date}` first, or use --source parquet",
                reason="no_events",
            )
        preds = load_predictions_parquet(store, date, model_version=version)
    truths = load_truth(store, date)
    if labels is None:
        labels = sorted({e.label for e in truths} | {p.label for p in preds})
    chains = load_chains(
        store, date, file_time_pattern=settings.file_time_pattern, tolerance_s=settings.chain_tolerance_s
    )
    preds, truths, videos = on_chains(preds, truths, labelled_videos(store, date), chains)
    report = evaluate(preds, truths, labels, videos=videos)
    if args.format == "json":
        print_json(report.to_json())
    else:
        print(report.to_table())
    return 0


def _warehouse_predictions(settings: Settings, store, date: dt.date, version: str | None):
    """The date's current events (or ``version``'s) from the warehouse as predictions; None when
    the warehouse has no published run for the date (or none of ``version``)."""
    import pyarrow as pa

    from actrec_batch.evaluation import predictions_from_table
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.queries import events_of_date

    warehouse = open_warehouse(settings.warehouse_url, upgrade=True)
    rows, active = events_of_date(warehouse, date, version)
    warehouse.dispose()
    if active is None or (
        version is not None and not rows
    ):  # not published there: the Parquet files may have it
        return None
    root = store.root_uri.rstrip("/") + "/"
    for r in rows:
        r["video_key"] = r.pop("uri").removeprefix(root)
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("label", pa.string()),
                ("start_s", pa.float64()),
                ("end_s", pa.float64()),
                ("confidence", pa.float64()),
                ("model_version", pa.string()),
                ("video_key", pa.string()),
            ]
        ),
    )
    return predictions_from_table(table, source=f"the warehouse's events of {date}", model_version=version)


def cmd_warehouse(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.core import redacted

    warehouse = open_warehouse(settings.warehouse_url, upgrade=True)
    print(f"warehouse {redacted(settings.warehouse_url)} is at revision {warehouse.revision()}")
    warehouse.dispose()
    return 0


def _timestamp(flag: str, raw: str | None) -> dt.datetime | None:
    """A --from/--to value: YYYY-MM-DD or an ISO timestamp; UTC when it carries no offset."""
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"bad {flag} {raw!r}: not a date or timestamp. Fix: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"
        ) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.queries import SearchFilter, search_events, when

    f = SearchFilter(
        label=args.label,
        camera=args.camera,
        start=_timestamp("--from", args.start),
        end=_timestamp("--to", args.end),
        min_confidence=args.min_confidence,
        limit=args.limit,
    )
    warehouse = open_warehouse(settings.warehouse_url)
    rows = search_events(warehouse, f)
    warehouse.dispose()
    for r in rows:
        r["when"] = when(r)
    print_rows(rows, _SEARCH_COLUMNS, args.format)
    return 0


def cmd_cost(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.cost_report import comparison_rows, recent_costs, render_comparison
    from actrec_batch.costs import (
        COST_COLUMNS,
        cost_footer,
        cost_title,
        display_rows,
        find_run_cost,
        render_html,
    )
    from actrec_batch.storage import open_store

    store = open_store(settings.store)
    if args.last is not None:
        history = recent_costs(store, args.last)
        if not history:
            raise ConfigError(
                f"no priced run under {store.uri('runs/')}. Fix: run `actrec run --date D` (or the nightly DAG) first"
            )
        if args.format == "json":
            print_json(comparison_rows(history))
        elif args.format == "html":
            sys.stdout.write(render_comparison(history))
        else:
            print(f"cost of the last {len(history)} run(s)")
            rows = comparison_rows(history)
            print_rows(
                [{k: "-" if v is None else str(v) for k, v in r.items()} for r in rows],
                list(rows[0]),
                "table",
            )
        return 0
    date = parse_logical_date(args.date) if args.date else None
    report = find_run_cost(store, date=date, run_id=args.run_id)
    if args.format == "json":
        print_json(report)
    elif args.format == "html":
        sys.stdout.write(
            render_html(report, recent_costs(store, 14, until=(report["logical_date"], report["run_id"])))
        )
    else:
        print(cost_title(report))
        print_rows(display_rows(report), list(COST_COLUMNS), "table")
        print("\n".join(cost_footer(report)))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from actrec_batch.warehouse import open_warehouse
    from actrec_batch.warehouse.queries import report_names, report_params, run_report

    if args.list or not args.name:
        for name in report_names():
            print(f"{name}  ({', '.join(report_params(name)) or 'no parameters'})")
        return 0
    params = {}
    for item in args.param or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad --param {item!r}. Fix: write --param NAME=VALUE")
        params[key] = value
    warehouse = open_warehouse(settings.warehouse_url)
    columns, rows = run_report(warehouse, args.name, params)
    warehouse.dispose()
    print_rows([dict(zip(columns, r, strict=True)) for r in rows], columns, args.format)
    return 0


def _register_search(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "search",
        cmd_search,
        groups=("warehouse",),
        help="search the warehouse's current events",
        description="Filter current_action_events (the active model version of each date). Times "
        "are printed as wall-clock UTC when the recording's start is known, else as seconds into the video.",
    )
    p.add_argument("--label", help="action label, e.g. fall")
    p.add_argument("--camera", help="camera id")
    p.add_argument("--from", dest="start", help="from this date or UTC timestamp (inclusive)")
    p.add_argument("--to", dest="end", help="to this date or UTC timestamp (exclusive)")
    p.add_argument(
        "--min-confidence", type=positive(float, 0.0, 1.0, "confidence"), help="lowest confidence, 0..1"
    )
    p.add_argument("--limit", type=positive(int, 1, 1_000_000, "row limit"), default=100)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")


def _register_eval(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "eval",
        cmd_eval,
        groups=("store", "warehouse", "decode"),
        help="compare a date's events with the ground-truth sidecars",
        description="Event-level precision/recall/F1 at tIoU 0.3/0.5/0.7, per class, boundary "
        "error and confusion matrix.",
    )
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    p.add_argument(
        "--model", help="NAME@VERSION whose events to evaluate (default: the date's current version)"
    )
    p.add_argument(
        "--source",
        choices=["auto", "warehouse", "parquet"],
        default="auto",
        help="where the events come from; auto: the warehouse when it has the date, else events/date=D/*.parquet",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")


def register(sub: argparse._SubParsersAction) -> None:
    _register_search(sub)
    p = command(
        sub,
        "cost",
        cmd_cost,
        groups=("store",),
        help="the cost report of one job",
        description="Print a run's cost ledger (runs/date=D/run=<id>/cost.json): vCPU- and GPU-hours it "
        "reserved, by component, priced on demand or at spot rates. --date takes the run of that date "
        "priced last. Across runs, see `actrec report cost_per_job`.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--date", help="logical date YYYY-MM-DD (its latest priced run)")
    which.add_argument("--run-id", help="a run id (they start with their logical date)")
    which.add_argument(
        "--last",
        type=int,
        metavar="N",
        help="compare the last N priced runs (totals, per video-hour, shares)",
    )
    p.add_argument("--format", choices=["table", "json", "html"], default="table")

    p = command(
        sub,
        "report",
        cmd_report,
        groups=("warehouse",),
        help="run a report query from sql/ against the warehouse",
        description="Run sql/NAME.sql with its bind parameters. Without NAME, list the reports and their parameters.",
    )
    p.add_argument("name", nargs="?", help="report name (a file in sql/ without .sql)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a bind parameter (repeatable)")
    p.add_argument("--list", action="store_true", help="list the reports")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")

    p = command(
        sub,
        "warehouse",
        cmd_warehouse,
        groups=("warehouse",),
        help="manage the warehouse schema",
        description="actrec warehouse upgrade: apply the Alembic migrations (actrec run also does).",
    )
    p.add_argument("action", choices=["upgrade"], help="upgrade: apply every pending migration")
    _register_eval(sub)
