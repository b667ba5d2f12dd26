"""The ground: multi-octave lattice noise over the unbounded world plane, mapped through a scene palette.

Lattice values come from :mod:`lolbench.world.hashing`, so the plane is endless and seeded. Interpolation
is separable, so one frame is ``Wy @ lattice @ Wx.T`` with small per-axis weight matrices; each matrix
averages ``SUPERSAMPLE`` sub-pixel samples per output pixel, which box-filters the ground (anti-aliasing)
at the cost of 1-D work only. Rendering cost is therefore a few tiny matmuls per frame and octave.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

from lolbench.world.hashing import derive_key, hash_uniform
from lolbench.world.scenes import BASE_SIZE, RGB, Octave

SUPERSAMPLE = 4  # sub-samples per pixel and axis
LUT_SIZE = 1024  # palette lookup entries over z in [-Z_RANGE, Z_RANGE]
Z_RANGE = 3.5

# Standard deviation of one octave's (lattice value - 0.5): uniform values have variance 1/12. The cubic
# B-spline averages neighbours, which scales the variance by sum(w_i^2) per axis, 151/315 on average over
# positions; over two axes the std therefore shrinks by about 151/315.
_OCTAVE_STD = {"smooth": np.sqrt(1 / 12) * (151 / 315), "box": np.sqrt(1 / 12)}


def _bspline_weights(t: np.ndarray) -> np.ndarray:
    """Cubic B-spline weights of lattice points at offsets -1, 0, 1, 2 for fractional position t: [4, *t.shape]."""
    t2, t3 = t * t, t * t * t
    return np.stack([(1 - t) ** 3, 3 * t3 - 6 * t2 + 4, -3 * t3 + 3 * t2 + 3 * t + 1, t3]) / 6.0


def axis_weights(origin: np.ndarray, size: int, cell: float, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """Weights of each output pixel on the lattice points along one axis, box-filtered over the pixel.

    ``origin`` [F] is the view's left (or top) edge in BASE_SIZE pixels. Returns ``first`` [F], the
    lattice index of column 0 of ``W``, and ``W`` [F, size, n], whose rows sum to 1.
    """
    frames = len(origin)
    pixel = BASE_SIZE / size
    sub = (np.arange(size)[:, None] + (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE) * pixel  # [S, K]
    u = (origin[:, None, None] + sub[None]) / cell  # [F, S, K] lattice coordinates
    cell_index = np.floor(u)
    t = u - cell_index
    first = np.floor(origin / cell).astype(np.int64) - 1  # lowest index a B-spline tap can reach
    n = int(np.ceil(BASE_SIZE / cell)) + 4
    local = cell_index.astype(np.int64) - first[:, None, None]  # [F, S, K], in [1, n - 3]
    if kernel == "smooth":
        offsets, weights = np.arange(-1, 3), _bspline_weights(t)  # weights [4, F, S, K]
    else:
        offsets, weights = np.zeros(1, dtype=np.int64), np.ones((1, *t.shape))
    row = (np.arange(frames)[:, None, None] * size + np.arange(size)[None, :, None]) * n  # [F, S, 1]
    index = row[None] + local[None] + offsets[:, None, None, None]  # [taps, F, S, K]
    w = np.bincount(index.ravel(), weights=weights.ravel() / SUPERSAMPLE, minlength=frames * size * n)
    return first, w.reshape(frames, size, n)


def octave_noise(key: int, camera: np.ndarray, size: int, octave: Octave) -> np.ndarray:
    """Zero-mean lattice noise of one octave seen by views at ``camera`` [F, 2] (BASE_SIZE px): [F, S, S]."""
    first_x, wx = axis_weights(camera[:, 0], size, octave.cell, octave.kernel)
    first_y, wy = axis_weights(camera[:, 1], size, octave.cell, octave.kernel)
    steps = np.arange(wx.shape[2])
    ix = first_x[:, None, None] + steps[None, None, :]  # [F, 1, n]
    iy = first_y[:, None, None] + steps[None, :, None]  # [F, n, 1]
    lattice = hash_uniform(key, ix, iy) - 0.5  # [F, n, n] (rows = y)
    return wy @ lattice @ wx.transpose(0, 2, 1)  # [F, S, S]


def palette_lut(palette: Sequence[RGB], blend: float) -> np.ndarray:
    """Colour for each of LUT_SIZE z-values in [-Z_RANGE, Z_RANGE]: float32 [LUT_SIZE, 3].

    z is mapped to a uniform u by the normal CDF so every colour covers a similar share of the ground;
    each colour holds a flat band and blends into the next over ``blend`` of the band (smoothstep).
    """
    colors = np.asarray(palette, dtype=np.float64)  # [C, 3]
    u = ndtr(np.linspace(-Z_RANGE, Z_RANGE, LUT_SIZE))
    x = u * len(colors) - 0.5  # colour i is centred at x = i
    lower = np.clip(np.floor(x), 0, len(colors) - 2).astype(np.int64)
    s = np.clip((x - lower - 0.5) / blend + 0.5, 0.0, 1.0)
    w = (s * s * (3 - 2 * s))[:, None]
    return (colors[lower] * (1 - w) + colors[lower + 1] * w).astype(np.float32)


def ground(key: int, octaves: Sequence[Octave], lut: np.ndarray, camera: np.ndarray, size: int) -> np.ndarray:
    """Ground colours of views at ``camera`` [F, 2]: float32 [F, S, S, 3] in 0..255."""
    total = sum(octave_noise(derive_key(key, i), camera, size, o) * o.weight for i, o in enumerate(octaves))
    std = np.sqrt(sum((o.weight * _OCTAVE_STD[o.kernel]) ** 2 for o in octaves))
    index = np.rint((total / std + Z_RANGE) * ((LUT_SIZE - 1) / (2 * Z_RANGE)))
    return lut[np.clip(index, 0, LUT_SIZE - 1).astype(np.intp)]
