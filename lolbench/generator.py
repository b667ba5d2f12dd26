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
