"""A run's cost in the shape of the bill: node-hours per instance type from the pricing
catalogue, S3 requests and bytes, and where the paid time went.

Inputs are the run's records (``metrics.json``, ``infer.json`` and the stage records); the
catalogue is :mod:`actrec_batch.pricing`. Pure functions: tested by hand-worked cases and on real runs.

**Billed lines** (the ``job_costs`` rows; they sum to ``cost_usd``):

1. ``nodes`` / *instance type*, ``node_hour``: each Ray node the run saw, from when it joined to
   when it left (``metrics.json`` ``ray.nodes``, :mod:`~actrec_batch.pipeline.node_times`), at its
   market's price in ``price_region``. A node without an ``instance-type`` label is priced *as*
   ``price_gpu_instance`` (it has GPUs) or ``price_cpu_instance`` on ``price_market``. A run
   with no cluster (``--runner local``, or a Ray it started on this machine) is priced as one
   ``price_gpu_instance`` on ``price_market`` held for the sum of its stages' wall times; the
   report says so (``priced_as``).
2. ``driver`` / ``price_cpu_instance``, ``vcpu_hour`` (on a cluster only): one vCPU for the wall
   time of the stages outside the Ray job (discover, validations, publish: the Airflow worker).
3. ``s3`` / ``put_requests`` and ``get_requests`` (``1k_requests``), ``storage`` (``gb_month``:
   one month of the bytes the run wrote) and ``transfer`` (``gb`` read, at the in-region price,
   0 on AWS): from the stages' store counters (:mod:`~actrec_batch.storage.io_counts`).

**Where the paid compute went** (the ``job_cost_usage`` rows; they sum to lines 1 and 2). Busy
resource-seconds are priced at a per-vCPU rate (``price_cpu_instance``'s price / its vCPUs) and a
per-GPU rate (``price_gpu_instance``'s price less its vCPUs at that rate, per GPU), on the run's
market:

- ``discover``, ``validation``, ``publish``: their wall time on one vCPU;
- ``decode``: decode and index task seconds x ``decode_cpus``;
- ``inference``: the embedders' busy seconds x (their GPUs and vCPUs);
- ``wasted``: work done more than once: a decode or an index that Ray retried (its attempts x its
  measured seconds), a unit embedded again after its embedder was lost (driver resubmissions and
  Ray's own retries, x its inference seconds); ``units_redone`` counts those units;
- ``idle``: the rest of what the nodes cost (paid, not busy). When the busy lines exceed the
  paid total (rates are the configured types', nodes may differ), they are scaled down to it
  and idle is 0; the notes say so.
"""

from __future__ import annotations

from typing import Any

from actrec_batch.pricing import MARKETS, Catalogue, InstanceType
from actrec_batch.storage.io_counts import io_sum

COMPONENTS = ("discover", "decode", "inference", "validation", "publish", "wasted", "idle")
DRIVER_COMPONENTS = ("discover", "validation", "publish")


