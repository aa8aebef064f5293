"""The one typed, frozen configuration of actrec-batch.

Precedence, highest first (CONTRACTS.md): command-line flag, ``ACTREC_*`` environment
variable, YAML config file (``--config FILE`` or ``ACTREC_CONFIG``), built-in default.

Every value is validated once, here, at the edge. A bad value raises :class:`ConfigError`
whose one-line message names the setting (flag, env var and file key) and the fix.
Secrets (passwords inside URLs) never appear in ``repr`` or in ``redacted()``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actrec_batch.errors import ConfigError

CONTENT_ID_METHODS = ("sha256", "fast")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RUNNERS = ("ray", "local")
_WAREHOUSE_SCHEMES = re.compile(r"^(duckdb|postgresql(\+psycopg2?)?|postgres|sqlite)://", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z0-9+]+://[^:/@]+:)(?P<pw>[^@]+)(?P<at>@)", re.IGNORECASE)


def redact_url(url: str | None) -> str | None:
    """Replace the password of ``scheme://user:password@host`` URLs with ``***``."""
    if url is None:
        return None
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['at']}", url)


@dataclass(frozen=True)
class _Spec:
    """How one setting is read: its flag, env var, YAML key, parser and fix hint."""

    name: str
    flag: str
    env: str
    default: Any
    parse: Callable[[str, Any], Any]
    fix: str
    secret: bool = False


