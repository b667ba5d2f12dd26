"""Seeded 64-bit integer hashing: the only source of randomness in the procedural world.

Every random quantity (a lattice value, a sprite's path) is a pure function of (key, integer coordinates),
so any frame can be rendered directly without simulating the frames before it, and nothing repeats until
the 64-bit coordinates wrap. The mixer is the splitmix64 finalizer (a bijection with full avalanche).
"""

from __future__ import annotations

import zlib

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _mix_int(x: int) -> int:
    """splitmix64 finalizer on a Python int (for keys, computed once)."""
    x &= _MASK
    x = ((x ^ (x >> 30)) * _M1) & _MASK
    x = ((x ^ (x >> 27)) * _M2) & _MASK
    return x ^ (x >> 31)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array (wraps silently, unlike numpy scalars)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(_M1)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(_M2)
    return x ^ (x >> np.uint64(31))


def derive_key(*parts: int | str) -> int:
    """Chain integers and strings into one 64-bit key; strings via CRC32 (Python's hash() is salted)."""
    key = 0
    for part in parts:
        value = zlib.crc32(part.encode()) if isinstance(part, str) else int(part)
        key = _mix_int((key ^ (value & _MASK)) + _GOLDEN)
    return key


def hash_u64(key: int, *coords: np.ndarray | int) -> np.ndarray:
    """Hash integer coordinate arrays (broadcast together) under ``key``: uint64 array of their shape."""
    arrays = np.broadcast_arrays(*[np.asarray(c, dtype=np.int64) for c in coords])
    shape = arrays[0].shape if arrays else ()
    h = np.full(shape, key & _MASK, dtype=np.uint64).reshape(-1)  # 1-D keeps numpy in wrapping array math
    for c in arrays:
        h = _mix((h ^ c.reshape(-1).view(np.uint64)) + np.uint64(_GOLDEN))
    return h.reshape(shape)


def hash_uniform(key: int, *coords: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1) from :func:`hash_u64` (the top 53 bits)."""
    return (hash_u64(key, *coords) >> np.uint64(11)).astype(np.float64) * 2.0**-53
