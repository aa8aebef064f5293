"""Opening a video source and telling apart the ways it can be broken.

A source is a local path or a seekable binary file object (the S3 store hands out a ranged
reader). Everything here reads only headers and a few small byte ranges, never the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from actrec_batch.errors import QuarantineReason, VideoError

VideoSource: TypeAlias = str | os.PathLike | BinaryIO
"""A local path, or a seekable binary file object positioned anywhere (it is read from offset 0)."""

# ISO-BMFF (mp4/mov/3gp) top-level box types that may open a file.
_BMFF_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"styp", b"pnot", b"uuid"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MATROSKA_SEGMENT_ID = b"\x18\x53\x80\x67"
_MAX_TOP_LEVEL_BOXES = 100_000  # fragmented mp4 has two per fragment; bounds a corrupt walk


def describe_source(source: VideoSource, uri: str | None) -> str:
    """The name used in error messages: ``uri`` if given, else the path or the object's ``name``."""
    if uri:
        return uri
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return str(getattr(source, "name", None) or f"<{type(source).__name__}>")


class ByteReader:
    """Reads small byte ranges of a source without disturbing a container open on it.

    PyAV reads a file object sequentially from wherever it was left, so the position is restored
    after every read.
    """

    def __init__(self, source: VideoSource, size_bytes: int | None) -> None:
        self._source = source
        if isinstance(source, str | os.PathLike):
            self.size = os.path.getsize(source) if size_bytes is None else size_bytes
        elif size_bytes is not None:
            self.size = size_bytes
        else:
            position = source.tell()
            self.size = source.seek(0, os.SEEK_END)
            source.seek(position)

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer at the end of the file)."""
        if isinstance(self._source, str | os.PathLike):
            with open(self._source, "rb") as f:
                f.seek(offset)
                return f.read(n)
        position = self._source.tell()
        try:
            self._source.seek(offset)
            return self._source.read(n)
        finally:
            self._source.seek(position)


@dataclass
class OpenVideo:
    """An opened container, its chosen video stream and what is known about the bytes behind it."""

    container: InputContainer
    stream: VideoStream
    label: str
    size_bytes: int
    bytes: ByteReader

    def truncation_evidence(self) -> str | None:
        """Why the file looks cut short, from container structure alone; ``None`` if it does not."""
        return structural_truncation(self.bytes, self.container.format.name, self.stream)

    def failure(self, what: str, error: Exception | None = None, *, at_eof: bool = False) -> VideoError:
        """A ``truncated`` error if the file is cut short, else ``decode_error``, naming the source.

        ``at_eof`` says the failing packet ends exactly at the end of the file, which on its own
        is evidence of a cut.
        """
        detail = f": {error}" if error is not None else ""
        evidence = self.truncation_evidence()
        if evidence is None and at_eof:
            evidence = "its last packet is cut off at the end of the file"
        if evidence is not None:
            return VideoError(
                f"{self.label} is truncated ({evidence}); {what}{detail}", reason=QuarantineReason.TRUNCATED
            )
        return VideoError(f"{self.label}: {what}{detail}", reason=QuarantineReason.DECODE_ERROR)


def _kind_from_magic(head: bytes) -> str | None:
    """A container family recognised from the first bytes, or ``None``."""
    if len(head) >= 8 and head[4:8] in _BMFF_FIRST_BOXES:
        return "mp4"
    if head.startswith(_EBML_MAGIC):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head.startswith((b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75")):
        return "other"
    return None


def _bmff_truncation(reader: ByteReader) -> str | None:
    """Walk the top-level ISO-BMFF boxes (16 bytes read per box) looking for a cut."""
    offset, seen, has_moov = 0, 0, False
    while offset < reader.size and seen < _MAX_TOP_LEVEL_BOXES:
        header = reader.read_at(offset, 16)
        if len(header) < 8:
            return f"a box header at byte {offset} is cut off"
        box_size = int.from_bytes(header[:4], "big")
        box_type = header[4:8]
        if box_size == 1:
            if len(header) < 16:
                return f"a box header at byte {offset} is cut off"
            box_size = int.from_bytes(header[8:16], "big")
        if box_size == 0:  # box runs to the end of the file (or its size was never written)
            box_size = reader.size - offset
        if box_size < 8:
            return None  # not a box structure we understand; leave the verdict to the demuxer
        has_moov |= box_type in (b"moov", b"moof")
        if offset + box_size > reader.size:
            return (
                f"the {box_type.decode('latin-1')!r} box at byte {offset} needs {box_size} bytes "
                f"but the file ends {reader.size - offset} bytes after it starts"
            )
        offset += box_size
        seen += 1
    return None if has_moov else "it has no 'moov' index box (an mp4 whose index was never written)"


def _read_ebml_size(data: bytes, at: int) -> tuple[int | None, int]:
    """Decode an EBML variable-length size at ``data[at]``: (value or None if unknown, length)."""
    first = data[at]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or at + length > len(data):
        return None, 1
    value = first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    unknown = value == (1 << (7 * length)) - 1
    return (None if unknown else value), length


def _matroska_truncation(reader: ByteReader) -> str | None:
    """Compare the Segment element's declared size with the file size."""
    head = reader.read_at(0, 64)
    if not head.startswith(_EBML_MAGIC):
        return None
    header_size, n = _read_ebml_size(head, 4)
    if header_size is None:
        return None
    segment_at = 4 + n + header_size
    segment = reader.read_at(segment_at, 12)
    if not segment.startswith(_MATROSKA_SEGMENT_ID):
        return None
    segment_size, n = _read_ebml_size(segment, 4)
    if segment_size is None:  # written live, size never filled in
        return None
    end = segment_at + 4 + n + segment_size
    if end > reader.size:
        return f"its Segment declares {end} bytes but the file has {reader.size}"
    return None


