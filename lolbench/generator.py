"""The generator interface: what a streaming video model must offer to be run and measured by lolbench."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from lolbench.probes import AttentionProbe


@dataclass
class Chunk:
    """One autoregressive step's output."""

    frames: np.ndarray  # [F, H, W, 3] uint8
    first_frame: int  # absolute index of frames[0] in the video
    positions: np.ndarray  # [F] temporal RoPE positions the model used for these frames' queries
    probe: AttentionProbe | None = None
    stats: dict[str, float] = field(default_factory=dict)  # e.g. DySink gate statistics


@runtime_checkable
class VideoGenerator(Protocol):
    """A streaming video model. lolbench calls ``reset`` once, then ``next_chunk`` until enough frames exist."""

    name: str
    chunk_frames: int
    fps: float

    def reset(self, prompt: str, seed: int) -> None:
        """Start a new video for ``prompt``; the same prompt and seed must give the same video."""

    def next_chunk(self, probe: bool = False) -> Chunk:
        """Generate the next chunk; with ``probe`` also return its attention probe."""


@runtime_checkable
class FrequencyUsage(Protocol):
    """Optional capability of a generator: how strongly its attention uses each temporal RoPE frequency pair.

    The uniform phase kernel C(Δ) weights every temporal pair alike, but a model trained on short clips only
    learns to use the pairs that rotate through a useful range within its training length. Weighting each pair
    by its use (lolbench.phase.usage_weighted_kernel) turns C(Δ) into a prediction for that model.
    """

    def temporal_pair_usage(self, clips: np.ndarray, prompt: str) -> np.ndarray:
        """``E|q_i| * E|k_i|`` per layer, head and temporal pair i: float [L, H, K], non-negative.

        Measured on the model's own queries and keys (after q/k norm, before rotation) while it reads the
        clean ``clips`` (uint8 [B, F, H, W, 3]) as a video generated from its first frame (positions 0..F-1).
        """
