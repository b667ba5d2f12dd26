"""Camera-motion fidelity and image statistics of a video whose true camera motion is known.

Every scene of the procedural world pans at an integer, known velocity (lolbench.world: +1 px/frame in x), so
a faithful video of it satisfies frame[t+1](p + s) = frame[t](p) on the ground, with s = -velocity the shift
of the image content. This module measures, per frame:

- shift error: RMS difference of [0, 1] pixels between frame t and frame t-1 displaced by s, over the columns
  and rows the two frames share. Exactly 0 for a camera pan over a still world; moving sprites and generation
  errors raise it. A frozen video scores the error of a pan that did not happen.
- pan match: 1 if s is the integer shift within ``max_shift`` px that best aligns frame t-1 with frame t
  (by mean absolute difference; ties go to no motion, so a flat or frozen frame does not count as panning),
  else 0.
- sharpness: mean gradient magnitude of the grey image in [0, 1] units per pixel (forward differences).
- contrast: standard deviation of all [0, 1] pixel values of the frame (all channels).
- saturation: mean HSV saturation (max - min) / max over pixels, 0 for black pixels.

Pair statistics belong to the later frame of the pair; frame 0 has none (NaN in the curves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from lolbench.metrics.base import FrameMetric, Result, check_frames

# result key -> tag naming how it is measured
TAGS = {"shift_error": "rms", "pan_match": "int", "sharpness": "grad", "contrast": "std", "saturation": "hsv"}


def content_shift(camera_velocity: Sequence[float], size: int) -> tuple[int, int]:
    """The per-frame shift (dx, dy) of the image content for a camera moving at ``camera_velocity`` px/frame.

    Only integer velocities smaller than the frame can be compensated without resampling; others are errors.
    """
    velocity = np.asarray(camera_velocity, dtype=np.float64)
    if velocity.shape != (2,) or not np.all(np.isfinite(velocity)):
        raise ValueError(f"camera_velocity must be (vx, vy), got {camera_velocity!r}")
    if not np.all(velocity == np.round(velocity)) or np.any(np.abs(velocity) >= size):
        raise ValueError(f"camera_velocity={tuple(velocity)} must be whole pixels per frame and smaller than the "
                         f"{size}-pixel frame")
    dx, dy = (-int(v) for v in velocity)
    return dx, dy


def _overlap(prev: np.ndarray, nxt: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``prev`` and ``nxt`` ([H, W, C]) that show the same content if it moved by (dx, dy)."""
    height, width = prev.shape[:2]
    return (prev[max(0, -dy): height - max(0, dy), max(0, -dx): width - max(0, dx)],
            nxt[max(0, dy): height + min(0, dy), max(0, dx): width + min(0, dx)])


def shift_error(prev: np.ndarray, nxt: np.ndarray, shift: tuple[int, int]) -> float:
    """RMS difference of [0, 1] pixels between ``nxt`` and ``prev`` displaced by ``shift`` = (dx, dy).

    prev, nxt: uint8 [H, W, 3]. Only the rows and columns both frames show enter the mean."""
    a, b = _overlap(prev, nxt, *shift)
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.sqrt(np.mean(diff * diff))) / 255.0


def _mean_abs_error(prev: np.ndarray, nxt: np.ndarray, shift: tuple[int, int]) -> float:
    a, b = _overlap(prev, nxt, *shift)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def best_shift(prev: np.ndarray, nxt: np.ndarray, max_shift: int) -> tuple[int, int]:
    """The integer shift within ``max_shift`` px that best aligns ``prev`` with ``nxt``.

    Judged by the mean absolute difference, which lets a few independently moving objects (the world's
    sprites) count linearly: by RMS their large squared errors can outvote a smooth ground. Ties go to (0, 0),
    then to the smaller shift.
    """
    steps = range(-max_shift, max_shift + 1)
    candidates = sorted(((dx, dy) for dx in steps for dy in steps), key=lambda s: (abs(s[0]) + abs(s[1]), s))
    errors = [_mean_abs_error(prev, nxt, s) for s in candidates]
    return candidates[int(np.argmin(errors))]


