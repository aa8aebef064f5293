"""Merge the benchmark sections (``bench/results/*.json``) into ``bench/results.json`` and
``BENCHMARKS.md``: the machine, the library versions, each section's footage, every figure as
median with min, max and n, and each goal with whether it holds (and why not).

Sections in the shape of bench/harness.py are taken as they are. A JSON file of an older script
(bench/run_all.py's ``synth``, ``probe``, ``model``, ``suite_timings``; bench/pipeline.py's) is
carried over as a section whose figures are its numeric values, each measured once (n = 1).

Usage: python bench/report.py [--results DIR] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS, ROOT  # noqa: E402

ORDER = ("decode", "e2e", "rescore", "memory", "warehouse")  # first, in this order; the rest by name


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        import psutil

        memory = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "os": platform.platform()}


_VERSIONS = r"""
import json, importlib.metadata as md, platform
out = {"python": platform.python_version()}
for dist in ("av", "torch", "ray", "duckdb", "psycopg", "great_expectations", "pyarrow", "numpy"):
    try:
        out[dist] = md.version(dist)
    except md.PackageNotFoundError:
        out[dist] = None
try:
    import av
    out["ffmpeg"] = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
except Exception as exc:
    out["ffmpeg"] = f"unknown ({type(exc).__name__})"
gpu = {"cuda_available": None}
try:
    import torch
    gpu["cuda_available"] = bool(torch.cuda.is_available())
    gpu["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    gpu["torch_cuda"] = torch.version.cuda
except Exception as exc:
    gpu["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"versions": out, "gpu": gpu}))
"""


def versions_and_gpu() -> tuple[dict[str, Any], dict[str, Any]]:
    """Library versions and CUDA availability, from a fresh interpreter (torch's import stays out
    of this one)."""
    out = subprocess.run([sys.executable, "-c", _VERSIONS], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}, {"cuda_available": None}
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["versions"], data["gpu"]


def postgres_version() -> str | None:
    """The PostgreSQL server's version, if the test or configured one answers within 3 s."""
    url = os.environ.get("ACTREC_TEST_PG_URL") or os.environ.get("ACTREC_WAREHOUSE_URL", "")
    env_file = ROOT / ".actrec" / "test-services.env"
    if not url.startswith("postgresql") and env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("ACTREC_TEST_PG_URL="):
                url = line.split("=", 1)[1].strip()
    if not url.startswith("postgresql"):
        return None
    try:
        import psycopg

        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])
    except Exception as exc:  # noqa: BLE001 - not reachable: said so in the report
        return f"not reachable ({type(exc).__name__})"


def _numbers(value: Any, prefix: str = "") -> list[tuple[str, float]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [(prefix, float(value))]
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _numbers(v, f"{prefix}.{k}" if prefix else str(k))]
    return []


