"""The S3 backend: :class:`S3Store` and its client factory (``open_read`` returns a
:class:`~actrec_batch.storage.ranged.RangeReader`).

This is the only module in the project that imports boto3 and botocore.
"""

from __future__ import annotations

import builtins
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from actrec_batch.errors import StorageError
from actrec_batch.storage.base import MiB, ObjectInfo, ObjectStore, RejectedKey, _BucketNotFound
from actrec_batch.storage.io_counts import count_s3_calls
from actrec_batch.storage.keys import (
    _deletable_prefix,
    _directory_prefix,
    _key_problem,
    _normalize_prefix,
    escaped_key,
    normalize_key,
)
from actrec_batch.storage.ranged import RangeReader

log = logging.getLogger(__name__)

DEFAULT_MULTIPART_THRESHOLD = 64 * MiB

_SPOOL_IN_MEMORY = 8 * MiB  # S3 open_write keeps smaller objects in memory, bigger ones in a temp file
_MIN_PART = 5 * MiB  # S3's minimum size for every multipart part except the last
_DEFAULT_PART = 8 * MiB
_DELETE_BATCH = 1000  # most keys one DeleteObjects request accepts
_CREDENTIALS_HINT = (
    "check the AWS credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws, "
    "instance role) and the bucket policy"
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "403",
        "Forbidden",
    }
)


_CLIENT_KWARGS: dict[str, Any] = {}  # set by configure_clients(): an Airflow connection's, in memory


def configure_clients(**kwargs: Any) -> None:
    """Make the S3 clients this process creates from now on use ``kwargs``: boto3 Session arguments
    (keys, ``aws_session_token``, ``region_name``, ``profile_name``) and ``endpoint_url``, over the
    standard chain and ``AWS_ENDPOINT_URL``. Held in memory only, never in the environment (which a
    Ray job could inherit). No arguments: the standard chain again."""
    _CLIENT_KWARGS.clear()
    _CLIENT_KWARGS.update({k: v for k, v in kwargs.items() if v})