def sharpness(frames: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude of the grey image per frame: uint8 [F, H, W, 3] -> [F]."""
    grey = check_frames(frames).astype(np.float64).mean(axis=3) / 255.0  # [F, H, W]
    gx = np.diff(grey, axis=2)[:, :-1, :]  # [F, H-1, W-1]
    gy = np.diff(grey, axis=1)[:, :, :-1]  # [F, H-1, W-1]
    return np.sqrt(gx * gx + gy * gy).mean(axis=(1, 2))


def contrast(frames: np.ndarray) -> np.ndarray:
    """Standard deviation of the [0, 1] pixel values of each frame: [F, H, W, 3] -> [F]."""
    return (check_frames(frames).astype(np.float64) / 255.0).std(axis=(1, 2, 3))


def saturation(frames: np.ndarray) -> np.ndarray:
    """Mean HSV saturation per frame: [F, H, W, 3] -> [F]."""
    values = check_frames(frames).astype(np.float64)
    high, low = values.max(axis=3), values.min(axis=3)  # [F, H, W]
    return np.where(high > 0, (high - low) / np.maximum(high, 1.0), 0.0).mean(axis=(1, 2))


def _check_max_shift(max_shift: int, shift: tuple[int, int]) -> None:
    if max_shift < max(abs(shift[0]), abs(shift[1]), 1):
        raise ValueError(f"max_shift must be >= 1 and cover the true shift {shift}, got {max_shift}")


def _summarize(curves: dict[str, np.ndarray]) -> Result:
    out: Result = {}
    for key, tag in TAGS.items():
        values = curves[f"{key}[{tag}]"]
        values = values[np.isfinite(values)]
        out[f"{key}[{tag}]"] = float(values.mean()) if len(values) else "unavailable: needs at least 2 frames"
    return out


class MotionFidelity(FrameMetric):
    """Streaming shift error, pan match, sharpness, contrast and saturation. State: the last frame and five
    floats per frame."""

    name: ClassVar[str] = "motion_fidelity"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool | None] = None  # per key: a lower shift error and a higher pan match are better

    def __init__(self, camera_velocity: Sequence[float] = (1.0, 0.0), max_shift: int = 2) -> None:
        self.camera_velocity = tuple(float(v) for v in camera_velocity)
        self.max_shift = max_shift
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._shift: tuple[int, int] | None = None
        self._values: dict[str, list[float]] = {key: [] for key in TAGS}

    def update(self, frames: np.ndarray) -> None:
        frames = check_frames(frames)
        if len(frames) == 0:
            return
        if self._shift is None:
            self._shift = content_shift(self.camera_velocity, min(frames.shape[1:3]))
            _check_max_shift(self.max_shift, self._shift)
        for key, values in (("sharpness", sharpness(frames)), ("contrast", contrast(frames)),
                            ("saturation", saturation(frames))):
            self._values[key].extend(values.tolist())
        for frame in frames:
            if self._prev is None:
                error, match = float("nan"), float("nan")
            else:
                error = shift_error(self._prev, frame, self._shift)
                match = float(best_shift(self._prev, frame, self.max_shift) == self._shift)
            self._values["shift_error"].append(error)
            self._values["pan_match"].append(match)
            self._prev = frame.copy()

    def curves(self) -> dict[str, np.ndarray]:
        return {f"{key}[{tag}]": np.array(self._values[key], dtype=np.float64) for key, tag in TAGS.items()}

    def compute(self) -> Result:
        return _summarize(self.curves())


def motion_fidelity(frames: np.ndarray, camera_velocity: Sequence[float] = (1.0, 0.0), max_shift: int = 2
                    ) -> tuple[Result, dict[str, np.ndarray]]:
    """Functional twin of MotionFidelity on a whole video: (result, per-frame curves)."""
    frames = check_frames(frames)
    shift = content_shift(camera_velocity, min(frames.shape[1:3]))
    _check_max_shift(max_shift, shift)
    pairs = list(zip(frames[:-1], frames[1:]))
    curves = {
        "shift_error[rms]": np.array([np.nan] + [shift_error(a, b, shift) for a, b in pairs])[: len(frames)],
        "pan_match[int]": np.array([np.nan] + [float(best_shift(a, b, max_shift) == shift) for a, b in pairs]
                                   )[: len(frames)],
        "sharpness[grad]": sharpness(frames),
        "contrast[std]": contrast(frames),
        "saturation[hsv]": saturation(frames),
    }
    return _summarize(curves), curves
