"""The settings table of the README and docs/reference.md, generated from the declarations
(``python -m actrec_batch.docs`` writes it there)."""

from __future__ import annotations

from actrec_batch.config.settings import GROUPS, SETTINGS, Spec


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(spec: Spec) -> str:
    valid = getattr(spec.parse, "valid", None)
    cells = (
        f"`{spec.name}`",
        f"`{spec.flag}`",
        f"`{spec.env}`",
        f"`{spec.default_text()}`",
        f"{spec.help} (valid: {valid})" if valid else spec.help,
    )
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
