"""What the pipeline benchmarks share: a fresh store over kept footage, the documented command
run as a subprocess, the arguments every section script takes, and a cProfile text summary.

A run never writes into the kept footage's store: :func:`fresh_store` hard-links (or copies) its
``footage/`` into a new store, so every repeat starts with no manifest, cache or checkpoints.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import PROFILES, RESULTS, ROOT

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def section_args(description: str) -> argparse.ArgumentParser:
    """``--smoke``, ``--repeats N`` and ``--results DIR``, which every section script takes."""
    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one repeat: checks the script, not speed"
    )
    ap.add_argument("--repeats", type=int, default=3, help="measurements per figure (default 3)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the section's JSON goes")
    return ap


def fresh_store(footage_store: Path, dest: Path) -> Path:
    """A new store at ``dest`` holding ``footage_store``'s ``footage/`` (hard links where it can)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        shutil.copytree(footage_store / "footage", dest / "footage", copy_function=os.link)
    except OSError:  # another filesystem
        shutil.rmtree(dest / "footage", ignore_errors=True)
        shutil.copytree(footage_store / "footage", dest / "footage")
    return dest


def actrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "actrec_batch", *args]


def night_run(footage_store: Path, work: Path, date: str, *extra: str) -> list[str]:
    """``actrec run`` of ``date`` over a fresh store of ``footage_store``'s footage in ``work``,
    with a new DuckDB warehouse there; ``extra`` arguments appended."""
    fresh = fresh_store(footage_store, work / "store")
    (work / "wh.duckdb").unlink(missing_ok=True)
    warehouse = f"duckdb:///{work / 'wh.duckdb'}"
    return actrec("run", "--date", date, "--store", str(fresh), "--warehouse", warehouse, "--json", *extra)


def finish(section, results: Path) -> int:
    """Save ``section`` (a harness.Section) into ``results``, print it; the script's exit status."""
    path = section.save(results)
    print(json.dumps(section.as_json(), indent=2))
    print(f"wrote {path}", file=sys.stderr)
    return 0


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, dict]:
    """``(wall seconds, the JSON summary on stdout's last line)`` of a command; raises naming it."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, check=False)
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise RuntimeError(f"{' '.join(cmd[2:])} failed ({out.returncode}): {out.stderr.strip()[-3000:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def profile_text(prof: cProfile.Profile | str | Path, top: int = 45) -> str:
    """The ``top`` entries by cumulative time of a cProfile run (a profile or a saved file)."""
    buf = io.StringIO()
    stats = pstats.Stats(str(prof) if isinstance(prof, (str, Path)) else prof, stream=buf)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def save_profile(name: str, text: str) -> Path:
    PROFILES.mkdir(parents=True, exist_ok=True)
    path = PROFILES / name
    path.write_text(text)
    return path


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
