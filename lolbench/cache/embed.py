"""Chunk embeddings for DySink's memory bank: one L2-normalized vector per generated chunk.

DySink embeds each chunk as the mean of its frames' image features. Pretrained feature extractors cannot be
downloaded here, so the built-in embedders are layout ones, on pixels (``pixel``) or on a VAE's latents
(``latent``, for models whose chunks are latents, e.g. Wan); their ``name`` travels into every statistic that
depends on them, so results never pass them off as a learned backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class ChunkEmbedder(Protocol):
    """Maps a chunk [B, F, C, H, W] (pixels: float in [-1, 1] or uint8; or latents) to unit vectors [B, dim]."""

    name: str
    dim: int

    def __call__(self, frames: Tensor) -> Tensor: ...


def frames_to_float(frames: Tensor, channels: int = 3) -> Tensor:
    """[B, F, C, H, W] uint8 or float in [-1, 1] -> float32 in [-1, 1]; errors name the bad shape."""
    if frames.ndim != 5 or frames.shape[2] != channels:
        raise ValueError(f"frames must be [B, F, {channels}, H, W], got {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        return frames.float() / 127.5 - 1.0
    if not frames.is_floating_point():
        raise TypeError(f"frames must be uint8 or floating point, got {frames.dtype}")
    return frames.float()


def area_downsample(x: Tensor, size: int) -> Tensor:
    """[N, C, H, W] -> [N, C, size, size] by averaging areas (adaptive average pooling).

    When the size divides the frame, the same averages come from a reshape and a mean, which on tiny inputs
    avoids the thread start-up of the pooling kernel (it dominated the cost per chunk on a busy 2-core CPU).
    """
    H, W = x.shape[-2:]
    if H % size or W % size:
        return F.adaptive_avg_pool2d(x, size)
    blocks = x.unflatten(-1, (size, W // size)).unflatten(-3, (size, H // size))  # [N, C, s, H/s, s, W/s]
    return blocks.mean(dim=(-3, -1))


class LayoutEmbedder:
    """Offline embedder: each frame area-downsampled to ``size`` x ``size``, its per-channel mean removed (so
    the cosine reflects layout, not brightness), flattened; mean over the chunk's frames; L2-normalized.

    A frame of one flat colour has no layout and embeds to the zero vector (cosine 0 to everything).
    """

    name = "layout"

    def __init__(self, channels: int, size: int = 8):
        if channels < 1 or size < 1:
            raise ValueError(f"embedder channels and size must be >= 1, got channels={channels}, size={size}")
        self.channels = channels
        self.size = size
        self.dim = channels * size * size

    def __call__(self, frames: Tensor) -> Tensor:
        x = frames_to_float(frames, self.channels)
        B, Fr = x.shape[:2]
        small = area_downsample(x.flatten(0, 1), self.size)  # [B*F, C, s, s]
        small = small - small.mean(dim=(2, 3), keepdim=True)
        per_frame = small.reshape(B, Fr, self.dim)  # [B, F, C*s*s]
        return F.normalize(per_frame.mean(dim=1), dim=-1)  # [B, C*s*s]


class PixelEmbedder(LayoutEmbedder):
    """The layout embedding of RGB frames."""

    name = "pixel"

    def __init__(self, channels: int = 3, size: int = 8):
        if channels != 3:
            raise ValueError(f"sink.embedder=pixel reads RGB frames (3 channels), got {channels}; "
                             "use sink.embedder=latent for latents")
        super().__init__(channels, size)


class LatentEmbedder(LayoutEmbedder):
    """The layout embedding of a VAE's latent frames [B, F, C, h, w] (any channel count)."""

    name = "latent"


EMBEDDERS: dict[str, Callable[..., ChunkEmbedder]] = {"pixel": PixelEmbedder, "latent": LatentEmbedder}


def build_embedder(name: str, channels: int = 3) -> ChunkEmbedder:
    """The embedder called ``name`` (the ``sink.embedder`` key) for chunks of ``channels`` channels.

    Each entry of ``EMBEDDERS`` is called with ``channels=``; a learned encoder registers itself there."""
    if name not in EMBEDDERS:
        raise ValueError(f"sink.embedder={name!r} is not one of {sorted(EMBEDDERS)}")
    return EMBEDDERS[name](channels=channels)
