"""``make bench``: every benchmark section, then the report (bench/report.py).

Runs each section script in a fresh interpreter, in this order: decode, e2e, rescore, memory,
warehouse (the sections in bench/harness.py's shape; ``--smoke`` and ``--repeats`` pass through),
then bench/run_all.py (synth, probe, model, the suite's timings; ``--quick`` under ``--smoke``,
only the suite timings' cheap parts are skipped there), then bench/report.py, which merges
``<results>/*.json`` into ``bench/results.json`` and ``BENCHMARKS.md`` (or, with ``--results DIR``
elsewhere, ``DIR/results.json`` and ``DIR/BENCHMARKS.md``). A section that fails is reported
and the others still run; the exit status is 1 then.

Usage: python bench/all.py [--smoke] [--repeats 3] [--results DIR] [--only e2e rescore ...] [--skip ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import RESULTS, ROOT  # noqa: E402

BENCH = ROOT / "bench"
SECTIONS = ("decode", "e2e", "rescore", "memory", "warehouse")  # scripts taking --smoke/--repeats/--results
LEGACY = "run_all"  # bench/run_all.py: --quick, results by ACTREC_BENCH_RESULTS


def commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    chosen = [n for n in (*SECTIONS, LEGACY) if (not args.only or n in args.only) and n not in args.skip]
    out = []
    for name in chosen:
        script = BENCH / f"{name}.py"
        if not script.exists():
            print(f"bench/all.py: no {script.relative_to(ROOT)}, section {name} skipped", flush=True)
            continue
        if name == LEGACY:
            # the smoke run keeps to the cheap parts (the suite timings start Airflow and moto servers)
            extra = ["--quick", "--only", "synth"] if args.smoke else []
        else:
            extra = ["--repeats", str(args.repeats)]  # results: ACTREC_BENCH_RESULTS
            extra += ["--smoke"] if args.smoke else []
            extra += ["--profile"] if args.profile and name in ("e2e", "rescore") else []
        out.append((name, [sys.executable, str(script), *extra]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (checks the scripts)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--only", nargs="*", default=[], help=f"of {', '.join((*SECTIONS, LEGACY))}")
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--profile", action="store_true", help="e2e and rescore also profile a run")
    args = ap.parse_args(argv)
    args.results = args.results.resolve()
    env = {
        **os.environ,
        "ACTREC_BENCH_RESULTS": str(args.results),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    failed = []
    for name, cmd in commands(args):
        print(f"$ {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL).returncode
        print(f"  {name}: exit {rc} in {time.perf_counter() - t0:.1f} s", flush=True)
        if rc != 0:
            failed.append(name)
    rc = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--results", str(args.results)], env=env
    ).returncode
    if failed:
        print(f"bench/all.py: sections failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or rc else 0


if __name__ == "__main__":
    sys.exit(main())
