"""The reference action model: a frame encoder + temporal clip encoder (the extractor) and a
temporal-convolution head.

Extractor (``clip -> embedding``): each sampled frame is encoded by a small 2D CNN from its RGB
pixels plus its per-channel difference to the previous sampled frame (so motion is seen at pixel
level, whatever the colours of figure and background); a clip of ``clip_len`` consecutive frame
codes goes through dilated temporal convolutions and is pooled into one ``embed_dim`` vector:
mean and max over the clip, plus the means of its first and second halves, so the embedding
knows which way a change went (sitting down is standing up played backwards). Frame codes depend only on a frame and its predecessor
on the global sampling grid, and a clip embedding only on its own frames, so features are the
same however a video is cut into work units, and they can be cached.

Head (``embeddings over time -> per-class scores``): temporal convolutions over the sequence of
clip embeddings of one video, giving per-clip multi-label logits. It is cheap, so a new head can
rescore cached features without decoding anything.

Bidirectional extractors (``bidirectional=True``) also read every clip backwards: the frame
encoder codes each frame pair twice, ``frame k after frame k-1`` (forward) and ``frame k-1 after
frame k`` (backward, as if the video ran in reverse), and the clip encoder pools the forward codes
in playback order and the backward codes in reverse order. The embedding is the two halves side
by side (``embed_dim`` = 2 x the clip encoder's width). Under time reversal the halves swap, so a
head can read the direction of a change (sitting down vs standing up) from their difference. The
backward half of a clip reads the same frames as the forward half shifted one grid frame back
(the clip's context frame instead of its last one), so no frame beyond those the forward path
decodes is needed, and features stay the same however a video is cut into work units. It costs a
second frame-encoder pass; the weights are the forward extractor's.

Inputs: frames are uint8 RGB ``[..., H, W, 3]``; the model normalises them itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ExtractorConfig:
    """Architecture and sampling of the reference extractor (part of its identity)."""

    frame_width: int = 112
    frame_height: int = 84
    sample_fps: float = 7.5  # frames are sampled on a global time grid at this rate
    clip_len: int = 8  # sampled frames per clip (~1.07 s at 7.5 fps)
    clip_hop: int = 2  # grid frames between consecutive clip starts (~0.27 s)
    frame_dim: int = 96
    embed_dim: int = 128
    widths: tuple[int, ...] = (16, 24, 32, 48)
    keypoints: int = 16  # spatial-softmax keypoints per frame (0: none)
    # Read each clip forwards and backwards; embed_dim is then both halves (see module docstring).
    bidirectional: bool = False

    @property
    def clip_dim(self) -> int:
        """Width of one direction's clip embedding."""
        return self.embed_dim // 2 if self.bidirectional else self.embed_dim

    @property
    def code_dim(self) -> int:
        """Width of a frame code as ``encode_frames`` returns it (both directions when bidirectional)."""
        return 2 * self.frame_dim if self.bidirectional else self.frame_dim

    def forward_only(self) -> ExtractorConfig:
        """The same network read forwards only: the config that trains its weights."""
        return replace(self, bidirectional=False, embed_dim=self.clip_dim)

    def bidirectional_of(self) -> ExtractorConfig:
        """The same weights read in both directions."""
        return replace(self, bidirectional=True, embed_dim=2 * self.clip_dim)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExtractorConfig:
        d = dict(d)
        d.setdefault("keypoints", 0)  # cards written before keypoints existed had none
        d.setdefault("bidirectional", False)
        if "widths" in d:
            d["widths"] = tuple(d["widths"])
        return cls(**d)


