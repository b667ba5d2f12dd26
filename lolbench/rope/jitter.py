"""Draw LoL's per-head temporal base jitter.

All heads' ε_h are drawn first and the jittered heads are the first ``n`` of one random permutation, both from
one ``torch.Generator`` seeded with ``JitterSpec.seed``. So for a fixed seed a head keeps its ε_h whatever the
fraction, and the jittered sets of increasing fractions are nested, which keeps ablations over the fraction
comparable.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lolbench.rope.spec import JitterSpec


def jittered_head_count(head_fraction: float, num_heads: int) -> int:
    """Heads jittered for a fraction: ``head_fraction * num_heads`` rounded half up (0.5 * 3 -> 2)."""
    return math.floor(head_fraction * num_heads + 0.5)


def _draw(num_heads: int, jitter: JitterSpec) -> tuple[Tensor, Tensor]:
    """ε_h for every head ([H] float64, U[-1, 1)) and the mask of jittered heads ([H] bool)."""
    generator = torch.Generator().manual_seed(jitter.seed)
    eps = torch.rand(num_heads, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    order = torch.randperm(num_heads, generator=generator)
    mask = torch.zeros(num_heads, dtype=torch.bool)
    mask[order[: jittered_head_count(jitter.head_fraction, num_heads)]] = True
    return eps, mask


def jittered_heads(num_heads: int, jitter: JitterSpec) -> Tensor:
    """[H] bool: which heads get a jittered base (independent of sigma)."""
    return _draw(num_heads, jitter)[1]


def jitter_factors(num_heads: int, jitter: JitterSpec) -> Tensor:
    """[H] float64 base multipliers: ``1 + σ ε_h`` on jittered heads, exactly 1 elsewhere (and for σ = 0)."""
    eps, mask = _draw(num_heads, jitter)
    return torch.where(mask, 1.0 + jitter.sigma * eps, torch.ones_like(eps))
