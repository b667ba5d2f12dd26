"""Scene styles: the "prompts" of the procedural world.

Each style is data only: a ground palette, the noise octaves that shape the ground, the camera pan and the
sprites that move over it. Lengths are in pixels of the 32x32 reference frame (``BASE_SIZE``); other render
sizes scale everything, so a scene shows the same content at 32, 64 or 128 pixels.

Choices that keep the world learnable by a tiny CPU-trained model and measurable by the metrics:
saturated palettes that differ between scenes, ground features of 4-12 px, and one steady pan of exactly
1 px/frame in the same direction for every scene (design.md section 5: with many pan directions a tiny
model learned to ignore its context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BASE_SIZE = 32  # reference frame size in pixels; all lengths below are in its pixels

RGB = tuple[int, int, int]
Kernel = Literal["smooth", "box"]
Shape = Literal["disc", "square", "diamond", "ring"]
KERNELS: tuple[str, ...] = ("smooth", "box")
SHAPES: tuple[str, ...] = ("disc", "square", "diamond", "ring")


def _check_rgb(color: RGB, owner: str) -> None:
    if len(color) != 3 or not all(0 <= c <= 255 for c in color):
        raise ValueError(f"{owner}: colours must be 3 channels in 0..255, got {color}")


@dataclass(frozen=True)
class Octave:
    """One layer of lattice noise: ``smooth`` = cubic B-spline (rolling terrain), ``box`` = flat cells (blocks)."""

    cell: float  # lattice spacing, px at BASE_SIZE
    weight: float
    kernel: Kernel = "smooth"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"octave kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.cell <= 0 or self.weight <= 0:
            raise ValueError(f"octave cell and weight must be positive, got cell={self.cell}, weight={self.weight}")


@dataclass(frozen=True)
class Sprite:
    """A kind of moving object."""

    shape: Shape
    color: RGB
    radius: float  # px at BASE_SIZE; each appearance varies it by +-20%

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"sprite shape must be one of {SHAPES}, got {self.shape!r}")
        _check_rgb(self.color, f"{self.shape} sprite")
        if self.radius <= 0:
            raise ValueError(f"sprite radius must be positive, got {self.radius}")


@dataclass(frozen=True)
class SceneStyle:
    """Everything that distinguishes one scene from another."""

    name: str
    palette: tuple[RGB, ...]  # ground colours from low to high noise value
    octaves: tuple[Octave, ...]
    sprites: tuple[Sprite, ...]
    sprite_count: int  # sprites in flight at once (at most)
    sprite_speed: tuple[float, float]  # (min, max) px/frame on screen
    camera_velocity: tuple[float, float] = (1.0, 0.0)  # (x, y) px/frame
    blend: float = 0.5  # fraction of each palette band spent blending into the next (small = hard edges)

    def __post_init__(self) -> None:
        if len(self.palette) < 2:
            raise ValueError(f"scene {self.name!r}: palette needs at least 2 colours, got {len(self.palette)}")
        for color in self.palette:
            _check_rgb(color, f"scene {self.name!r} palette")
        if not self.octaves:
            raise ValueError(f"scene {self.name!r}: needs at least one octave")
        if self.sprite_count < 0:
            raise ValueError(f"scene {self.name!r}: sprite_count must be >= 0, got {self.sprite_count}")
        if self.sprite_count > 0 and not self.sprites:
            raise ValueError(f"scene {self.name!r}: sprite_count={self.sprite_count} but no sprites")
        lo, hi = self.sprite_speed
        if not 0 < lo <= hi:
            raise ValueError(f"scene {self.name!r}: sprite_speed must satisfy 0 < min <= max, got {self.sprite_speed}")
        if not 0 < self.blend <= 1:
            raise ValueError(f"scene {self.name!r}: blend must be in (0, 1], got {self.blend}")


SCENES: dict[str, SceneStyle] = {
    style.name: style
    for style in (
        SceneStyle(
            name="meadow",
            palette=((28, 92, 30), (64, 160, 48), (150, 206, 62), (236, 214, 60)),
            octaves=(Octave(8.0, 1.0), Octave(4.0, 0.4)),
            sprites=(Sprite("disc", (246, 246, 238), 3.0), Sprite("disc", (120, 72, 36), 2.5)),
            sprite_count=3,
            sprite_speed=(0.3, 0.8),
        ),
        SceneStyle(
            name="desert",
            palette=((176, 104, 44), (222, 160, 82), (244, 206, 134), (252, 236, 196)),
            octaves=(Octave(10.0, 1.0), Octave(5.0, 0.4)),
            sprites=(Sprite("ring", (96, 60, 28), 3.0), Sprite("diamond", (64, 64, 72), 2.5)),
            sprite_count=2,
            sprite_speed=(0.3, 0.7),
        ),
        SceneStyle(
            name="ocean",
            palette=((8, 34, 110), (18, 78, 178), (40, 140, 222), (130, 214, 242)),
            octaves=(Octave(9.0, 1.0), Octave(4.0, 0.4)),
            sprites=(Sprite("square", (250, 250, 250), 3.0), Sprite("diamond", (250, 128, 30), 2.5)),
            sprite_count=3,
            sprite_speed=(0.4, 0.9),
        ),
        SceneStyle(
            name="city",
            palette=((44, 44, 54), (118, 118, 130), (200, 62, 50), (232, 230, 218)),
            octaves=(Octave(8.0, 1.0, "box"), Octave(16.0, 0.7, "box")),
            sprites=(Sprite("square", (236, 204, 24), 2.5), Sprite("square", (30, 120, 232), 2.5)),
            sprite_count=4,
            sprite_speed=(0.5, 1.0),
            blend=0.2,
        ),
        SceneStyle(
            name="lava",
            palette=((24, 6, 6), (140, 22, 10), (240, 84, 12), (255, 204, 44)),
            octaves=(Octave(8.0, 1.0), Octave(4.0, 0.3)),
            sprites=(Sprite("disc", (255, 250, 184), 3.0), Sprite("diamond", (112, 108, 104), 3.0)),
            sprite_count=3,
            sprite_speed=(0.3, 0.7),
        ),
    )
}


def get_scene(name: str) -> SceneStyle:
    """The style called ``name``; a ValueError lists the known scenes otherwise."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; known scenes: {sorted(SCENES)}")
    return SCENES[name]
