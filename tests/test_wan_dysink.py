"""DySink on the Wan path: the cache ``model=wan`` builds retrieves, dedups and gates as on the tiny model.

The same constructed scenarios as tests/test_dysink.py, run on the cache the Wan builder makes (Wan's token grid,
the model's dtype, the latent embedder on 4-channel latents) instead of a hand-built one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lolbench.models.build import build_generator
from lolbench.probes import FrameKind
from tests.wan_helpers import one_thread  # noqa: F401  (autouse fixture)

DYSINK = ["model=wan_tiny", "sink=dysink", "sink.embedder=latent", "sink.window_frames=3", "sink.top_k=1",
          "sink.bank_size=8"]
F = 3


def wan_cache(run_config, *overrides: str):
    generator, _ = build_generator(run_config([*DYSINK, *overrides]))
    return generator.cache


def pattern(seed: int, offset: float = 0.0, size: int = 8) -> torch.Tensor:
    """A chunk of F identical random latent frames [1, F, 4, size, size] (a distinct layout per seed)."""
    frame = torch.randn(4, size, size, generator=torch.Generator().manual_seed(seed)) + offset
    return frame.expand(1, F, 4, size, size).clone()


def add_chunk(cache, latents: torch.Tensor, key: torch.Tensor | None = None):
    """Commit one chunk whose every token has key ``key`` (zeros by default); returns its stats."""
    shape = (1, cache.num_heads, F * cache.tokens_per_frame, cache.head_dim)
    cache.begin_chunk(cache.num_frames, probe=False)
    for layer in range(cache.num_layers):
        cache.commit(layer, torch.zeros(shape) if key is None else key.expand(shape), torch.randn(shape))
    return cache.end_chunk(latents)


def test_retrieves_the_most_similar_stored_chunk_before_the_window(run_config):
    cache = wan_cache(run_config)
    for seed in (10, 11, 12, 13):
        add_chunk(cache, pattern(seed))
    add_chunk(cache, pattern(11) + 0.3 * (pattern(99) - pattern(11)))  # closest to chunk 1, not a duplicate
    cache.begin_chunk(15, probe=False)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [3, 4, 5, 12, 13, 14]
    assert kind[0].tolist() == [FrameKind.RETRIEVED] * 3 + [FrameKind.LOCAL] * 3


def test_skips_near_duplicates_including_offsets(run_config):
    cache = wan_cache(run_config)
    stats = [add_chunk(cache, pattern(5, offset=b)) for b in (0.0, 0.5, -0.7, 0.0)]
    assert [s.gate["bank_entries"] for s in stats] == [1.0, 1.0, 1.0, 1.0]
    assert add_chunk(cache, pattern(6)).gate["bank_entries"] == 2.0


@pytest.mark.parametrize(("winning_heads", "gated"), [(2, True), (1, False)])
def test_gate_drops_an_entry_only_when_consensus_exceeds_tau(run_config, winning_heads, gated):
    """One token per frame (2x2 latents, 2x2 patches), so the spatial head dims never rotate: entry keys beat the
    window in ``winning_heads`` of 2 heads; consensus 1.0 > 0.8 drops the entry, 0.5 keeps it."""
    cache = wan_cache(run_config, "model.latent_height=2", "model.latent_width=2")
    H, D = cache.num_heads, cache.head_dim
    unit = torch.zeros(D)
    unit[D - 1] = 1.0  # a width dim: rotated by the column index, 0 here
    sign = torch.tensor([1.0] * winning_heads + [-1.0] * (H - winning_heads))
    add_chunk(cache, pattern(0, size=2), key=5 * sign[:, None, None] * unit)
    add_chunk(cache, pattern(1, size=2))
    add_chunk(cache, pattern(0, size=2) + 0.2 * pattern(7, size=2), key=unit)
    cache.begin_chunk(9, probe=True)
    assert cache.context_frames[1][0].tolist() == [FrameKind.RETRIEVED] * 3 + [FrameKind.LOCAL] * 3
    q, zeros = unit.expand(1, H, F, D), torch.zeros(1, H, F, D)
    for layer in range(cache.num_layers):
        cache.attend(layer, q, zeros, zeros, commit=False)
        cache.attend(layer, q, zeros, zeros, commit=True)
    stats = cache.end_chunk(pattern(2, size=2))
    assert stats.gate["gate_consensus_mean"] == pytest.approx(winning_heads / H)
    assert stats.gate["gate_fraction"] == (1.0 if gated else 0.0)
    retrieved_mass = stats.probes[0].mass_of(FrameKind.RETRIEVED)  # [L, H]
    assert np.all(retrieved_mass == 0) if gated else np.all(retrieved_mass > 0)


def test_wan_generator_runs_dysink_and_names_the_latent_embedder(run_config):
    generator, info = build_generator(run_config(DYSINK))
    generator.reset_embeds(torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(0)), seed=0)
    stats = [generator.next_latents().stats for _ in range(4)]
    assert np.isnan(stats[0]["retrieval_score[latent]"]) and stats[0]["retrieved"] == 0.0
    assert stats[-1]["retrieved"] == 1.0 and stats[-1]["bank_entries"] >= 2
    assert info["cache_bytes"] == generator.cache.memory_bytes()
