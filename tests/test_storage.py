"""Contract tests for ``actrec_batch.storage``.

Every test in ``TestObjectStoreContract`` runs twice: against a local directory, and against S3 served
by moto over real HTTP (``tests/s3_server.py``), with the store rooted at ``s3://<fresh bucket>/root``.
"""

from __future__ import annotations

import io
import os
import random
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from handshake import HANG_S

from actrec_batch.errors import StorageError
from actrec_batch.storage import (
    READ_AHEAD,
    READ_BLOCK,
    TMP_PREFIX,
    LocalStore,
    ObjectStore,
    S3Store,
    normalize_key,
    open_store,
    parse_s3_uri,
)

pytestmark = pytest.mark.timeout(60)

MiB = 2**20
S3_ROOT = "root"  # the S3 store lives under this prefix, so stripping and scoping are exercised
SENTINEL = b"outside the store root"


def _payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")  # also points the environment at the test server
    client = request.getfixturevalue("s3_client")
    return open_store(f"s3://{bucket}/{S3_ROOT}", s3_client=client, multipart_threshold=5 * MiB)


@pytest.fixture
def outside(store: ObjectStore, tmp_path: Path, request: pytest.FixtureRequest):
    """Put a sentinel just outside the store root; return a function that snapshots everything out there."""
    if isinstance(store, S3Store):
        client = request.getfixturevalue("s3_client")
        client.put_object(Bucket=store.bucket, Key="outside/secret.txt", Body=SENTINEL)

        def snapshot() -> dict[str, bytes]:
            objects = client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
            return {
                obj["Key"]: client.get_object(Bucket=store.bucket, Key=obj["Key"])["Body"].read()
                for obj in objects
                if not obj["Key"].startswith(f"{S3_ROOT}/")
            }

    else:
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "secret.txt").write_bytes(SENTINEL)
        (tmp_path / "escape").write_bytes(SENTINEL)

        def snapshot() -> dict[str, bytes]:
            return {
                str(path.relative_to(tmp_path)): path.read_bytes()
                for path in sorted(tmp_path.rglob("*"))
                if path.is_file() and store.root not in path.parents
            }

    before = snapshot()
    assert before
    return snapshot, before


def _put_many(store: ObjectStore, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: store.put_bytes(key, key.encode()), keys))


def _tmp_leftovers(store: ObjectStore) -> list[Path]:
    if not isinstance(store, LocalStore) or not store.root.exists():
        return []
    return [path for path in store.root.rglob("*") if path.name.startswith(TMP_PREFIX)]


