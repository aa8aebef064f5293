"""A seekable reader over a remote object that reads it by byte ranges through a block cache (what
``S3Store.open_read`` returns); it knows nothing of S3 or boto3, only a ``fetch(start, stop)``."""

from __future__ import annotations

import errno
import io
from collections import OrderedDict
from collections.abc import Callable

from actrec_batch.errors import StorageError
from actrec_batch.storage.base import MiB

READ_AHEAD = 1 * MiB  # most bytes one small read may pull in by a ranged GET
READ_BLOCK = 128 * 1024  # S3 readers cache the object in aligned blocks of this size
READ_CACHE_BLOCKS = 64  # blocks an S3 reader keeps (8 MiB), least recently used evicted first


class RangeReader(io.RawIOBase):
    """A seekable reader over one remote object (an S3 object, for one) that fetches it by ranged GETs through a block cache.

    The object is read in aligned ``READ_BLOCK`` blocks, and a small read that misses the cache
    fetches up to ``READ_AHEAD`` bytes of consecutive missing blocks in one GET, so the many
    small reads of a demuxer (PyAV, for one) cost few requests. The last ``READ_CACHE_BLOCKS``
    blocks are kept, so a demuxer that jumps between the header, the index at the end and the
    first packets never fetches the same bytes twice. A seek costs nothing until the next read.
    A read of at least ``READ_AHEAD`` bytes (a streaming hash, a download) bypasses the cache.
    ``bytes_fetched`` counts the bytes received. ``size`` is the object's size, and ``name`` is its URI.
    """

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, name: str) -> None:
        super().__init__()
        self._fetch = fetch  # (start, stop) -> bytes of [start, stop)
        self.size = size
        self.name = name
        self.bytes_fetched = 0
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:  # as a local file does
            raise OSError(errno.EINVAL, f"negative seek position {position}")
        self._pos = position
        return position

    def readinto(self, target) -> int:
        self._checkClosed()
        view = memoryview(target).cast("B")
        wanted = max(0, min(len(view), self.size - self._pos))
        if wanted >= READ_AHEAD:  # a big sequential read: fetch exactly that
            chunk = self._fetch_range(self._pos, self._pos + wanted)
            view[: len(chunk)] = chunk
            self._pos += len(chunk)
            return len(chunk)
        done = 0
        while done < wanted:
            block = self._block(self._pos // READ_BLOCK)
            offset = self._pos - (self._pos // READ_BLOCK) * READ_BLOCK
            n = min(wanted - done, len(block) - offset)
            view[done : done + n] = block[offset : offset + n]
            done += n
            self._pos += n
        return done

    def _block(self, index: int) -> bytes:
        """Block ``index`` from the cache, fetching it and its missing successors on a miss."""
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        last = index
        while (
            (last + 1 - index) * READ_BLOCK < READ_AHEAD
            and (last + 1) * READ_BLOCK < self.size
            and last + 1 not in self._blocks
        ):
            last += 1
        start, stop = index * READ_BLOCK, min(self.size, (last + 1) * READ_BLOCK)
        data = self._fetch_range(start, stop)
        if len(data) != stop - start:
            raise StorageError(
                f"{self.name} returned {len(data)} bytes for range [{start}, {stop}); it changed while being read",
                reason="io_error",
            )
        for i in range(index, last + 1):
            self._blocks[i] = data[(i - index) * READ_BLOCK : (i - index + 1) * READ_BLOCK]
        while len(self._blocks) > READ_CACHE_BLOCKS:
            self._blocks.popitem(last=False)
        return self._blocks[index]

    def _fetch_range(self, start: int, stop: int) -> bytes:
        data = self._fetch(start, stop)
        self.bytes_fetched += len(data)
        if not data:
            raise StorageError(
                f"{self.name} ended before byte {start}; it changed while being read", reason="io_error"
            )
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self.size - self.tell())
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        self._blocks.clear()
        super().close()
