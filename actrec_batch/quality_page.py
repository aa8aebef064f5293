"""``quality.html``: the quality report of one run as a page, with its plots inline as SVG.

The plots are drawn by matplotlib (a ``Figure`` of its own each, no pyplot state) and embedded as
the ``<svg>`` matplotlib writes: label shares against the window, the confidence distributions,
each camera's event rate against its window rate, and each camera's frame health. Everything on
the page comes from ``quality.json`` (the record passed in), so the page and the file agree.
"""

from __future__ import annotations

import html
import io
from typing import Any

_TONIGHT, _WINDOW, _BAD = "#1f77b4", "#bbbbbb", "#d62728"


def render_quality_page(report: dict[str, Any]) -> str:
    """The page of a ``quality.json`` document (a :class:`~actrec_batch.runs.QualityRecord`'s JSON)."""
    drift = report.get("drift") or {}
    title = f"Quality of run {report['run_id']} ({report['logical_date']}, {report['model']})"
    parts = [f"<h1>{_e(title)}</h1>", _verdict(drift)]
    if drift:
        window = drift["window"]
        dates = ", ".join(window["dates"]) or "none"
        parts.append(
            f"<p>Window: the {window['nights']} nights {window['first']} to {window['last']} "
            f"(from the {window['source']}); nights with published footage: {_e(dates)}.</p>"
        )
        tonight, win = drift["tonight"], drift["window_figures"]
        parts += [
            _section(
                "Label shares", _bars(tonight["labels"], win["labels"], share=True, ylabel="share of events")
            ),
            _section(
                "Confidence distribution",
                _bars(
                    _bins(tonight["confidence"]),
                    _bins(win["confidence"]),
                    share=True,
                    ylabel="share of events",
                ),
            ),
            _section(
                "Event rate per camera",
                _bars(_rates(tonight), _rates(win), share=False, ylabel="events per hour"),
            ),
            _section("Frame health per camera", _health(drift)),
            _section("All metrics", _table(drift["metrics"])),
        ]
    if report.get("evaluation"):
        ev = report["evaluation"]
        parts.append(
            _section(
                "Against ground truth",
                f"<p>precision {ev['precision']:.3f}, recall {ev['recall']:.3f}, F1 {ev['f1']:.3f} "
                f"(tIoU {ev.get('tiou')})</p>",
            )
        )
    style = (
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        ".alert{color:#a00;font-weight:bold}.ok{color:#070}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}svg{max-width:100%;height:auto}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )


def _e(text: Any) -> str:
    return html.escape(str(text))


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{body}</section>"


def _verdict(drift: dict[str, Any]) -> str:
    if not drift:
        return "<p>No drift report in this run's quality.json.</p>"
    if drift["alerts"]:
        items = "".join(f"<li>{_e(a['message'])}</li>" for a in drift["alerts"])
        return f"<div id='alerts' class='alert'><p>DRIFT ALERT: {len(drift['alerts'])} alert(s)</p><ul>{items}</ul></div>"
    if not drift["baseline"]:
        return "<p id='alerts' class='ok'>No baseline: no earlier night in the window; nothing to compare yet.</p>"
    return "<p id='alerts' class='ok'>No drift alert.</p>"


def _bins(counts: list[int]) -> dict[str, int]:
    from actrec_batch.drift import bin_names

    return dict(zip(bin_names(), counts, strict=True))


def _rates(figures: dict[str, Any]) -> dict[str, float]:
    hours = figures["camera_hours"]
    return {c: figures["camera_events"].get(c, 0) / h for c, h in hours.items() if h}


def _figure(width: float = 8.0, height: float = 3.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _bars(tonight: dict[str, float], window: dict[str, float], *, share: bool, ylabel: str) -> str:
    """Tonight's values beside the window's, per key (as shares of each side's total with ``share``)."""
    keys = sorted(set(tonight) | set(window))
    if not keys:
        return "<p>Nothing to plot.</p>"

    def norm(d: dict[str, float]) -> list[float]:
        total = sum(d.values()) if share else 1.0
        return [d.get(k, 0) / total if total else 0.0 for k in keys]

    fig, ax = _figure()
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], norm(tonight), width=0.4, label="tonight", color=_TONIGHT)
    ax.bar([x + 0.2 for x in xs], norm(window), width=0.4, label="window", color=_WINDOW)
    ax.set_xticks(list(xs), keys, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend()
    return _svg(fig)


def _health(drift: dict[str, Any]) -> str:
    health = drift["frame_health"]
    if not health["measured"]:
        return (
            "<p>Frame health not measured: this run decoded no frames "
            f"({health['units_decoded']} of {health['units_total']} units computed; the rest came from "
            "the feature cache or checkpoints, which hold no frames).</p>"
        )
    cams = sorted(health["cameras"])
    fig, ax = _figure()
    xs = range(len(cams))
    black = [health["cameras"][c]["black_fraction"] or 0.0 for c in cams]
    static = [health["cameras"][c]["static_fraction"] or 0.0 for c in cams]
    ax.bar([x - 0.2 for x in xs], black, width=0.4, label="black frames", color="#333333")
    ax.bar([x + 0.2 for x in xs], static, width=0.4, label="static frames", color="#ff7f0e")
    ax.axhline(drift["limits"]["dead_fraction"], color=_BAD, linestyle="--", label="dead/frozen from")
    ax.set_xticks(list(xs), cams, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of decoded frames")
    ax.legend()
    return _svg(fig)


def _table(rows: list[dict[str, Any]]) -> str:
    head = "<tr><th>metric</th><th>subject</th><th>value</th><th>window</th><th>threshold</th><th>status</th></tr>"
    body = "".join(
        f"<tr class='{'alert' if r['alert_status'] == 'alert' else ''}'>"
        + "".join(
            f"<td>{_e('' if r[k] is None else r[k])}</td>"
            for k in ("metric", "subject", "value", "baseline", "threshold", "alert_status")
        )
        + "</tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"