def legacy_section(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """An older script's JSON as a section: each numeric value one figure measured once."""
    figures = [
        {
            "id": fid,
            "what": fid,
            "unit": "",
            "runs": [v],
            "detail": {},
            "median": v,
            "min": v,
            "max": v,
            "n": 1,
        }
        for fid, v in _numbers(data)
    ]
    return {
        "section": name,
        "title": f"{name} (older script, single measurements)",
        "footage": "",
        "smoke": False,
        "figures": figures,
        "goals": [],
        "notes": ["carried over from a script that reports single measurements; n = 1"],
    }


def load_sections(results: Path) -> list[dict[str, Any]]:
    sections = []
    for path in sorted(results.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SystemExit(f"bench/report.py: {path} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            continue
        sections.append(data if "section" in data else legacy_section(path.stem, data))
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(sections, key=lambda s: (rank.get(s["section"], len(ORDER)), s["section"]))


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def markdown(report: dict[str, Any]) -> str:
    m, v, gpu = report["machine"], report["versions"], report["gpu"]
    ffmpeg = v.get("ffmpeg")
    ffmpeg_s = ", ".join(f"{k} {x}" for k, x in ffmpeg.items()) if isinstance(ffmpeg, dict) else str(ffmpeg)
    lines = [
        "# Benchmarks",
        "",
        f"Made by `bench/all.py` then `bench/report.py` on {report['generated_at']}. Speed is measured "
        "here and never asserted in tests. Every figure is the median of n runs, with min and max.",
        "",
        *([f"**Conditions:** {report['conditions']}", ""] if report.get("conditions") else []),
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gib']} GiB; {m['os']}",
        f"- Python {v.get('python')}; av {v.get('av')} (FFmpeg: {ffmpeg_s}); torch {v.get('torch')}; "
        f"ray {v.get('ray')}; duckdb {v.get('duckdb')}; psycopg {v.get('psycopg')}; "
        f"PostgreSQL server {report.get('postgresql') or 'not configured'}; "
        f"great_expectations {v.get('great_expectations')}; pyarrow {v.get('pyarrow')}",
        "",
        "## GPU",
        "",
    ]
    if gpu.get("cuda_available"):
        lines.append(
            f"CUDA is available ({', '.join(gpu.get('devices') or [])}; torch CUDA {gpu.get('torch_cuda')})."
        )
    else:
        lines.append(
            "CUDA is not available on this machine (`torch.cuda.is_available()` is False), so no figure "
            "here is measured on a GPU. `bench/gpu.py` measures the GPU path (decode on CPU, "
            "inference on the GPU) on a CUDA machine; see bench/GPU.md."
        )
    lines += [
        "",
        "## Goals",
        "",
        "| goal | measured | target | holds | why missed |",
        "|---|---|---|---|---|",
    ]
    for s in report["sections"]:
        for g in s["goals"]:
            holds = {True: "yes", False: "**no**", None: "not measured"}[g["holds"]]
            smoke = " (smoke)" if s.get("smoke") else ""
            why = " ".join(str(g.get("why_missed") or "").split()).replace("|", "/")
            lines.append(
                f"| {g['goal']}{smoke} | {_fmt(g['measured'])} | {g['op']} {_fmt(g['target'])} | {holds} | {why} |"
            )
    for s in report["sections"]:
        lines += ["", f"## {s['title']} (`{s['section']}`)", ""]
        if s.get("smoke"):
            lines += ["*Smoke run: tiny sizes, not comparable with the goals.*", ""]
        if s.get("footage"):
            lines += [f"Footage: {s['footage']}", ""]
        lines += ["| figure | unit | median | min | max | n |", "|---|---|---|---|---|---|"]
        for f in s["figures"]:
            lines.append(
                f"| {f['what']} | {f['unit']} | {_fmt(f['median'])} | {_fmt(f['min'])} | {_fmt(f['max'])} | {f['n']} |"
            )
        if s.get("notes"):
            lines += ["", *[f"- {' '.join(str(n).split())}" for n in s["notes"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=RESULTS, help="the sections' folder")
    ap.add_argument(
        "--json", type=Path, default=None, help="default: bench/results.json (or DIR/results.json)"
    )
    ap.add_argument(
        "--markdown", type=Path, default=None, help="default: BENCHMARKS.md (or DIR/BENCHMARKS.md)"
    )
    ap.add_argument(
        "--conditions",
        default="",
        help="what the reader must know about this run (a partial run, a loaded machine)",
    )
    args = ap.parse_args(argv)
    default_dir = args.results.resolve() == (ROOT / "bench" / "results").resolve()
    json_path = args.json or (
        ROOT / "bench" / "results.json" if default_dir else args.results / "results.json"
    )
    md_path = args.markdown or (ROOT / "BENCHMARKS.md" if default_dir else args.results / "BENCHMARKS.md")
    versions, gpu = versions_and_gpu()
    sections = load_sections(args.results)
    goals = [g for s in sections for g in s["goals"]]
    report = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "conditions": args.conditions,
        "machine": machine(),
        "versions": versions,
        "postgresql": postgres_version(),
        "gpu": gpu,
        "goals_holding": sum(g["holds"] is True for g in goals),
        "goals_total": len(goals),
        "sections": sections,
    }
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    print(
        f"{len(sections)} sections, {report['goals_holding']}/{len(goals)} goals holding -> {json_path}, {md_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
