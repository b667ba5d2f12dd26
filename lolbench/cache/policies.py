"""Sink policies: which past frames a new chunk may attend to.

A policy is a small immutable rule in the style of StreamingLLM's start+recent cache: all parameters in the
constructor, no storage. ``select`` says which frames form the context of the next chunk; the KV cache
(lolbench.cache.kv) owns the buffers and asks the policy once per chunk. Sizes are in frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Selection:
    """The context of one chunk for one video: sink frames, retrieved chunks and the local window."""

    sink: range  # static sink frames, kept forever
    retrieved: tuple[int, ...]  # chunk indices of memory-bank entries, oldest first (DySink only)
    local: range  # the most recent frames


def check_size(key: str, value: int, minimum: int = 0) -> None:
    """Raise a ValueError naming ``key`` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"sink.{key} must be an integer >= {minimum}, got {value!r}")


class SinkPolicy:
    """Keep the first ``sink_frames`` frames forever and the last ``window_frames`` frames.

    The subclasses name the common settings; ``top_k`` > 0 (DySink) adds retrieved memory-bank chunks, and
    the local window then grows by one chunk per entry that cannot be filled, so the context size is constant.
    """

    name: ClassVar[str] = "sink"
    top_k: int = 0

    def __init__(self, sink_frames: int, window_frames: int):
        check_size("sink_frames", sink_frames)
        check_size("window_frames", window_frames, minimum=1)
        self.sink_frames = sink_frames
        self.window_frames = window_frames

    def check(self, chunk_frames: int) -> None:
        """Raise if the policy cannot work with chunks of ``chunk_frames`` frames."""
        check_size("chunk_frames", chunk_frames, minimum=1)
        if self.window_frames < chunk_frames:
            raise ValueError(
                f"sink.window_frames={self.window_frames} is smaller than a chunk ({chunk_frames} frames): the "
                "chunk being generated could not see the previous one"
            )

    def max_local_frames(self, chunk_frames: int) -> int:
        """Largest local window ever used (the window after growing for every missing retrieved entry)."""
        return self.window_frames + self.top_k * chunk_frames

    def select(self, num_frames: int, chunk_frames: int, ranked: Sequence[int] = ()) -> Selection:
        """Context of the chunk that starts at frame ``num_frames``.

        ``ranked``: candidate chunk indices, best first (DySink's memory bank). Up to ``top_k`` are retrieved
        from those lying entirely between the sink and the local window. With ``m`` entries missing the window
        grows by ``m`` chunks; since growing can swallow a candidate, the smallest ``m`` for which enough
        candidates remain outside the grown window is used, which keeps retrieved and local frames disjoint.
        """
        sink = range(min(self.sink_frames, num_frames))
        missing = 0
        while True:  # ends by missing == top_k at the latest, where no candidate is needed
            local_start = max(len(sink), num_frames - self.window_frames - missing * chunk_frames)
            eligible = [c for c in ranked if c * chunk_frames >= self.sink_frames
                        and (c + 1) * chunk_frames <= local_start]
            if len(eligible) >= self.top_k - missing:
                retrieved = tuple(sorted(eligible[: self.top_k - missing]))
                return Selection(sink, retrieved, range(local_start, num_frames))
            missing += 1

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class WindowPolicy(SinkPolicy):
    """No sink: only the last ``window_frames`` frames (Self-Forcing++)."""

    name = "window"

    def __init__(self, window_frames: int):
        super().__init__(sink_frames=0, window_frames=window_frames)


class StaticSinkPolicy(SinkPolicy):
    """The first ``sink_frames`` frames stay forever, plus the last ``window_frames`` (LongLive: 3 + 9)."""

    name = "static"


class DeepSinkPolicy(StaticSinkPolicy):
    """Deep Forcing's deep sink (arXiv 2512.05081): a large static sink taking ``sink_fraction`` of a
    ``context_frames`` budget, rounded to whole chunks (half up), the rest being the local window.

    The default 0.5 of 21 frames in chunks of 3 gives 12 sink + 9 local frames.
    """

    name = "deep"

    def __init__(self, sink_fraction: float, context_frames: int, chunk_frames: int):
        if isinstance(sink_fraction, bool) or not isinstance(sink_fraction, (int, float)) \
                or not 0.0 <= sink_fraction <= 1.0:
            raise ValueError(f"sink.sink_fraction must be a number in [0, 1], got {sink_fraction!r}")
        check_size("context_frames", context_frames, minimum=1)
        check_size("chunk_frames", chunk_frames, minimum=1)
        sink = chunk_frames * math.floor(sink_fraction * context_frames / chunk_frames + 0.5)
        if context_frames - sink < chunk_frames:
            raise ValueError(
                f"sink.sink_fraction={sink_fraction} of sink.context_frames={context_frames} leaves a local "
                f"window of {context_frames - sink} frames, smaller than a chunk ({chunk_frames} frames)"
            )
        super().__init__(sink_frames=sink, window_frames=context_frames - sink)
        self.sink_fraction = sink_fraction
        self.context_frames = context_frames
