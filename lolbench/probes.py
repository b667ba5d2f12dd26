"""Attention probes: where one chunk's queries put their attention, per layer and head.

Produced by the KV cache (lolbench.cache) while a chunk is generated, consumed by the head-homogeneity
metrics (lolbench.metrics). Plain numpy so that metrics never depend on torch or on a particular model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class FrameKind(IntEnum):
    """Role of a key frame in the attention context."""

    SINK = 0  # static / deep sink frames
    RETRIEVED = 1  # dynamic sinks (DySink memory-bank entries)
    LOCAL = 2  # the recent local window
    CURRENT = 3  # frames of the chunk being generated


@dataclass
class AttentionProbe:
    """Attention mass of one chunk's queries on each key frame, for one batch element.

    ``mass[l, h, s]`` is the softmax mass that head ``h`` of layer ``l`` puts on key frame ``s``, averaged
    over the chunk's query tokens and over the denoising steps; it sums to 1 over ``s``.
    """

    chunk_index: int
    mass: np.ndarray  # [L, H, S] float32
    frame_index: np.ndarray  # [S] int64, absolute index of each key frame
    kind: np.ndarray  # [S] int8, FrameKind of each key frame

    def __post_init__(self) -> None:
        if self.mass.ndim != 3 or self.mass.shape[2] != len(self.frame_index) != len(self.kind):
            raise ValueError(
                f"probe shapes disagree: mass {self.mass.shape}, frame_index {self.frame_index.shape}, "
                f"kind {self.kind.shape}"
            )

    def mass_of(self, *kinds: FrameKind) -> np.ndarray:
        """Total mass per layer and head on key frames of the given kinds: [L, H]."""
        selected = np.isin(self.kind, [int(k) for k in kinds])
        return self.mass[:, :, selected].sum(axis=2)
