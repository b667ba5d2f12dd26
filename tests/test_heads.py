"""Head homogeneity on probes whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.metrics.heads import (
    HeadHomogeneity, head_homogeneity, mean_pairwise_jsd, probe_stats,
    top_frame_entropy,
)
from lolbench.probes import AttentionProbe, FrameKind

LAYERS, HEADS = 4, 12
KINDS = np.array([FrameKind.SINK] * 3 + [FrameKind.LOCAL] * 9, dtype=np.int8)  # 3 sink + 9 local key frames


def probe(mass: np.ndarray, chunk: int = 0) -> AttentionProbe:
    return AttentionProbe(chunk, mass.astype(np.float32), np.arange(len(KINDS), dtype=np.int64), KINDS)


def sink_spike() -> np.ndarray:
    """Every head of every layer puts nearly all its mass on sink frame 0."""
    mass = np.full((LAYERS, HEADS, len(KINDS)), 0.01 / (len(KINDS) - 1))
    mass[:, :, 0] = 0.99
    return mass


def random_heads(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(len(KINDS)), size=(LAYERS, HEADS))


def test_all_heads_on_the_sink_is_fully_homogeneous():
    stats = probe_stats(probe(sink_spike()))
    assert stats["entropy"] == 0.0
    assert stats["consensus"] == 1.0
    assert stats["sink_mass"] == pytest.approx(0.99 + 2 * 0.01 / 11)
    assert stats["sink_spike_fraction"] == 1.0
    assert stats["jsd"] == pytest.approx(0.0, abs=1e-12)


def test_random_heads_are_heterogeneous():
    stats = probe_stats(probe(random_heads()))
    assert stats["entropy"] > 0.6
    assert stats["consensus"] < 0.5  # 3 sink frames vs 9 local: most heads prefer the local window
    assert stats["jsd"] > 0.1


def test_entropy_and_jsd_known_values():
    mass = np.zeros((1, 12, 12))
    mass[0, :6, 0] = 1.0  # six heads on frame 0
    mass[0, 6:, 5] = 1.0  # six on frame 5
    assert top_frame_entropy(mass)[0] == pytest.approx(np.log(2) / np.log(12))
    # 36 of the 66 head pairs look at disjoint frames (JSD = 1 bit), the other 30 are identical
    assert mean_pairwise_jsd(mass)[0] == pytest.approx(36 / 66)
    one_head = np.ones((2, 1, 5)) / 5
    assert np.all(top_frame_entropy(one_head) == 0) and np.all(mean_pairwise_jsd(one_head) == 0)


def test_streaming_equals_functional_and_series_are_per_chunk():
    probes = [probe(sink_spike() if c % 3 == 0 else random_heads(c), chunk=4 * c) for c in range(6)]
    metric = HeadHomogeneity()
    for p in probes:
        metric.update(p)
    assert metric.compute() == head_homogeneity(probes)
    curves = metric.curves()
    assert list(curves["head_chunk_index"]) == [0, 4, 8, 12, 16, 20]
    assert list(curves["head_consensus"][[0, 3]]) == [1.0, 1.0]
    assert metric.compute()["head_consensus_max"] == 1.0
    assert metric.compute()["head_entropy_min"] == 0.0
    assert metric.chunk_series("entropy")[0] == 0.0
    with pytest.raises(ValueError, match="stat must be one of"):
        metric.chunk_series("mass")


def test_no_probes_is_unavailable():
    result = HeadHomogeneity().compute()
    assert all(str(v).startswith("unavailable: no attention probes") for v in result.values())


def test_negative_mass_is_rejected():
    with pytest.raises(ValueError, match="chunk 7"):
        probe_stats(probe(-sink_spike(), chunk=7))
