"""Head homogeneity: do the attention heads of a layer all look at the same key frames at once?

LoL explains sink-collapse by inter-head homogenization: at certain query-sink distances every head's RoPE
phases line up, all heads of a layer jump to the sink together, and the next chunk copies it. Per probe
(one chunk; lolbench.probes.AttentionProbe, mass [L, H, S]) this module measures, per layer, then averages
over layers:

- sink mass: mass a head puts on SINK + RETRIEVED key frames; spike fraction: share of heads above 0.5.
- consensus: fraction of a layer's heads that put more mass on sink/retrieved frames than on the local
  window (the quantity DySink's anomaly gate thresholds).
- entropy: normalized entropy of the distribution of the heads' most-attended key frame, divided by
  log(min(H, S)), the largest value it can take: 0 = every head's top frame is the same, 1 = spread out
  as far as possible. With a single head or key frame it is 0 by definition.
- JSD: mean pairwise Jensen-Shannon divergence (base 2, in [0, 1]) between the heads' attention distributions.

How these per-chunk series go with dips of the sink-distance curve is a cross-metric statistic:
``lolbench.stats.homogeneity_dip_cooccurrence``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy.special import xlogy

from lolbench.metrics.base import ProbeMetric, Result
from lolbench.probes import AttentionProbe, FrameKind

STATS = ("sink_mass", "sink_spike_fraction", "consensus", "entropy", "jsd")
SPIKE_MASS = 0.5
SUMMARY_KEYS = ("head_probes", "head_sink_mass", "head_sink_spike_fraction", "head_consensus", "head_consensus_max",
                "head_entropy", "head_entropy_min", "head_jsd")


def top_frame_entropy(mass: np.ndarray) -> np.ndarray:
    """Normalized entropy of the heads' most-attended key frame, per layer: [L, H, S] -> [L]."""
    layers, heads, keys = mass.shape
    if min(heads, keys) < 2:
        return np.zeros(layers)
    top = mass.argmax(axis=2)  # [L, H]
    counts = np.stack([np.bincount(row, minlength=keys) for row in top])  # [L, S]
    p = counts / heads
    return -xlogy(p, p).sum(axis=1) / np.log(min(heads, keys))


def mean_pairwise_jsd(mass: np.ndarray) -> np.ndarray:
    """Mean Jensen-Shannon divergence (bits) over pairs of heads, per layer: [L, H, S] -> [L]."""
    layers, heads, _ = mass.shape
    if heads < 2:
        return np.zeros(layers)
    p = mass / mass.sum(axis=2, keepdims=True)
    a, b = p[:, :, None, :], p[:, None, :, :]  # [L, H, 1, S], [L, 1, H, S]
    mid = 0.5 * (a + b)  # [L, H, H, S]
    jsd = 0.5 * (xlogy(a, a) - xlogy(a, mid) + xlogy(b, b) - xlogy(b, mid)).sum(axis=3) / np.log(2)  # [L, H, H]
    pairs = np.triu_indices(heads, k=1)
    return jsd[:, pairs[0], pairs[1]].mean(axis=1)


def probe_stats(probe: AttentionProbe) -> dict[str, float]:
    """Homogeneity statistics of one chunk's probe, averaged over layers (consensus also as its layer maximum)."""
    mass = np.asarray(probe.mass, dtype=np.float64)
    if not np.all(np.isfinite(mass)) or np.any(mass < 0):
        raise ValueError(f"probe of chunk {probe.chunk_index} has negative or non-finite attention mass")
    sink = probe.mass_of(FrameKind.SINK, FrameKind.RETRIEVED)  # [L, H]
    local = probe.mass_of(FrameKind.LOCAL)  # [L, H]
    consensus = (sink > local).mean(axis=1)  # [L]
    return {
        "sink_mass": float(sink.mean()),
        "sink_spike_fraction": float((sink > SPIKE_MASS).mean()),
        "consensus": float(consensus.mean()),
        "consensus_max": float(consensus.max()),
        "entropy": float(top_frame_entropy(mass).mean()),
        "jsd": float(mean_pairwise_jsd(mass).mean()),
    }


def _summary(chunks: Sequence[dict[str, float]]) -> Result:
    if not chunks:
        reason = "unavailable: no attention probes (the video did not come from an instrumented model)"
        return {key: reason for key in SUMMARY_KEYS}
    column = {key: np.array([c[key] for c in chunks]) for key in chunks[0]}
    return {
        "head_probes": len(chunks),
        "head_sink_mass": float(column["sink_mass"].mean()),
        "head_sink_spike_fraction": float(column["sink_spike_fraction"].mean()),
        "head_consensus": float(column["consensus"].mean()),
        "head_consensus_max": float(column["consensus_max"].max()),
        "head_entropy": float(column["entropy"].mean()),
        "head_entropy_min": float(column["entropy"].min()),
        "head_jsd": float(column["jsd"].mean()),
    }


class HeadHomogeneity(ProbeMetric):
    """Streaming head homogeneity. State: a handful of scalars per probed chunk."""

    name = "heads"
    version = "1"
    higher_is_better = False  # homogeneous heads (high consensus, low entropy) precede collapse

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._chunk_index: list[int] = []
        self._stats: list[dict[str, float]] = []

    def update(self, probe: AttentionProbe) -> None:
        self._chunk_index.append(int(probe.chunk_index))
        self._stats.append(probe_stats(probe))

    def compute(self) -> Result:
        return _summary(self._stats)

    def chunk_series(self, stat: str = "consensus") -> dict[int, float]:
        """One statistic per probed chunk, keyed by chunk index."""
        allowed = (*STATS, "consensus_max")
        if stat not in allowed:
            raise ValueError(f"stat must be one of {allowed}, got {stat!r}")
        return {c: s[stat] for c, s in zip(self._chunk_index, self._stats)}

    def curves(self) -> dict[str, np.ndarray]:
        if not self._stats:
            return {}
        out = {"head_chunk_index": np.asarray(self._chunk_index)}
        for stat in STATS:
            out[f"head_{stat}"] = np.array([s[stat] for s in self._stats])
        return out


def head_homogeneity(probes: Iterable[AttentionProbe]) -> Result:
    """Functional twin of HeadHomogeneity."""
    return _summary([probe_stats(p) for p in probes])
