"""Per-axis RoPE frequencies and Wan's split of the head dimension into time, height and width."""

from __future__ import annotations

import torch
from torch import Tensor


def wan_time_dim(head_dim: int) -> int:
    """Dims Wan2.1 gives to time: height and width get ``2*(d//6)`` each, time the rest (128 -> 44/42/42)."""
    return head_dim - 4 * (head_dim // 6)


def axis_frequencies(bases: Tensor, axis_dim: int) -> Tensor:
    """Angular frequencies ``ω_{h,i} = θ_h^(-2i/d_axis)`` for ``i < d_axis/2``, one row per head.

    ``bases`` is ``[H]`` float64 (one base per head, so jittered heads can differ); returns ``[H, d_axis/2]``
    float64. Written as ``1 / θ^(2i/d)`` like Wan, so ``ω_0`` is exactly 1.
    """
    if bases.ndim != 1 or bases.dtype != torch.float64:
        raise ValueError(f"bases must be a 1-D float64 tensor, got shape {tuple(bases.shape)} {bases.dtype}")
    exponents = torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim  # [K] = 2i/d
    return 1.0 / bases[:, None] ** exponents[None, :]  # [H, K]
