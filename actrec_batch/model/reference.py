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

Posture branch (``postures > 0``, reference@3 on): the clip encoder reads motion, and a clip
embedding trained only on action labels keeps almost nothing of what a still figure looks like (a
linear or MLP probe on reference@2's embeddings could not tell a seated or lying figure from a
standing one). Sitting down and standing up are the same motion in opposite directions, so their
direction is in the postures before and after. A separate small CNN scores each frame's pixels for
what a still frame shows (``actrec_batch.synth.timeline.POSTURES``: a standing, seated or lying
figure, a walking or running stride, a raised arm); its
logits ride along in the frame codes, and each clip embedding ends with their means over the
clip's first and second halves (``2 x postures`` values, scaled by ``POSTURE_GAIN``). It is trained
apart from the motion encoder (``actrec_batch.training.loop.train_postures``), on the synth timeline.

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
    # Posture channels of the posture branch (0: none); embed_dim includes their 2 x postures values.
    postures: int = 0
    posture_widths: tuple[int, ...] = (12, 24, 32, 48)

    def __post_init__(self) -> None:
        motion = self.embed_dim - self.posture_dim
        if self.postures < 0 or motion <= 0 or (self.bidirectional and motion % 2):
            raise ValueError(
                f"extractor config: embed_dim {self.embed_dim} leaves no (even, when bidirectional) "
                f"motion width next to {self.postures} postures"
            )

    @property
    def posture_dim(self) -> int:
        """Width of the posture part of a clip embedding (its last values)."""
        return 2 * self.postures

    @property
    def clip_dim(self) -> int:
        """Width of one direction's motion embedding."""
        motion = self.embed_dim - self.posture_dim
        return motion // 2 if self.bidirectional else motion

    @property
    def code_dim(self) -> int:
        """Width of a frame code as ``encode_frames`` returns it (both directions when bidirectional,
        then the posture logits)."""
        return (2 if self.bidirectional else 1) * self.frame_dim + self.postures

    def forward_only(self) -> ExtractorConfig:
        """The same network read forwards only."""
        return replace(self, bidirectional=False, embed_dim=self.clip_dim + self.posture_dim)

    def bidirectional_of(self) -> ExtractorConfig:
        """The same weights read in both directions."""
        return replace(self, bidirectional=True, embed_dim=2 * self.clip_dim + self.posture_dim)

    def motion_only(self) -> ExtractorConfig:
        """The motion network alone, read forwards: the config stage 1 trains."""
        return replace(
            self,
            bidirectional=False,
            postures=0,
            posture_widths=ExtractorConfig.posture_widths,
            embed_dim=self.clip_dim,
        )

    def with_postures(self, postures: int) -> ExtractorConfig:
        """The same motion network with a posture branch of ``postures`` channels (0: none)."""
        return replace(self, postures=postures, embed_dim=self.embed_dim - self.posture_dim + 2 * postures)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ExtractorConfig:
        d = dict(d)
        d.setdefault("keypoints", 0)  # cards written before keypoints existed had none
        d.setdefault("bidirectional", False)
        d.setdefault("postures", 0)  # and before the posture branch
        for key in ("widths", "posture_widths"):
            if key in d:
                d[key] = tuple(d[key])
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


def _conv_stack(cin: int, widths: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """Stride-2 conv-BN-ReLU per width (the later ones followed by a stride-1 one) and the output width."""
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers.append(_conv_bn(cin, w, 2))
        if i >= 1:
            layers.append(_conv_bn(w, w, 1))
        cin = w
    return nn.Sequential(*layers), cin


class FrameEncoder(nn.Module):
    """``[N, 6, H, W]`` (RGB + RGB motion, normalised) -> ``[N, frame_dim]``."""

    def __init__(self, cfg: ExtractorConfig) -> None:
        super().__init__()
        self.body, cin = _conv_stack(6, cfg.widths)
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


# Per-channel normalisation of [0, 1] RGB pixels, for every CNN of the extractor.
RGB_MEAN, RGB_STD = 0.45, 0.25


def normalised_rgb(frames: torch.Tensor) -> torch.Tensor:
    """``[N, H, W, 3]`` frames (uint8, or float in 0..255) -> normalised ``[N, 3, H, W]`` float pixels."""
    return (frames.permute(0, 3, 1, 2).float() / 255.0 - RGB_MEAN) / RGB_STD


# Posture logits are multiplied by this in a clip embedding, so that after the head's LayerNorm they
# weigh about as much as the motion values (whose spread is tens of units), not ~1/50 of them.
POSTURE_GAIN = 16.0


class PostureEncoder(nn.Module):
    """``[N, 3, H, W]`` normalised RGB -> ``[N, postures]`` logits: which postures are on screen.

    A still-image classifier: stride-2 convolutions, then the global max (is there such a figure
    anywhere?) and mean of the last feature map."""

    def __init__(self, cfg: ExtractorConfig) -> None:
        super().__init__()
        self.body, cin = _conv_stack(3, cfg.posture_widths)
        self.fc = nn.Sequential(nn.Linear(2 * cin, 32), nn.ReLU(), nn.Linear(32, cfg.postures))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.fc(torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1))


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
        self.posture = PostureEncoder(self.cfg) if self.cfg.postures else None

    def encode_frames(self, frames: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` frames and their grid predecessors -> ``[N, code_dim]`` codes.

        Bidirectional: each row also holds the backward code of the predecessor (it seen after
        the frame), so one row per grid frame still carries everything the clip encoder needs.
        With a posture branch, each row ends with the frame's posture logits."""
        cur = frames.permute(0, 3, 1, 2).float().div_(255.0)
        prev = previous.permute(0, 3, 1, 2).float().div_(255.0)
        rgb = (cur - RGB_MEAN) / RGB_STD
        if not self.cfg.bidirectional:
            codes = self.frames(torch.cat([rgb, (cur - prev) * 4.0], dim=1))
        else:
            after = torch.cat([rgb, (cur - prev) * 4.0], dim=1)  # frame k after frame k-1
            before = torch.cat([(prev - RGB_MEAN) / RGB_STD, (prev - cur) * 4.0], dim=1)  # k-1 after k
            forward, backward = self.frames(torch.cat([after, before])).chunk(2)
            codes = torch.cat([forward, backward], dim=1)
        if self.posture is not None:
            codes = torch.cat([codes, self.posture(rgb)], dim=1)
        return codes

    def encode_clips(self, codes: torch.Tensor) -> torch.Tensor:
        """``[B, T, code_dim]`` frame codes -> ``[B, embed_dim]`` clip embeddings."""
        d = self.cfg.frame_dim
        if not self.cfg.bidirectional:
            out = self.clips(codes[:, :, :d])
        else:
            forward = self.clips(codes[:, :, :d])
            backward = self.clips(codes[:, :, d : 2 * d].flip(1))
            out = torch.cat([forward, backward], dim=1)
        if self.posture is not None:
            p = codes[:, :, self.cfg.code_dim - self.cfg.postures :] * POSTURE_GAIN
            half = p.shape[1] // 2
            out = torch.cat([out, p[:, :half].mean(dim=1), p[:, half:].mean(dim=1)], dim=1)
        return out

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
