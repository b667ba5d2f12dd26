"""The procedural world: an endless, deterministic video of a camera panning over a seeded 2D plane.

Frame t is a pure function of (scene, seed, size, t): ground noise from hashed lattice values under a
camera at ``t * camera_velocity``, plus sprites whose paths are hashed per life. Any clip can be rendered
directly at any offset (random access), which is what training on random clips needs, and nothing repeats
because the camera never comes back and the lattice is unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lolbench.world.hashing import derive_key
from lolbench.world.scenes import BASE_SIZE, SceneStyle, get_scene
from lolbench.world.sprites import draw_sprites, sprite_states
from lolbench.world.texture import ground, palette_lut

_PIXELS_PER_BLOCK = 1 << 21  # frames are rendered in blocks of about this many pixels to bound memory
MAX_CLIP_START = 1_000_000  # random clips start in [0, MAX_CLIP_START)


class ProceduralWorld:
    """One seeded world of one scene style, rendered at ``size`` x ``size`` pixels."""

    fps: float = 16.0

    def __init__(self, scene: str | SceneStyle, seed: int, size: int = 32) -> None:
        """``scene`` names one of SCENES or is a custom SceneStyle (its name seeds the hashes)."""
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.style: SceneStyle = scene if isinstance(scene, SceneStyle) else get_scene(scene)
        self.seed = int(seed)
        self.size = int(size)
        self._ground_key = derive_key("ground", self.style.name, self.seed)
        self._sprite_key = derive_key("sprites", self.style.name, self.seed)
        self._lut = palette_lut(self.style.palette, self.style.blend)

    def camera(self, t: np.ndarray | int) -> np.ndarray:
        """World position (x, y) of the view's top-left corner at frame(s) ``t``, in pixels at ``size``: [..., 2].

        Frame t shows the world square [x, x + size) x [y, y + size); the camera moves by
        ``camera_velocity * size / BASE_SIZE`` pixels per frame, so image content moves the opposite way.
        """
        velocity = np.asarray(self.style.camera_velocity, dtype=np.float64)
        return np.asarray(t, dtype=np.float64)[..., None] * velocity * (self.size / BASE_SIZE)

    def frames(self, start: int, count: int) -> np.ndarray:
        """Frames ``start .. start + count - 1``: uint8 [count, size, size, 3]."""
        if start < 0 or count < 0:
            raise ValueError(f"start and count must be >= 0, got start={start}, count={count}")
        out = np.empty((count, self.size, self.size, 3), dtype=np.uint8)
        block = max(1, _PIXELS_PER_BLOCK // (self.size * self.size))
        for begin in range(0, count, block):
            t = np.arange(start + begin, start + min(begin + block, count), dtype=np.int64)
            out[begin : begin + len(t)] = self._render(t)
        return out

    def _render(self, t: np.ndarray) -> np.ndarray:
        camera = self.camera(t) * (BASE_SIZE / self.size)  # [F, 2] in BASE_SIZE px
        image = ground(self._ground_key, self.style.octaves, self._lut, camera, self.size)  # [F, S, S, 3]
        if self.style.sprite_count:
            draw_sprites(image, sprite_states(self._sprite_key, self.style, t))
        return np.rint(image).astype(np.uint8)


def sample_clips(
    scenes: Sequence[str], batch: int, frames: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random training clips: each from a random scene of ``scenes``, a random seed and a random start frame.

    Returns the clips, uint8 [B, F, H, W, 3], and each clip's scene as an index into ``scenes``, int64 [B].
    """
    if not scenes:
        raise ValueError("scenes must name at least one scene")
    for name in scenes:
        get_scene(name)
    scene_ids = rng.integers(len(scenes), size=batch)
    seeds = rng.integers(2**31, size=batch)
    starts = rng.integers(MAX_CLIP_START, size=batch)
    clips = np.empty((batch, frames, size, size, 3), dtype=np.uint8)
    for b, (i, seed, start) in enumerate(zip(scene_ids, seeds, starts)):
        clips[b] = ProceduralWorld(scenes[i], int(seed), size).frames(int(start), frames)
    return clips, scene_ids.astype(np.int64)