def _riff_truncation(reader: ByteReader) -> str | None:
    head = reader.read_at(0, 12)
    if not head.startswith(b"RIFF"):
        return None
    end = 8 + int.from_bytes(head[4:8], "little")
    if end > reader.size:
        return f"its RIFF header declares {end} bytes but the file has {reader.size}"
    return None


def structural_truncation(reader: ByteReader, format_name: str, stream: VideoStream | None) -> str | None:
    """Evidence, from container structure and the sample index, that the file was cut short.

    Reads a few bytes per top-level structure only. Returns a human-readable reason or ``None``.
    """
    if "mp4" in format_name or "mov" in format_name:
        found = _bmff_truncation(reader)
    elif "matroska" in format_name:
        found = _matroska_truncation(reader)
    elif format_name == "avi":
        found = _riff_truncation(reader)
    else:
        found = None
    if found is None and stream is not None:
        entries = stream.index_entries
        if len(entries) > 0:
            last = entries[len(entries) - 1]
            if last.pos >= 0 and last.pos + last.size > reader.size:
                found = f"its index places a frame at bytes {last.pos}..{last.pos + last.size} past the end"
    return found


def _classify_open_failure(reader: ByteReader, label: str, error: Exception) -> VideoError:
    head = reader.read_at(0, 16)
    kind = _kind_from_magic(head)
    if kind is None:
        return VideoError(
            f"{label} is not a video file (unrecognised format: {error})", reason=QuarantineReason.NOT_A_VIDEO
        )
    evidence = structural_truncation(reader, kind, None)
    if evidence is not None:
        return VideoError(f"{label} is truncated: {evidence}", reason=QuarantineReason.TRUNCATED)
    return VideoError(
        f"{label} looks like {kind} but cannot be parsed: {error}", reason=QuarantineReason.DECODE_ERROR
    )


def _pick_video_stream(container: InputContainer) -> VideoStream | None:
    """The first real video stream; cover art (attached pictures) does not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


@contextmanager
def open_video(
    source: VideoSource,
    *,
    uri: str | None = None,
    size_bytes: int | None = None,
    max_bytes: int | None = None,
) -> Iterator[OpenVideo]:
    """Open ``source`` and select its video stream; the container is closed on exit.

    Raises:
        VideoError: ``empty``, ``too_large``, ``not_a_video``, ``truncated`` (cut before the
            index could be read), ``decode_error`` (recognised but unparseable container),
            ``no_video_stream`` or ``unsupported_codec``. Messages name the source.
        FileNotFoundError: a path that does not exist.
    """
    label = describe_source(source, uri)
    reader = ByteReader(source, size_bytes)
    if reader.size == 0:
        raise VideoError(f"{label} is empty (0 bytes)", reason=QuarantineReason.EMPTY)
    if max_bytes is not None and reader.size > max_bytes:
        raise VideoError(
            f"{label} is {reader.size} bytes, over the limit of {max_bytes} bytes",
            reason=QuarantineReason.TOO_LARGE,
        )
    if not isinstance(source, str | os.PathLike):
        source.seek(0)
    try:
        container = av.open(
            source if not isinstance(source, os.PathLike) else os.fspath(source),
            mode="r",
            metadata_errors="replace",
        )
    except av.FFmpegError as error:
        raise _classify_open_failure(reader, label, error) from error
    try:
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            raise VideoError(
                f"{label} is a still image ({container.format.name}), not a video",
                reason=QuarantineReason.NOT_A_VIDEO,
            )
        stream = _pick_video_stream(container)
        if stream is None and not container.streams:
            raise VideoError(
                f"{label} is not a video file (no streams found)", reason=QuarantineReason.NOT_A_VIDEO
            )
        if stream is None:
            kinds = ", ".join(s.type for s in container.streams)
            raise VideoError(
                f"{label} has no video stream (streams: {kinds})", reason=QuarantineReason.NO_VIDEO_STREAM
            )
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise VideoError(
                f"{label} has a video stream in a codec this FFmpeg build cannot decode",
                reason=QuarantineReason.UNSUPPORTED_CODEC,
            )
        yield OpenVideo(container, stream, label, reader.size, reader)
    finally:
        container.close()
