"""Camera-motion fidelity and image statistics: known answers on the procedural world and on synthetic frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lolbench.metrics.motion import (
    MotionFidelity, best_shift, content_shift, contrast, motion_fidelity, saturation, sharpness, shift_error,
)
from lolbench.world import ProceduralWorld, get_scene


def still_world(frames: int = 24) -> tuple[np.ndarray, tuple[float, float]]:
    """A world with no sprites: the video is an exact 1-px camera pan over a still plane."""
    world = ProceduralWorld(dataclasses.replace(get_scene("meadow"), sprite_count=0), seed=3, size=32)
    velocity = tuple(float(v) for v in world.camera(1) - world.camera(0))
    return world.frames(0, frames), velocity


def test_exact_pan_has_zero_shift_error_and_a_frozen_video_does_not():
    frames, velocity = still_world()
    assert velocity == (1.0, 0.0)
    result, curves = motion_fidelity(frames, velocity)
    assert result["shift_error[rms]"] == 0.0 and result["pan_match[int]"] == 1.0
    assert np.isnan(curves["shift_error[rms]"][0]) and len(curves["shift_error[rms]"]) == len(frames)
    frozen = np.repeat(frames[:1], 12, axis=0)
    frozen_result, _ = motion_fidelity(frozen, velocity)
    assert frozen_result["shift_error[rms]"] > 0.03 and frozen_result["pan_match[int]"] == 0.0
    wrong_way, _ = motion_fidelity(frames[::-1].copy(), velocity)  # a pan in -x
    assert wrong_way["shift_error[rms]"] > 0.03 and wrong_way["pan_match[int]"] == 0.0


def test_world_with_sprites_pans_at_its_camera_velocity():
    world = ProceduralWorld("ocean", seed=0, size=32)
    result, _ = motion_fidelity(world.frames(0, 48), (1.0, 0.0))
    frozen, _ = motion_fidelity(np.repeat(world.frames(0, 1), 12, axis=0), (1.0, 0.0))
    assert result["pan_match[int]"] == 1.0  # sprites move on their own, the ground pans exactly
    assert result["shift_error[rms]"] < frozen["shift_error[rms]"]  # sprites keep it above 0


def test_shift_error_known_answer_and_shift_search():
    prev = np.zeros((4, 6, 3), np.uint8)
    prev[:, 2] = 255  # one white column at x = 2
    moved = np.roll(prev, -1, axis=1)  # content moved to x = 1
    assert shift_error(prev, moved, (-1, 0)) == 0.0
    # unshifted: columns 1 and 2 differ fully in 2 of 6 columns -> RMS = sqrt(2 / 6)
    assert shift_error(prev, moved, (0, 0)) == pytest.approx(np.sqrt(2 / 6))
    assert best_shift(prev, moved, max_shift=2) == (-1, 0)
    flat = np.full((4, 6, 3), 90, np.uint8)
    assert best_shift(flat, flat, max_shift=2) == (0, 0)  # ties go to no motion
    assert content_shift((1.0, 0.0), 32) == (-1, 0) and content_shift((0.0, -2.0), 32) == (0, 2)
    with pytest.raises(ValueError, match="whole pixels per frame"):
        content_shift((0.5, 0.0), 32)
    with pytest.raises(ValueError, match="max_shift"):
        MotionFidelity((3.0, 0.0), max_shift=2).update(np.zeros((2, 8, 8, 3), np.uint8))


def test_image_statistics_known_answers():
    black_white = np.zeros((1, 4, 4, 3), np.uint8)
    black_white[0, :, 2:] = 255
    assert contrast(black_white)[0] == pytest.approx(0.5)
    # forward differences over the 3x3 top-left block: one column of unit steps out of three
    assert sharpness(black_white)[0] == pytest.approx(1 / 3)
    red = np.zeros((1, 2, 2, 3), np.uint8)
    red[..., 0] = 200
    grey = np.full((1, 2, 2, 3), 77, np.uint8)
    assert saturation(red)[0] == 1.0 and saturation(grey)[0] == 0.0 and saturation(grey * 0)[0] == 0.0
    assert contrast(grey)[0] == pytest.approx(0.0, abs=1e-12) and sharpness(grey)[0] == 0.0


def test_streaming_equals_functional_for_any_chunking():
    world = ProceduralWorld("city", seed=1, size=32)
    frames = world.frames(0, 20)
    expected, expected_curves = motion_fidelity(frames, (1.0, 0.0))
    metric = MotionFidelity((1.0, 0.0))
    for start, stop in ((0, 1), (1, 4), (4, 11), (11, 11), (11, 20)):
        metric.update(frames[start:stop])
    assert metric.compute() == pytest.approx(expected)
    for name, values in metric.curves().items():
        np.testing.assert_allclose(values, expected_curves[name], equal_nan=True)
    metric.reset()
    metric.update(frames[:1])
    assert metric.compute()["shift_error[rms]"].startswith("unavailable")
