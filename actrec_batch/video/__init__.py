"""Video I/O: the only part of actrec-batch that imports PyAV (``av``).

Times are float seconds over half-open ranges ``[start_s, end_s)``. Frame ``i`` always means
element ``i`` of :func:`frame_timestamps` (presentation order).

- :func:`probe` describes a video and raises :class:`~actrec_batch.errors.VideoError` with a
  reason code (``empty``, ``too_large``, ``not_a_video``, ``no_video_stream``,
  ``unsupported_codec``, ``truncated``, ``decode_error``) when it is unusable.
- :func:`frame_index` lists the frames the decoder outputs (from the container's timestamps
  where they agree with the decoder, else from a decoding pass); :func:`frame_timestamps` gives
  their times, and :func:`sample_clips` decides which frames make up each clip.
- :func:`decode_frames`, :func:`decode_clips` and :func:`iter_frames` decode only what is asked.
- :class:`VideoWriter` encodes RGB frames (fixtures, previews).
"""

from actrec_batch.video._source import VideoSource
from actrec_batch.video.clips import Clip, ClipIndex, sample_clips, stride_for_fps
from actrec_batch.video.decode import DecodeOptions, DecodeStats, decode_clips, decode_frames, iter_frames
from actrec_batch.video.probe import VideoInfo, probe
from actrec_batch.video.timing import FrameIndex, frame_index, frame_timestamps
from actrec_batch.video.writer import VideoWriter

__all__ = [
    "Clip",
    "ClipIndex",
    "DecodeOptions",
    "DecodeStats",
    "FrameIndex",
    "VideoInfo",
    "VideoSource",
    "VideoWriter",
    "decode_clips",
    "decode_frames",
    "frame_index",
    "frame_timestamps",
    "iter_frames",
    "probe",
    "sample_clips",
    "stride_for_fps",
]
