"""``actrec synth`` and ``actrec discover``: footage in, manifest out."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from actrec_batch.cli.base import add_json, command, positive, print_json
from actrec_batch.config import Settings, parse_logical_date
from actrec_batch.synth.params import SynthParams


def add_synth_flags(
    p: argparse.ArgumentParser, names: Iterable[str] | None = None, defaults: Mapping[str, Any] | None = None
) -> None:
    """One flag per :class:`SynthParams` field (``--file-minutes`` for ``file_minutes``), with the
    field's range, choices, help and default (or ``defaults[name]``)."""
    wanted = set(names) if names is not None else None
    for f in dataclasses.fields(SynthParams):
        if wanted is not None and f.name not in wanted:
            continue
        default = (defaults or {}).get(f.name, f.default)
        kwargs: dict[str, Any] = {"default": default, "help": f"{f.metadata['help']} (default: {default})"}
        if "choices" in f.metadata:
            kwargs["choices"] = list(f.metadata["choices"])
        elif f.metadata.get("text"):
            kwargs["type"] = str
        else:
            lo, hi = f.metadata["range"]
            kwargs["type"] = positive(type(f.default), lo, hi, f.metadata["what"])
        p.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def synth_params(args: argparse.Namespace, **changes: Any) -> SynthParams:
    """The :class:`SynthParams` of the flags :func:`add_synth_flags` added."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(SynthParams) if hasattr(args, f.name)}
    return SynthParams(**{**given, **changes})


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.storage import open_store
    from actrec_batch.synth import synth_footage

    report = synth_footage(
        open_store(settings.store), date=date, params=synth_params(args), progress=not args.quiet
    )
    summary = report.to_json()
    if args.json:
        print_json(summary)
    else:
        footage_s = summary.get("footage_s", 0.0)
        wall_s = summary.get("wall_s", 0.0)
        print(
            f"synth {date}: {len(summary.get('videos', []))} videos, {footage_s:.0f} s of footage, "
            f"{summary.get('events', 0)} labelled events, {wall_s:.1f} s wall "
            f"({footage_s / max(wall_s, 1e-9):.1f}x real time) -> {settings.store}"
        )
    return 0


def cmd_discover(args: argparse.Namespace, settings: Settings) -> int:
    date = parse_logical_date(args.date)
    from actrec_batch.discovery import discover

    result = discover(settings, date, progress=not args.json and sys.stderr.isatty())
    out = result.to_json()
    if args.json:
        print_json(out)
        return 0
    print(
        f"discover {out['logical_date']}: {out['videos_discovered']} discovered = "
        f"{out['videos_manifested']} manifested + {out['videos_quarantined']} quarantined"
    )
    for q in out["quarantine"]:
        print(f"  quarantined [{q['reason']}] {q['uri']}")
    print(f"  manifest: {out['manifest_uri']} ({out['validation'].get('evaluated', 0)} expectations passed)")
    print(
        f"  probe: {out['probe_s_per_file'] * 1000:.1f} ms/file, {out['probe_bytes_read']} bytes read remotely; "
        f"content id: {out['content_id_method']}, {out['bytes_hashed']} bytes hashed"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = command(
        sub,
        "synth",
        cmd_synth,
        groups=("store",),
        help="render labelled synthetic footage for a date",
        description="Render labelled synthetic footage into footage/date=D/camera=*/ "
        "with a <file>.labels.json ground-truth sidecar per video.",
    )
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    add_synth_flags(p)
    add_json(p, quiet=True)

    p = command(
        sub,
        "discover",
        cmd_discover,
        groups=("store", "decode"),
        help="list, probe and validate a date's footage; write its manifest",
        description="List footage/date=D/camera=*/, probe every file in parallel, quarantine "
        "unreadable files with a reason code, validate and write the manifest.",
    )
    p.add_argument("--date", required=True, help="logical date YYYY-MM-DD")
    add_json(p)
