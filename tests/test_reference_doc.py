"""docs/reference.md cannot fall behind the code silently.

It must name every ``actrec`` subcommand and flag the CLI's parser registers, and every reason code
the library can put in a quarantine record or an error line. The code is read as it is, not from a
list kept beside the test: the parser is built and walked, and the reason codes are collected from
the package's syntax tree (string constants given as a reason, and the values of ``*Reason*`` enums).
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reference.md"
PACKAGE = ROOT / "actrec_batch"

# Calls whose string arguments are quarantine reasons: Failure("timeout", detail),
# _quarantine(store, obj, date, "bad_layout", detail), QuarantineRecord.for_video(row, stage, "invalid_metadata",
# detail), _ray_failure(exc, uri, "infer_error"), QuarantineRecord(..., reason="bad_key").
QUARANTINE_CALLS = frozenset({"Failure", "_quarantine", "QuarantineRecord", "for_video", "_ray_failure"})
# The reasons CONTRACTS.md names: if the scan misses these, it is broken, not the doc.
CONTRACT_QUARANTINE_REASONS = {"empty", "truncated", "no_video_stream", "decode_error", "timeout"}
CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@pytest.fixture(scope="module")
def doc() -> str:
    assert DOC.is_file(), f"{DOC} is missing"
    return DOC.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ the CLI


def _cli_parser(monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser ``actrec`` uses: ``build_parser()`` when the CLI exports it, else the one ``main``
    builds, caught when it starts parsing."""
    import actrec_batch.cli as cli

    build = getattr(cli, "build_parser", None)
    if callable(build):
        return build()

    class Caught(Exception):
        pass

    caught: list[argparse.ArgumentParser] = []

    def grab(self, *args, **kwargs):
        caught.append(self)
        raise Caught

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", grab)
    with pytest.raises(Caught):
        cli.main([])
    monkeypatch.undo()
    return caught[0]


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("actrec",)
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command as (its words, its parser), nested subcommands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def _command_lines(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``"actrec NAME"`` for each subcommand, plus ``"actrec NAME CHOICE"`` where a subcommand takes
    a positional action word (``actrec warehouse upgrade``, ``actrec model pack``)."""
    lines = {}
    for words, sub in _commands(parser):
        lines[" ".join(words)] = sub
        for action in sub._actions:
            if (
                not action.option_strings
                and action.choices
                and not isinstance(action, argparse._SubParsersAction)
            ):
                for choice in action.choices:
                    lines[" ".join((*words, str(choice)))] = sub
    return lines


def test_every_subcommand_is_documented(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _command_lines(_cli_parser(monkeypatch))
    assert "actrec run" in lines and "actrec discover" in lines, sorted(lines)  # the walk found the CLI
    missing = sorted(line for line in lines if f"`{line}" not in doc)
    assert not missing, f"docs/reference.md does not document these commands: {missing}"


def test_every_flag_is_documented(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = set()
    for words, sub in _commands(_cli_parser(monkeypatch)):
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                if flag.startswith("--") and not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", doc):
                    missing.add(f"{' '.join(words)} {flag}")
    assert not missing, f"docs/reference.md does not document these flags: {sorted(missing)}"


# ----------------------------------------------------------------------------------- reason codes


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _codes_in(node: ast.AST) -> set[str]:
    """The snake_case string constants in ``node`` (a reason, or ``a if x else b`` of reasons)."""
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and CODE.match(n.value)
    }


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _is_enum(cls: ast.ClassDef) -> bool:
    names = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in cls.bases}
    return any(n.endswith("Enum") for n in names)


def _enum_values(cls: ast.ClassDef) -> set[str]:
    values = set()
    for stmt in cls.body:
        value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
        if value is not None:
            values |= _codes_in(value)
    return values


def _class_reasons(cls: ast.ClassDef) -> tuple[set[str], set[str]]:
    """(quarantine reasons, every reason) a class declares: the values of a ``*Reason*`` enum, and a
    class-level default such as ``reason = "validation_failed"``."""
    every: set[str] = set()
    for stmt in cls.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        targets = [stmt.target] if isinstance(stmt, ast.AnnAssign) else targets
        value = getattr(stmt, "value", None)
        if value is not None and any(isinstance(t, ast.Name) and t.id == "reason" for t in targets):
            every |= _codes_in(value)
    if "Reason" in cls.name and _is_enum(cls):
        values = _enum_values(cls)
        return (values if "Quarantine" in cls.name else set()), every | values
    return set(), every


def _call_reasons(call: ast.Call) -> tuple[set[str], set[str]]:
    """(quarantine reasons, every reason) a call passes: ``reason="..."``, and the string constants
    given to the calls that build quarantine records."""
    reasons: set[str] = set()
    for kw in call.keywords:
        if kw.arg == "reason":
            reasons |= _codes_in(kw.value)
    name = _call_name(call)
    if name in QUARANTINE_CALLS:
        for arg in call.args:
            if isinstance(arg, ast.Constant):
                reasons |= _codes_in(arg)
    quarantine = reasons if name in QUARANTINE_CALLS or name == "VideoError" else set()
    return quarantine, reasons


def _reason_codes() -> tuple[set[str], set[str]]:
    """(quarantine reasons, every reason) the package's code can produce."""
    quarantine: set[str] = set()
    every: set[str] = set()
    for _path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                q, e = _class_reasons(node)
            elif isinstance(node, ast.Call):
                q, e = _call_reasons(node)
            else:
                continue
            quarantine |= q
            every |= e
    return quarantine, every


def _documented(code: str, doc: str) -> bool:
    return f"`{code}`" in doc


def test_every_quarantine_reason_is_documented(doc: str) -> None:
    quarantine, _ = _reason_codes()
    assert quarantine >= CONTRACT_QUARANTINE_REASONS, f"the scan found only {sorted(quarantine)}"
    section = doc.split("### Quarantine reasons", 1)[-1].split("\n## ", 1)[0]
    missing = sorted(code for code in quarantine if not _documented(code, section))
    assert not missing, f"docs/reference.md's quarantine reasons lack: {missing}"


def test_every_error_reason_is_documented(doc: str) -> None:
    _, every = _reason_codes()
    assert {"bad_config", "validation_failed", "not_validated"} <= every, sorted(every)
    missing = sorted(code for code in every if not _documented(code, doc))
    assert not missing, f"docs/reference.md does not document these reason codes: {missing}"


def test_generated_blocks_are_marked_once(doc: str) -> None:
    """The settings and columns sections are regenerated between these markers."""
    for begin, end in (
        ("<!-- BEGIN settings (generated: python -m actrec_batch.docs) -->", "<!-- END settings -->"),
        ("<!-- BEGIN columns (generated: python -m actrec_batch.docs) -->", "<!-- END columns -->"),
    ):
        assert doc.count(begin) == 1 and doc.count(end) == 1, begin
        assert doc.index(begin) < doc.index(end), begin
