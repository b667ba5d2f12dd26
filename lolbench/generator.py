"""The generator interface: what a streaming video model must offer to be run and measured by lolbench."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lolbench.probes import AttentionProbe

StreamState = dict[str, Any]
"""A generator's (or cache's) state: a nested dict whose leaves are torch tensors, numpy arrays, Python scalars,
strings or None (lists and tuples of those are fine). Its size must not grow with the video length; the runner
saves it with ``lolbench.checkpoint`` and hands it back unchanged (tensors on the CPU)."""


class NonFiniteOutputError(FloatingPointError):
    """The model produced NaN or Inf; raised by ``next_chunk`` before the bad frames reach the cache or the video."""

    def __init__(self, chunk: int, frame: int) -> None:
        super().__init__(f"non-finite (NaN/Inf) model output in chunk {chunk} at frame {frame}")
        self.chunk, self.frame = chunk, frame


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
        """Generate the next chunk; with ``probe`` also return its attention probe. Raises
        ``NonFiniteOutputError`` when the model output is not finite."""

    def state_dict(self) -> StreamState:
        """Everything the next chunks depend on that ``reset(prompt, seed)`` does not recreate, between chunks.

        The runner checkpoints it so that a killed run can continue with bitwise-identical frames (on CPU):
        the frame counter, RNG states (``torch.Generator.get_state()``), the KV cache contents and layout, a
        sink bank, anything drawn once per rollout (its values or a fingerprint to check). See ``StreamState``.
        """

    def load_state_dict(self, state: StreamState) -> None:
        """Continue from ``state``. Called on a generator built from the same config, right after
        ``reset(prompt, seed)``; raises ValueError naming what does not fit (shapes, policy, jitter draw)."""


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
