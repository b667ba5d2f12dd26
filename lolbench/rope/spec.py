"""What a RoPE configuration and a multi-head jitter are: small frozen values, validated on construction.

Everything downstream (tables, the rotary module, phase analysis, result records) is a function of these two
values, so a run is reproducible from them alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lolbench.rope.frequencies import wan_time_dim

METHODS = ("none", "pi", "ntk", "yarn", "riflex")


@dataclass(frozen=True)
class RopeSpec:
    """3D RoPE of one model plus an optional temporal extension method.

    ``time_dim=None`` uses Wan's split (see ``wan_time_dim``); height and width share the rest equally.
    Extension methods act on the temporal axis only and need ``target_frames`` (L'); with
    ``target_frames <= train_frames`` they are the identity.
    """

    head_dim: int
    num_heads: int
    theta: float = 10000.0
    time_dim: int | None = None
    method: str = "none"
    train_frames: int = 21
    target_frames: int | None = None
    yarn_alpha: float = 1.0
    yarn_beta: float = 32.0
    riflex_k: int | None = None

    def __post_init__(self) -> None:
        if self.head_dim < 2 or self.head_dim % 2:
            raise ValueError(f"head_dim must be a positive even number, got {self.head_dim}")
        if self.num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {self.num_heads}")
        if not (math.isfinite(self.theta) and self.theta > 0):
            raise ValueError(f"theta must be a finite positive number, got {self.theta}")
        t = self.resolved_time_dim
        if t < 2 or t > self.head_dim or t % 2 or (self.head_dim - t) % 4:
            raise ValueError(
                f"time_dim={t} does not fit head_dim={self.head_dim}: it must be even, in [2, head_dim], and "
                f"leave a multiple of 4 for height and width (even dims each)"
            )
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is not one of {METHODS}")
        if self.train_frames < 1:
            raise ValueError(f"train_frames must be >= 1, got {self.train_frames}")
        if self.target_frames is not None and self.target_frames < 1:
            raise ValueError(f"target_frames must be >= 1 or None, got {self.target_frames}")
        if self.method != "none" and self.target_frames is None:
            raise ValueError(f"method={self.method!r} needs target_frames (the length L' to extend to)")
        if self.method == "ntk" and t == 2:
            raise ValueError("method='ntk' needs time_dim > 2 (its base scale s^(d_t/(d_t-2)) is undefined at 2)")
        if not self.yarn_beta > self.yarn_alpha:
            raise ValueError(f"yarn_beta must exceed yarn_alpha, got alpha={self.yarn_alpha}, beta={self.yarn_beta}")
        if self.riflex_k is not None and not 1 <= self.riflex_k <= t // 2:
            raise ValueError(f"riflex_k must be in [1, {t // 2}] (1-based temporal component), got {self.riflex_k}")

    @property
    def resolved_time_dim(self) -> int:
        """Dims of each head given to time (Wan's split when ``time_dim`` is None)."""
        return wan_time_dim(self.head_dim) if self.time_dim is None else self.time_dim

    @property
    def axis_dims(self) -> tuple[int, int, int]:
        """(time, height, width) dims of each head, in that order along the head dim."""
        t = self.resolved_time_dim
        spatial = (self.head_dim - t) // 2
        return t, spatial, spatial

    @property
    def extension_factor(self) -> float:
        """s = L'/L, the factor the temporal context is stretched by (1.0 without a target)."""
        return 1.0 if self.target_frames is None else self.target_frames / self.train_frames


@dataclass(frozen=True)
class JitterSpec:
    """LoL's multi-head RoPE jitter: ``θ̂_h = θ0·(1 + σ ε_h)`` with ``ε_h ~ U[-1, 1]`` on a fraction of heads.

    ``sigma < 1`` keeps every base positive. ``sigma = 0`` is exactly no jitter.
    """

    sigma: float = 0.0
    head_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sigma < 1.0:
            raise ValueError(f"jitter sigma must be in [0, 1) so every base stays positive, got {self.sigma}")
        if not 0.0 <= self.head_fraction <= 1.0:
            raise ValueError(f"jitter head_fraction must be in [0, 1], got {self.head_fraction}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"jitter seed must be an int, got {self.seed!r}")
