"""``python -m actrec_batch.config [--check]``: the same as ``python -m actrec_batch.docs``, which
regenerates the settings tables (and the other generated blocks) of README.md and docs/reference.md."""

from __future__ import annotations

import sys

from actrec_batch.docs import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
