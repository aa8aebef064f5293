"""The cost ledger of one run: what it reserved, priced, as ``job_costs`` rows.

The inference stage measures what a run held (``runs/date=D/run=<id>/metrics.json``, resource
ledger): decode tasks hold their CPUs for their wall time, inference actors hold their CPUs and
GPUs for their whole life, idle time included. This module prices those hours:

- ``decode`` / ``cpu``: decode and index tasks, vCPU-hours;
- ``infer`` / ``cpu`` and ``infer`` / ``gpu``: the actors, vCPU-hours and GPU-hours;
- ``driver`` / ``cpu``: one vCPU for the job's wall time (the driver that plans, assembles and
  writes; on Airflow, the worker slot).

Prices come from the settings ``cpu_hour_usd`` and ``gpu_hour_usd`` (on-demand) and
``spot_price_ratio``. A run whose Ray nodes all carried the ``spot`` resource is priced at spot
rates; anything else at on-demand rates, which never understates a bill.

Amounts keep nano-dollar precision (9 decimals): a run that resumed every unit from its
checkpoints holds its driver for a fraction of a second, which costs well under a micro-dollar
but is not free.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from actrec_batch import layout, tables
from actrec_batch.config import Settings
from actrec_batch.runs import (
    CostRecord,
    DiscoverRecord,
    InferRecord,
    ManifestValidationRecord,
    MetricsDocument,
    PublishRecord,
    RunFolder,
    ValidationRecord,
    latest_priced_run,
)
from actrec_batch.storage import ObjectStore


def ledger_rows(
    settings: Settings, run_id: str, metrics: dict[str, Any], infer: dict[str, Any]
) -> list[dict[str, Any]]:
    """The priced ``job_costs`` rows of one run (quantities in hours; zero quantities left out)."""
    ledger = metrics.get("resources", {})
    nodes = metrics.get("ray", {}).get("nodes") or []
    spot = bool(nodes) and all(n.get("market") == "spot" for n in nodes)
    pricing = "spot" if spot else "on_demand"
    ratio = settings.spot_price_ratio if spot else 1.0
    cpu, gpu = ledger.get("cpu", {}), ledger.get("gpu", {})
    lines = [
        ("decode", "cpu", cpu.get("decode_task_s", 0.0), "cpu_hour", settings.cpu_hour_usd),
        ("infer", "cpu", cpu.get("actor_reserved_s", 0.0), "cpu_hour", settings.cpu_hour_usd),
        ("infer", "gpu", gpu.get("reserved_s", 0.0), "gpu_hour", settings.gpu_hour_usd),
        ("driver", "cpu", float(infer.get("wall_s") or 0.0), "cpu_hour", settings.cpu_hour_usd),
    ]
    rows = []
    for component, resource, seconds, unit, on_demand in lines:
        if seconds <= 0:
            continue
        price = on_demand * ratio
        hours = seconds / 3600.0
        rows.append(
            {
                "run_id": run_id,
                "component": component,
                "resource": resource,
                "quantity": round(hours, 9),
                "unit": unit,
                "unit_price_usd": round(price, 6),
                "pricing": pricing,
                "cost_usd": round(hours * price, 9),
            }
        )
    return rows


LEGACY_SETTINGS = ("cpu_hour_usd", "gpu_hour_usd", "spot_price_ratio")


def uses_legacy_rates(settings: Settings) -> bool:
    """Whether the deprecated per-hour rates were set (then they price the run, as before the catalogue)."""
    return any(settings.sources.get(name, "default") != "default" for name in LEGACY_SETTINGS)


# The stage records whose wall time and store traffic the catalogue ledger prices.
STAGE_INPUTS = (DiscoverRecord, ManifestValidationRecord, ValidationRecord, PublishRecord)


def price_run(settings: Settings, store: ObjectStore, date: dt.date, run_id: str) -> dict[str, Any]:
    """Price ``run_id`` from its records; write its cost record (``cost.json``) and return it.

    With the pricing catalogue (:mod:`actrec_batch.cost_ledger`) unless a deprecated per-hour
    rate setting (:data:`LEGACY_SETTINGS`) is set: then by reserved hours (:func:`ledger_rows`).
    Raises ConfigError when the catalogue lacks an instance type or region the run needs."""
    folder = RunFolder(store, date, run_id)
    infer = folder.read(InferRecord).to_json()
    metrics = folder.read(MetricsDocument).to_json()
    video_hours = float(infer.get("video_seconds") or 0.0) / 3600.0
    extra: dict[str, Any] = {}
    if uses_legacy_rates(settings):
        rows = ledger_rows(settings, run_id, metrics, infer)
        prices: dict[str, Any] = {
            "cpu_hour_usd": settings.cpu_hour_usd,
            "gpu_hour_usd": settings.gpu_hour_usd,
            "spot_price_ratio": settings.spot_price_ratio,
        }
        extra["notes"] = [
            "priced by the deprecated per-hour rates (cpu_hour_usd, gpu_hour_usd, spot_price_ratio are set); "
            "unset them to price by the pricing catalogue"
        ]
    else:
        from actrec_batch.cost_ledger import catalogue_ledger
        from actrec_batch.pricing import load_catalogue

        catalogue = load_catalogue(settings.price_catalogue)
        stages = {kind.STAGE: rec.to_json() for kind in STAGE_INPUTS if (rec := folder.get(kind)) is not None}
        ledger = catalogue_ledger(settings, catalogue, run_id, metrics, infer, stages)
        rows = ledger["rows"]
        prices = {
            **catalogue.summary(),
            "region": settings.price_region,
            "market": ledger["market"],
            "gpu_instance": settings.price_gpu_instance,
            "cpu_instance": settings.price_cpu_instance,
        }
        total = sum(r["cost_usd"] for r in rows)
        extra = {
            k: ledger[k]
            for k in ("usage", "nodes", "io", "wasted", "markets", "priced_as", "notes", "inferences")
        }
        inferences = ledger["inferences"]
        extra["usd_per_1k_inferences"] = round(total / inferences * 1000, 9) if inferences else None
    total = round(sum(r["cost_usd"] for r in rows), 9)
    record = CostRecord(
        run_id=run_id,
        logical_date=date.isoformat(),
        cost_usd=total,
        video_hours=round(video_hours, 6),
        usd_per_video_hour=round(total / video_hours, 9) if video_hours else None,
        rows=rows,
        prices=prices,
        **extra,
    )
    folder.write(record)
    return record.to_json()


def find_run_cost(
    store: ObjectStore, *, date: dt.date | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """The priced ``cost.json`` of one run, plus ``uri`` (where it lives) and the run's ``status``
    and model from its summary when there is one.

    ``run_id``: that run (run ids start with their logical date). ``date``: the run of that date
    priced last. Raises ConfigError (one line, naming the run or date and the fix) when there is none.
    """
    from actrec_batch.errors import ConfigError

    if run_id is not None:
        try:
            folder = RunFolder.from_run_id(store, run_id)
        except ValueError:
            raise ConfigError(
                f"bad --run-id {run_id!r}: run ids start with their logical date (YYYY-MM-DD-...). "
                "Fix: take one from `actrec report cost_per_job` or the store's runs/date=D/ folders"
            ) from None
        if not folder.has(CostRecord):
            raise ConfigError(
                f"run {run_id}: no cost ledger at {folder.uri(CostRecord)}. Fix: price it by finishing the run "
                "(`actrec run --date D` or the DAG's cost task), or pass --date to take the date's latest run"
            )
    else:
        assert date is not None
        latest = latest_priced_run(store, date)
        if latest is None:
            raise ConfigError(
                f"no priced run for {date.isoformat()} under {store.uri(layout.runs_prefix(date))}. "
                f"Fix: run `actrec run --date {date.isoformat()}` (or the nightly DAG for that date) first"
            )
        folder = latest
    return with_run_info(folder, folder.read(CostRecord).to_json())


def with_run_info(folder: RunFolder, report: dict[str, Any]) -> dict[str, Any]:
    """``report`` (the run's ``cost.json`` object) plus ``uri``, and the run's ``status`` and
    ``model`` once it was published."""
    status, model = folder.status_and_model()
    return {**report, "uri": folder.uri(CostRecord), "status": status, "model": model}


COST_COLUMNS = tuple(c for c in tables.JOB_COSTS.columns if c != "run_id")  # the ledger's, in table order


def _usd(value: float | None) -> str:
    """Dollars at the ledger's precision (9 decimals), trailing zeros dropped down to cents."""
    if value is None:
        return "-"
    whole, frac = f"{value:,.9f}".split(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def cost_title(report: dict[str, Any]) -> str:
    return (
        f"cost of run {report['run_id']} ({report['logical_date']})"
        + (f", {report['model']}" if report.get("model") else "")
        + (f", {report['status']}" if report.get("status") else "")
    )


def display_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The ledger rows with quantities (hours, 6 decimals) and amounts (dollars) written out."""
    money = ("unit_price_usd", "cost_usd")
    return [
        {
            c: _usd(r[c]) if c in money else f"{r[c]:.6f}" if c == "quantity" else str(r[c])
            for c in COST_COLUMNS
        }
        for r in report["rows"]
    ]


def cost_footer(report: dict[str, Any]) -> list[str]:
    """Total, the prices it used, and where the ledger is."""
    prices = report.get("prices", {})
    per_hour, per_1k = report.get("usd_per_video_hour"), report.get("usd_per_1k_inferences")
    lines = [
        f"total {_usd(report['cost_usd'])} for {report['video_hours'] * 60:.1f} video-minutes"
        + (f" ({_usd(per_hour)} per video-hour)" if per_hour is not None else "")
        + (f", {_usd(per_1k)} per 1k inferences" if per_1k is not None else "")
    ]
    if "catalogue" in prices:
        lines.append(
            f"prices: catalogue {prices['catalogue']} (as of {prices.get('as_of')}), {prices.get('region')}, "
            f"{prices.get('market')}; {prices.get('path')}"
        )
        shares = {u["component"]: u["share"] for u in report.get("usage") or []}
        if shares:
            lines.append(
                f"wasted {shares.get('wasted', 0):.1%} and idle {shares.get('idle', 0):.1%} of the paid compute"
            )
    else:
        lines.append(
            f"prices: {prices.get('cpu_hour_usd')} USD per vCPU-hour, {prices.get('gpu_hour_usd')} USD per "
            f"GPU-hour on demand; spot at {prices.get('spot_price_ratio')} of that"
        )
    lines += [f"note: {n}" for n in report.get("notes") or []]
    lines.append(f"ledger: {report['uri']}")
    return lines


def render_html(report: dict[str, Any], history: list[dict[str, Any]] | None = None) -> str:
    """The cost report page of ``report`` (:func:`actrec_batch.cost_report.render_report`)."""
    from actrec_batch.cost_report import render_report

    return render_report(report, history or [])
