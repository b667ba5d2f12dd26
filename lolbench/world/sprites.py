"""Moving sprites: objects that cross the view on straight paths, each with its own speed and direction.

A scene has ``sprite_count`` slots. Time is cut, per slot, into lives of ``L`` frames (staggered between
slots); in each life the slot's sprite enters from outside the view, crosses it on a straight line at a
constant speed and leaves. Every parameter of a life is a hash of (key, slot, life), so a sprite's state at
any frame t is computed directly. Paths are in screen coordinates (BASE_SIZE px); relative to the ground
a sprite therefore moves at its screen velocity plus the camera velocity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lolbench.world.hashing import hash_uniform
from lolbench.world.scenes import BASE_SIZE, SHAPES, SceneStyle

_TURN = 0.7  # exit direction deviates up to this many radians from straight across
_CENTER = BASE_SIZE / 2


@dataclass
class SpriteStates:
    """Where each slot's sprite is at each frame; all arrays [F, N] (N = slots) unless noted."""

    visible: np.ndarray  # bool
    x: np.ndarray  # centre, BASE_SIZE px from the view's left edge
    y: np.ndarray
    radius: np.ndarray
    shape: np.ndarray  # int, index into SHAPES
    color: np.ndarray  # [F, N, 3] float32
    velocity: np.ndarray  # [F, N, 2] screen velocity, px/frame


def _outer_radius(style: SceneStyle) -> float:
    """Radius of the circle on which paths start and end: far enough that a sprite there is out of view."""
    largest = max(s.radius for s in style.sprites) * 1.2
    return _CENTER * np.sqrt(2) + largest + 1.0


def life_length(style: SceneStyle) -> int:
    """Frames per life: long enough for the slowest sprite to cross the widest path."""
    return int(np.ceil(2 * _outer_radius(style) / style.sprite_speed[0]))


def sprite_states(key: int, style: SceneStyle, t: np.ndarray) -> SpriteStates:
    """States of all sprite slots at frame indices ``t`` [F]."""
    n = style.sprite_count
    life = life_length(style)
    outer = _outer_radius(style)
    slots = np.arange(n)[None, :]  # [1, N]
    clock = t.astype(np.float64)[:, None] + slots * (life / max(n, 1))  # [F, N] staggered slot clocks
    life_index = np.floor(clock / life).astype(np.int64)
    tau = clock - life_index * life  # time within the life, [0, life)

    u = [hash_uniform(key, slots, life_index, field) for field in range(6)]  # each [F, N]
    enter = 2 * np.pi * u[0]
    turn = np.pi + (2 * u[1] - 1) * _TURN
    leave = enter + turn
    lo, hi = style.sprite_speed
    speed = lo + (hi - lo) * u[2]
    duration = 2 * outer * np.sin(turn / 2) / speed  # chord length / speed <= life
    start = u[3] * (life - duration)
    progress = (tau - start) / duration
    kind = np.minimum((u[4] * len(style.sprites)).astype(np.int64), len(style.sprites) - 1)

    x0, y0 = _CENTER + outer * np.cos(enter), _CENTER + outer * np.sin(enter)
    x1, y1 = _CENTER + outer * np.cos(leave), _CENTER + outer * np.sin(leave)
    shape_of_kind = np.array([SHAPES.index(s.shape) for s in style.sprites])
    radius_of_kind = np.array([s.radius for s in style.sprites])
    color_of_kind = np.array([s.color for s in style.sprites], dtype=np.float32)
    return SpriteStates(
        visible=(progress >= 0) & (progress <= 1),
        x=x0 + (x1 - x0) * progress,
        y=y0 + (y1 - y0) * progress,
        radius=radius_of_kind[kind] * (0.8 + 0.4 * u[5]),
        shape=shape_of_kind[kind],
        color=color_of_kind[kind],
        velocity=np.stack([(x1 - x0) / duration, (y1 - y0) / duration], axis=-1),
    )


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a shape of outer radius ``r`` centred at the origin."""
    if shape == "disc":
        return np.hypot(dx, dy) - r
    if shape == "ring":
        return np.abs(np.hypot(dx, dy) - 0.65 * r) - 0.35 * r
    if shape == "diamond":
        return (np.abs(dx) + np.abs(dy) - r) / np.sqrt(2)
    # square with rounded corners: half side 0.7 r plus corner radius 0.3 r
    ax, ay = np.abs(dx) - 0.7 * r, np.abs(dy) - 0.7 * r
    return np.hypot(np.maximum(ax, 0), np.maximum(ay, 0)) + np.minimum(np.maximum(ax, ay), 0) - 0.3 * r


def draw_sprites(image: np.ndarray, states: SpriteStates) -> None:
    """Composite the visible sprites over ``image`` float32 [F, S, S, 3] in place, slot 0 at the back.

    Coverage is the signed distance in output pixels, clipped to [0, 1]: analytic anti-aliasing, so
    sub-pixel motion glides instead of shimmering.
    """
    size = image.shape[1]
    to_px = size / BASE_SIZE
    centers = (np.arange(size) + 0.5) / to_px  # pixel centres, BASE_SIZE px
    for slot in range(states.visible.shape[1]):
        for shape_id, shape in enumerate(SHAPES):
            (frames,) = np.nonzero(states.visible[:, slot] & (states.shape[:, slot] == shape_id))
            if len(frames) == 0:
                continue
            dx = centers[None, None, :] - states.x[frames, slot, None, None]  # [Fv, 1, S]
            dy = centers[None, :, None] - states.y[frames, slot, None, None]  # [Fv, S, 1]
            r = states.radius[frames, slot, None, None]
            alpha = np.clip(0.5 - _signed_distance(shape, dx, dy, r) * to_px, 0.0, 1.0)[..., None]  # [Fv, S, S, 1]
            color = states.color[frames, slot, None, None, :]  # [Fv, 1, 1, 3]
            image[frames] = image[frames] * (1 - alpha) + color * alpha
