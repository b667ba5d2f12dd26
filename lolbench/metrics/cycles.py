"""Cycle detection: does the video repeat itself (not only the sink)?

Every frame is reduced to a small descriptor (area-averaged to ``size`` x ``size`` RGB on [0, 1], float32:
768 bytes a frame at the default size 8). Two measures:

- dominant period and strength from the autocorrelation of the descriptor sequence, computed through the
  variogram: rho(lag) = 1 - D(lag) / (2 var), with D(lag) the mean squared distance between descriptors ``lag``
  frames apart and var the mean squared distance of a descriptor from the mean descriptor. For a stationary
  video this is the ordinary autocorrelation, and D needs only per-lag sums. The period is the smallest lag
  whose local autocorrelation peak is within 90 % of the highest peak (multiples of a period peak too); the
  strength is rho there (1 = exact repetition, about 0 = no repetition; a period with low strength is noise).
- recurrence rate: frame t *recurs* if its nearest earlier frame at least ``exclude`` frames back is closer
  than ``ratio`` times the median distance from t to all those earlier frames. The threshold is relative to
  each frame's own typical distance, so it needs no scale and does not depend on the video size. Frames with
  fewer than ``exclude`` earlier candidates are not scored; the rate is recurring / scored frames.

Memory stays bounded on hour-long videos: the last ``horizon`` descriptors are kept at full rate (they also
serve the autocorrelation lags), older ones go to an archive of at most ``archive`` entries that keeps every
``stride``-th frame and doubles the stride (dropping every other entry) whenever it fills. Recurrence is
therefore exact within ``horizon + archive`` frames and uses a uniformly thinned past beyond.
"""

from __future__ import annotations

import cv2
import numpy as np

from lolbench.metrics.base import FrameMetric, Result, check_frames

PEAK_TOLERANCE = 0.9


def frame_descriptors(frames: np.ndarray, size: int = 8) -> np.ndarray:
    """uint8 [F, H, W, 3] -> float32 [F, size*size*3] area averages on [0, 1]."""
    frames = check_frames(frames)
    small = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames]
    return np.stack(small).reshape(len(frames), -1).astype(np.float32) / 255.0  # [F, size*size*3]


