"""Build the ``actrec`` parser from the command modules and run one command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from actrec_batch import __version__
from actrec_batch.cli import admin, footage, models, pipeline, warehouse
from actrec_batch.cli.base import Parser, add_settings, settings_of, setup_logging
from actrec_batch.errors import ActrecError, ConfigError

log = logging.getLogger("actrec")
COMMAND_MODULES = (footage, admin, models, pipeline, warehouse)  # the order of `actrec --help`


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="actrec", description="Nightly batch action recognition over archived footage.")
    parser.add_argument("--version", action="version", version=f"actrec-batch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    for p in sub.choices.values():  # each command's setting flags come after its own arguments
        add_settings(p, p.get_default("setting_groups"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    removed = pipeline.removed_command(argv)
    if removed:
        return pipeline.print_removed(removed)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; every failure is one line on stderr and an exit code (see cli/)."""
    debug = os.environ.get("ACTREC_DEBUG") == "1"
    prog = f"actrec {args.command}"
    try:
        settings = settings_of(args)
        setup_logging(settings.log_level)
        t0 = time.perf_counter()
        rc = args.func(args, settings)
        log.debug("%s finished in %.2f s", prog, time.perf_counter() - t0)
        return rc
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except ActrecError as exc:
        if debug:
            raise
        print(f"{prog}: error [{exc.reason}]: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`actrec search | head`): not an error of ours
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for users; ACTREC_DEBUG=1 shows the traceback
        if debug:
            raise
        first = " ".join(str(exc).split())[:400]
        print(
            f"{prog}: error: unexpected {type(exc).__name__}: {first} (rerun with ACTREC_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1
