"""Statistics over videos and metrics (lolbench.stats), each against a hand computation on a tiny table."""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.stats import (
    Matching, cross_run_coherence, head_dip_results, homogeneity_dip_cooccurrence, match_events, pearson,
    sink_collapse_summary,
)


def test_sink_collapse_max_and_avg():
    assert sink_collapse_summary([10.0, 70.0, 40.0]) == {"sink_collapse_max": 70.0, "sink_collapse_avg": 40.0}
    with pytest.raises(ValueError):
        sink_collapse_summary([])


def test_pearson_by_hand_and_its_guard():
    # x = 1, 2, 3; y = 2, 4, 5: means 2 and 11/3; r = 3 / sqrt(2 * 14/3)
    assert pearson([1, 2, 3], [2, 4, 5]) == pytest.approx(3 / np.sqrt(2 * 14 / 3))
    assert pearson([1, 2, np.nan, 3], [2, 4, 9, 5]) == pytest.approx(3 / np.sqrt(2 * 14 / 3))  # NaN pair left out
    assert pearson([1, 2], [3, 4]) == "unavailable: needs >= 3 finite pairs, got 2"
    assert pearson([1, 1, 1], [3, 4, 5]).startswith("unavailable: the first series is constant")
    with pytest.raises(ValueError, match="one length"):
        pearson([1, 2, 3], [1, 2])


def test_cooccurrence_compares_a_chunk_with_its_own_frames():
    # chunks of 2 frames; curve per chunk: [1, 1], [0.2, 1], [1, 0.6], [1, 1]; consensus 0.1, 0.9, 0.5, 0.1
    curve = np.array([1, 1, 0.2, 1, 1, 0.6, 1, 1.0])
    consensus = {0: 0.1, 1: 0.9, 2: 0.5, 3: 0.1}
    found = homogeneity_dip_cooccurrence(consensus, curve, 2, event_frames=[2], start_frame=0)
    pull = [0.0, 0.8, 0.4, 0.0]
    assert found["chunks"] == 4
    assert found["corr"] == pytest.approx(np.corrcoef([0.1, 0.9, 0.5, 0.1], pull)[0, 1])
    assert found["at_events"] == pytest.approx(0.9)
    assert found["elsewhere"] == pytest.approx((0.1 + 0.5 + 0.1) / 3)
    later = homogeneity_dip_cooccurrence(consensus, curve, 2, start_frame=4)  # chunks 2 and 3 only
    assert later["chunks"] == 2 and later["corr"].startswith("unavailable")
    assert later["at_events"] == "unavailable: no collapse event among the 2 probed chunks"


def test_head_dip_results_read_the_merged_results_and_curves():
    curve = np.array([np.nan, np.nan, 0.2, 1, 1, 0.6, 1, 1.0])
    results = {"sink_collapse_drop[rms]": 80.0, "sink_collapse_event_frames[rms]": [2], "head_probes": 4}
    curves = {"sink_collapse_curve[rms]": curve, "head_chunk_index": np.arange(4),
              "head_consensus": np.array([0.1, 0.9, 0.5, 0.1])}
    found = head_dip_results(results, curves, chunk_frames=2)
    assert found["head_dip_chunks[rms]"] == 3  # chunk 0 lies before the first scored frame
    assert found["head_dip_corr[rms]"] == pytest.approx(np.corrcoef([0.9, 0.5, 0.1], [0.8, 0.4, 0.0])[0, 1])
    assert found["head_consensus_at_events[rms]"] == pytest.approx(0.9)
    no_probes = head_dip_results(results, {"sink_collapse_curve[rms]": curve}, chunk_frames=2)
    assert no_probes["head_dip_corr[rms]"] == "unavailable: no attention probes"
    assert head_dip_results({"sink_collapse_drop[rms]": 1.0}, curves, 2) == {}  # no head metric in the run


def test_event_matching_by_hand():
    # predicted 12, 48, 70 with tolerance 3: 10 (2 away) and 50 (2) hit; 100, 15 (3 from 12) ... 16 (4) misses
    found = match_events([10, 50, 100, 15, 16], [12, 48, 70], start=0, stop=120, tolerance=3)
    assert (found.hits, found.misses) == (3, 2)
    assert found.coverage == pytest.approx(21 / 120)  # three windows of 7 frames
    assert found.expected_hits == pytest.approx(5 * 21 / 120)
    assert match_events([5, 9], [], 0, 10) == Matching(hits=0, misses=2, coverage=0.0)
    with pytest.raises(ValueError):
        match_events([1], [1], 0, 10, tolerance=-1)


def test_cross_run_coherence_separates_shared_from_independent_dips():
    rng = np.random.default_rng(0)
    frames = np.arange(400)
    shared = 1 - 0.3 * (frames % 29 == 14)  # RoPE-like: same frames in every run

    def run(dips: np.ndarray) -> np.ndarray:
        return dips + 0.002 * frames + rng.normal(0, 0.01, len(frames))

    assert cross_run_coherence([run(shared) for _ in range(4)]) > 0.9
    independent = [run(1 - 0.3 * (rng.random(len(frames)) < 1 / 29)) for _ in range(4)]
    assert abs(cross_run_coherence(independent)) < 0.15
    # every run rises away from the sink the same way; that shared slow shape is trend, not coherence
    rise = 1 - np.exp(-frames / 15.0)
    assert abs(cross_run_coherence([rise + rng.normal(0, 0.01, len(frames)) for _ in range(4)])) < 0.15
    with pytest.raises(ValueError, match="at least 2"):
        cross_run_coherence([shared])
