"""The procedural world as a video source: real frames with known ground truth, no model."""

from __future__ import annotations

from typing import Any

import numpy as np

from lolbench.generator import Chunk
from lolbench.world.world import ProceduralWorld


class WorldVideo:
    """A :class:`lolbench.generator.VideoGenerator` that streams a :class:`ProceduralWorld`.

    It is the reference the metrics are checked against: its video never collapses back to its first
    frames, and the prompt is a scene name. It has no attention, so ``probe=True`` still gives no probe.
    """

    name = "world"
    fps = ProceduralWorld.fps

    def __init__(self, size: int = 32, chunk_frames: int = 3) -> None:
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.size = size
        self.chunk_frames = chunk_frames
        self._world: ProceduralWorld | None = None
        self._next_frame = 0

    def reset(self, prompt: str, seed: int) -> None:
        """Start the world of scene ``prompt`` and ``seed`` at frame 0."""
        self._world = ProceduralWorld(prompt, seed, self.size)
        self._next_frame = 0

    def next_chunk(self, probe: bool = False) -> Chunk:
        """The next ``chunk_frames`` frames; positions are their absolute frame indices."""
        if self._world is None:
            raise RuntimeError("WorldVideo.next_chunk called before reset(prompt, seed)")
        first = self._next_frame
        self._next_frame += self.chunk_frames
        return Chunk(
            frames=self._world.frames(first, self.chunk_frames),
            first_frame=first,
            positions=np.arange(first, first + self.chunk_frames, dtype=np.int64),
        )

    def state_dict(self) -> dict[str, Any]:
        """The world is a pure function of the frame index: the next frame is the whole state."""
        return {"next_frame": self._next_frame}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._world is None:
            raise RuntimeError("WorldVideo.load_state_dict called before reset(prompt, seed)")
        self._next_frame = int(state["next_frame"])
