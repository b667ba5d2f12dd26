"""The README's metric rules at their thresholds: exactly at, just below, just above; answers computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.metrics.cycles import dominant_period
from lolbench.metrics.heads import probe_stats
from lolbench.metrics.sink_distance import normalize_curve
from lolbench.probes import AttentionProbe, FrameKind


def two_peaks(first: float, second: float = 1.0) -> np.ndarray:
    """An autocorrelation with local maxima at lag 10 (``first``) and lag 20 (``second``), 0 elsewhere."""
    rho = np.zeros(40)
    rho[0], rho[10], rho[20] = 1.0, first, second
    return rho


@pytest.mark.parametrize(("first", "period"), [
    (0.9, 10),  # exactly 90 % of the best peak: the shorter period wins
    (0.89, 20),  # just below: the best peak wins
    (0.95, 10),  # above
    (1.0, 10),  # equal peaks: the fundamental, not its multiple
])
def test_cycle_period_is_the_shortest_peak_within_90_percent_of_the_best(first, period):
    lag, strength = dominant_period(two_peaks(first))
    assert lag == period
    assert strength == (first if period == 10 else 1.0)


def test_cycle_period_uses_the_best_peak_even_when_it_comes_first():
    lag, strength = dominant_period(two_peaks(1.0, second=0.5))
    assert (lag, strength) == (10, 1.0)


def probe(sink: list[float], local: list[float]) -> AttentionProbe:
    """One layer; head h puts sink[h] on the sink frame, local[h] on the local frame, the rest on the current one."""
    sink_mass, local_mass = np.array(sink), np.array(local)
    mass = np.stack([sink_mass, local_mass, 1.0 - sink_mass - local_mass], axis=-1)[None].astype(np.float32)
    return AttentionProbe(chunk_index=4, mass=mass, frame_index=np.array([0, 9, 12]),
                          kind=np.array([FrameKind.SINK, FrameKind.LOCAL, FrameKind.CURRENT], dtype=np.int8))


def test_consensus_counts_heads_strictly_preferring_the_sink():
    """Heads with sink mass 0.3 against local 0.2 (prefers), 0.25 against 0.25 (a tie: does not), 0.1 against
    0.4 (does not), 0.5 against 0.125 (prefers): consensus 2/4."""
    stats = probe_stats(probe([0.3, 0.25, 0.1, 0.5], [0.2, 0.25, 0.4, 0.125]))
    assert stats["consensus"] == pytest.approx(0.5)
    assert stats["sink_mass"] == pytest.approx(np.mean([0.3, 0.25, 0.1, 0.5]))


def test_a_spike_is_strictly_more_than_half_the_mass_on_the_sink():
    """Sink masses 0.5 (exactly half: no spike), 0.5078125 (just above), 0.4921875 (just below), 0.875."""
    stats = probe_stats(probe([0.5, 0.5078125, 0.4921875, 0.875], [0.0, 0.0, 0.0, 0.0]))
    assert stats["sink_spike_fraction"] == pytest.approx(0.5)


def test_retrieved_frames_count_as_sink_for_homogeneity():
    mass = np.array([[[0.3, 0.2, 0.5], [0.1, 0.6, 0.3]]], dtype=np.float32)  # [L=1, H=2, S=3]
    retrieved = AttentionProbe(chunk_index=2, mass=mass, frame_index=np.array([3, 9, 12]),
                               kind=np.array([FrameKind.RETRIEVED, FrameKind.LOCAL, FrameKind.CURRENT], np.int8))
    stats = probe_stats(retrieved)
    assert stats["consensus"] == pytest.approx(0.5) and stats["sink_mass"] == pytest.approx(0.2)


@pytest.mark.parametrize(("top_frames", "entropy"), [
    ([0, 0, 0, 0], 0.0),  # every head's top frame is the sink: fully homogeneous
    ([0, 0, 1, 1], np.log(2) / np.log(3)),  # two frames, half each; normalized by log(min(H=4, S=3))
    ([0, 1, 2, 2], -(2 * 0.25 * np.log(0.25) + 0.5 * np.log(0.5)) / np.log(3)),
])
def test_entropy_of_the_heads_top_frames(top_frames, entropy):
    mass = np.full((1, 4, 3), 0.1, dtype=np.float32)
    mass[0, np.arange(4), top_frames] = 0.8
    homogeneity = AttentionProbe(chunk_index=1, mass=mass, frame_index=np.array([0, 5, 6]),
                                 kind=np.array([FrameKind.SINK, FrameKind.LOCAL, FrameKind.CURRENT], np.int8))
    assert probe_stats(homogeneity)["entropy"] == pytest.approx(entropy, abs=1e-12)


def test_the_reference_level_is_the_median_so_a_dip_inside_the_window_does_not_move_it():
    """Raw distance 0.2 over the 10-frame reference window except a 2-frame dip to 0.02: the median stays 0.2
    (a mean would be 0.164), so the curve is exactly raw / 0.2."""
    raw = np.full(40, 0.2)
    raw[:3] = 0.0  # the sink frames themselves, before the warm-up
    raw[7:9] = 0.02
    curve, level = normalize_curve(raw, warmup=3, reference=10)
    assert level == 0.2
    np.testing.assert_array_equal(curve, raw / 0.2)


@pytest.mark.parametrize(("window", "level"), [([0.1, 0.3, 0.2], 0.2), ([0.1, 0.3, 0.2, 0.4], 0.25)])
def test_the_reference_level_of_an_even_window_is_the_mean_of_the_middle_two(window, level):
    raw = np.array([0.0, *window, 0.5])
    assert normalize_curve(raw, warmup=1, reference=len(window))[1] == pytest.approx(level)