@dataclass(frozen=True)
class HeadConfig:
    embed_dim: int = 128
    hidden: int = 96
    num_classes: int = 7
    kernel: int = 5
    dropout: float = 0.2
    # Clip lags of the difference features emb(t + lag) - emb(t - lag): they are odd under time
    # reversal, which makes "what came before vs after" (sitting down vs standing up) easy to read.
    lags: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        d = dict(d)
        if "lags" in d:
            d["lags"] = tuple(d["lags"])
        return cls(**d)


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FrameEncoder(nn.Module):
    """``[N, 6, H, W]`` (RGB + RGB motion, normalised) -> ``[N, frame_dim]``."""

    def __init__(self, cfg: ExtractorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 6
        for i, w in enumerate(cfg.widths):
            layers.append(_conv_bn(cin, w, 2))
            if i >= 1:
                layers.append(_conv_bn(w, w, 1))
            cin = w
        self.body = nn.Sequential(*layers)
        # avg + max pooling over a 2x2 grid keeps coarse position (arm up vs down, standing vs lying)
        k = cfg.keypoints
        self.heatmaps = nn.Conv2d(cin, k, 1) if k else None
        self.proj = nn.Linear(cin * 4 * 2 + 3 * k, cfg.frame_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        parts = [F.adaptive_avg_pool2d(h, 2).flatten(1), F.adaptive_max_pool2d(h, 2).flatten(1)]
        if self.heatmaps is not None:
            parts.append(_spatial_softmax(self.heatmaps(h)))
        return F.relu(self.proj(torch.cat(parts, dim=1)))


def _spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``[N, K, H, W]`` heatmap logits -> ``[N, 3K]``: each keypoint's expected x and y in [-1, 1] and
    its peak logit. Positions are continuous, so a head that drops while sitting down moves a
    keypoint down smoothly, and its velocity (in the clip encoder) says which way things went."""
    n, k, hh, ww = logits.shape
    prob = torch.softmax(logits.flatten(2), dim=2).view(n, k, hh, ww)
    ys = torch.linspace(-1.0, 1.0, hh, device=logits.device, dtype=logits.dtype)
    xs = torch.linspace(-1.0, 1.0, ww, device=logits.device, dtype=logits.dtype)
    ex = (prob.sum(dim=2) * xs).sum(dim=2)
    ey = (prob.sum(dim=3) * ys).sum(dim=2)
    peak = logits.flatten(2).amax(dim=2)
    return torch.cat([ex, ey, peak], dim=1)


class ClipEncoder(nn.Module):
    """``[B, T, frame_dim]`` -> ``[B, embed_dim]`` by dilated temporal convolutions."""

    def __init__(self, cfg: ExtractorConfig) -> None:
        super().__init__()
        d = cfg.frame_dim
        self.conv1 = nn.Conv1d(2 * d, 128, 3, padding=1)
        self.conv2 = nn.Conv1d(128, 128, 3, padding=2, dilation=2)
        self.proj = nn.Linear(4 * 128, cfg.clip_dim)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = codes.transpose(1, 2)  # [B, d, T]
        vel = torch.diff(x, dim=2, prepend=x[:, :, :1])
        h = F.relu(self.conv1(torch.cat([x, vel], dim=1)))
        h = F.relu(self.conv2(h)) + h
        half = h.shape[2] // 2
        pooled = torch.cat(
            [h.mean(dim=2), h.amax(dim=2), h[:, :, :half].mean(dim=2), h[:, :, half:].mean(dim=2)], 1
        )
        return self.proj(pooled)


class ReferenceExtractor(nn.Module):
    """Frames -> frame codes -> clip embeddings. See module docstring."""

    def __init__(self, cfg: ExtractorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ExtractorConfig()
        self.frames = FrameEncoder(self.cfg)
        self.clips = ClipEncoder(self.cfg)
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)

    def encode_frames(self, frames: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` frames and their grid predecessors -> ``[N, code_dim]`` codes.

        Bidirectional: each row also holds the backward code of the predecessor (it seen after
        the frame), so one row per grid frame still carries everything the clip encoder needs."""
        cur = frames.permute(0, 3, 1, 2).float().div_(255.0)
        prev = previous.permute(0, 3, 1, 2).float().div_(255.0)
        if not self.cfg.bidirectional:
            return self.frames(self._pixels(cur, prev))
        forward, backward = self.frames(torch.cat([self._pixels(cur, prev), self._pixels(prev, cur)])).chunk(
            2
        )
        return torch.cat([forward, backward], dim=1)

    def _pixels(self, cur: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        return torch.cat([(cur - self.mean) / self.std, (cur - prev) * 4.0], dim=1)

    def encode_clips(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, T, code_dim]`` frame codes -> ``[B, embed_dim]`` clip embeddings."""
        if not self.cfg.bidirectional:
            return self.clips(codes)
        d = self.cfg.frame_dim
        forward = self.clips(codes[:, :, :d])
        backward = self.clips(codes[:, :, d:].flip(1))
        return torch.cat([forward, backward], dim=1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T+1, H, W, 3]`` (one leading context frame) -> ``[B, embed_dim]``."""
        b, t1 = clips.shape[:2]
        flat = clips.reshape(b * t1, *clips.shape[2:])
        codes = self.encode_frames(flat[1:], flat[:-1]).reshape(-1)
        codes = torch.cat([codes.new_zeros(self.cfg.code_dim), codes]).reshape(b, t1, -1)[:, 1:]
        return self.encode_clips(codes)


class ReferenceHead(nn.Module):
    """``[B, N, embed_dim]`` clip embeddings over time -> ``[B, N, num_classes]`` logits."""

    def __init__(self, cfg: HeadConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or HeadConfig()
        k = self.cfg.kernel
        self.norm = nn.LayerNorm(self.cfg.embed_dim)
        lags = self.cfg.lags
        self.inp = nn.Conv1d(self.cfg.embed_dim * (1 + len(lags)), self.cfg.hidden, 1) if lags else None
        cin = self.cfg.hidden if lags else self.cfg.embed_dim
        self.conv1 = nn.Conv1d(cin, self.cfg.hidden, k, padding=k // 2)
        self.conv2 = nn.Conv1d(self.cfg.hidden, self.cfg.hidden, k, padding=2 * (k // 2), dilation=2)
        self.drop = nn.Dropout(self.cfg.dropout)
        self.out = nn.Conv1d(self.cfg.hidden, self.cfg.num_classes, 1)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        x = self.norm(emb).transpose(1, 2)  # [B, D, N]
        if self.inp is not None:
            n = x.shape[2]
            steps = torch.arange(n, device=x.device)
            diffs = [  # emb(t + lag) - emb(t - lag), holding the first/last clip beyond the video's ends
                x[:, :, (steps + lag).clamp(max=n - 1)] - x[:, :, (steps - lag).clamp(min=0)]
                for lag in self.cfg.lags
            ]
            x = F.relu(self.inp(torch.cat([x, *diffs], dim=1)))
            h = F.relu(self.conv1(x)) + x
        else:
            h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(self.drop(h))) + h
        return self.out(self.drop(h)).transpose(1, 2)