def catalogue_ledger(
    settings: Any,
    catalogue: Catalogue,
    run_id: str,
    metrics: dict[str, Any],
    infer: dict[str, Any],
    stages: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The priced run (see the module doc): ``rows`` (job_costs), ``usage`` (job_cost_usage),
    ``nodes``, ``io``, ``wasted``, ``markets`` (the same hours all spot / all on demand),
    ``priced_as``, ``notes`` and ``inferences``. ``stages``: the stage records' JSON by stage name
    (``discover``, ``validate_manifest``, ``validate_events``, ``publish``; missing ones count 0).
    Raises ConfigError when the catalogue lacks an instance type or region the run needs."""
    region = settings.price_region
    gpu_it = catalogue.instance(
        settings.price_gpu_instance, region=region, setting="setting price_gpu_instance"
    )
    cpu_it = catalogue.instance(
        settings.price_cpu_instance, region=region, setting="setting price_cpu_instance"
    )
    s3 = catalogue.s3_prices(region)
    ray = metrics.get("ray", {}) or {}
    busy = _busy_seconds(metrics, infer, stages)
    notes: list[str] = []

    # a cluster the run connected to (a Ray it started here is this machine: priced as configured)
    cluster = [] if ray.get("ray_started_locally") else [n for n in ray.get("nodes") or [] if "joined_s" in n]
    priced_as = None
    if cluster:
        nodes = [_cluster_node(n, settings, catalogue, region, notes) for n in cluster]
        market = _dominant_market(nodes)
        driver_s = sum(busy[c] for c in DRIVER_COMPONENTS)
    else:
        held = sum(busy[c] for c in DRIVER_COMPONENTS) + float(infer.get("wall_s") or 0.0)
        market = settings.price_market
        priced_as = f"1 x {gpu_it.name} ({_market_text(market)}, {region}) for the run's {held:.1f} s"
        notes.append(
            f"priced as: no cloud instances ran this job; it is priced as if it had run on {priced_as} "
            "(settings price_gpu_instance, price_market, price_region)"
        )
        nodes = [_node_line("local", gpu_it, market, region, held, labelled=False)]
        driver_s = 0.0

    rows = _node_rows(run_id, nodes, catalogue, region)
    r_cpu_h = cpu_it.price(region, market) / cpu_it.vcpus
    if driver_s > 0:
        rows.append(_row(run_id, "driver", cpu_it.name, driver_s / 3600.0, "vcpu_hour", r_cpu_h, market))
    compute_usd = sum(r["cost_usd"] for r in rows)

    io = io_sum(*(s.get("io") for s in stages.values()), (metrics.get("resources") or {}).get("io"))
    rows += _s3_rows(run_id, io, s3)

    r_gpu_h = max(0.0, gpu_it.price(region, market) - gpu_it.vcpus * r_cpu_h) / max(1, gpu_it.gpus)
    usage, wasted = _usage(
        run_id, metrics, busy, r_cpu_h / 3600.0, r_gpu_h / 3600.0, compute_usd, nodes, notes
    )

    markets = {}
    for m in MARKETS:
        alt = [{**n, "market": m} for n in nodes]
        alt_rows = _node_rows(run_id, alt, catalogue, region)
        if driver_s > 0:
            alt_rows.append(
                _row(
                    run_id,
                    "driver",
                    cpu_it.name,
                    driver_s / 3600.0,
                    "vcpu_hour",
                    cpu_it.price(region, m) / cpu_it.vcpus,
                    m,
                )
            )
        markets[m] = round(
            sum(r["cost_usd"] for r in alt_rows) + sum(r["cost_usd"] for r in rows if r["component"] == "s3"),
            9,
        )
    inferences = sum(int(u.get("clips", 0)) for u in metrics.get("units", []))
    return {
        "rows": rows,
        "usage": usage,
        "nodes": nodes,
        "io": io,
        "wasted": wasted,
        "markets": markets,
        "market": market,
        "priced_as": priced_as,
        "notes": notes,
        "inferences": inferences,
    }


# ------------------------------------------------------------------------------- nodes


def _market_text(market: str) -> str:
    return market.replace("_", "-")


def _node_line(
    node_id: str, it: InstanceType, market: str, region: str, held_s: float, *, labelled: bool
) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "instance_type": it.name,
        "labelled": labelled,
        "market": market,
        "held_s": round(held_s, 3),
        "usd_per_hour": it.price(region, market),
    }


def _cluster_node(
    n: dict[str, Any], settings: Any, catalogue: Catalogue, region: str, notes: list[str]
) -> dict[str, Any]:
    """A node the run saw, as a priced line: its own instance type and market, or the configured ones."""
    name = n.get("instance_type")
    if name:
        it = catalogue.instance(name, region=region)
        return {**_node_line(n["node_id"], it, n.get("market", "on_demand"), region, n["held_s"], labelled=True),
                "joined_s": n["joined_s"], "left_s": n["left_s"]}  # fmt: skip
    gpus = float((n.get("resources") or {}).get("GPU", 0))
    setting = "price_gpu_instance" if gpus > 0 else "price_cpu_instance"
    it = catalogue.instance(getattr(settings, setting), region=region, setting=f"setting {setting}")
    market = "spot" if n.get("market") == "spot" else settings.price_market
    notes.append(
        f"priced as: node {n['node_id'][:12]} has no instance-type label; priced as {it.name} "
        f"({_market_text(market)}, setting {setting})"
    )
    return {**_node_line(n["node_id"], it, market, region, n["held_s"], labelled=False),
            "joined_s": n["joined_s"], "left_s": n["left_s"]}  # fmt: skip


def _dominant_market(nodes: list[dict[str, Any]]) -> str:
    """The market most of the node-hours were bought on (the attribution rates use it)."""
    spot = sum(n["held_s"] for n in nodes if n["market"] == "spot")
    return "spot" if spot * 2 > sum(n["held_s"] for n in nodes) else "on_demand"


def _node_rows(
    run_id: str, nodes: list[dict[str, Any]], catalogue: Catalogue, region: str
) -> list[dict[str, Any]]:
    """One ``nodes`` row per (instance type, market): node-hours at that price."""
    hours: dict[tuple[str, str], float] = {}
    for n in nodes:
        key = (n["instance_type"], n["market"])
        hours[key] = hours.get(key, 0.0) + n["held_s"] / 3600.0
    return [
        _row(run_id, "nodes", name, h, "node_hour", catalogue.instances[name].price(region, market), market)
        for (name, market), h in sorted(hours.items())
        if h > 0
    ]


def _s3_rows(run_id: str, io: dict[str, int], s3: dict[str, float]) -> list[dict[str, Any]]:
    lines = [
        ("put_requests", io["put_requests"] / 1000.0, "1k_requests", s3["put_per_1k"]),
        ("get_requests", io["get_requests"] / 1000.0, "1k_requests", s3["get_per_1k"]),
        ("storage", io["bytes_written"] / 1e9, "gb_month", s3["storage_gb_month"]),
        ("transfer", io["bytes_read"] / 1e9, "gb", s3["transfer_in_region_gb"]),
    ]
    return [_row(run_id, "s3", what, q, unit, price, "on_demand") for what, q, unit, price in lines if q > 0]


def _row(
    run_id: str, component: str, resource: str, quantity: float, unit: str, price: float, pricing: str
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "component": component,
        "resource": resource,
        "quantity": round(quantity, 9),
        "unit": unit,
        "unit_price_usd": round(price, 6),
        "pricing": pricing,
        "cost_usd": round(quantity * round(price, 6), 9),
    }


# ------------------------------------------------------------------------------- usage


def _busy_seconds(
    metrics: dict[str, Any], infer: dict[str, Any], stages: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """Wall seconds of each component (decode: task seconds; inference: embedder busy seconds)."""
    ledger = metrics.get("resources", {}) or {}
    units, index = metrics.get("units", []), metrics.get("index", [])
    actor_busy = float(ledger.get("actor_busy_s", 0.0))
    return {
        "discover": float(stages.get("discover", {}).get("wall_s") or 0.0),
        "validation": float(stages.get("validate_manifest", {}).get("wall_s") or 0.0)
        + float(stages.get("validate_events", {}).get("wall_s") or 0.0),
        "publish": float(stages.get("publish", {}).get("publish_s") or 0.0),
        "decode": sum(u.get("decode_s", 0.0) for u in units) + sum(i.get("wall_s", 0.0) for i in index),
        # on Ray, the embedders' own busy clock; in process, the units' inference seconds
        "inference": actor_busy if actor_busy > 0 else sum(u.get("infer_s", 0.0) for u in units),
    }


def _usage(
    run_id: str,
    metrics: dict[str, Any],
    busy: dict[str, float],
    r_cpu: float,
    r_gpu: float,
    compute_usd: float,
    nodes: list[dict[str, Any]],
    notes: list[str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The job_cost_usage rows (sum: ``compute_usd``) and the wasted work's detail."""
    plan = (metrics.get("ray", {}) or {}).get("plan", {}) or {}
    decode_cpus = float(plan.get("decode_cpus", 1.0))
    actor_gpus = float(plan.get("actor_gpus", 0.0)) or 1.0  # in process: priced as the GPU instance's GPU
    actor_cpus = float(plan.get("actor_cpus", 0.0)) or 1.0
    per_infer_s = actor_gpus * r_gpu + actor_cpus * r_cpu
    per_decode_s = decode_cpus * r_cpu
    cost = {
        "discover": busy["discover"] * r_cpu,
        "validation": busy["validation"] * r_cpu,
        "publish": busy["publish"] * r_cpu,
        "decode": busy["decode"] * per_decode_s,
        "inference": busy["inference"] * per_infer_s,
    }
    wasted = wasted_work(metrics)
    waste_usd = wasted["decode_s"] * per_decode_s + wasted["inference_s"] * per_infer_s
    seconds = {**busy, "wasted": wasted["decode_s"] + wasted["inference_s"]}
    cost["wasted"] = waste_usd
    spent = sum(cost.values())
    if spent > compute_usd > 0:
        scale = compute_usd / spent
        notes.append(
            f"busy work priced at the configured rates came to {spent:.6f} USD, above the {compute_usd:.6f} USD "
            f"the nodes cost; every busy line is scaled by {scale:.3f} and idle is 0"
        )
        cost = {k: v * scale for k, v in cost.items()}
    idle_usd = max(0.0, compute_usd - sum(cost.values()))
    node_s = sum(n["held_s"] for n in nodes)
    seconds["idle"] = idle_usd / (compute_usd / node_s) if compute_usd > 0 and node_s > 0 else 0.0
    cost["idle"] = idle_usd
    rows = []
    for c in COMPONENTS:
        rows.append(
            {
                "run_id": run_id,
                "component": c,
                "busy_s": round(seconds[c], 3),
                "units_redone": wasted["units_redone"] if c == "wasted" else None,
                "cost_usd": round(cost[c], 9),
                "share": round(cost[c] / compute_usd, 6) if compute_usd > 0 else 0.0,
            }
        )
    # rounding: the rows sum to the compute total exactly (the largest row takes the remainder)
    drift = round(compute_usd - sum(r["cost_usd"] for r in rows), 9)
    if drift and rows:
        biggest = max(rows, key=lambda r: r["cost_usd"])
        biggest["cost_usd"] = round(biggest["cost_usd"] + drift, 9)
    wasted["cost_usd"] = next(r["cost_usd"] for r in rows if r["component"] == "wasted")
    return rows, wasted


def wasted_work(metrics: dict[str, Any]) -> dict[str, Any]:
    """Work the run did more than once (see the module doc): ``units_redone`` (units decoded or
    embedded again), ``videos_reindexed``, and the seconds redone (``decode_s``: decode and index
    task seconds; ``inference_s``: embedder seconds). A retried attempt is taken to have cost what
    the attempt that succeeded measured."""
    resubmitted = (metrics.get("ray", {}) or {}).get("resubmitted", {}) or {}
    units_redone = 0
    decode_s = inference_s = 0.0
    for u in metrics.get("units", []):
        again = int(u.get("infer_attempt", 0)) + int(
            resubmitted.get(f"{u.get('video_id')}/{u.get('segment')}", 0)
        )
        decodes = int(u.get("decode_attempt", 0))
        if again or decodes:
            units_redone += 1
        decode_s += decodes * float(u.get("decode_s", 0.0))
        inference_s += again * float(u.get("infer_s", 0.0))
    reindexed = [i for i in metrics.get("index", []) if int(i.get("attempt", 0)) > 0]
    decode_s += sum(int(i["attempt"]) * float(i.get("wall_s", 0.0)) for i in reindexed)
    return {
        "units_redone": units_redone,
        "videos_reindexed": len(reindexed),
        "decode_s": round(decode_s, 3),
        "inference_s": round(inference_s, 3),
        "resubmissions": int(sum(resubmitted.values())),
    }
