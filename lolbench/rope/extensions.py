"""Context-extension methods for the temporal RoPE axis: PI, NTK-aware scaling, YaRN and RIFLEx.

Each method maps the per-head temporal bases (already jittered) to the temporal frequencies the model uses,
plus a position scale and an attention-logit scale. ``s = L'/L`` (target over training frames); for
``s <= 1`` every method is the identity. Spatial axes are never changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lolbench.rope.frequencies import axis_frequencies
from lolbench.rope.spec import RopeSpec


@dataclass(frozen=True)
class TemporalRope:
    """The temporal part of a model's RoPE after an extension method."""

    frequencies: Tensor  # [H, Kt] float64 angular frequency per frame
    bases: Tensor  # [H] float64 base each head's frequencies come from
    time_scale: float = 1.0  # multiplies temporal positions
    attn_scale: float = 1.0  # multiplies attention logits


def _none(spec: RopeSpec, bases: Tensor, s: float) -> TemporalRope:
    """Plain RoPE: ``ω_{h,i} = θ_h^(-2i/d_t)``."""
    return TemporalRope(axis_frequencies(bases, spec.resolved_time_dim), bases)


def _pi(spec: RopeSpec, bases: Tensor, s: float) -> TemporalRope:
    """Position interpolation (Chen et al. 2023): positions are multiplied by ``L/L' = 1/s``, frequencies kept."""
    return TemporalRope(axis_frequencies(bases, spec.resolved_time_dim), bases, time_scale=1.0 / s)


def _ntk(spec: RopeSpec, bases: Tensor, s: float) -> TemporalRope:
    """NTK-aware scaling: base ``θ' = θ·s^(d_t/(d_t-2))``, so the lowest frequency is interpolated by exactly s
    while ``ω_0 = 1`` is unchanged."""
    d_t = spec.resolved_time_dim
    scaled = bases * s ** (d_t / (d_t - 2))
    return TemporalRope(axis_frequencies(scaled, d_t), scaled)


def _yarn(spec: RopeSpec, bases: Tensor, s: float) -> TemporalRope:
    """YaRN (Peng et al. 2023), "NTK-by-parts" plus temperature.

    ``r = L·ω/(2π)`` rotations over the training length; ``γ = clamp((r-α)/(β-α), 0, 1)``;
    ``ω' = (1-γ)·ω/s + γ·ω`` (slow components interpolated, fast ones kept); logits are multiplied by
    ``(0.1·ln s + 1)^2``.
    """
    omega = axis_frequencies(bases, spec.resolved_time_dim)  # [H, Kt]
    rotations = spec.train_frames * omega / (2.0 * math.pi)
    gamma = ((rotations - spec.yarn_alpha) / (spec.yarn_beta - spec.yarn_alpha)).clamp(0.0, 1.0)
    extended = (1.0 - gamma) * omega / s + gamma * omega
    return TemporalRope(extended, bases, attn_scale=(0.1 * math.log(s) + 1.0) ** 2)


def _riflex(spec: RopeSpec, bases: Tensor, s: float) -> TemporalRope:
    """RIFLEx (Zhao et al. 2025): lower only the intrinsic component k to ``ω_k = 0.9·2π/L'``.

    k is ``riflex_k`` (1-based) or, per head, the component whose period ``2π/ω_k`` is closest to L, so one
    period of it now spans the whole target length and it cannot repeat within it.
    """
    omega = axis_frequencies(bases, spec.resolved_time_dim)  # [H, Kt]
    if spec.riflex_k is None:
        k = (2.0 * math.pi / omega - spec.train_frames).abs().argmin(dim=1)  # [H], 0-based
    else:
        k = torch.full((omega.shape[0],), spec.riflex_k - 1, dtype=torch.long)
    extended = omega.clone()
    extended[torch.arange(omega.shape[0]), k] = 0.9 * 2.0 * math.pi / spec.target_frames
    return TemporalRope(extended, bases)


EXTENSIONS: dict[str, Callable[[RopeSpec, Tensor, float], TemporalRope]] = {
    "none": _none,
    "pi": _pi,
    "ntk": _ntk,
    "yarn": _yarn,
    "riflex": _riflex,
}


def extend_temporal(spec: RopeSpec, bases: Tensor) -> TemporalRope:
    """Temporal RoPE of ``spec`` for per-head bases ``[H]`` (float64; jitter already applied)."""
    s = spec.extension_factor
    return EXTENSIONS[spec.method if s > 1.0 else "none"](spec, bases, s)
