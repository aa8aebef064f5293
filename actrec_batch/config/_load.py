"""Build :class:`Settings`: flag > ``ACTREC_*`` environment variable > YAML file > default."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actrec_batch.config._parse import bad
from actrec_batch.config.settings import SETTING_NAMES, SETTINGS, SPECS, Settings
from actrec_batch.errors import ConfigError


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"bad setting config = {path!r} (--config / ACTREC_CONFIG): no such file. "
            "Fix: pass the path of an existing YAML file"
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"bad setting config = {path!r}: not valid YAML{where}. Fix: correct the file"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"bad setting config = {path!r}: expected a mapping of settings. "
            f"Fix: write 'key: value' lines with keys from {', '.join(SETTING_NAMES)}"
        )
    unknown = sorted(set(data) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(
            f"bad setting config = {path!r}: unknown key(s) {', '.join(unknown)}. "
            f"Fix: use only {', '.join(SETTING_NAMES)}"
        )
    return data


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Build :class:`Settings` from flags > env > YAML file > defaults.

    ``flags`` maps setting names to values; ``None`` values mean "flag not given".
    ``config_file`` defaults to ``$ACTREC_CONFIG``. Raises :class:`ConfigError`.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(flags) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}. Fix: use one of {', '.join(SETTING_NAMES)}"
        )
    env = os.environ if env is None else env
    config_file = config_file or env.get("ACTREC_CONFIG") or None
    file_values = _read_yaml(config_file) if config_file else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in SETTINGS:
        if spec.name in flags:
            raw, src = flags[spec.name], "flag"
        elif env.get(spec.env, "") != "":
            raw, src = env[spec.env], "env"
        elif spec.name in file_values:
            raw, src = file_values[spec.name], "file"
        else:
            values[spec.name], sources[spec.name] = spec.default, "default"
            continue
        values[spec.name] = spec.parse(spec, raw)
        sources[spec.name] = src
    return Settings(**values, sources=sources)


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with some values changed, validated like flags."""
    parsed = {k: SPECS[k].parse(SPECS[k], v) for k, v in changes.items()}
    return dataclasses.replace(settings, **parsed)


def setting_error(name: str, value: Any, why: str, fix: str | None = None) -> ConfigError:
    """A one-line :class:`ConfigError` about setting ``name`` found wrong after parsing (e.g. it does
    not fit the cluster): names its flag and env var, and its fix (``fix`` or the declared one)."""
    spec = SPECS[name]
    if fix is not None:
        spec = dataclasses.replace(spec, fix=fix)
    return bad(spec, value, why)


def logical_date_range(
    first: str, last: str, *, settings: tuple[str, str] = ("--from", "--to")
) -> list[_dt.date]:
    """The dates from ``first`` to ``last`` inclusive (both ``YYYY-MM-DD``). Raises
    :class:`ConfigError` naming ``settings`` for a bad date or a reversed range."""
    start = parse_logical_date(first, setting=settings[0])
    end = parse_logical_date(last, setting=settings[1])
    if end < start:
        raise ConfigError(
            f"bad setting {settings[1]} = {end.isoformat()!r}: it is before {settings[0]} "
            f"{start.isoformat()}. Fix: swap them"
        )
    return [start + _dt.timedelta(days=k) for k in range((end - start).days + 1)]


def parse_logical_date(raw: str, *, setting: str = "--date") -> _dt.date:
    """Parse ``YYYY-MM-DD`` (the logical date of a nightly run). Raises :class:`ConfigError`."""
    try:
        return _dt.date.fromisoformat(str(raw).strip())
    except ValueError:
        raise ConfigError(
            f"bad setting {setting} = {raw!r}: not a date. Fix: use YYYY-MM-DD, e.g. 2026-11-24"
        ) from None
