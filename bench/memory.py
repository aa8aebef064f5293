"""Memory: peak RSS per decode worker and per inference actor on 1080p footage, with the in-flight
bound holding.

``actrec run`` (default Ray runner, a local Ray started by the command) on a 1080p night, while
psutil samples every process under the command every 0.2 s: resident set (RSS) and unique set
(USS: pages no other process shares, so Ray's shared object store is not counted twice). Ray
names its workers' processes after what they run (``ray::decode_unit``, ``ray::Embedder.embed``),
so a pid is a decode worker once it ran a decode or index task and an inference actor once it
held an Embedder. The in-flight bound is read back from the run's ``metrics.json``
(``ray.peak_units_inflight`` against ``ray.plan.max_inflight_units``); a run whose metrics lack
either fails the section rather than pass the goal with nothing measured.

Usage: python bench/memory.py [--smoke] [--repeats 3] [--max-inflight-units N]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import footage  # noqa: E402
from harness import Figure, Goal, Section  # noqa: E402
from runs import ENV, finish, night_run, section_args  # noqa: E402

MiB = 1024 * 1024
ROLES = {"decode": ("decode_unit", "index_video"), "actor": ("Embedder",)}


def role_of(cmdline: str) -> str | None:
    for role, marks in ROLES.items():
        if cmdline.startswith("ray::") and any(m in cmdline for m in marks):
            return role
    return None


class Sampler:
    """Peak RSS and USS of every process under ``pid``, by role (driver, decode, actor, other)."""

    def __init__(self, pid: int, period_s: float = 0.2) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.period_s = period_s
        self.peaks: dict[int, dict] = {}  # pid -> {"rss", "uss", "role"}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                try:
                    title = " ".join(p.cmdline())
                    mem = p.memory_full_info()
                except psutil.Error:
                    continue
                peak = self.peaks.setdefault(p.pid, {"rss": 0, "uss": 0, "role": None, "name": title[:80]})
                peak["rss"], peak["uss"] = max(peak["rss"], mem.rss), max(peak["uss"], mem.uss)
                if p.pid == self.root.pid:
                    peak["role"] = "driver"
                elif peak["role"] is None:
                    peak["role"] = role_of(title)
            time.sleep(self.period_s)

    def by_role(self, role: str) -> list[dict]:
        return [p for p in self.peaks.values() if p["role"] == role]


def measured_run(store: Path, work: Path, extra: list[str]) -> dict:
    cmd = night_run(
        store,
        work,
        footage.DATE.isoformat(),
        *extra,
    )
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    sampler.thread.start()
    stdout, stderr = proc.communicate()
    sampler.stop.set()
    sampler.thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"actrec run on {store} failed ({proc.returncode}): {stderr.strip()[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    metrics = json.loads(Path(summary["metrics_uri"].removeprefix("file://")).read_text())
    ray = metrics.get("ray") or {}
    peak, bound = ray.get("peak_units_inflight"), (ray.get("plan") or {}).get("max_inflight_units")
    if not isinstance(peak, int) or not isinstance(bound, int) or peak < 1:
        raise RuntimeError(
            f"{summary['metrics_uri']}: no in-flight figures to check the bound with "
            f"(ray.peak_units_inflight = {peak!r}, ray.plan.max_inflight_units = {bound!r})"
        )
    out = {"summary": summary, "plan": ray["plan"], "inflight": {"peak": peak, "bound": bound}}
    for role in ("driver", "decode", "actor"):
        procs = sampler.by_role(role)
        out[role] = {
            "processes": len(procs),
            "peak_rss_mib": max((p["rss"] for p in procs), default=0) / MiB,
            "peak_uss_mib": max((p["uss"] for p in procs), default=0) / MiB,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = section_args(__doc__)
    ap.add_argument(
        "--max-inflight-units", type=int, default=0, help="the bound to run with (0: the default)"
    )
    args = ap.parse_args(argv)
    store = (
        footage.synthetic_night(160, 120, 10, 0.25)
        if args.smoke
        else footage.synthetic_night(1920, 1080, 30, 3)
    )
    name = "smoke 2 x 15 s 160x120" if args.smoke else "2 x 3 min 1920x1080 30 fps H.264"
    repeats = 1 if args.smoke else args.repeats
    extra = ["--segment-s", "20" if args.smoke else "60"]  # several units per file, so the bound has work
    if args.max_inflight_units:
        extra += ["--max-inflight-units", str(args.max_inflight_units)]
    section = Section(
        "memory", "Memory per decode worker and per inference actor", footage=name, smoke=args.smoke
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="actrec-memory-") as tmp:
        for _ in range(repeats):
            runs.append(measured_run(store, Path(tmp), extra))
    for role, what in (
        ("decode", "a decode worker"),
        ("actor", "an inference actor"),
        ("driver", "the driver"),
    ):
        for kind in ("rss", "uss"):
            section.figures.append(
                Figure(
                    f"{role}.peak_{kind}",
                    f"peak {kind.upper()} of {what}",
                    "MiB",
                    [r[role][f"peak_{kind}_mib"] for r in runs],
                    {"processes": [r[role]["processes"] for r in runs]},
                )
            )
    plan = [r["plan"] for r in runs]
    peak = [r["inflight"]["peak"] for r in runs]
    bound = [r["inflight"]["bound"] for r in runs]
    section.figures.append(
        Figure(
            "inflight.peak",
            "peak units in flight (metrics.json)",
            "units",
            [float(p) for p in peak],
            {"bound": bound},
        )
    )
    over = [float(p - b) for p, b in zip(peak, bound, strict=True)]
    section.figures.append(
        Figure("inflight.over_bound", "peak in flight minus max_inflight_units", "units", over)
    )
    section.goals.append(
        Goal(
            "inflight_bound",
            "units in flight never exceed max_inflight_units",
            "inflight.over_bound",
            "<=",
            0.0,
            max(over),
        )
    )
    section.notes.append(
        f"plan: {plan[0]}; RSS counts pages shared with other processes (Ray's object store, libraries); "
        "USS only the process's own"
    )
    return finish(section, args.results)


if __name__ == "__main__":
    sys.exit(main())
