"""The ``actrec`` command line. Wiring only: parse, build Settings, call the library, print.

One module per command group: ``footage`` (synth, discover), ``pipeline`` (run, infer, rescore),
``models`` (train, train-head, model pack), ``warehouse`` (search, report, warehouse, eval, cost),
``admin`` (config, demo); ``base`` holds what they share (the setting flags, generated from
:mod:`actrec_batch.config`); ``main`` builds the parser.

Failures print exactly one line on stderr. Exit codes: 0 success, 1 a failed run (validation,
reconciliation, I/O), 2 a bad flag or setting (the line names the setting and the fix), or a
removed command (the line names its replacement), 130 interrupted.
"""

from actrec_batch.cli.base import CurrentStderr as _CurrentStderr
from actrec_batch.cli.main import build_parser, main

__all__ = ["_CurrentStderr", "build_parser", "main"]
