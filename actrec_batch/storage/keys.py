"""Object keys and store URIs: which keys are valid, and how ``s3://`` and ``file://`` URIs split.

Pure string checks, no I/O; both backends and :func:`~actrec_batch.storage.open_store` share them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from actrec_batch.errors import StorageError

TMP_PREFIX = ".actrec-tmp-"  # in-progress local writes; never listed, never a valid key segment

_MAX_KEY_BYTES = 1024  # S3's key limit
_MAX_SEGMENT_BYTES = 255  # NAME_MAX on common filesystems
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")  # two letters or more, so "C:" is not a scheme
_ACCEPTED_FORMS = "expected a local path, file:///abs/path or s3://bucket/prefix"


def normalize_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key, or raise ``StorageError(reason="invalid_key")``.

    A key is a "/"-separated path relative to the store root. Any Unicode text is allowed, spaces
    included, and keys are never rewritten, so they round-trip exactly. These are rejected rather than
    normalised: empty keys, absolute paths ("/a"), empty segments ("a//b", "a/"), "." and ".." segments,
    backslashes, NUL and other control characters, segments over 255 UTF-8 bytes, keys over 1024 UTF-8
    bytes, and segments that start with ``TMP_PREFIX``. Rejecting "a//b" instead of collapsing it keeps the
    backends in agreement: S3 stores "a//b" and "a/b" as two objects, and a filesystem as one.
    """
    problem = _key_problem(key)
    if problem:
        raise StorageError(f"invalid object key {key!r}: {problem}", reason="invalid_key")
    return key


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"expected a str, got {type(key).__name__}"
    if not key:
        return "the key is empty"
    if key.startswith("/"):
        return "absolute paths are not allowed; keys are relative to the store root"
    if "\\" in key:
        return "backslashes are not allowed; use '/' as the separator"
    if _CONTROL_CHARS.search(key):
        return "control characters (NUL, newline, ...) are not allowed"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode text"
    if size > _MAX_KEY_BYTES:
        return f"it is {size} UTF-8 bytes long; the limit is {_MAX_KEY_BYTES}"
    for segment in key.split("/"):
        if not segment:
            return "empty path segments ('a//b', a trailing '/') are not allowed"
        if segment in (".", ".."):
            return "'.' and '..' segments are not allowed"
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            return f"a path segment is over {_MAX_SEGMENT_BYTES} UTF-8 bytes"
        if segment.startswith(TMP_PREFIX):
            return f"segments starting with {TMP_PREFIX!r} are reserved for in-progress writes"
    return None


def _normalize_prefix(prefix: str, what: str = "key prefix") -> str:
    """Check a prefix: "" (everything), a key, or a key followed by "/"."""
    if prefix == "":
        return prefix
    problem = _key_problem(prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix)
    if problem:
        raise StorageError(f"invalid {what} {prefix!r}: {problem}", reason="invalid_key")
    return prefix


def _directory_prefix(prefix: str) -> str:
    prefix = _normalize_prefix(prefix)
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


def _deletable_prefix(prefix: str) -> str:
    prefix = _normalize_prefix(prefix)
    if not prefix:
        raise StorageError(
            "refusing to delete the whole store: delete_prefix needs a prefix", reason="invalid_key"
        )
    return prefix


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into ``(bucket, prefix)``.

    The prefix has no trailing "/" and may be "". It must be a valid key (see :func:`normalize_key`), so
    ``s3://models/x3d/v1.safetensors`` gives ``("models", "x3d/v1.safetensors")``. Raises ``bad_uri``.
    """
    if not isinstance(uri, str) or uri[:5].lower() != "s3://":
        raise _bad_uri(uri, "it does not start with s3://")
    bucket, _, prefix = uri[5:].partition("/")
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise _bad_uri(
            uri, f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')"
        )
    prefix = prefix.removesuffix("/")
    problem = _key_problem(prefix) if prefix else None
    if problem:
        raise _bad_uri(uri, f"invalid prefix: {problem}")
    return bucket, prefix


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise _bad_uri(uri, f"a file URI needs an absolute path, file:///abs/path, not host {parts.netloc!r}")
    if parts.query or parts.fragment:
        raise _bad_uri(uri, "it has a query or fragment; percent-encode '?' and '#' in paths")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise _bad_uri(uri, "a file URI needs an absolute path")
    return Path(path)


def _bad_uri(uri: object, why: str) -> StorageError:
    return StorageError(f"bad store URI {uri!r}: {why}; {_ACCEPTED_FORMS}", reason="bad_uri")


_UNREADABLE = re.compile(r"[\\\x00-\x1f\x7f\ud800-\udfff]")


def escaped_key(key: str) -> str:
    """``key`` with backslashes, control characters and undecodable bytes (surrogate-escaped, as
    ``os`` hands them) percent-encoded, and nothing else: a one-line name for a rejected key."""
    return _UNREADABLE.sub(
        lambda m: "".join(f"%{b:02X}" for b in m[0].encode("utf-8", "surrogateescape")), key
    )


def file_uri(path: Path) -> str:
    """``file://`` URI of an absolute path, percent-encoding only what RFC 3986 requires.

    Unlike ``Path.as_uri()`` it keeps sub-delimiters such as ``=`` readable, so Hive-style
    ``date=2026-11-24`` folders stay legible in logs and quarantine records.
    """
    # As bytes, so a file name that is not valid UTF-8 still gets a URI (its bytes percent-encoded).
    return "file://" + quote(os.fsencode(path), safe="/=:@!$&'()*+,;-._~")
