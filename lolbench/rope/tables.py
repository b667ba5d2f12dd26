"""Per-head frequency tables: the single description of a model's RoPE that rotation and analysis share."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lolbench.rope.extensions import extend_temporal
from lolbench.rope.frequencies import axis_frequencies
from lolbench.rope.jitter import jitter_factors
from lolbench.rope.spec import JitterSpec, RopeSpec


@dataclass
class RopeTables:
    """Angular frequencies per head and axis, float64. Rows are equal across heads unless jittered."""

    time: Tensor  # [H, Kt] angular frequency per frame for each temporal pair
    height: Tensor  # [H, Kh]
    width: Tensor  # [H, Kw]
    time_scale: float  # multiplies temporal positions (PI: L/L'); 1.0 otherwise
    attn_scale: float  # multiplies attention logits (YaRN temperature); 1.0 otherwise
    head_bases: Tensor  # [H] the temporal base θ̂_h each head uses (after jitter / NTK)

    @property
    def num_heads(self) -> int:
        return self.time.shape[0]

    @property
    def head_dim(self) -> int:
        return 2 * (self.time.shape[1] + self.height.shape[1] + self.width.shape[1])


def build_tables(spec: RopeSpec, jitter: JitterSpec = JitterSpec()) -> RopeTables:
    """Tables for ``spec``: jitter the temporal bases per head, then apply the extension method to each head."""
    _, d_h, d_w = spec.axis_dims
    global_bases = torch.full((spec.num_heads,), float(spec.theta), dtype=torch.float64)  # [H]
    temporal = extend_temporal(spec, global_bases * jitter_factors(spec.num_heads, jitter))
    return RopeTables(
        time=temporal.frequencies,
        height=axis_frequencies(global_bases, d_h),
        width=axis_frequencies(global_bases, d_w),
        time_scale=temporal.time_scale,
        attn_scale=temporal.attn_scale,
        head_bases=temporal.bases,
    )
