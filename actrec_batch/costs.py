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
import json
from typing import Any

from actrec_batch import layout
from actrec_batch.config import Settings
from actrec_batch.storage import ObjectStore


def cost_key(date: dt.date, run_id: str) -> str:
    return layout.run_prefix(date, run_id) + "cost.json"


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


def price_run(settings: Settings, store: ObjectStore, date: dt.date, run_id: str) -> dict[str, Any]:
    """Price ``run_id`` from its metrics; write ``runs/date=D/run=<id>/cost.json`` and return it."""
    prefix = layout.run_prefix(date, run_id)
    metrics = json.loads(store.get_bytes(prefix + "metrics.json"))
    infer = json.loads(store.get_bytes(prefix + "infer.json"))
    rows = ledger_rows(settings, run_id, metrics, infer)
    video_hours = float(infer.get("video_seconds") or 0.0) / 3600.0
    total = round(sum(r["cost_usd"] for r in rows), 9)
    report = {
        "run_id": run_id,
        "logical_date": date.isoformat(),
        "cost_usd": total,
        "video_hours": round(video_hours, 6),
        "usd_per_video_hour": round(total / video_hours, 9) if video_hours else None,
        "rows": rows,
        "prices": {
            "cpu_hour_usd": settings.cpu_hour_usd,
            "gpu_hour_usd": settings.gpu_hour_usd,
            "spot_price_ratio": settings.spot_price_ratio,
        },
    }
    store.put_bytes(cost_key(date, run_id), json.dumps(report, indent=1).encode())
    return report
