"""DySink: retrieval, window exclusion, dedup, window growth, bank eviction, the anomaly gate, the pixel embedder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lolbench.cache import DySinkPolicy, MemoryBank, PixelEmbedder, StreamingKVCache, gate_consensus
from lolbench.cache.embed import area_downsample
from lolbench.probes import FrameKind
from lolbench.rope import Rotary, RopeSpec, build_tables

F, H, D = 3, 5, 8  # frames per chunk, heads, head dim; one token per frame (1x1 grid)
SPATIAL = 4  # with a 1x1 grid, head dims >= 4 (height/width) never rotate: constructed dot products hold


def make_cache(policy: DySinkPolicy, mode: str = "absolute", batch: int = 1) -> StreamingKVCache:
    rotary = Rotary(build_tables(RopeSpec(head_dim=D, num_heads=H)), grid_h=1, grid_w=1)
    return StreamingKVCache(policy, rotary, mode, num_layers=1, batch=batch, num_heads=H, head_dim=D,
                            chunk_frames=F)


def pattern(seed: int, brightness: float = 0.0) -> torch.Tensor:
    """A chunk of F identical random 16x16 frames (a distinct layout per seed), [1, F, 3, 16, 16] in [-1, 1]."""
    frame = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(seed)) - 0.5 + brightness
    return frame.expand(1, F, 3, 16, 16).clone()


def add_chunk(cache: StreamingKVCache, frames: torch.Tensor, key: torch.Tensor | None = None):
    """Commit one chunk whose every token has key ``key`` (zeros by default) and return its stats."""
    c = cache.num_frames // F
    k = torch.zeros(1, H, F, D) if key is None else key.expand(1, H, F, D)
    cache.begin_chunk(c * F, probe=False)
    cache.commit(0, k, torch.randn(1, H, F, D))
    return cache.end_chunk(frames)


# ---------------------------------------------------------------------- retrieval


def test_retrieves_the_most_similar_stored_chunk_placed_before_the_window():
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=1, bank_size=8))
    for seed in (10, 11, 12, 13):
        add_chunk(cache, pattern(seed))
    near_11 = pattern(11) + 0.3 * (pattern(99) - pattern(11))  # closest to chunk 1's layout, not a duplicate
    add_chunk(cache, near_11)
    cache.begin_chunk(15, probe=False)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [3, 4, 5, 12, 13, 14]  # chunk 1 retrieved, then the window (chunk 4)
    assert kind[0].tolist() == [FrameKind.RETRIEVED] * 3 + [FrameKind.LOCAL] * 3


def test_never_retrieves_a_chunk_inside_the_local_window():
    policy = DySinkPolicy(window_frames=6, top_k=2, bank_size=16)
    cache = make_cache(policy)
    for c in range(30):
        add_chunk(cache, pattern(c % 7))  # layouts recur, so window chunks have exact twins in the bank
        cache.begin_chunk(cache.num_frames, probe=False)
        frame_index, kind = cache.context_frames
        retrieved = frame_index[0][kind[0] == FrameKind.RETRIEVED]
        local = frame_index[0][kind[0] == FrameKind.LOCAL]
        if len(retrieved):
            assert retrieved.max() < local.min()
        assert len(frame_index[0]) == min(cache.num_frames, policy.window_frames + policy.top_k * F)
        cache.commit(0, torch.zeros(1, H, F, D), torch.zeros(1, H, F, D))
        cache.end_chunk(pattern(c % 7))


def test_selection_excludes_the_window_even_when_it_holds_the_best_entry():
    policy = DySinkPolicy(window_frames=3, top_k=1)
    selection = policy.select(num_frames=12, chunk_frames=3, ranked=[3, 0, 1])  # chunk 3 is in the window
    assert selection.retrieved == (0,)
    assert selection.local == range(9, 12)


def test_skips_near_duplicates_including_brightness_changes():
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=1, bank_size=8))
    stats = [add_chunk(cache, pattern(5, brightness=b)) for b in (0.0, 0.2, -0.3, 0.0)]
    assert [s.gate["bank_entries"] for s in stats] == [1.0, 1.0, 1.0, 1.0]
    assert add_chunk(cache, pattern(6)).gate["bank_entries"] == 2.0


def test_window_grows_by_a_chunk_per_missing_entry():
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=2, bank_size=8))
    for _ in range(5):
        add_chunk(cache, pattern(1))  # all duplicates: the bank holds chunk 0 only
    cache.begin_chunk(15, probe=False)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [0, 1, 2, 9, 10, 11, 12, 13, 14]  # 1 entry + window of 3 + 3 frames
    assert (kind[0] == FrameKind.RETRIEVED).sum() == 3
    cache.commit(0, torch.zeros(1, H, F, D), torch.zeros(1, H, F, D))
    stats = cache.end_chunk(pattern(1))
    assert (stats.gate["retrieved"], stats.gate["local_frames"]) == (1.0, 6.0)


@pytest.mark.parametrize("mode", ["absolute", "rolling"])
def test_videos_of_a_batch_retrieve_independently_with_equal_context_sizes(mode):
    """Video 0 repeats one layout (its bank holds one entry, so its window grows); video 1 never repeats."""
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=2, bank_size=8), mode=mode, batch=2)
    zeros = torch.zeros(2, H, F, D)
    for c in range(6):
        cache.begin_chunk(c * F, probe=False)
        cache.commit(0, zeros, zeros)
        cache.end_chunk(torch.cat([pattern(0), pattern(c + 1)]))
    cache.begin_chunk(18, probe=True)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [0, 1, 2, 12, 13, 14, 15, 16, 17]  # 1 entry + window grown to 6
    assert (kind[0] == FrameKind.RETRIEVED).sum() == 3 and (kind[1] == FrameKind.RETRIEVED).sum() == 6
    assert frame_index[1][kind[1] == FrameKind.LOCAL].tolist() == [15, 16, 17]
    q, k, v = torch.randn(3, 2, H, F, D).unbind(0)
    cache.attend(0, q, k, v, commit=False)
    cache.attend(0, q, k, v, commit=True)
    stats = cache.end_chunk(torch.cat([pattern(0), pattern(9)]))
    assert stats.gate["retrieved"] == 1.5 and stats.gate["local_frames"] == 4.5
    assert [p.kind.tolist() for p in stats.probes] == [kind[0].tolist() + [3] * 3, kind[1].tolist() + [3] * 3]


def test_growing_window_that_swallows_the_only_candidate_takes_its_place():
    policy = DySinkPolicy(window_frames=3, top_k=2)
    selection = policy.select(num_frames=9, chunk_frames=3, ranked=[1])
    assert selection.retrieved == ()
    assert selection.local == range(0, 9)


def test_static_sink_is_never_retrieved():
    policy = DySinkPolicy(sink_frames=3, window_frames=3, top_k=1)
    selection = policy.select(num_frames=15, chunk_frames=3, ranked=[0, 2])
    assert (selection.sink, selection.retrieved, selection.local) == (range(3), (2,), range(12, 15))


def test_full_bank_evicts_the_most_redundant_entry_oldest_on_ties():
    bank = MemoryBank(batch=1, size=3, dim=3, query_chunks=1, dedup_threshold=0.95)
    a, b, near_a, c = (np.array([v], dtype=np.float32) for v in
                       ([1, 0, 0], [0, 1, 0], [0.9, np.sqrt(1 - 0.81), 0], [0, 0, 1]))
    assert bank.add(a, 0).tolist() == [0]
    assert bank.add(b, 1).tolist() == [1]
    assert bank.add(near_a, 2).tolist() == [2]  # cosine 0.9 to a: stored
    assert bank.add(c, 3).tolist() == [0]  # full: a and near_a are the most redundant pair, a is older
    assert sorted(bank.chunk[0].tolist()) == [1, 2, 3]
    assert bank.add(c, 4).tolist() == [-1]  # exact duplicate of chunk 3: skipped


def test_retrieved_keys_keep_their_original_absolute_rotation():
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=1, bank_size=8))
    key = torch.randn(1, H, F, D)
    cache.begin_chunk(0, probe=False)
    cache.commit(0, key, torch.zeros(1, H, F, D))
    cache.end_chunk(pattern(0))
    for seed in (1, 2, 3):
        add_chunk(cache, pattern(seed))
    add_chunk(cache, pattern(0) + 0.2 * pattern(7))  # steer retrieval to chunk 0
    cache.begin_chunk(15, probe=False)
    assert cache.context_frames[0][0, :3].tolist() == [0, 1, 2]
    stored, _ = cache.context(0)
    torch.testing.assert_close(stored[:, :, :F], cache.rotary.rotate(key, torch.arange(3)))


# ---------------------------------------------------------------------- gate


def test_gate_consensus_counts_the_heads_that_prefer_an_entry():
    q_mean = torch.ones(1, H, D)
    local_key = torch.zeros(1, H, D)
    winning_heads = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, -1, -1]], dtype=torch.float32)  # [E, H]
    entry_keys = winning_heads[None, :, :, None].expand(1, 2, H, D)
    consensus = gate_consensus(q_mean, entry_keys, local_key)
    torch.testing.assert_close(consensus, torch.tensor([[1.0, 0.6]]))


@pytest.mark.parametrize(("winning_heads", "tau", "gated"),
                         [(5, 0.8, True), (4, 0.8, False), (4, 0.7, True), (3, 0.8, False), (3, 0.6, False)])
def test_gate_drops_an_entry_only_when_consensus_exceeds_tau(winning_heads, tau, gated):
    """Entry keys beat the local window in ``winning_heads`` of 5 heads: consensus 1.0 > 0.8 drops it; 0.8 at
    τ = 0.8 (the boundary) and 0.6 at τ = 0.6 keep it, 0.8 > 0.7 drops it. Keys and queries live in dims that a
    1x1 grid never rotates, so the scores are exact."""
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=1, bank_size=8, gate=True, gate_tau=tau))
    unit = torch.zeros(D)
    unit[SPATIAL] = 1.0
    sign = torch.tensor([1.0] * winning_heads + [-1.0] * (H - winning_heads))
    add_chunk(cache, pattern(0), key=(5 * sign[:, None, None] * unit))  # chunk 0: the entry to retrieve
    add_chunk(cache, pattern(1))
    add_chunk(cache, pattern(0) + 0.2 * pattern(7), key=unit)  # the window: score 1 in every head
    cache.begin_chunk(9, probe=True)
    assert cache.context_frames[1][0].tolist() == [FrameKind.RETRIEVED] * 3 + [FrameKind.LOCAL] * 3
    q = unit.expand(1, H, F, D)
    cache.attend(0, q, torch.zeros(1, H, F, D), torch.zeros(1, H, F, D), commit=False)
    cache.attend(0, q, torch.zeros(1, H, F, D), torch.zeros(1, H, F, D), commit=True)
    stats = cache.end_chunk(pattern(2))
    assert stats.gate["gate_consensus_mean"] == pytest.approx(winning_heads / H)
    assert stats.gate["gate_fraction"] == (1.0 if gated else 0.0)
    retrieved_mass = stats.probes[0].mass_of(FrameKind.RETRIEVED)  # [L, H]
    if gated:
        assert np.all(retrieved_mass == 0)
    else:
        assert np.all(retrieved_mass > 0)


def test_gate_off_measures_consensus_but_drops_nothing():
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=1, bank_size=8, gate=False))
    unit = torch.zeros(D)
    unit[SPATIAL] = 1.0
    add_chunk(cache, pattern(0), key=5 * unit)
    add_chunk(cache, pattern(1))
    add_chunk(cache, pattern(0) + 0.2 * pattern(7), key=unit)
    cache.begin_chunk(9, probe=True)
    q = unit.expand(1, H, F, D)
    cache.attend(0, q, torch.zeros(1, H, F, D), torch.zeros(1, H, F, D), commit=False)
    cache.commit(0, torch.zeros(1, H, F, D), torch.zeros(1, H, F, D))
    stats = cache.end_chunk(pattern(2))
    assert (stats.gate["gate_consensus_mean"], stats.gate["gate_fraction"]) == (1.0, 0.0)
    entry, local = np.exp(5 / np.sqrt(D)), np.exp(1 / np.sqrt(D))  # per-frame softmax weights; current: e^0
    expected = entry / (entry + local + 1)
    np.testing.assert_allclose(stats.probes[0].mass_of(FrameKind.RETRIEVED), expected, rtol=1e-5)


def test_stats_name_the_embedder_and_are_nan_before_anything_is_retrieved():
    cache = make_cache(DySinkPolicy(window_frames=3, top_k=1))
    stats = add_chunk(cache, pattern(0))
    assert stats.gate["retrieved"] == 0.0
    assert np.isnan(stats.gate["retrieval_score[pixel]"]) and np.isnan(stats.gate["gate_fraction"])


# ---------------------------------------------------------------------- embedder


def test_pixel_embedder_ignores_brightness_and_scale_and_matches_uint8():
    embed = PixelEmbedder()
    base = pattern(3)
    e = embed(base)
    assert e.shape == (1, 192)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(embed(base + 0.3), e, atol=1e-5, rtol=0)
    uint8 = ((base.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert float(embed(uint8) @ e.T) > 0.999
    assert float(embed(pattern(4)) @ e.T) < 0.5


def test_pixel_embedder_averages_the_chunk_frames():
    """Two frames with orthogonal layouts (left/right vs top/bottom halves): the chunk's embedding is their
    normalized mean, at cosine 1/sqrt(2) to each."""
    left_right = torch.ones(1, 1, 3, 16, 16)
    left_right[..., 8:] = -1
    top_bottom = left_right.transpose(-1, -2)
    embed = PixelEmbedder()
    a, b = embed(left_right), embed(top_bottom)
    assert float(a @ b.T) == pytest.approx(0.0, abs=1e-6)
    chunk = embed(torch.cat([left_right, top_bottom], dim=1))
    assert float(chunk @ a.T) == pytest.approx(2 ** -0.5) and float(chunk @ b.T) == pytest.approx(2 ** -0.5)


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 8, 8), (1, 3, 30, 17)])
def test_area_downsample_is_adaptive_average_pooling(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(area_downsample(x, 8), torch.nn.functional.adaptive_avg_pool2d(x, 8))
