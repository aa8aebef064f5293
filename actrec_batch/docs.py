"""The generated parts of README.md and docs/reference.md, kept current from their declarations.

``python -m actrec_batch.docs`` rewrites every block between ``<!-- BEGIN name (generated: ...) -->``
and ``<!-- END name -->``; ``--check`` only says (exit 1) which one is stale. The blocks:

- ``settings``: every setting (``actrec_batch.config``), one table per group;
- ``columns``: every warehouse table's and Parquet file's columns (``actrec_batch.tables``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "reference.md"
COMMAND = "python -m actrec_batch.docs"


def _settings() -> str:
    from actrec_batch.config.reference import settings_reference_markdown

    return settings_reference_markdown()


def _columns() -> str:
    from actrec_batch.tables import columns_reference_markdown

    return columns_reference_markdown()


BLOCKS: dict[str, Callable[[], str]] = {"settings": _settings, "columns": _columns}
# Which blocks each file carries.
FILES: dict[Path, tuple[str, ...]] = {README: ("settings",), REFERENCE: ("settings", "columns")}


def begin(name: str) -> str:
    return f"<!-- BEGIN {name} (generated: {COMMAND}) -->"


def end(name: str) -> str:
    return f"<!-- END {name} -->"


def with_block(text: str, name: str, *, where: str) -> str:
    """``text`` with its ``name`` block replaced by the current one. Raises ValueError naming
    ``where`` when the markers are missing."""
    pattern = re.compile(re.escape(begin(name)) + r".*?" + re.escape(end(name)), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{where} needs exactly one '{begin(name)}' ... '{end(name)}' block")
    body = BLOCKS[name]().rstrip("\n")
    return pattern.sub(lambda _m: f"{begin(name)}\n{body}\n{end(name)}", text, count=1)


def stale_blocks(path: Path, names: tuple[str, ...], *, write: bool) -> list[str]:
    """The blocks of ``path`` that were not current (rewritten there when ``write``)."""
    text = path.read_text(encoding="utf-8")
    stale, new = [], text
    for name in names:
        updated = with_block(new, name, where=str(path))
        if updated != new:
            stale.append(name)
        new = updated
    if write and new != text:
        path.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str]) -> int:
    check = "--check" in argv
    failed = False
    for path, names in FILES.items():
        for name in stale_blocks(path, names, write=not check):
            rel = path.relative_to(ROOT)
            if check:
                failed = True
                print(f"{rel}: the {name} block is stale. Fix: run {COMMAND}", file=sys.stderr)
            else:
                print(f"{rel}: {name} block regenerated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
