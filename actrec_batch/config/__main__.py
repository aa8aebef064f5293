"""``python -m actrec_batch.config [--check] [FILE ...]``: regenerate the settings table between
the settings markers of README.md (or of each FILE); ``--check`` exits 1 when one is stale."""

from __future__ import annotations

import sys
from pathlib import Path

from actrec_batch.config.reference import README, update_readme


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"] or [README]
    stale = [p for p in paths if not update_readme(p, check=check)]
    for p in stale:
        print(f"{p}: the settings table is stale. Fix: run python -m actrec_batch.config", file=sys.stderr)
    if not check:
        print(f"settings table written to {', '.join(map(str, paths))}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
