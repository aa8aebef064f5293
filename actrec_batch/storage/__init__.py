"""Object storage for footage, manifests, caches and reports: one interface, two backends.

``open_store(uri)`` returns a :class:`LocalStore` for a local path or ``file:///abs/path`` and an
:class:`S3Store` for ``s3://bucket/prefix``. One contract holds for both, and one shared test suite
(``tests/test_storage.py``) checks it against a directory and against S3 over real HTTP:

* Keys are "/"-separated paths relative to the store root; :func:`normalize_key` says which are valid.
* Listing is recursive and sorted by key in UTF-8 byte order, the order S3 uses. Prefixes match as plain
  strings, as in S3: ``"a/b"`` also matches ``"a/bc"``, and ``"a/b/"`` does not.
* A "directory" exists only while it holds an object. The local backend removes the directories that a
  delete leaves empty.
* Every write is atomic: a reader sees the old object or the new one, never a part. Local writes go to a
  temporary file in the target's directory, which is fsynced and then renamed over the target. S3 publishes
  whole objects, through PUT or CompleteMultipartUpload.
* Deleting a key that is not there is not an error, as in S3.
* Failures raise :class:`StorageError` with the reason ``invalid_key``, ``not_found``, ``io_error`` or
  ``bad_uri``, and a one-line message that names the key or the URI.

The backends live in :mod:`~actrec_batch.storage.local` and :mod:`~actrec_batch.storage.s3` (its ranged
reader in :mod:`~actrec_batch.storage.ranged`), the
interface in :mod:`~actrec_batch.storage.base`, and key and URI checks in
:mod:`~actrec_batch.storage.keys`. Only :mod:`~actrec_batch.storage.s3` imports boto3 and botocore.
"""

from __future__ import annotations

from pathlib import Path

from actrec_batch.errors import StorageError
from actrec_batch.storage.base import MiB, ObjectInfo, ObjectStore, RejectedKey
from actrec_batch.storage.keys import (
    _URI_SCHEME,
    TMP_PREFIX,
    _bad_uri,
    _file_uri_path,
    normalize_key,
    parse_s3_uri,
)
from actrec_batch.storage.local import LocalStore
from actrec_batch.storage.ranged import READ_AHEAD, READ_BLOCK
from actrec_batch.storage.s3 import DEFAULT_MULTIPART_THRESHOLD, S3Store, make_s3_client

__all__ = [
    "DEFAULT_MULTIPART_THRESHOLD",
    "READ_AHEAD",
    "READ_BLOCK",
    "TMP_PREFIX",
    "LocalStore",
    "MiB",
    "ObjectInfo",
    "ObjectStore",
    "RejectedKey",
    "S3Store",
    "StorageError",
    "make_s3_client",
    "normalize_key",
    "open_store",
    "parse_s3_uri",
]


def open_store(
    uri: str, *, s3_client=None, multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
) -> ObjectStore:
    """Open the store at ``uri`` (the ``ACTREC_STORE`` setting) without doing any I/O.

    The accepted forms are a local path (relative paths resolve against the working directory, and "~"
    expands), ``file:///abs/path`` (percent-encoded, host empty or ``localhost``) and
    ``s3://bucket/prefix``. Any other ``scheme:`` prefix raises ``StorageError(reason="bad_uri")``, as
    does a malformed URI; write ``./x:y`` for a local directory whose name has a colon. For S3,
    ``s3_client`` replaces the client built by :func:`make_s3_client`, and ``multipart_threshold``
    (bytes) is the size from which uploads go multipart.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise _bad_uri(uri, "it is empty")
    scheme = _URI_SCHEME.match(uri)
    scheme_name = scheme.group(1).lower() if scheme else None
    if scheme_name == "s3":
        bucket, prefix = parse_s3_uri(uri)
        return S3Store(bucket, prefix, client=s3_client, multipart_threshold=multipart_threshold)
    if scheme_name == "file":
        return LocalStore(_file_uri_path(uri))
    if scheme_name is not None:
        raise _bad_uri(uri, f"unsupported scheme {scheme_name!r}")
    return LocalStore(Path(uri))
