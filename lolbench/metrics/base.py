"""Streaming metric base classes, in the style of torchmetrics.

A metric is fed the video chunk by chunk (``update``) and summarized once (``compute``). State is kept as
sums, counts and bounded buffers, never as running means, so feeding a video in one piece or in chunks of
any size gives the same result. Every metric has a stateless functional twin in the same module that
computes the same numbers from a whole video at once; the tests compare the two.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from lolbench.probes import AttentionProbe

Result = dict[str, Any]


class StreamingMetric(ABC):
    """Common surface of all metrics.

    ``compute()`` returns a flat dict of result keys (documented in lolbench/metrics/schema.py) to floats,
    ints, lists or the string ``"unavailable: <reason>"``. ``curves()`` returns per-frame or per-chunk
    series for plotting and for the results store.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool | None] = None

    @abstractmethod
    def reset(self) -> None:
        """Forget everything seen so far."""

    @abstractmethod
    def compute(self) -> Result:
        """Summarize everything seen so far."""

    def curves(self) -> dict[str, np.ndarray]:
        """Time series recorded so far (empty when the metric keeps none)."""
        return {}

    def min_frames(self) -> int:
        """Frames a video needs before ``compute()`` can say anything (eval rejects shorter videos)."""
        return 1

    def events(self) -> list[dict[str, Any]]:
        """Events found so far, one record each with at least ``metric`` and ``frame`` (empty when the metric
        detects none); the suite merges them in frame order."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """Everything ``update`` has accumulated, for checkpoints: the metric's data attributes.

        Data are arrays, tensors, scalars, strings, containers of those and small lolbench objects made only of
        data (ring buffers, accumulators); components built from the config (flow estimators, backbone
        models) are not state and are left out. A nested metric contributes its own state. The values are
        the live objects: serialize them before the next ``update``.
        """
        state: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, StreamingMetric):
                state[name] = {"metric": value.state_dict()}
            elif _is_data(value):
                state[name] = value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (see ``state_dict``) on a metric built with the same arguments."""
        for name, value in state.items():
            current = getattr(self, name, None)
            if isinstance(current, StreamingMetric):
                current.load_state_dict(value["metric"])
            else:
                setattr(self, name, copy.deepcopy(value))


class FrameMetric(StreamingMetric):
    """A metric computed from the frames alone."""

    @abstractmethod
    def update(self, frames: np.ndarray) -> None:
        """Add the next frames, uint8 [F, H, W, 3], in video order."""


class ProbeMetric(StreamingMetric):
    """A metric computed from attention probes (only available for runs of an instrumented model)."""

    @abstractmethod
    def update(self, probe: AttentionProbe) -> None:
        """Add the probe of one chunk, in chunk order."""


def _is_data(value: Any) -> bool:
    """Plain data that describes accumulated state (see ``StreamingMetric.state_dict``)."""
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic, torch.Tensor)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_data(v) for v in value)
    if isinstance(value, dict):
        return all(_is_data(k) and _is_data(v) for k, v in value.items())
    if type(value).__module__.startswith("lolbench.") and hasattr(value, "__dict__"):
        fields = vars(value) if not dataclasses.is_dataclass(value) else {
            f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return all(_is_data(v) for v in fields.values())
    return False


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate a chunk of frames and return it; errors name the bad shape or dtype."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise TypeError(f"frames must be a uint8 numpy array, got {type(frames).__name__} "
                        f"{getattr(frames, 'dtype', '')}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [F, H, W, 3], got {frames.shape}")
    return frames
