"""How a raw setting value (a flag, an env var, a YAML value) becomes a typed one.

Every parser takes the setting's declaration (for the error message) and the raw value, and
raises :class:`ConfigError` with one line naming the setting (flag, env var, file key) and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actrec_batch.errors import ConfigError

if TYPE_CHECKING:
    from actrec_batch.config.settings import Spec

Parser = Callable[["Spec", Any], Any]

_WAREHOUSE_SCHEMES = re.compile(r"^(duckdb|postgresql(\+psycopg2?)?|postgres|sqlite)://", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z0-9+]+://[^:/@]+:)(?P<pw>[^@]+)(?P<at>@)", re.IGNORECASE)


def redact_url(url: str | None) -> str | None:
    """Replace the password of ``scheme://user:password@host`` URLs with ``***``."""
    if url is None:
        return None
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['at']}", url)


def bad(spec: Spec, raw: Any, why: str) -> ConfigError:
    """The one-line error for a bad value of ``spec``: what, where it is set, why, and the fix."""
    shown = "***" if spec.secret else raw
    return ConfigError(
        f"bad setting {spec.name} = {shown!r} ({spec.flag} / {spec.env}): {why}. Fix: {spec.fix}",
        reason="bad_config",
    )


def store_uri(spec: Spec, raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise bad(spec, raw, "it is empty")
    if value.startswith("s3://"):
        bucket = value[5:].split("/", 1)[0]
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise bad(spec, raw, f"'{bucket}' is not a valid S3 bucket name")
        return value.rstrip("/")
    if value.startswith("file://"):
        path = value[7:]
        if not path.startswith("/"):
            raise bad(spec, raw, "file:// URIs need an absolute path (file:///abs/path)")
        return value.rstrip("/") or "file:///"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", value):
        raise bad(spec, raw, "only local paths, file:///abs/path and s3://bucket/prefix are supported")
    return value


def warehouse_url(spec: Spec, raw: Any) -> str:
    value = str(raw).strip()
    if not _WAREHOUSE_SCHEMES.match(value):
        raise bad(
            spec,
            redact_url(value),
            "it must be a SQLAlchemy URL such as duckdb:///path.duckdb "
            "or postgresql+psycopg://user:pass@host:5432/db",
        )
    return value


def optional_str(spec: Spec, raw: Any) -> str | None:
    value = str(raw).strip() if raw is not None else ""
    return value or None


def ray_address(spec: Spec, raw: Any) -> str | None:
    value = optional_str(spec, raw)
    if value is None or value == "auto" or value == "local":
        return value
    if not re.fullmatch(r"(ray://|http://|https://)?[A-Za-z0-9.\-]+:\d{2,5}", value):
        raise bad(spec, raw, "use 'auto', ray://host:10001, http://host:8265 or host:port")
    return value


def file_time_pattern(spec: Spec, raw: Any) -> str | None:
    from actrec_batch.chains import parse_file_time_pattern

    value = optional_str(spec, raw)
    try:
        parse_file_time_pattern(value)
    except ValueError as exc:
        raise bad(spec, raw, str(exc)) from None
    return value


def number_in(kind: type[int] | type[float], lo: float, hi: float) -> Parser:
    """A whole number (``kind=int``) or a number within ``[lo, hi]``."""
    noun = "whole number" if kind is int else "number"
    span = f"{lo} and {hi}" if kind is int else f"{lo:g} and {hi:g}"

    def parse(spec: Spec, raw: Any) -> Any:
        try:
            value = kind(str(raw).strip())
        except ValueError:
            raise bad(spec, raw, f"it must be a {noun} between {span}") from None
        if not lo <= value <= hi:
            raise bad(spec, raw, f"it must be between {span}")
        return value

    parse.valid = f"{lo} to {hi}" if kind is int else f"{lo:g} to {hi:g}"  # type: ignore[attr-defined]
    return parse


def int_in(lo: int, hi: int) -> Parser:
    return number_in(int, lo, hi)


def float_in(lo: float, hi: float) -> Parser:
    return number_in(float, lo, hi)


def auto_or_float(lo: float, hi: float) -> Parser:
    number = float_in(lo, hi)

    def parse(spec: Spec, raw: Any) -> str | float:
        if str(raw).strip().lower() == "auto":
            return "auto"
        return number(spec, raw)

    return parse


def choice(options: tuple[str, ...], upper: bool = False) -> Parser:
    def parse(spec: Spec, raw: Any) -> str:
        value = str(raw).strip()
        value = value.upper() if upper else value.lower()
        if value not in options:
            raise bad(spec, raw, f"choose one of {', '.join(options)}")
        return value

    parse.choices = options  # type: ignore[attr-defined]  # for --help and the settings table
    parse.valid = ", ".join(options)  # type: ignore[attr-defined]
    return parse


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def boolean(spec: Spec, raw: Any) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off; a YAML boolean as it is)."""
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value not in (*_TRUE, *_FALSE):
        raise bad(spec, raw, "it must be true or false")
    return value in _TRUE


boolean.valid = "true or false"  # type: ignore[attr-defined]


def pricing_catalogue(spec: Spec, raw: Any) -> str | None:
    """A pricing catalogue file (checked whole now: a bad one fails with one line naming it), or
    None for the shipped catalogue."""
    from actrec_batch.pricing import load_catalogue

    path = optional_str(spec, raw)
    if path is not None:
        load_catalogue(path)
    return path


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def region(spec: Spec, raw: Any) -> str:
    """An AWS-style region name (whether the catalogue prices it is checked when a run is priced)."""
    value = str(raw).strip().lower()
    if not _REGION.match(value):
        raise bad(spec, raw, "not a region name such as us-east-1")
    return value


def instance_type(spec: Spec, raw: Any) -> str:
    """An instance type name such as ``g5.xlarge`` (the catalogue is checked when a run is priced)."""
    value = str(raw).strip().lower()
    if not _INSTANCE_TYPE.match(value):
        raise bad(spec, raw, "not an instance type name such as g5.xlarge")
    return value
