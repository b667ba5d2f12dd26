"""Chunk embeddings for DySink's memory bank: one L2-normalized vector per generated chunk.

DySink embeds each chunk as the mean of its frames' image features. Pretrained feature extractors cannot be
downloaded here, so the built-in embedder is a pixel one; its ``name`` travels into every statistic that
depends on it, so results never pass it off as a learned backbone.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class ChunkEmbedder(Protocol):
    """Maps a chunk of frames [B, F, 3, H, W] (float in [-1, 1] or uint8) to unit vectors [B, dim]."""

    name: str
    dim: int

    def __call__(self, frames: Tensor) -> Tensor: ...


def frames_to_float(frames: Tensor) -> Tensor:
    """[B, F, 3, H, W] uint8 or float in [-1, 1] -> float32 in [-1, 1]; errors name the bad shape."""
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames must be [B, F, 3, H, W], got {tuple(frames.shape)}")
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


class PixelEmbedder:
    """Offline embedder: each frame area-downsampled to ``size`` x ``size``, its per-channel mean removed (so
    the cosine reflects layout, not brightness), flattened; mean over the chunk's frames; L2-normalized.

    A frame of one flat colour has no layout and embeds to the zero vector (cosine 0 to everything).
    """

    name = "pixel"

    def __init__(self, size: int = 8):
        if size < 1:
            raise ValueError(f"embedder size must be >= 1, got {size}")
        self.size = size
        self.dim = 3 * size * size

    def __call__(self, frames: Tensor) -> Tensor:
        x = frames_to_float(frames)
        B, Fr = x.shape[:2]
        small = area_downsample(x.flatten(0, 1), self.size)  # [B*F, 3, s, s]
        small = small - small.mean(dim=(2, 3), keepdim=True)
        per_frame = small.reshape(B, Fr, self.dim)  # [B, F, 3*s*s]
        return F.normalize(per_frame.mean(dim=1), dim=-1)  # [B, 3*s*s]


EMBEDDERS = {"pixel": PixelEmbedder}


def build_embedder(name: str) -> ChunkEmbedder:
    """The embedder called ``name`` (the ``sink.embedder`` key)."""
    if name not in EMBEDDERS:
        raise ValueError(f"sink.embedder={name!r} is not one of {sorted(EMBEDDERS)}")
    return EMBEDDERS[name]()
