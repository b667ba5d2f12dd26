"""Cycle detection on looping and non-repeating synthetic videos."""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.metrics.cycles import CycleDetector, cycle_stats, dominant_period

FPS = 16.0


def loop_video(period: int, frames: int, seed: int = 0) -> np.ndarray:
    """``period`` random frames played over and over."""
    cycle = np.random.default_rng(seed).integers(0, 256, (period, 32, 32, 3), dtype=np.uint8)
    return cycle[np.arange(frames) % period]


def moving_texture(frames: int, seed: int = 0, step: int = 3) -> np.ndarray:
    """A 32x32 window sliding over a long random strip: every frame shows texture not seen before."""
    strip = np.random.default_rng(seed).integers(0, 256, (32, 32 + step * frames, 3), dtype=np.uint8)
    return np.stack([strip[:, step * t: step * t + 32] for t in range(frames)])


def stream(metric: CycleDetector, video: np.ndarray, chunk: int) -> CycleDetector:
    for start in range(0, len(video), chunk):
        metric.update(video[start: start + chunk])
    return metric


def test_a_loop_has_its_period_and_recurs():
    result = cycle_stats(loop_video(12, 160), fps=FPS)
    assert result["cycle_period"] == 12
    assert result["cycle_period_s"] == pytest.approx(12 / FPS)
    assert result["cycle_strength"] == pytest.approx(1.0)
    assert result["recurrence_rate"] > 0.95


def test_a_non_repeating_video_does_not_recur():
    result = cycle_stats(moving_texture(160), fps=FPS)
    assert result["recurrence_rate"] < 0.05
    assert result["cycle_strength"] < 0.3


@pytest.mark.parametrize("chunk", [1, 3, 7])
@pytest.mark.parametrize("make", [lambda: loop_video(12, 100), lambda: moving_texture(100)])
def test_streaming_equals_batch(chunk, make):
    video = make()
    streamed = stream(CycleDetector(fps=FPS), video, chunk).compute()
    batch = cycle_stats(video, fps=FPS)
    assert streamed.keys() == batch.keys()
    for key in batch:
        assert streamed[key] == pytest.approx(batch[key], rel=1e-9), key


def test_memory_stays_bounded_and_a_loop_is_still_found():
    metric = stream(CycleDetector(fps=FPS, max_period_s=1.0, horizon_s=2.0, archive=16), loop_video(10, 900), 3)
    assert metric._archived <= 16  # descriptors beyond the 32-frame horizon
    assert metric._recent.shape[0] == 32
    assert metric._stride > 1  # the archive thinned itself
    result = metric.compute()
    assert result["cycle_period"] == 10
    assert result["recurrence_rate"] > 0.95
    assert len(metric.curves()["recurrence_nearest_ratio"]) == 900  # one scalar per frame


def test_dominant_period_prefers_the_fundamental_over_its_multiples():
    lags = np.arange(60)
    rho = np.cos(2 * np.pi * lags / 15) * np.where(lags % 15 == 0, 1.0, 0.5)
    rho[30] = 1.0  # a slightly higher peak at twice the period must not win
    assert dominant_period(rho)[0] == 15
    assert dominant_period(-np.abs(np.sin(lags / 5.0))) is None  # no positive peak


def test_short_video_says_why_recurrence_is_unavailable():
    result = cycle_stats(moving_texture(10), fps=FPS)
    assert str(result["recurrence_rate"]).startswith("unavailable: need more than 15 frames")


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="cycles.ratio"):
        CycleDetector(ratio=2.0)
    with pytest.raises(ValueError, match="cycles.horizon_s"):
        CycleDetector(max_period_s=30.0, horizon_s=10.0)