def _tiny_mp4() -> bytes:
    """A 2 s, 64x48, 25 fps MPEG-4 video in an MP4 whose index ("moov") sits at the end."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


# -------------------------------------------------------------------------------------- the contract


class TestObjectStoreContract:
    def test_put_get_stat_exists(self, store: ObjectStore) -> None:
        key = "manifests/date=2026-11-24/manifest.json"
        assert not store.exists(key)
        info = store.put_bytes(key, b'{"videos": []}')
        assert (info.key, info.size) == (key, 14)
        assert store.exists(key)
        assert store.get_bytes(key) == b'{"videos": []}'
        stat = store.stat(key)
        assert (stat.key, stat.size, stat.etag) == (info.key, info.size, info.etag)
        assert stat.last_modified is not None and stat.last_modified.utcoffset().total_seconds() == 0
        if isinstance(store, S3Store):
            assert stat.etag and not stat.etag.startswith('"')
            assert store.uri(key) == f"s3://{store.bucket}/{S3_ROOT}/{key}"
            assert store.local_path(key) is None
        else:
            assert store.local_path(key).read_bytes() == b'{"videos": []}'
            assert store.uri(key) == f"file://{quote(str(store.root / key), safe='/=')}"
            assert "date=2026-11-24" in store.uri(key)  # Hive folders stay readable
        assert store.uri(key).startswith(store.root_uri + "/")
        assert store.uri("") == store.root_uri
        assert store.uri("manifests/") == store.root_uri + "/manifests/"
        store.put_bytes(key, b"replaced")
        assert store.get_bytes(key) == b"replaced"

    def test_missing_objects_raise_not_found(self, store: ObjectStore, tmp_path: Path) -> None:
        store.put_bytes("dir/present", b"x")
        for key in ("absent", "dir/absent", "dir", "dir/present/deeper"):
            assert not store.exists(key)
            for operation in (store.stat, store.get_bytes, store.open_read):
                with pytest.raises(StorageError) as caught:
                    operation(key)
                assert caught.value.reason == "not_found"
                assert store.uri(key) in str(caught.value)
        dest = tmp_path / "downloads" / "kept.bin"
        dest.parent.mkdir()
        dest.write_bytes(b"old")
        with pytest.raises(StorageError) as caught:
            store.download("absent", dest)
        assert caught.value.reason == "not_found"
        assert dest.read_bytes() == b"old"
        assert os.listdir(dest.parent) == ["kept.bin"]

    def test_keys_with_spaces_and_unicode_round_trip(self, store: ObjectStore, tmp_path: Path) -> None:
        keys = [
            "footage/date=2026-11-24/camera=cam 01/clip ünïcødé 日本語.mp4",
            "footage/date=2026-11-24/camera=cam 01/🎥 take #1 (final)?.mp4",
            "odd/a+b=c&d%20e;f,g'h~!@$.bin",
            "odd/ leading and trailing spaces ",
        ]
        for index, key in enumerate(keys):
            store.put_bytes(key, f"payload {index}".encode())
        assert [info.key for info in store.list()] == sorted(keys)
        for index, key in enumerate(keys):
            assert store.get_bytes(key) == f"payload {index}".encode()
            assert store.stat(key).key == key
            with store.open_read(key) as reader:
                assert reader.read() == f"payload {index}".encode()
            assert (
                store.download(key, tmp_path / "dl" / f"{index}.bin").read_bytes()
                == f"payload {index}".encode()
            )
        assert store.list_dirs("footage/date=2026-11-24/") == ["camera=cam 01"]
        if isinstance(store, LocalStore):
            assert (store.root / keys[0]).is_file()
        reopened = open_store(
            store.root_uri
        )  # file:// URIs are percent-encoded; they must reopen the same root
        assert [info.key for info in reopened.list()] == sorted(keys)

    def test_list_is_recursive_sorted_and_string_prefixed(self, store: ObjectStore) -> None:
        # "-" (0x2d) and "." (0x2e) sort before "/" (0x2f): a naive directory walk gets this order wrong.
        keys = ["a/b/1", "a/b/c/2", "a/b-x", "a/b.txt", "a/bc", "a/a", "z", "a0"]
        for key in keys:
            store.put_bytes(key, key.encode())
        listed = list(store.list())
        assert [info.key for info in listed] == sorted(keys)
        assert all(info.size == len(info.key) for info in listed)
        assert [info.key for info in store.list("a/b/")] == ["a/b/1", "a/b/c/2"]
        assert [info.key for info in store.list("a/b")] == ["a/b-x", "a/b.txt", "a/b/1", "a/b/c/2", "a/bc"]
        assert [info.key for info in store.list("a/b/c/2")] == ["a/b/c/2"]
        assert list(store.list("nothing/")) == []
        assert list(store.list("a/b/c/2/deeper")) == []

    def test_list_paginates_past_1000_keys(self, store: ObjectStore) -> None:
        keys = [f"many/{i:05d}.json" for i in range(1205)]
        _put_many(store, keys + ["many-sibling", "manyfold/x"])  # timed by bench/suite_timings.py
        assert [info.key for info in store.list("many/")] == keys
        assert store.delete_prefix("many/") == 1205
        assert [info.key for info in store.list()] == ["many-sibling", "manyfold/x"]

    def test_list_dirs(self, store: ObjectStore) -> None:
        day = "footage/date=2026-11-24/"
        for key in ("camera=cam-01/a.mp4", "camera=cam-02/b.mp4", "camera=cam-02/sub/c.mp4", "notes.txt"):
            store.put_bytes(day + key, b"v")
        store.put_bytes("footage/date=2026-11-25/camera=cam-01/a.mp4", b"v")
        assert store.list_dirs(day) == ["camera=cam-01", "camera=cam-02"]
        assert store.list_dirs(day.rstrip("/")) == ["camera=cam-01", "camera=cam-02"]
        assert store.list_dirs("footage/") == ["date=2026-11-24", "date=2026-11-25"]
        assert store.list_dirs("") == ["footage"]
        assert store.list_dirs(day + "camera=cam-02/") == ["sub"]
        assert store.list_dirs("nothing/") == []
        assert store.list_dirs(day + "notes.txt") == []

    def test_open_read_seeks_and_fetches_only_what_it_reads(self, store: ObjectStore) -> None:
        data = _payload(8 * MiB)
        store.put_bytes("big.bin", data)
        with store.open_read("big.bin") as reader:
            assert reader.readable() and reader.seekable()
            assert reader.seek(5 * MiB + 7) == 5 * MiB + 7
            assert reader.read(100) == data[5 * MiB + 7 : 5 * MiB + 107]
            assert reader.tell() == 5 * MiB + 107
            assert reader.seek(-10, io.SEEK_END) == len(data) - 10
            assert reader.read() == data[-10:]
            assert reader.read(5) == b""
            reader.seek(0)
            target = bytearray(16)
            assert reader.readinto(target) == 16 and bytes(target) == data[:16]
            assert reader.seek(4, io.SEEK_CUR) == 20
            assert reader.read(4) == data[20:24]
            assert reader.seek(len(data) + 5) == len(data) + 5 and reader.read(3) == b""
            with pytest.raises(OSError):
                reader.seek(-1)
            if isinstance(store, S3Store):
                assert reader.bytes_fetched <= 2 * READ_AHEAD + READ_BLOCK  # two read-aheads + the tail block
                assert reader.bytes_fetched < len(data) / 3
                fetched = reader.bytes_fetched
                reader.seek(5 * MiB)  # bytes already read come from the reader's cache
                assert reader.read(200) == data[5 * MiB : 5 * MiB + 200]
                assert reader.read(1) == data[5 * MiB + 200 : 5 * MiB + 201]
                reader.seek(8)
                assert reader.read(8) == data[8:16]
                assert reader.bytes_fetched == fetched
            reader.seek(3 * MiB)
            assert reader.read(2 * MiB) == data[3 * MiB : 5 * MiB]  # a read bigger than the read-ahead
        with store.open_read("big.bin") as reader:
            assert reader.read() == data

    def test_open_read_serves_pyav(self, store: ObjectStore) -> None:
        import av

        video = _tiny_mp4()

        store.put_bytes("footage/clip.mp4", video)
        with store.open_read("footage/clip.mp4") as reader, av.open(reader) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
            assert sum(1 for _ in container.decode(stream)) == 50
            container.seek(0)
            assert next(container.decode(stream)).pts is not None
            if isinstance(store, S3Store):
                assert 0 < reader.bytes_fetched <= len(video)  # no byte fetched twice

    def test_download_streams_to_an_atomic_local_file(self, store: ObjectStore, tmp_path: Path) -> None:
        data = _payload(6 * MiB, seed=1)
        store.put_bytes("videos/clip.mp4", data)
        dest = tmp_path / "work" / "nested" / "clip.mp4"
        assert store.download("videos/clip.mp4", dest) == dest
        assert dest.read_bytes() == data
        store.put_bytes("videos/clip.mp4", b"newer")
        store.download("videos/clip.mp4", dest)
        assert dest.read_bytes() == b"newer"
        assert os.listdir(dest.parent) == ["clip.mp4"]

    def test_put_file_uploads_big_files_in_parts(self, store: ObjectStore, tmp_path: Path) -> None:
        src = tmp_path / "big.mp4"
        data = _payload(11 * MiB, seed=2)
        src.write_bytes(data)
        info = store.put_file("footage/big.mp4", src)
        assert info.size == len(data) == store.stat("footage/big.mp4").size
        assert store.download("footage/big.mp4", tmp_path / "back.mp4").read_bytes() == data
        if isinstance(store, S3Store):
            assert re.fullmatch(r"[0-9a-f]{32}-3", info.etag), info.etag  # 5 + 5 + 1 MiB
            small = tmp_path / "small.bin"
            small.write_bytes(b"tiny")
            assert "-" not in store.put_file("small.bin", small).etag

    def test_open_write_publishes_only_when_the_block_exits(self, store: ObjectStore) -> None:
        key = "reports/date=2026-11-24/cost.json"
        with store.open_write(key) as out:
            out.write(b"first half, ")
            assert not store.exists(key)
            assert list(store.list()) == []  # in-progress temp files are never listed
            assert store.list_dirs("") == []
            out.write(b"second half")
            assert not store.exists(key)
        assert store.get_bytes(key) == b"first half, second half"

        with store.open_write(key) as out:
            out.write(b"replacement")
            assert store.get_bytes(key) == b"first half, second half"
        assert store.get_bytes(key) == b"replacement"
        assert [info.key for info in store.list()] == [key]
        assert _tmp_leftovers(store) == []

    def test_open_write_publishes_nothing_when_the_block_raises(self, store: ObjectStore) -> None:
        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.open_write("new/object") as out:
            out.write(b"partial")
            raise Boom
        assert not store.exists("new/object")
        assert list(store.list()) == []

        store.put_bytes("old/object", b"old content")
        with pytest.raises(Boom), store.open_write("old/object") as out:
            out.write(b"partial")
            raise Boom
        assert store.get_bytes("old/object") == b"old content"
        assert [info.key for info in store.list()] == ["old/object"]
        assert _tmp_leftovers(store) == []

    def test_a_concurrent_reader_sees_old_or_new_never_a_part(self, store: ObjectStore) -> None:
        old, new = b"A" * (256 * 1024), b"B" * (256 * 1024)
        store.put_bytes("live/object", old)
        seen: set[bytes] = set()
        stop = threading.Event()
        reads = [0]
        read_done = threading.Condition()

        def read_repeatedly() -> None:
            while not stop.is_set():
                seen.add(store.get_bytes("live/object"))
                with read_done:
                    reads[0] += 1
                    read_done.notify_all()

        def a_whole_read_while_half_written() -> None:
            # Two more completed reads: the second began after this chunk was flushed, so a
            # read really happened while the object was half-written (no sleep that hopes so).
            with read_done:
                after = reads[0] + 2
                assert read_done.wait_for(lambda: reads[0] >= after, timeout=HANG_S), "the reader stalled"

        reader = threading.Thread(target=read_repeatedly)
        reader.start()
        try:
            for _ in range(3):
                for content in (new, old):
                    with store.open_write("live/object") as out:
                        for start in range(0, len(content), 64 * 1024):
                            out.write(content[start : start + 64 * 1024])
                            out.flush()
                            a_whole_read_while_half_written()
        finally:
            stop.set()
            reader.join()
        assert seen <= {old, new} and seen
        assert reads[0] >= 3 * 2 * 4 * 2  # every chunk of every write was read across

    def test_delete_and_delete_prefix(self, store: ObjectStore) -> None:
        keys = ["a/b/1", "a/b/c/2", "a/bc", "a/b-x", "a/keep/3"]
        for key in keys:
            store.put_bytes(key, b"x")
        store.delete("a/b/1")
        assert not store.exists("a/b/1")
        store.delete("a/b/1")  # deleting a missing key is not an error
        store.delete("never/existed")
        assert store.delete_prefix("a/b/") == 1
        assert [info.key for info in store.list()] == ["a/b-x", "a/bc", "a/keep/3"]
        assert store.list_dirs("a/") == ["keep"]  # no empty "b" directory is left behind
        assert store.delete_prefix("a/b/") == 0
        assert store.delete_prefix("a/b") == 2  # a plain string prefix, as in S3
        assert [info.key for info in store.list()] == ["a/keep/3"]
        with pytest.raises(StorageError) as caught:
            store.delete_prefix("")
        assert caught.value.reason == "invalid_key"
        assert store.exists("a/keep/3")

    @pytest.mark.parametrize(
        "bad_key",
        [
            "../escape",
            "a/../../escape",
            "a/../b",
            "..",
            "/etc/passwd",
            "/outside/secret.txt",
            "..\\escape",
            "a\\b",
            "a\x00b",
            "a\nb",
            "",
            "a//b",
            "a/",
            "./a",
            f"a/{TMP_PREFIX}123",
            "x" * 256,
        ],
    )
    def test_invalid_keys_are_rejected_and_touch_nothing(
        self, store: ObjectStore, outside, tmp_path_factory: pytest.TempPathFactory, bad_key: str
    ) -> None:
        snapshot, before = outside
        work = tmp_path_factory.mktemp("work")
        src = work / "src.bin"
        src.write_bytes(b"attack")

        def open_write_and_write(key: str) -> None:
            with store.open_write(key) as out:
                out.write(b"attack")

        operations = {
            "stat": store.stat,
            "exists": store.exists,
            "get_bytes": store.get_bytes,
            "open_read": store.open_read,
            "put_bytes": lambda key: store.put_bytes(key, b"attack"),
            "put_file": lambda key: store.put_file(key, src),
            "open_write": open_write_and_write,
            "download": lambda key: store.download(key, work / "dl.bin"),
            "delete": store.delete,
            "uri": store.uri,
            "local_path": store.local_path,
        }
        if bad_key in ("", "a/"):  # valid as prefixes: uri("a/") names a "directory", uri("") the root
            del operations["uri"]
        for name, operation in operations.items():
            with pytest.raises(StorageError) as caught:
                operation(bad_key)
            assert caught.value.reason == "invalid_key", name
            assert repr(bad_key) in str(caught.value), name
            assert "\n" not in str(caught.value)
        assert snapshot() == before
        assert list(store.list()) == []
        assert not (work / "dl.bin").exists()

    @pytest.mark.parametrize("bad_prefix", ["../", "/abs/", "a\\b/", "a//", "a/../"])
    def test_invalid_prefixes_are_rejected(self, store: ObjectStore, bad_prefix: str) -> None:
        for operation in (store.list, store.list_dirs, store.delete_prefix):
            with pytest.raises(StorageError) as caught:
                operation(bad_prefix)
            assert caught.value.reason == "invalid_key"

    def test_listing_hands_back_the_objects_the_key_rules_reject(self, store: ObjectStore) -> None:
        """Objects another tool wrote under names the rules refuse are listed apart, so a caller
        can account for them; the names are made one-line and the objects never read."""
        from footage import put_rejected_key

        store.put_bytes("f/ok.mp4", b"ok")
        put_rejected_key(store, "f/back\\slash.mp4", b"12345")
        put_rejected_key(store, "f/tab\tbed.mp4", b"1")
        assert [info.key for info in store.list("f/")] == ["f/ok.mp4"]  # skipped with a warning
        rejected: list = []
        assert [info.key for info in store.list("f/", rejected=rejected)] == ["f/ok.mp4"]
        found = {r.key: r for r in rejected}
        assert set(found) == {"f/back%5Cslash.mp4", "f/tab%09bed.mp4"}
        assert found["f/back%5Cslash.mp4"].size == 5
        assert "backslashes are not allowed" in found["f/back%5Cslash.mp4"].problem
        assert "control characters" in found["f/tab%09bed.mp4"].problem
        for r in rejected:
            assert r.uri.startswith(store.root_uri + "/") and r.uri.endswith(r.key.split("/")[-1])


# --------------------------------------------------------------------------------- local-only checks


class TestLocalStore:
    def test_symlinks_cannot_lead_outside_the_root(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_bytes(SENTINEL)
        store = open_store(str(tmp_path / "store"))
        store.put_bytes("inside/real.txt", b"real")
        (store.root / "link").symlink_to(outside, target_is_directory=True)
        (store.root / "inside" / "secret-link.txt").symlink_to(outside / "secret.txt")
        (store.root / "inside" / "good-link.txt").symlink_to(store.root / "inside" / "real.txt")

        for key in ("link/secret.txt", "link/new.txt", "inside/secret-link.txt"):
            for operation in (store.stat, store.get_bytes, store.local_path, store.delete):
                with pytest.raises(StorageError) as caught:
                    operation(key)
                assert caught.value.reason == "invalid_key"
                assert "outside the store root" in str(caught.value)
            with pytest.raises(StorageError):
                store.put_bytes(key, b"attack")
        assert [info.key for info in store.list()] == ["inside/good-link.txt", "inside/real.txt"]
        assert store.list_dirs("") == ["inside"]
        assert sorted(os.listdir(outside)) == ["secret.txt"]
        assert (outside / "secret.txt").read_bytes() == SENTINEL
        assert store.get_bytes("inside/good-link.txt") == b"real"

    def test_root_is_created_on_first_write_and_files_follow_the_umask(self, tmp_path: Path) -> None:
        store = open_store(str(tmp_path / "not" / "yet"))
        assert list(store.list()) == [] and store.list_dirs("") == []
        assert not store.root.exists()
        store.put_bytes("k", b"v")
        mode = (store.root / "k").stat().st_mode & 0o777
        umask = os.umask(0o022)
        os.umask(umask)
        assert mode == 0o666 & ~umask

    def test_a_path_and_its_file_uri_open_the_same_root(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        root = tmp_path / "with space ü"
        monkeypatch.chdir(tmp_path)
        by_path = open_store("with space ü")
        by_uri = open_store(root.as_uri())
        assert by_path.root == by_uri.root == root.resolve()
        assert by_path.root_uri == by_uri.root_uri == f"file://{quote(str(root.resolve()))}"
        assert open_store(by_path.root_uri).root == root.resolve()
        assert open_store("file://localhost" + str(root)).root == root.resolve()


# ------------------------------------------------------------------------------------ S3-only checks


class TestS3Store:
    def test_missing_bucket_names_the_bucket_and_the_setting(self, s3_env: str) -> None:
        store = open_store("s3://actrec-no-such-bucket/footage")
        for call in (
            lambda: store.exists("a.mp4"),
            lambda: store.stat("a.mp4"),
            lambda: store.get_bytes("a.mp4"),
            lambda: store.put_bytes("a.mp4", b"x"),
            lambda: list(store.list()),
            lambda: store.list_dirs(""),
        ):
            with pytest.raises(StorageError) as caught:
                call()
            assert caught.value.reason == "not_found"
            assert "actrec-no-such-bucket" in str(caught.value) and "ACTREC_STORE" in str(caught.value)

    def test_missing_credentials_give_a_one_line_hint(
        self, s3_env: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            monkeypatch.delenv(name, raising=False)
        store = open_store(f"s3://{s3_bucket}")
        with pytest.raises(StorageError) as caught:
            store.stat("anything")
        assert caught.value.reason == "io_error"
        assert "credential" in str(caught.value) and "AWS_ACCESS_KEY_ID" in str(caught.value)
        assert "\n" not in str(caught.value)

    def test_an_explicit_client_and_a_bucket_root_store(self, s3_client, s3_bucket: str) -> None:
        store = open_store(f"s3://{s3_bucket}/", s3_client=s3_client)
        assert store.root_uri == f"s3://{s3_bucket}"
        store.put_bytes("top.txt", b"top")
        assert store.uri("top.txt") == f"s3://{s3_bucket}/top.txt"
        assert s3_client.get_object(Bucket=s3_bucket, Key="top.txt")["Body"].read() == b"top"

    def test_a_reader_fails_loudly_if_the_object_is_replaced(self, s3_env: str, s3_bucket: str) -> None:
        store = open_store(f"s3://{s3_bucket}/root")
        store.put_bytes("v.bin", _payload(3 * MiB, seed=3))
        with store.open_read("v.bin") as reader:
            assert len(reader.read(10)) == 10
            store.put_bytes("v.bin", _payload(3 * MiB, seed=4))
            reader.seek(2 * MiB)  # outside the read-ahead buffer: the next read must go to S3
            with pytest.raises(StorageError) as caught:
                reader.read(10)
        assert caught.value.reason == "io_error" and "replaced" in str(caught.value)

    def test_listing_skips_keys_the_contract_cannot_address(
        self, s3_env: str, s3_client, s3_bucket: str
    ) -> None:
        for key in ("root/ok.txt", "root/folder/", "root/a//b", "root/back\\slash"):
            s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
        store = open_store(f"s3://{s3_bucket}/root")
        assert [info.key for info in store.list()] == ["ok.txt"]


# ------------------------------------------------------------------------------- URIs and key rules


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        "gs://bucket/prefix",
        "http://example.com/store",
        "s3://",
        "s3:///prefix",
        "s3://Bad_Bucket/prefix",
        "s3://ab/prefix",
        "s3://bucket..name/x",
        "s3://bucket/a/../b",
        "s3://bucket/a//b",
        "s3://bucket/a\\b",
        "file://somehost/abs/path",
        "file://relative/path",
        "file:relative",
        "file:///abs/path?query",
    ],
)
def test_bad_uris_raise_bad_uri_with_one_line(uri: str) -> None:
    with pytest.raises(StorageError) as caught:
        open_store(uri)
    assert caught.value.reason == "bad_uri"
    message = str(caught.value)
    assert (
        " ".join(repr(uri).split()) in message
        and "s3://bucket/prefix" in message
        and "file:///abs/path" in message
    )
    assert "\n" not in message


def test_a_local_file_is_not_a_store_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(StorageError) as caught:
        open_store(str(tmp_path / "file"))
    assert caught.value.reason == "bad_uri"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://my.bucket-1/prefix/sub/", ("my.bucket-1", "prefix/sub")),
        ("s3://models/x3d/v1.safetensors", ("models", "x3d/v1.safetensors")),
        ("S3://bucket/Mixed Case ü", ("bucket", "Mixed Case ü")),
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("key", ["a", "a/b/c.mp4", "with space/ü/日本.bin", "a..b/c.", ".hidden/x", "C:/x"])
def test_normalize_key_returns_valid_keys_unchanged(key: str) -> None:
    assert normalize_key(key) == key