def _parse_store(spec: _Spec, raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise _bad(spec, raw, "it is empty")
    if value.startswith("s3://"):
        bucket = value[5:].split("/", 1)[0]
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise _bad(spec, raw, f"'{bucket}' is not a valid S3 bucket name")
        return value.rstrip("/")
    if value.startswith("file://"):
        path = value[7:]
        if not path.startswith("/"):
            raise _bad(spec, raw, "file:// URIs need an absolute path (file:///abs/path)")
        return value.rstrip("/") or "file:///"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", value):
        raise _bad(spec, raw, "only local paths, file:///abs/path and s3://bucket/prefix are supported")
    return value


def _parse_warehouse(spec: _Spec, raw: Any) -> str:
    value = str(raw).strip()
    if not _WAREHOUSE_SCHEMES.match(value):
        raise _bad(
            spec,
            redact_url(value),
            "it must be a SQLAlchemy URL such as duckdb:///path.duckdb "
            "or postgresql+psycopg://user:pass@host:5432/db",
        )
    return value


def _parse_optional_str(spec: _Spec, raw: Any) -> str | None:
    value = str(raw).strip() if raw is not None else ""
    return value or None


def _parse_ray_address(spec: _Spec, raw: Any) -> str | None:
    value = _parse_optional_str(spec, raw)
    if value is None or value == "auto" or value == "local":
        return value
    if not re.fullmatch(r"(ray://|http://|https://)?[A-Za-z0-9.\-]+:\d{2,5}", value):
        raise _bad(spec, raw, "use 'auto', ray://host:10001, http://host:8265 or host:port")
    return value


def _parse_file_time_pattern(spec: _Spec, raw: Any) -> str | None:
    from actrec_batch.chains import parse_file_time_pattern

    value = _parse_optional_str(spec, raw)
    try:
        parse_file_time_pattern(value)
    except ValueError as exc:
        raise _bad(spec, raw, str(exc)) from None
    return value


def _int_in(lo: int, hi: int) -> Callable[[_Spec, Any], int]:
    def parse(spec: _Spec, raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise _bad(spec, raw, f"it must be a whole number between {lo} and {hi}") from None
        if not lo <= value <= hi:
            raise _bad(spec, raw, f"it must be between {lo} and {hi}")
        return value

    return parse


def _float_in(lo: float, hi: float) -> Callable[[_Spec, Any], float]:
    def parse(spec: _Spec, raw: Any) -> float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise _bad(spec, raw, f"it must be a number between {lo:g} and {hi:g}") from None
        if not lo <= value <= hi:
            raise _bad(spec, raw, f"it must be between {lo:g} and {hi:g}")
        return value

    return parse


def _auto_or_float(lo: float, hi: float) -> Callable[[_Spec, Any], str | float]:
    number = _float_in(lo, hi)

    def parse(spec: _Spec, raw: Any) -> str | float:
        if str(raw).strip().lower() == "auto":
            return "auto"
        return number(spec, raw)

    return parse


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[_Spec, Any], str]:
    def parse(spec: _Spec, raw: Any) -> str:
        value = str(raw).strip()
        value = value.upper() if upper else value.lower()
        if value not in options:
            raise _bad(spec, raw, f"choose one of {', '.join(options)}")
        return value

    return parse


def _bad(spec: _Spec, raw: Any, why: str) -> ConfigError:
    shown = "***" if spec.secret else raw
    return ConfigError(
        f"bad setting {spec.name} = {shown!r} ({spec.flag} / {spec.env}): {why}. Fix: {spec.fix}",
        reason="bad_config",
    )


_SPECS: tuple[_Spec, ...] = (
    _Spec(
        "store",
        "--store",
        "ACTREC_STORE",
        "./.actrec/store",
        _parse_store,
        "pass a local path, file:///abs/path or s3://bucket/prefix",
    ),
    _Spec(
        "warehouse_url",
        "--warehouse",
        "ACTREC_WAREHOUSE_URL",
        "duckdb:///./.actrec/warehouse.duckdb",
        _parse_warehouse,
        "pass duckdb:///path.duckdb or postgresql+psycopg://user:pass@host:5432/db",
        secret=True,
    ),
    _Spec(
        "ray_address",
        "--ray-address",
        "ACTREC_RAY_ADDRESS",
        None,
        _parse_ray_address,
        "unset it for a local Ray, or use 'auto' / ray://host:10001",
    ),
    _Spec(
        "probe_workers",
        "--probe-workers",
        "ACTREC_PROBE_WORKERS",
        8,
        _int_in(1, 256),
        "use a whole number of parallel probes, e.g. 8",
    ),
    _Spec(
        "probe_timeout_s",
        "--probe-timeout",
        "ACTREC_PROBE_TIMEOUT_S",
        60.0,
        _float_in(0.1, 3600.0),
        "use seconds per file, e.g. 60",
    ),
    _Spec(
        "content_id",
        "--content-id",
        "ACTREC_CONTENT_ID",
        "sha256",
        _choice(CONTENT_ID_METHODS),
        "use sha256 (reads every byte, exact) or fast (size + ETag / sampled bytes)",
    ),
    _Spec(
        "max_video_bytes",
        "--max-video-bytes",
        "ACTREC_MAX_VIDEO_BYTES",
        64 * 2**30,
        _int_in(1, 2**50),
        "use a size limit in bytes, e.g. 68719476736 for 64 GiB",
    ),
    _Spec(
        "local_ray_cpus",
        "--local-ray-cpus",
        "ACTREC_LOCAL_RAY_CPUS",
        0,
        _int_in(0, 4096),
        "use the CPUs a local Ray may use, or 0 for all of them (ignored with a Ray address)",
    ),
    _Spec(
        "segment_s",
        "--segment-s",
        "ACTREC_SEGMENT_S",
        300.0,
        _float_in(5.0, 86400.0),
        "use the work-unit length in seconds of footage, e.g. 300",
    ),
    _Spec(
        "runner",
        "--runner",
        "ACTREC_RUNNER",
        "ray",
        _choice(RUNNERS),
        "use ray (decode tasks and embedder actors on Ray) or local (this process, one unit at a time)",
    ),
    _Spec(
        "unit_timeout_s",
        "--unit-timeout",
        "ACTREC_UNIT_TIMEOUT_S",
        1800.0,
        _float_in(1.0, 86400.0),
        "use the seconds one unit may take to decode before it is quarantined as timeout, e.g. 1800",
    ),
    _Spec(
        "decode_cpus",
        "--decode-cpus",
        "ACTREC_DECODE_CPUS",
        1.0,
        _float_in(0.1, 64.0),
        "use the CPUs one decode task reserves, e.g. 1",
    ),
    _Spec(
        "task_retries",
        "--task-retries",
        "ACTREC_TASK_RETRIES",
        3,
        _int_in(0, 100),
        "use how often Ray retries a task or restarts an actor whose worker died, e.g. 3",
    ),
    _Spec(
        "inference_actors",
        "--inference-actors",
        "ACTREC_INFERENCE_ACTORS",
        0,
        _int_in(0, 1024),
        "use the number of inference actors, or 0 for one per GPU (one CPU actor without GPUs)",
    ),
    _Spec(
        "actor_gpus",
        "--actor-gpus",
        "ACTREC_ACTOR_GPUS",
        "auto",
        _auto_or_float(0.0, 8.0),
        "use the GPUs each inference actor reserves (e.g. 1 or 0.5), 0 for CPU actors, or auto",
    ),
    _Spec(
        "actor_cpus",
        "--actor-cpus",
        "ACTREC_ACTOR_CPUS",
        "auto",
        _auto_or_float(0.0, 64.0),
        "use the CPUs each inference actor reserves (e.g. 1), or auto (1 for a GPU actor, 0 for a CPU actor)",
    ),
    _Spec(
        "max_inflight_units",
        "--max-inflight-units",
        "ACTREC_MAX_INFLIGHT_UNITS",
        0,
        _int_in(0, 100000),
        "use the most units decoded or scored at once (bounds memory), or 0 for 2 per worker",
    ),
    _Spec(
        "batch_frames",
        "--batch-frames",
        "ACTREC_BATCH_FRAMES",
        1024,
        _int_in(1, 1 << 20),
        "use the frames an inference call gathers across units, e.g. 1024",
    ),
    _Spec(
        "cpu_hour_usd",
        "--cpu-hour-usd",
        "ACTREC_CPU_HOUR_USD",
        0.0446,
        _float_in(0.0, 1000.0),
        "use the on-demand price of one vCPU-hour in USD, e.g. 0.0446",
    ),
    _Spec(
        "gpu_hour_usd",
        "--gpu-hour-usd",
        "ACTREC_GPU_HOUR_USD",
        1.006,
        _float_in(0.0, 10000.0),
        "use the on-demand price of one GPU-hour in USD, e.g. 1.006",
    ),
    _Spec(
        "spot_price_ratio",
        "--spot-price-ratio",
        "ACTREC_SPOT_PRICE_RATIO",
        0.35,
        _float_in(0.0, 1.0),
        "use the spot price as a fraction of on-demand, between 0 and 1, e.g. 0.35",
    ),
    _Spec(
        "file_time_pattern",
        "--file-time-pattern",
        "ACTREC_FILE_TIME_PATTERN",
        None,
        _parse_file_time_pattern,
        "use a strftime pattern that the file names carry, e.g. %Y%m%dT%H%M%SZ "
        "(with %Y %m %d %H %M %S), or leave it unset to use the container's creation time",
    ),
    _Spec(
        "chain_tolerance_s",
        "--chain-tolerance",
        "ACTREC_CHAIN_TOLERANCE_S",
        1.0,
        _float_in(0.0, 3600.0),
        "use the seconds of gap or overlap up to which a camera's consecutive files are one chain, e.g. 1",
    ),
    _Spec(
        "log_level",
        "--log-level",
        "ACTREC_LOG_LEVEL",
        "INFO",
        _choice(LOG_LEVELS, upper=True),
        "use DEBUG, INFO, WARNING or ERROR",
    ),
)
SETTING_NAMES = tuple(s.name for s in _SPECS)


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build with :func:`load_settings`; never mutate."""

    store: str = "./.actrec/store"
    warehouse_url: str = field(default="duckdb:///./.actrec/warehouse.duckdb", repr=False)
    ray_address: str | None = None
    probe_workers: int = 8
    probe_timeout_s: float = 60.0
    content_id: str = "sha256"
    max_video_bytes: int = 64 * 2**30
    local_ray_cpus: int = 0
    segment_s: float = 300.0
    runner: str = "ray"
    unit_timeout_s: float = 1800.0
    decode_cpus: float = 1.0
    task_retries: int = 3
    inference_actors: int = 0
    actor_gpus: str | float = "auto"
    actor_cpus: str | float = "auto"
    max_inflight_units: int = 0
    batch_frames: int = 1024
    cpu_hour_usd: float = 0.0446
    gpu_hour_usd: float = 1.006
    spot_price_ratio: float = 0.35
    file_time_pattern: str | None = None
    chain_tolerance_s: float = 1.0
    log_level: str = "INFO"
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({shown})"

    def redacted(self) -> dict[str, Any]:
        """All settings with secrets masked: safe to log or print."""
        out = {name: getattr(self, name) for name in SETTING_NAMES}
        out["warehouse_url"] = redact_url(self.warehouse_url)
        return out


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
    for spec in _SPECS:
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
    specs = {s.name: s for s in _SPECS}
    parsed = {k: specs[k].parse(specs[k], v) for k, v in changes.items()}
    return dataclasses.replace(settings, **parsed)


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
