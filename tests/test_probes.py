"""Attention probes recorded by the cache: same output as SDPA, mass per key frame, averaging over steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lolbench.cache import DySinkPolicy, StaticSinkPolicy, StreamingKVCache
from lolbench.probes import FrameKind
from lolbench.rope import Rotary, RopeSpec, build_tables

F, H, D, L = 3, 2, 8, 2  # frames per chunk, heads, head dim, layers


def make_cache(policy, grid_w: int = 2, mode: str = "absolute") -> StreamingKVCache:
    rotary = Rotary(build_tables(RopeSpec(head_dim=D, num_heads=H)), grid_h=1, grid_w=grid_w)
    return StreamingKVCache(policy, rotary, mode, num_layers=L, batch=1, num_heads=H, head_dim=D, chunk_frames=F)


def fill(cache: StreamingKVCache, num_chunks: int, seed: int = 0) -> None:
    """Commit random K/V (and a distinct random layout per chunk, for DySink's bank)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = F * cache.tokens_per_frame
    for c in range(num_chunks):
        cache.begin_chunk(c * F, probe=False)
        for layer in range(L):
            cache.commit(layer, *torch.randn(2, 1, H, tokens, D, generator=gen).unbind(0))
        cache.end_chunk(torch.rand(1, F, 3, 8, 8, generator=gen) * 2 - 1)


@pytest.mark.parametrize(("policy", "mode"), [
    (StaticSinkPolicy(3, 6), "absolute"),
    (StaticSinkPolicy(3, 6), "rolling"),
    (DySinkPolicy(window_frames=3, top_k=2, bank_size=8, gate_tau=0.0), "absolute"),  # tau 0: gate masks entries
])
def test_probed_attention_gives_the_sdpa_output(policy, mode):
    probed, plain = make_cache(policy, mode=mode), make_cache(policy, mode=mode)
    fill(probed, 6)
    fill(plain, 6)
    probed.begin_chunk(18, probe=True)
    plain.begin_chunk(18, probe=False)
    gen = torch.Generator().manual_seed(0)
    for layer in range(L):
        q, k, v = torch.randn(3, 1, H, F * 2, D, generator=gen).unbind(0)
        torch.testing.assert_close(probed.attend(layer, q, k, v, commit=False),
                                   plain.attend(layer, q, k, v, commit=False))
        probed.commit(layer, k, v)
    stats = probed.end_chunk(torch.zeros(1, F, 3, 8, 8))
    if isinstance(policy, DySinkPolicy):
        assert stats.gate["retrieved"] == 2 and stats.gate["gate_fraction"] > 0  # the masked path was exercised


def test_probe_mass_sums_to_one_over_context_and_current_frames():
    cache = make_cache(StaticSinkPolicy(3, 6))
    fill(cache, 5)
    cache.begin_chunk(15, probe=True)
    for layer in range(L):
        for _ in range(3):
            cache.attend(layer, *torch.randn(3, 1, H, F * 2, D).unbind(0), commit=False)
        cache.attend(layer, *torch.randn(3, 1, H, F * 2, D).unbind(0), commit=True)
    probes = cache.end_chunk(torch.zeros(1, F, 3, 8, 8)).probes
    assert len(probes) == 1
    probe = probes[0]
    assert probe.chunk_index == 5
    assert probe.mass.shape == (L, H, 12) and probe.mass.dtype == np.float32
    np.testing.assert_allclose(probe.mass.sum(axis=2), 1.0, rtol=1e-5)
    assert probe.frame_index.tolist() == [0, 1, 2, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    assert probe.kind.tolist() == [FrameKind.SINK] * 3 + [FrameKind.LOCAL] * 6 + [FrameKind.CURRENT] * 3


def test_constructed_keys_put_all_mass_on_the_sink():
    """One token per frame and vectors in the height/width dims, which a 1x1 grid never rotates: sink keys
    aligned with every query at logit 40/sqrt(D), all other keys zero."""
    cache = make_cache(StaticSinkPolicy(3, 6), grid_w=1)
    unit = torch.zeros(D)
    unit[-1] = 1.0
    for c in range(6):
        key = (40 * unit if c == 0 else torch.zeros(D)).expand(1, H, F, D)
        cache.begin_chunk(c * F, probe=False)
        for layer in range(L):
            cache.commit(layer, key, torch.zeros(1, H, F, D))
        cache.end_chunk(torch.zeros(1, F, 3, 8, 8))
    cache.begin_chunk(18, probe=True)
    for layer in range(L):
        cache.attend(layer, unit.expand(1, H, F, D), torch.zeros(1, H, F, D), torch.zeros(1, H, F, D), commit=False)
        cache.commit(layer, torch.zeros(1, H, F, D), torch.zeros(1, H, F, D))
    probe = cache.end_chunk(torch.zeros(1, F, 3, 8, 8)).probes[0]
    sink = np.exp(40 / np.sqrt(D))
    np.testing.assert_allclose(probe.mass_of(FrameKind.SINK), 3 * sink / (3 * sink + 9), rtol=1e-6)
    assert probe.mass_of(FrameKind.SINK).min() > 0.999


def probe_after(calls: list[torch.Tensor], seed: int = 3) -> np.ndarray:
    """Probe mass of a chunk whose denoising calls use the given queries (same cache history every time)."""
    cache = make_cache(StaticSinkPolicy(3, 6))
    fill(cache, 4, seed=seed)
    kv = torch.randn(2, 1, H, F * 2, D, generator=torch.Generator().manual_seed(seed)).unbind(0)
    cache.begin_chunk(12, probe=True)
    for layer in range(L):
        for q in calls:
            cache.attend(layer, q, *kv, commit=False)
        cache.attend(layer, torch.randn(1, H, F * 2, D), *kv, commit=True)  # the re-pass is not measured
    return cache.end_chunk(torch.zeros(1, F, 3, 8, 8)).probes[0].mass


def test_probe_averages_the_denoising_calls_only():
    q1, q2 = torch.randn(2, 1, H, F * 2, D).unbind(0)
    np.testing.assert_allclose(probe_after([q1, q2]), (probe_after([q1]) + probe_after([q2])) / 2, rtol=1e-5)


def test_no_probe_unless_asked_and_no_gate_stats_without_dysink():
    cache = make_cache(StaticSinkPolicy(3, 6))
    cache.begin_chunk(0, probe=False)
    for layer in range(L):
        cache.attend(layer, *torch.randn(3, 1, H, F * 2, D).unbind(0), commit=True)
    stats = cache.end_chunk(torch.zeros(1, F, 3, 8, 8))
    assert stats.probes is None and stats.gate == {}


def test_probe_without_a_denoising_call_is_an_error():
    cache = make_cache(StaticSinkPolicy(3, 6))
    cache.begin_chunk(0, probe=True)
    for layer in range(L):
        cache.attend(layer, *torch.randn(3, 1, H, F * 2, D).unbind(0), commit=True)
    with pytest.raises(RuntimeError, match=r"layers \[0, 1\] had no denoising call"):
        cache.end_chunk(torch.zeros(1, F, 3, 8, 8))
