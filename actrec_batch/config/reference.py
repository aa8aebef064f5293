"""The settings table of the README and docs/reference.md, generated from the declarations."""

from __future__ import annotations

import re
from pathlib import Path

from actrec_batch.config.settings import GROUPS, SETTINGS, Spec

BEGIN = "<!-- BEGIN settings (generated: python -m actrec_batch.config) -->"
END = "<!-- END settings -->"
README = Path(__file__).resolve().parents[2] / "README.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(spec: Spec) -> str:
    cells = (f"`{spec.name}`", f"`{spec.flag}`", f"`{spec.env}`", f"`{spec.default_text()}`", spec.help)
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def settings_reference_markdown() -> str:
    """Every setting as Markdown: one table per group (setting, flag, env var, default, help)."""
    parts = []
    for group, title in GROUPS.items():
        specs = [s for s in SETTINGS if s.group == group]
        if not specs:
            continue
        parts.append(f"**{group}**: {title}\n")
        parts.append("| setting | flag | env var | default | help |\n|---|---|---|---|---|")
        parts.append("\n".join(_row(s) for s in specs) + "\n")
    return "\n".join(parts)


def with_settings_table(text: str, *, where: str = "README.md") -> str:
    """``text`` with the part between the settings markers replaced by the current table."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{where} has no '{BEGIN}' ... '{END}' block")
    block = f"{BEGIN}\n{settings_reference_markdown()}{END}"
    return pattern.sub(lambda _m: block, text, count=1)


def update_readme(path: Path = README, *, check: bool = False) -> bool:
    """Rewrite the settings table of ``path``; with ``check``, only say whether it is current."""
    text = path.read_text(encoding="utf-8")
    new = with_settings_table(text, where=str(path))
    if check or new == text:
        return new == text
    path.write_text(new, encoding="utf-8")
    return True
