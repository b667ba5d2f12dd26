"""The one interface between the KV cache and a sink policy that keeps past chunks beyond its sink and window.

The cache (lolbench.cache.kv) is storage, layout, positions and probes for any model; it reserves ``num_slots``
storage blocks of one chunk each for such a memory and calls it at four points of the chunk protocol. What the
memory keeps, what it retrieves and which retrieved entries a layer may use (DySink's bank, retrieval and anomaly
gate, lolbench.cache.dysink) stays behind this interface, so no policy is special-cased in the cache.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from torch import Tensor

from lolbench.cache.policies import Selection


class ChunkMemory(Protocol):
    """Past chunks kept in ``num_slots`` cache blocks and retrieved into the context of later chunks."""

    num_slots: int

    def reset(self) -> None:
        """Forget every stored chunk (a new video)."""

    def select(self, num_frames: int) -> list[Selection]:
        """Per video: the context of the chunk starting at frame ``num_frames``, retrieved chunks included."""

    def slot_of(self, b: int, chunk: int) -> int:
        """Storage slot (0..num_slots-1) that holds retrieved ``chunk`` of video ``b``."""

    def begin(self, selections: list[Selection], kind: np.ndarray) -> None:
        """A chunk opens with these selections; ``kind`` [B, S+F] is the FrameKind of every key frame."""

    def mask(self, q: Tensor, keys: Tensor) -> Tensor | None:
        """For one layer and attention call: keep-mask [B, 1, 1, (S+F)*P] over the keys (None: keep all).

        q: [B, H, F*P, D] and keys: [B, H, (S+F)*P, D], both as attention sees them (rotated)."""

    def store(self, frames: Tensor, embedding: Tensor | None, chunk: int) -> np.ndarray:
        """Observe finished ``chunk``; returns the slot it was stored in per video, -1 where it was not stored."""

    def stats(self) -> dict[str, float]:
        """Statistics of the chunk that just closed (NaN where undefined)."""

    def buffers(self) -> dict[str, Tensor | np.ndarray]:
        """Every preallocated buffer by name."""

    def state_dict(self) -> dict[str, Any]:
        """Copies of what later chunks depend on (taken between chunks), for resuming a video."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``; a ValueError names what does not fit."""