def distances_to(history: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Euclidean distances of descriptor ``x`` [D] to each row of ``history`` [N, D], in float32."""
    diffs = history - x  # [N, D]
    return np.sqrt(np.einsum("nd,nd->n", diffs, diffs))


def dominant_period(autocorrelation: np.ndarray, min_lag: int = 2) -> tuple[int, float] | None:
    """(lag, rho) of the dominant autocorrelation peak, or None without a positive local maximum from ``min_lag``."""
    rho = autocorrelation
    lags = np.arange(max(min_lag, 1), len(rho) - 1)
    peaks = lags[(rho[lags] >= rho[lags - 1]) & (rho[lags] > rho[lags + 1])]
    if len(peaks) == 0:
        return None
    best = rho[peaks].max()
    if best <= 0:
        return None
    lag = int(peaks[np.argmax(rho[peaks] >= PEAK_TOLERANCE * best)])  # smallest lag near the best peak
    return lag, float(rho[lag])


def _autocorrelation(lag_sums: np.ndarray, lag_counts: np.ndarray, total: np.ndarray, total_sq: float,
                     count: int) -> np.ndarray:
    """rho[lag] from per-lag squared-distance sums and the descriptors' first and second moments."""
    mean = total / count
    variance = total_sq / count - float(mean @ mean)  # mean squared distance from the mean descriptor
    rho = np.full(len(lag_sums), np.nan)
    seen = lag_counts > 0
    if variance <= 1e-12:
        rho[seen] = 1.0  # a frozen video repeats at every lag
    else:
        rho[seen] = 1.0 - lag_sums[seen] / lag_counts[seen] / (2.0 * variance)
    rho[0] = 1.0
    return rho


def lag_frames(fps: float, max_period_s: float, exclude_s: float) -> tuple[int, int]:
    """(longest lag, local window) in frames."""
    return max(2, round(max_period_s * fps)), max(1, round(exclude_s * fps))


def nearest_ratio(distances: np.ndarray) -> float:
    """Nearest / median candidate distance; 0 when most candidates are identical to the frame."""
    median = float(np.median(distances))
    return float(distances.min()) / median if median > 0 else 0.0


def _summary(rho: np.ndarray, scored: int, recurring: int, fps: float, exclude: int) -> Result:
    out: Result = {}
    measured = rho[np.isfinite(rho)]  # lags shorter than the video
    found = dominant_period(measured) if len(measured) > 3 else None
    if found is None:
        reason = f"unavailable: no positive autocorrelation peak within {len(measured) - 1} lags"
        out.update({"cycle_period": reason, "cycle_period_s": reason, "cycle_strength": reason})
    else:
        out.update({"cycle_period": found[0], "cycle_period_s": found[0] / fps, "cycle_strength": found[1]})
    out["recurrence_rate"] = (recurring / scored if scored else
                              f"unavailable: need more than {2 * exclude - 1} frames to score recurrence")
    return out


class CycleDetector(FrameMetric):
    """Streaming cycle detector. State: sums per lag, moments, and the bounded descriptor history."""

    name = "cycles"
    version = "1"
    higher_is_better = False  # repetition is a failure of long generation

    def __init__(self, fps: float = 16.0, size: int = 8, max_period_s: float = 30.0, exclude_s: float = 0.5,
                 ratio: float = 0.25, horizon_s: float = 60.0, archive: int = 4096) -> None:
        rules = [("fps", fps, fps > 0, "> 0"), ("size", size, size >= 1, ">= 1"),
                 ("max_period_s", max_period_s, max_period_s > 0, "> 0"),
                 ("exclude_s", exclude_s, exclude_s > 0, "> 0"), ("ratio", ratio, 0 < ratio < 1, "in (0, 1)"),
                 ("horizon_s", horizon_s, horizon_s >= max_period_s, f">= max_period_s ({max_period_s})"),
                 ("archive", archive, archive >= 2, ">= 2")]
        for key, value, ok, rule in rules:
            if not ok:
                raise ValueError(f"cycles.{key} must be {rule}, got {value}")
        self.fps = fps
        self.size = size
        self.max_lag, self.exclude = lag_frames(fps, max_period_s, exclude_s)
        self.ratio = ratio
        self.horizon = max(self.max_lag, round(horizon_s * fps))
        self.archive_size = archive
        self.reset()

    def reset(self) -> None:
        dim = self.size * self.size * 3
        self._count = 0
        self._total = np.zeros(dim)
        self._total_sq = 0.0
        self._lag_sums = np.zeros(self.max_lag + 1)
        self._lag_counts = np.zeros(self.max_lag + 1, dtype=np.int64)
        self._recent = np.zeros((self.horizon, dim), dtype=np.float32)  # ring buffer, slot = frame % horizon
        self._archive = np.zeros((self.archive_size, dim), dtype=np.float32)
        self._archive_frames = np.zeros(self.archive_size, dtype=np.int64)
        self._archived = 0
        self._stride = 1
        self._nearest_ratio: list[float] = []  # per frame: nearest / median distance (nan if not scored)

    def update(self, frames: np.ndarray) -> None:
        for descriptor in frame_descriptors(frames, self.size):
            self._add(descriptor)

    def _add(self, descriptor: np.ndarray) -> None:
        t = self._count
        x = descriptor.astype(np.float64)
        self._total += x
        self._total_sq += float(x @ x)
        lags = np.arange(1, min(t, self.max_lag) + 1)
        if len(lags):
            diffs = self._recent[(t - lags) % self.horizon].astype(np.float64) - x  # [lags, D]
            self._lag_sums[lags] += np.einsum("ld,ld->l", diffs, diffs)
            self._lag_counts[lags] += 1
        self._nearest_ratio.append(self._score(t, descriptor))
        if t >= self.horizon:
            self._to_archive(t - self.horizon, self._recent[t % self.horizon])
        self._recent[t % self.horizon] = descriptor
        self._count += 1

    def _score(self, t: int, x: np.ndarray) -> float:
        """nearest / median distance from frame t to its candidates (frames <= t - exclude); nan if too few."""
        newest = t - self.exclude  # newest candidate frame
        if newest + 1 < self.exclude:
            return float("nan")
        oldest_recent = max(0, t - self.horizon)
        recent = self._recent[np.arange(oldest_recent, newest + 1) % self.horizon]
        return nearest_ratio(np.concatenate([distances_to(self._archive[: self._archived], x),
                                             distances_to(recent, x)]))

    def _to_archive(self, frame: int, descriptor: np.ndarray) -> None:
        if frame % self._stride:
            return
        if self._archived == self.archive_size:  # full: keep every other entry, double the stride
            keep = np.flatnonzero(self._archive_frames % (2 * self._stride) == 0)
            self._archive[: len(keep)] = self._archive[keep]
            self._archive_frames[: len(keep)] = self._archive_frames[keep]
            self._archived = len(keep)
            self._stride *= 2
            if frame % self._stride:
                return
        self._archive[self._archived] = descriptor
        self._archive_frames[self._archived] = frame
        self._archived += 1

    def autocorrelation(self) -> np.ndarray:
        """rho[lag] for lags 0..max_lag (nan for lags longer than the video)."""
        if self._count == 0:
            return np.zeros(0)
        return _autocorrelation(self._lag_sums, self._lag_counts, self._total, self._total_sq, self._count)

    def compute(self) -> Result:
        ratios = np.asarray(self._nearest_ratio)
        scored = ratios[~np.isnan(ratios)]
        recurring = int(np.sum(scored <= self.ratio))
        return _summary(self.autocorrelation(), len(scored), recurring, self.fps, self.exclude)

    def curves(self) -> dict[str, np.ndarray]:
        return {"recurrence_nearest_ratio": np.asarray(self._nearest_ratio)}


def cycle_stats(frames: np.ndarray, fps: float = 16.0, size: int = 8, max_period_s: float = 30.0,
                exclude_s: float = 0.5, ratio: float = 0.25) -> Result:
    """Functional twin of CycleDetector on a whole video with its complete history (no archive thinning)."""
    x = frame_descriptors(frames, size)  # [F, D]
    wide = x.astype(np.float64)  # moments and lag sums are accumulated in float64
    count = len(x)
    max_lag, exclude = lag_frames(fps, max_period_s, exclude_s)
    lag_sums = np.zeros(max_lag + 1)
    lag_counts = np.zeros(max_lag + 1, dtype=np.int64)
    for lag in range(1, min(max_lag, count - 1) + 1):
        diffs = wide[lag:] - wide[:-lag]  # [F - lag, D]
        lag_sums[lag] = np.einsum("fd,fd->", diffs, diffs)
        lag_counts[lag] = count - lag
    rho = _autocorrelation(lag_sums, lag_counts, wide.sum(axis=0), float(np.einsum("fd,fd->", wide, wide)), count)
    scored = recurring = 0
    for t in range(2 * exclude - 1, count):
        scored += 1
        recurring += nearest_ratio(distances_to(x[: t - exclude + 1], x[t])) <= ratio
    return _summary(rho, scored, recurring, fps, exclude)
