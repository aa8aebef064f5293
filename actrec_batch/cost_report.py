"""The cost report people read: one self-contained HTML page per run, and a comparison of the
last N runs (``actrec cost --last N``).

The plots are matplotlib figures rendered to inline SVG (Agg-free: the SVG backend), so the page
needs nothing beside it: cost by component; cost per video-hour over the last runs; the wasted
and idle shares of the paid compute; the run priced spot against on demand. Every value shown is
escaped; the numbers come from the runs' ``cost.json`` records only.
"""

from __future__ import annotations

import datetime as dt
import io
from html import escape
from typing import Any

from actrec_batch.runs import CostRecord, RunFolder
from actrec_batch.storage import ObjectStore

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.plots{display:flex;flex-wrap:wrap;gap:1em}"
    ".plot{border:1px solid #eee;padding:.5em}.note{background:#fff8e0;padding:.5em 1em;border-left:4px solid #e0a000}"
    ".totals td{font-weight:bold}"
)


def recent_costs(store: ObjectStore, n: int, *, until: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """The ``cost.json`` of the last ``n`` priced runs (by logical date, then run id; oldest
    first), up to and including ``until`` = ``(YYYY-MM-DD, run id)`` when given. Reads at most the
    ``n`` latest dates that have runs. The date comes from the run's folder, never from its id."""
    dates = sorted(d.removeprefix("date=") for d in store.list_dirs("runs/") if d.startswith("date="))
    if until is not None:
        dates = [d for d in dates if d <= until[0]]
    found: list[dict[str, Any]] = []
    for d in reversed(dates):
        for o in store.list(f"runs/date={d}/"):
            if o.key.endswith("/" + CostRecord.NAME):
                run_id = o.key.removesuffix("/" + CostRecord.NAME).rsplit("/run=", 1)[1]
                if until is None or d < until[0] or run_id <= until[1]:
                    folder = RunFolder(store, dt.date.fromisoformat(d), run_id)
                    found.append(folder.read(CostRecord).to_json())
        if len(found) >= n:
            break
    return sorted(found, key=lambda r: (r["logical_date"], r["run_id"]))[-n:]


def comparison_rows(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run for ``actrec cost --last N``: totals, per video-hour and per 1k inferences,
    the wasted and idle shares, and the spot saving."""
    out = []
    for r in reports:
        shares = {u["component"]: u["share"] for u in r.get("usage") or []}
        markets = r.get("markets") or {}
        out.append(
            {
                "run_id": r["run_id"],
                "logical_date": r["logical_date"],
                "cost_usd": r["cost_usd"],
                "video_hours": r["video_hours"],
                "usd_per_video_hour": r.get("usd_per_video_hour"),
                "usd_per_1k_inferences": r.get("usd_per_1k_inferences"),
                "wasted_share": shares.get("wasted"),
                "idle_share": shares.get("idle"),
                "market": (r.get("prices") or {}).get("market"),
                "on_demand_usd": markets.get("on_demand"),
                "priced_as": r.get("priced_as"),
            }
        )
    return out


# ------------------------------------------------------------------------------- plots


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # inline: without the XML prolog and doctype


def _figure(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("svg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ax.set_title(title, fontsize=10)
    return fig, ax


def plot_components(report: dict[str, Any]) -> str:
    """Cost by component: the usage rows (catalogue pricing) or the ledger rows."""
    fig, ax = _figure("cost by component (USD)")
    usage = report.get("usage") or []
    if usage:
        labels = [u["component"] for u in usage]
        values = [u["cost_usd"] for u in usage]
        s3 = sum(r["cost_usd"] for r in report["rows"] if r["component"] == "s3")
        labels.append("s3")
        values.append(s3)
    else:
        labels = [f"{r['component']}/{r['resource']}" for r in report["rows"]]
        values = [r["cost_usd"] for r in report["rows"]]
    ax.barh(labels, values, color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel("USD")
    return _svg(fig)


def plot_history(history: list[dict[str, Any]]) -> str:
    fig, ax = _figure(f"cost per video-hour, last {len(history)} run(s) (USD)")
    points = [
        (h["run_id"], h["usd_per_video_hour"]) for h in history if h.get("usd_per_video_hour") is not None
    ]
    xs = list(range(len(points)))
    ax.plot(xs, [p[1] for p in points], marker="o", color="#55a868")
    ax.set_xticks(xs, [p[0][:10] + "\n" + p[0][11:19] for p in points], fontsize=6, rotation=30)
    ax.set_ylabel("USD per video-hour")
    ax.set_ylim(bottom=0)
    return _svg(fig)


def plot_shares(report: dict[str, Any]) -> str:
    fig, ax = _figure("paid compute: busy, wasted, idle (share)")
    shares = {u["component"]: u["share"] for u in report.get("usage") or []}
    wasted, idle = shares.get("wasted", 0.0), shares.get("idle", 0.0)
    busy = max(0.0, 1.0 - wasted - idle)
    ax.bar(["busy", "wasted", "idle"], [busy, wasted, idle], color=["#55a868", "#c44e52", "#8c8c8c"])
    ax.set_ylim(0, 1)
    for i, v in enumerate((busy, wasted, idle)):
        ax.text(i, v + 0.02, f"{v:.1%}", ha="center", fontsize=8)
    return _svg(fig)


def plot_markets(report: dict[str, Any]) -> str:
    fig, ax = _figure("the same hours on spot and on demand (USD)")
    markets = report.get("markets") or {}
    names = [m for m in ("spot", "on_demand") if m in markets]
    ax.bar(names, [markets[m] for m in names], color=["#4c72b0", "#dd8452"][: len(names)])
    if len(names) == 2 and markets["on_demand"] > 0:
        saving = 1 - markets["spot"] / markets["on_demand"]
        ax.set_xlabel(f"spot saves {saving:.0%} against on demand")
    return _svg(fig)


# ------------------------------------------------------------------------------- pages


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.6f}"


def _table(rows: list[dict[str, Any]], columns: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def render_report(report: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """The run's cost report: totals, notes (``priced as``), the four plots, the ledger, the
    usage rows, the nodes and the store traffic (``report``: ``cost.json`` plus ``uri``, ``status``,
    ``model``, as :func:`actrec_batch.costs.with_run_info` gives it)."""
    from actrec_batch.costs import COST_COLUMNS, cost_title

    history = history or [report]
    if report["run_id"] not in {h["run_id"] for h in history}:
        history = [*history, report]
    totals = [
        {
            "cost_usd": _usd(report["cost_usd"]),
            "video_hours": f"{report['video_hours']:.4f}",
            "usd_per_video_hour": _usd(report.get("usd_per_video_hour")),
            "inferences": report.get("inferences"),
            "usd_per_1k_inferences": _usd(report.get("usd_per_1k_inferences")),
        }
    ]
    notes = "".join(f"<p class='note'>{escape(n)}</p>" for n in report.get("notes") or [])
    prices = report.get("prices") or {}
    price_line = ", ".join(f"{k}: {v}" for k, v in prices.items() if k != "sources")
    plots = [plot_components(report), plot_history(history)]
    if report.get("usage"):
        plots += [plot_shares(report), plot_markets(report)]
    parts = [
        "<h2>Totals</h2>",
        _table(totals, list(totals[0]), "totals"),
        notes,
        "<h2>Plots</h2><div class='plots'>"
        + "".join(f"<div class='plot'>{p}</div>" for p in plots)
        + "</div>",
        "<h2>Ledger (job_costs)</h2>",
        _table(report["rows"], list(COST_COLUMNS)),
    ]
    if report.get("usage"):
        parts += [
            "<h2>Where the paid compute went (job_cost_usage)</h2>",
            _table(report["usage"], list(report["usage"][0])),
        ]
    if report.get("nodes"):
        cols = ["node_id", "instance_type", "labelled", "market", "held_s", "usd_per_hour"]
        parts += ["<h2>Nodes</h2>", _table(report["nodes"], cols)]
    if report.get("io"):
        parts += ["<h2>Store traffic</h2>", _table([report["io"]], list(report["io"]))]
    if report.get("wasted"):
        parts += ["<h2>Wasted work</h2>", _table([report["wasted"]], list(report["wasted"]))]
    parts += [f"<p>prices: {escape(price_line)}</p>", f"<p>ledger: {escape(report.get('uri', ''))}</p>"]
    return _page(cost_title(report), "".join(parts))


def render_comparison(history: list[dict[str, Any]]) -> str:
    """``actrec cost --last N --format html``: the runs side by side, and cost per video-hour."""
    rows = comparison_rows(history)
    title = f"cost of the last {len(history)} run(s)"
    body = "<div class='plots'><div class='plot'>" + plot_history(history) + "</div></div>"
    return _page(title, body + _table(rows, list(rows[0]) if rows else ["run_id"]))
