"""Sink policies: which past frames a new chunk may attend to.

A policy is a small immutable rule in the style of StreamingLLM's start+recent cache: all parameters in the
constructor, no storage. ``select`` says which frames form the context of the next chunk; the KV cache
(lolbench.cache.kv) owns the buffers and asks the policy once per chunk. A policy that also keeps past chunks
beyond its sink and window (DySink) hands the cache a ``ChunkMemory`` (lolbench.cache.memory). Sizes are in frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch

    from lolbench.cache.memory import ChunkMemory


@dataclass(frozen=True)
class Selection:
    """The context of one chunk for one video: sink frames, retrieved chunks and the local window."""

    sink: range  # static sink frames, kept forever
    local: range  # the most recent frames
    retrieved: tuple[int, ...] = ()  # chunk indices of retrieved memory entries, oldest first (DySink only)


def check_size(key: str, value: int, minimum: int = 0) -> None:
    """Raise a ValueError naming ``key`` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"sink.{key} must be an integer >= {minimum}, got {value!r}")


class SinkPolicy:
    """Keep the first ``sink_frames`` frames forever and the last ``window_frames`` frames.

    The subclasses name the common settings.
    """

    name: ClassVar[str] = "sink"

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
        """Largest local window ever used (a policy whose window can grow says so here)."""
        return self.window_frames

    def select(self, num_frames: int, chunk_frames: int) -> Selection:
        """Context of the chunk that starts at frame ``num_frames``: the sink and the last ``window_frames``."""
        sink = range(min(self.sink_frames, num_frames))
        return Selection(sink, range(max(len(sink), num_frames - self.window_frames), num_frames))

    def memory(self, batch: int, chunk_frames: int, tokens_per_frame: int, channels: int,
               device: torch.device) -> ChunkMemory | None:
        """The chunk memory this policy keeps beyond its sink and window; None: nothing beyond them.

        ``channels``: channels of the chunks the cache's ``end_chunk`` receives (pixels 3, Wan latents 16)."""
        return None

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
