"""The cache under RoPE extension methods, and DySink's dedup threshold at its boundary.

test_cache.py checks the cache against direct attention with plain RoPE; here the methods that change more
than the frequencies (PI scales positions, YaRN scales the logits by its temperature (0.1 ln s + 1)^2) must
reach the cache's attention, with the temperature computed by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lolbench.cache import MemoryBank, StaticSinkPolicy, StreamingKVCache
from lolbench.rope import RopeSpec, Rotary, build_tables

F, P, H, D = 3, 2, 2, 8  # frames per chunk, tokens per frame (1x2 grid), heads, head dim
TRAIN, TARGET = 6, 24  # s = L'/L = 4


def attention_after_history(method: str, mode: str
                            ) -> tuple[torch.Tensor, Rotary, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Commit 4 chunks of random K/V into a static-sink cache (3 + 6 frames), then attend from chunk 4.

    Returns the cache's output, the rotary, the query and the context's un-rotated keys and values."""
    spec = RopeSpec(head_dim=D, num_heads=H, method=method, train_frames=TRAIN,
                    target_frames=None if method == "none" else TARGET)
    rotary = Rotary(build_tables(spec), grid_h=1, grid_w=P)
    cache = StreamingKVCache(StaticSinkPolicy(3, 6), rotary, mode, num_layers=1, batch=1, num_heads=H,
                             head_dim=D, chunk_frames=F)
    gen = torch.Generator().manual_seed(0)
    keys, values = [], []
    for c in range(4):
        k, v = torch.randn(2, 1, H, F * P, D, generator=gen).unbind(0)
        cache.begin_chunk(c * F, probe=False)
        cache.commit(0, k, v)
        cache.end_chunk(torch.zeros(1, F, 3, 4, 4))
        keys.append(k)
        values.append(v)
    q, k, v = torch.randn(3, 1, H, F * P, D, generator=gen).unbind(0)
    cache.begin_chunk(12, probe=False)
    out = cache.attend(0, q, k, v, commit=True)
    # context: sink chunk 0 and window chunks 2, 3, then the current chunk 4
    context_k = torch.cat([keys[0], keys[2], keys[3], k], dim=2)
    context_v = torch.cat([values[0], values[2], values[3], v], dim=2)
    return out, rotary, q, context_k, context_v


def expected_attention(rotary, q, k, v, query_frames, key_frames, temperature: float) -> torch.Tensor:
    q = rotary.rotate(q, torch.tensor(query_frames))
    k = rotary.rotate(k, torch.tensor(key_frames))
    return ((q @ k.transpose(-2, -1)) * temperature / math.sqrt(D)).softmax(-1) @ v


ABSOLUTE = ([12, 13, 14], [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14])
ROLLING = ([9, 10, 11], list(range(12)))


@pytest.mark.parametrize(("mode", "frames"), [("absolute", ABSOLUTE), ("rolling", ROLLING)])
@pytest.mark.parametrize(("method", "temperature"), [
    ("none", 1.0), ("pi", 1.0), ("ntk", 1.0), ("riflex", 1.0), ("yarn", (0.1 * math.log(4) + 1.0) ** 2),
])
def test_cache_attention_uses_the_methods_temperature(mode, frames, method, temperature):
    out, rotary, q, k, v = attention_after_history(method, mode)
    torch.testing.assert_close(out, expected_attention(rotary, q, k, v, *frames, temperature))


def test_yarn_temperature_changes_the_output():
    """The temperature matters at this size: attention at temperature 1 differs from YaRN's."""
    out, rotary, q, k, v = attention_after_history("yarn", "absolute")
    assert not torch.allclose(out, expected_attention(rotary, q, k, v, *ABSOLUTE, 1.0), atol=1e-3)


def unit(angle: float) -> np.ndarray:
    return np.array([[math.cos(angle), math.sin(angle)]], dtype=np.float32)  # [B=1, E=2]


@pytest.mark.parametrize(("threshold", "stored"), [(0.49, False), (0.5, True), (0.51, True)])
def test_dedup_stores_a_chunk_whose_best_cosine_is_at_most_the_threshold(threshold, stored):
    """Two embeddings 60° apart have cosine exactly 0.5 (1·0.5 + 0·0.866): stored iff 0.5 <= threshold."""
    bank = MemoryBank(batch=1, size=4, dim=2, query_chunks=1, dedup_threshold=threshold)
    bank.add(np.array([[1.0, 0.0]], dtype=np.float32), 0)
    slots = bank.add(np.array([[0.5, math.sqrt(0.75)]], dtype=np.float32), 1)
    assert (slots[0] >= 0) == stored
    assert bank.occupancy() == (2.0 if stored else 1.0)


def test_retrieval_ranks_by_mean_cosine_to_the_recent_chunks():
    """score(e) = mean over the last query_chunks embeddings of cos(e, q); computed by hand on a circle."""
    bank = MemoryBank(batch=1, size=8, dim=2, query_chunks=2, dedup_threshold=0.99)
    angles = [0.0, 1.0, 2.0, 3.0]
    for chunk, angle in enumerate(angles):
        bank.add(unit(angle), chunk)
    recent = angles[-2:]  # the query is the mean of the last two chunks' embeddings
    expected = {c: np.mean([math.cos(a - r) for r in recent]) for c, a in enumerate(angles)}
    ranked = bank.ranked(0)
    assert [c for c, _ in ranked] == sorted(expected, key=lambda c: -expected[c])
    for chunk, score in ranked:
        assert score == pytest.approx(expected[chunk], abs=1e-6)
