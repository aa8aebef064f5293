"""What every ``actrec`` command shares: the parser class, the setting flags (generated from the
declarations in :mod:`actrec_batch.config`), logging, and JSON / table output."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from actrec_batch.config import GROUPS, SETTINGS, Settings, Spec, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]
ALL_GROUPS = tuple(GROUPS)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line naming the fix, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}. Fix: see '{self.prog} --help'\n")


def command(
    sub: argparse._SubParsersAction,
    name: str,
    handler: Handler,
    *,
    groups: Iterable[str],
    help: str,  # noqa: A002 - the word argparse uses
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name``; its setting flags are added after its own (:func:`add_settings`)."""
    p = sub.add_parser(name, help=help, description=description or help)
    p.set_defaults(func=handler, setting_groups=tuple(groups))
    return p


def _help(spec: Spec) -> str:
    text = f"{spec.help} (default: {spec.default_text()}; env {spec.env})"
    return text.replace("%", "%%")


def add_settings(p: argparse.ArgumentParser, groups: Iterable[str]) -> None:
    """The setting flags. Every flag is accepted (like its env var) by every command, but --help
    lists only the groups the command uses, each flag with its default and environment variable."""
    shown = set(groups) | {"general"}
    for group, title in GROUPS.items():
        specs = [s for s in SETTINGS if s.group == group]
        target = p.add_argument_group(f"{group} settings: {title}") if group in shown else p
        if group == "general":
            target.add_argument(
                "--config",
                dest="config_file",
                metavar="FILE",
                default=argparse.SUPPRESS,
                help="YAML file of settings (env ACTREC_CONFIG); precedence: flag > ACTREC_* env > "
                "this file > default",
            )
        for spec in specs:
            target.add_argument(
                spec.flag,
                dest=spec.name,
                default=argparse.SUPPRESS,
                metavar=_metavar(spec),
                help=_help(spec) if group in shown else argparse.SUPPRESS,
            )


def _metavar(spec: Spec) -> str:
    if spec.choices:
        return "{" + ",".join(spec.choices) + "}"
    return {int: "N", float: "X"}.get(type(spec.default), "VALUE")


def settings_of(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    return load_settings(flags, config_file=getattr(args, "config_file", None))


def positive(kind: Callable[[str], Any], lo: float, hi: float, what: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``kind(raw)`` within ``[lo, hi]``."""

    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a valid {what}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{raw!r} is out of range; use {lo:g} to {hi:g}")
        return value

    return parse


def add_json(p: argparse.ArgumentParser, *, quiet: bool = False) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bars")


class CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    ``main()`` may run inside another program (a test, a notebook) that swaps ``sys.stderr`` and
    later closes the stream it swapped in; a handler bound to that stream would then fail on every
    later log line."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        handlers=[CurrentStderr()],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "great_expectations", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


def console():
    """A rich console on the current stdout; when stdout is not a terminal (a pipe, a file), tables
    keep their natural width instead of wrapping at 80 columns."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich exits 1; main() treats a closed pipe as success
            self.quiet = True
            raise BrokenPipeError

    tty = sys.stdout.isatty()
    return _Console(file=sys.stdout, width=None if tty else 10_000, markup=False, highlight=False)


def print_rows(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    """Rows as a table (rich), CSV or one JSON array on stdout."""
    if fmt == "json":
        sys.stdout.write(json.dumps([{c: r.get(c) for c in columns} for r in rows], default=str) + "\n")
        return
    if fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([["" if r.get(c) is None else r.get(c) for c in columns] for r in rows])
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in columns:
        table.add_column(c, no_wrap=True)
    for r in rows:
        table.add_row(*(Text(_cell(r.get(c))) for c in columns))
    out = console()
    out.print(table)
    out.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
