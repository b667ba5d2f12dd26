"""VBench's rules as the README states them, at their boundaries; every expected value is computed here."""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.metrics.clips import clip_spans
from lolbench.metrics.dynamic import clip_is_dynamic, required_pairs
from lolbench.metrics.quality import consistency_terms, flicker_terms, quality_score

# VBench's (min, max) per dimension and the weights (dynamic degree 0.5, the rest 1; sum 6.5), typed in from
# VBench's documentation rather than read from lolbench
RANGES = {"subject_consistency": (0.1462, 1.0), "background_consistency": (0.2615, 1.0),
          "temporal_flickering": (0.6293, 1.0), "motion_smoothness": (0.706, 0.9975), "dynamic_degree": (0.0, 1.0),
          "aesthetic_quality": (0.0, 1.0), "imaging_quality": (0.0, 1.0)}
VALUES = {"subject_consistency": 0.95, "background_consistency": 0.93, "temporal_flickering": 0.97,
          "motion_smoothness": 0.98, "dynamic_degree": 0.4, "aesthetic_quality": 0.55, "imaging_quality": 0.6}


def test_quality_score_is_the_weighted_normalized_sum_over_6_5():
    expected = sum((0.5 if dim == "dynamic_degree" else 1.0) * (VALUES[dim] - low) / (high - low)
                   for dim, (low, high) in RANGES.items()) / 6.5
    assert quality_score(VALUES) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("end", "score"), [(0, 0.0), (1, 1.0)])
def test_quality_score_is_0_at_every_minimum_and_1_at_every_maximum(end, score):
    assert quality_score({dim: bounds[end] for dim, bounds in RANGES.items()}) == pytest.approx(score, abs=1e-12)


def test_dynamic_degree_weighs_half_in_the_quality_score():
    """Raising dynamic degree by 0.2 moves the score by 0.5 x 0.2 / 6.5; another dimension by 0.2 / 6.5 / range."""
    more_motion = {**VALUES, "dynamic_degree": VALUES["dynamic_degree"] + 0.2}
    more_aesthetic = {**VALUES, "aesthetic_quality": VALUES["aesthetic_quality"] + 0.2}
    assert quality_score(more_motion) - quality_score(VALUES) == pytest.approx(0.1 / 6.5, rel=1e-9)
    assert quality_score(more_aesthetic) - quality_score(VALUES) == pytest.approx(0.2 / 6.5, rel=1e-9)


def test_consistency_averages_the_clamped_cosines_to_the_previous_and_the_first_frame():
    """Unit features at 0°, 53.13° (cos 0.6) and 90°, then one pointing backwards (cosines -1 and -0.6 -> 0)."""
    features = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(consistency_terms(features), [(0.6 + 0.6) / 2, (0.8 + 0.0) / 2, (0.0 + 0.0) / 2],
                               atol=1e-12)


def test_flickering_is_255_minus_the_mean_absolute_difference_over_255():
    frames = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    frames[1] = 51  # frame 0 -> 1: every value changes by 51
    frames[2, 0, 0, 0] = 255  # frame 1 -> 2: 47 of 48 values change by 51 (back to 0), one by 204
    expected = [(255 - 51) / 255, (255 - (47 * 51 + 204) / 48) / 255]
    np.testing.assert_allclose(flicker_terms(frames), expected, rtol=1e-12)


@pytest.mark.parametrize(("frames", "spans"), [
    (15, [(0, 15)]),  # shorter than one clip: scored whole
    (16, [(0, 16)]),  # exactly one clip
    (17, [(0, 16), (1, 17)]),  # one frame over: a last clip of the last 16 frames
    (32, [(0, 16), (16, 32)]),
    (40, [(0, 16), (16, 32), (24, 40)]),
])
def test_vbench_long_clips(frames, spans):
    assert clip_spans(frames, 16) == spans


@pytest.mark.parametrize(("sampled", "pairs"), [(16, 4), (12, 3), (8, 2), (10, 2), (6, 2), (14, 4)])
def test_a_clip_needs_round_4n_over_16_pairs_above_the_threshold(sampled, pairs):
    """round() as VBench's Python does it: 4·10/16 = 2.5 -> 2, 4·6/16 = 1.5 -> 2, 4·14/16 = 3.5 -> 4."""
    assert required_pairs(sampled) == pairs


@pytest.mark.parametrize(("scores", "dynamic"), [
    ([1.0, 1.0, 5.0], False),  # at the threshold does not count: one pair above, two needed
    ([1.0 + 1e-9, 5.0, 0.0], True),  # just above: exactly the two pairs needed
    ([0.999, 5.0, 0.5], False),
    ([2.0, 3.0, 4.0], True),
])
def test_a_pair_counts_only_strictly_above_the_threshold(scores, dynamic):
    assert clip_is_dynamic(scores, 8, threshold=1.0) is dynamic
