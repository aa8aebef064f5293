"""``actrec config`` and ``actrec demo``."""

from __future__ import annotations

import argparse

from actrec_batch.cli.base import ALL_GROUPS, command, console
from actrec_batch.cli.footage import add_synth_flags, synth_params
from actrec_batch.config import GROUPS, SETTINGS, Settings, parse_logical_date
from actrec_batch.synth.params import DEMO_FOOTAGE

_DEMO_FLAGS = ("cameras", "minutes")


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Every setting, by group: ``name = value  (source)``, then its flag and env var."""
    values = settings.redacted()
    out = console()
    for group, title in GROUPS.items():
        out.print(f"# {group}: {title}", style="bold")
        for spec in (s for s in SETTINGS if s.group == group):
            source = settings.sources.get(spec.name, "default")
            out.print(
                f"{spec.name} = {values[spec.name]!r}  ({source})  {spec.flag} / {spec.env}", soft_wrap=True
            )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.demo import run_demo

    footage = synth_params(args, seed=DEMO_FOOTAGE.seed)
    return run_demo(settings, date=date, footage=footage, airflow=not args.without_airflow)


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "demo",
        cmd_demo,
        groups=ALL_GROUPS,
        help="what `make demo` runs: synthetic footage, then the nightly DAG through Airflow",
        description="Render a small synthetic night (plus one corrupt file), run the actrec_nightly DAG over it "
        "through Airflow on the embedded defaults (local store, DuckDB, local Ray), and print a summary.",
    )
    p.add_argument("--date", default="2026-11-24", help="logical date YYYY-MM-DD")
    add_synth_flags(p, _DEMO_FLAGS, DEMO_FOOTAGE.to_json())
    p.add_argument(
        "--without-airflow",
        action="store_true",
        help="run the stages through `actrec run` instead of the DAG",
    )
    command(
        sub,
        "config",
        cmd_config,
        groups=ALL_GROUPS,
        help="print the resolved settings (secrets masked) and where each came from",
    )