def make_s3_client():
    """A boto3 S3 client from the standard credential chain that honours ``AWS_ENDPOINT_URL`` (or
    from what :func:`configure_clients` set).

    It retries up to 5 times in "standard" mode and pools 32 connections, enough for the transfer
    manager's threads.
    """
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
    kwargs = dict(_CLIENT_KWARGS)
    endpoint = kwargs.pop("endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL") or None
    try:
        return boto3.session.Session(**kwargs).client("s3", endpoint_url=endpoint, config=config)
    except BotoCoreError as exc:
        raise StorageError(
            f"cannot create an S3 client: {exc}; {_CREDENTIALS_HINT}", reason="io_error"
        ) from exc


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``. Keys are relative to the prefix.

    Opening it does no I/O. A missing bucket shows up at the first request as ``not_found``. Uploads use
    the transfer manager, which switches to a parallel multipart upload from ``multipart_threshold``
    bytes.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client=None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    ) -> None:
        if multipart_threshold <= 0:
            raise ValueError(f"multipart_threshold must be positive, got {multipart_threshold}")
        self.bucket = bucket
        self.prefix = prefix
        self.root_uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._base = f"{prefix}/" if prefix else ""
        self._client = client if client is not None else make_s3_client()
        count_s3_calls(self._client)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(_MIN_PART, min(multipart_threshold, _DEFAULT_PART)),
        )
        self._bucket_seen = False

    def uri(self, key: str) -> str:
        key = _normalize_prefix(key, "object key")
        return f"s3://{self.bucket}/{self._base}{key}" if key else self.root_uri

    def local_path(self, key: str) -> None:
        normalize_key(key)
        return None

    def _full(self, key: str) -> str:
        return self._base + normalize_key(key)

    def stat(self, key: str) -> ObjectInfo:
        full = self._full(key)
        with self._errors(full):
            head = self._client.head_object(Bucket=self.bucket, Key=full)
        return ObjectInfo(
            key, head["ContentLength"], _unquote_etag(head.get("ETag")), head.get("LastModified")
        )

    def list(
        self, prefix: str = "", *, rejected: builtins.list[RejectedKey] | None = None
    ) -> Iterator[ObjectInfo]:
        return self._list(self._base + _normalize_prefix(prefix), rejected)

    def _list(self, full_prefix: str, rejected: builtins.list[RejectedKey] | None) -> Iterator[ObjectInfo]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
        with self._errors(full_prefix):
            for page in pages:
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(self._base) :]
                    problem = _key_problem(key)
                    if problem:
                        if not key or key.endswith("/"):  # "folder" markers are expected
                            continue
                        uri = f"s3://{self.bucket}/{escaped_key(obj['Key'])}"
                        if rejected is None:
                            log.warning("skipping %s: %s", uri, problem)
                        else:
                            rejected.append(RejectedKey(escaped_key(key), uri, obj["Size"], problem))
                        continue
                    yield ObjectInfo(
                        key, obj["Size"], _unquote_etag(obj.get("ETag")), obj.get("LastModified")
                    )

    def list_dirs(self, prefix: str) -> builtins.list[str]:
        full = self._base + _directory_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/"
        )
        names = []
        with self._errors(full):
            for page in pages:
                for common in page.get("CommonPrefixes", ()):
                    name = common["Prefix"][len(full) : -1]
                    if not _key_problem(name):
                        names.append(name)
        return sorted(names)

    def open_read(self, key: str) -> BinaryIO:
        info = self.stat(key)
        full = self._full(key)
        return RangeReader(
            lambda start, stop: self._get_range(full, start, stop, info.etag), info.size, self.uri(key)
        )

    def _get_range(self, full: str, start: int, stop: int, etag: str | None) -> bytes:
        # If-Match pins the version we opened: a concurrent overwrite fails loudly instead of mixing two.
        pin = {"IfMatch": f'"{etag}"'} if etag else {}
        with self._errors(full):
            response = self._client.get_object(
                Bucket=self.bucket, Key=full, Range=f"bytes={start}-{stop - 1}", **pin
            )
            return response["Body"].read()

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        with self._errors(full):
            return self._client.get_object(Bucket=self.bucket, Key=full)["Body"].read()

    def _download_into(self, key: str, out: BinaryIO) -> None:
        full = self._full(key)
        with self._errors(full):
            self._client.download_fileobj(self.bucket, full, out, Config=self._transfer)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        full = self._full(key)
        with self._errors(full):
            response = self._client.put_object(Bucket=self.bucket, Key=full, Body=data)
        # No HEAD for last_modified: it would double the cost of every small write.
        return ObjectInfo(key, len(data), _unquote_etag(response.get("ETag")), None)

    def put_file(self, key: str, src: Path) -> ObjectInfo:
        full = self._full(key)
        with open(src, "rb") as source:
            self._upload(source, full)
        return self.stat(key)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        full = self._full(key)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            yield spool
            spool.seek(0)
            self._upload(spool, full)

    def _upload(self, source: BinaryIO, full: str) -> None:
        with self._errors(full):
            self._client.upload_fileobj(source, self.bucket, full, Config=self._transfer)

    def delete(self, key: str) -> None:
        full = self._full(key)
        with self._errors(full):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    def delete_prefix(self, prefix: str) -> int:
        full = self._base + _deletable_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        deleted = 0
        with self._errors(full):
            for page in pages:
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
                for start in range(0, len(keys), _DELETE_BATCH):
                    batch = keys[start : start + _DELETE_BATCH]
                    response = self._client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                    )
                    failed = response.get("Errors", [])
                    if failed:
                        raise StorageError(
                            f"could not delete {len(failed)} object(s) under s3://{self.bucket}/{full}; "
                            f"first: {failed[0].get('Key')}: {failed[0].get('Code')} {failed[0].get('Message')}",
                            reason="io_error",
                        )
                    deleted += len(batch)
        return deleted

    @contextmanager
    def _errors(self, full_key: str) -> Iterator[None]:
        """Turn boto3/botocore failures into ``StorageError``s that name ``s3://bucket/<full_key>``."""
        try:
            yield
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise self._storage_error(exc, f"s3://{self.bucket}/{full_key}") from exc

    def _storage_error(self, exc: Exception, uri: str) -> StorageError:
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            exc = exc.__context__  # the transfer manager wraps the real ClientError
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return StorageError(
                f"no usable AWS credentials for {uri} ({exc}); {_CREDENTIALS_HINT}", reason="io_error"
            )
        if isinstance(exc, EndpointConnectionError):
            return StorageError(
                f"cannot reach S3 for {uri} ({exc}); check AWS_ENDPOINT_URL", reason="io_error"
            )
        if not isinstance(exc, ClientError):
            return StorageError(f"S3 request for {uri} failed: {exc}", reason="io_error")
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return self._bucket_not_found()
        if code in _NOT_FOUND_CODES:
            # A HEAD's 404 carries no error code, so it cannot tell a missing bucket from a missing key.
            return self._missing_bucket() or StorageError(f"no object at {uri}", reason="not_found")
        if code in _ACCESS_CODES or status == 403:
            return StorageError(f"S3 denied access to {uri} ({code}); {_CREDENTIALS_HINT}", reason="io_error")
        if code == "PreconditionFailed" or status == 412:
            return StorageError(
                f"{uri} was replaced while it was being read; open it again", reason="io_error"
            )
        return StorageError(
            f"S3 request for {uri} failed: {code} {error.get('Message', '')}", reason="io_error"
        )

    def _missing_bucket(self) -> StorageError | None:
        if self._bucket_seen:
            return None
        try:
            # A one-key listing under the store's own prefix, not HeadBucket: a policy that limits
            # s3:ListBucket to the store's prefix (infra/terraform) allows this and denies that.
            self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._base, MaxKeys=1)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                return self._bucket_not_found()
            return None  # forbidden, say: we cannot tell, so report the key
        except BotoCoreError:
            return None
        self._bucket_seen = True
        return None

    def _bucket_not_found(self) -> StorageError:
        return _BucketNotFound(
            f"S3 bucket {self.bucket!r} does not exist (store {self.root_uri}); create it or fix ACTREC_STORE",
            reason="not_found",
        )


def _unquote_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None
