"""The streaming KV cache: positions, eviction by each policy, bounded memory, commit semantics, config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lolbench.cache import (
    DeepSinkPolicy,
    DySinkPolicy,
    StaticSinkPolicy,
    StreamingKVCache,
    WindowPolicy,
    build_policy,
)
from lolbench.config import compose_run_config
from lolbench.probes import FrameKind
from lolbench.rope import Rotary, RopeSpec, build_tables

F, P, H, D = 3, 2, 2, 8  # frames per chunk, tokens per frame (1x2 grid), heads, head dim


def make_cache(policy, mode: str = "absolute", layers: int = 1, batch: int = 1) -> StreamingKVCache:
    rotary = Rotary(build_tables(RopeSpec(head_dim=D, num_heads=H)), grid_h=1, grid_w=P)
    return StreamingKVCache(policy, rotary, mode, num_layers=layers, batch=batch, num_heads=H, head_dim=D,
                            chunk_frames=F)


def blank_frames(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, F, 3, 4, 4)


def run_chunks(cache: StreamingKVCache, stop: int, start: int = 0, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """Commit random K/V for chunks ``start..stop-1`` without attending; returns each chunk's (k, v)."""
    gen = torch.Generator().manual_seed(seed)
    history = []
    for c in range(start, stop):
        k, v = torch.randn(2, cache.batch, H, F * P, D, generator=gen).unbind(0)
        cache.begin_chunk(c * F, probe=False)
        for layer in range(cache.num_layers):
            cache.commit(layer, k, v)
        cache.end_chunk(blank_frames(cache.batch))
        history.append((k, v))
    return history


def reference_attention(rotary: Rotary, q, keys, values, key_pos, query_pos) -> torch.Tensor:
    """Plain softmax attention with every key rotated at the given frame positions."""
    q = rotary.rotate(q, torch.as_tensor(query_pos))
    k = rotary.rotate(keys, torch.as_tensor(key_pos))
    weights = (q @ k.transpose(-2, -1) / math.sqrt(D)).softmax(-1)
    return weights @ values


def frames_of(history, frames) -> tuple[torch.Tensor, torch.Tensor]:
    """The un-rotated keys and values of the given frame indices, concatenated in that order."""
    k = torch.cat([history[f // F][0][:, :, (f % F) * P:(f % F + 1) * P] for f in frames], dim=2)
    v = torch.cat([history[f // F][1][:, :, (f % F) * P:(f % F + 1) * P] for f in frames], dim=2)
    return k, v


# ---------------------------------------------------------------------- positions


def test_absolute_cached_keys_score_like_freshly_rotated_ones():
    cache = make_cache(StaticSinkPolicy(sink_frames=3, window_frames=6))
    history = run_chunks(cache, 7)  # chunk 0 is the sink, chunks 5-6 the window
    cache.begin_chunk(7 * F, probe=False)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [0, 1, 2, 15, 16, 17, 18, 19, 20]
    assert kind[0].tolist() == [FrameKind.SINK] * 3 + [FrameKind.LOCAL] * 6

    cached_keys, _ = cache.context(0)
    q = torch.randn(1, H, F * P, D)
    query_pos = torch.arange(21, 24)
    fresh_keys = cache.rotary.rotate(frames_of(history, frame_index[0])[0], torch.as_tensor(frame_index[0]))
    q_rot = cache.rotary.rotate(q, query_pos)
    torch.testing.assert_close(q_rot @ cached_keys.transpose(-2, -1), q_rot @ fresh_keys.transpose(-2, -1))

    k, v = torch.randn(2, 1, H, F * P, D).unbind(0)
    out = cache.attend(0, q, k, v, commit=False)
    keys, values = frames_of(history + [(k, v)], [*frame_index[0], 21, 22, 23])
    expected = reference_attention(cache.rotary, q, keys, values, [*frame_index[0], 21, 22, 23], query_pos)
    torch.testing.assert_close(out, expected)


def test_rolling_positions_stay_inside_the_window_and_match_reindexed_attention():
    policy = StaticSinkPolicy(sink_frames=3, window_frames=6)
    cache = make_cache(policy, mode="rolling")
    history = run_chunks(cache, 40)
    q, k, v = torch.randn(3, 1, H, F * P, D).unbind(0)
    cache.begin_chunk(40 * F, probe=False)
    frame_index, _ = cache.context_frames
    out = cache.attend(0, q, k, v, commit=True)
    stats = cache.end_chunk(blank_frames())
    assert stats.positions.tolist() == [9, 10, 11]  # 3 sink + 6 local context frames re-indexed 0..8
    keys, values = frames_of(history + [(k, v)], [*frame_index[0], 120, 121, 122])
    torch.testing.assert_close(out, reference_attention(cache.rotary, q, keys, values, list(range(12)), [9, 10, 11]))

    limit = policy.sink_frames + policy.window_frames + F
    for c in range(41, 80):
        cache.begin_chunk(c * F, probe=False)
        cache.commit(0, k, v)
        positions = cache.end_chunk(blank_frames()).positions
        assert positions.min() >= 0 and positions.max() < limit


def test_first_chunk_positions_are_its_frame_indices_in_both_modes():
    for mode in ("absolute", "rolling"):
        cache = make_cache(WindowPolicy(6), mode=mode)
        cache.begin_chunk(0, probe=False)
        cache.commit(0, *torch.randn(2, 1, H, F * P, D).unbind(0))
        assert cache.end_chunk(blank_frames()).positions.tolist() == [0, 1, 2]


# ---------------------------------------------------------------------- policies


def test_static_sink_still_holds_the_first_chunk_after_1000_chunks():
    cache = make_cache(StaticSinkPolicy(sink_frames=3, window_frames=6))
    first = run_chunks(cache, 1)[0]
    run_chunks(cache, 1000, start=1)
    cache.begin_chunk(1000 * F, probe=False)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [0, 1, 2, 2994, 2995, 2996, 2997, 2998, 2999]
    assert (kind[0][:3] == FrameKind.SINK).all()
    keys, values = cache.context(0)
    torch.testing.assert_close(keys[:, :, : F * P], cache.rotary.rotate(first[0], torch.arange(3)))
    torch.testing.assert_close(values[:, :, : F * P], first[1])


def test_window_evicts_the_oldest_frames():
    cache = make_cache(WindowPolicy(window_frames=6))
    seen = []
    for c in range(6):
        cache.begin_chunk(c * F, probe=False)
        seen.append(cache.context_frames[0][0].tolist())
        cache.commit(0, *torch.randn(2, 1, H, F * P, D).unbind(0))
        cache.end_chunk(blank_frames())
    assert seen == [[], [0, 1, 2], [0, 1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8], [6, 7, 8, 9, 10, 11],
                    [9, 10, 11, 12, 13, 14]]


def test_window_not_a_multiple_of_the_chunk_keeps_exactly_the_last_frames():
    cache = make_cache(StaticSinkPolicy(sink_frames=1, window_frames=4))
    run_chunks(cache, 5)
    cache.begin_chunk(15, probe=False)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [0, 11, 12, 13, 14]
    assert kind[0].tolist() == [FrameKind.SINK] + [FrameKind.LOCAL] * 4


@pytest.mark.parametrize(("fraction", "context", "sink", "window"),
                         [(0.5, 21, 12, 9), (0.4, 21, 9, 12), (0.6, 21, 12, 9), (0.0, 21, 0, 21), (0.45, 12, 6, 6)])
def test_deep_sink_sizes_are_chunk_rounded(fraction, context, sink, window):
    policy = DeepSinkPolicy(sink_fraction=fraction, context_frames=context, chunk_frames=3)
    assert (policy.sink_frames, policy.window_frames) == (sink, window)
    assert isinstance(policy, StaticSinkPolicy)


def test_deep_sink_context_after_many_chunks():
    cache = make_cache(DeepSinkPolicy(sink_fraction=0.5, context_frames=12, chunk_frames=F))
    run_chunks(cache, 20)
    cache.begin_chunk(60, probe=False)
    frame_index, kind = cache.context_frames
    assert frame_index[0].tolist() == [0, 1, 2, 3, 4, 5, 54, 55, 56, 57, 58, 59]
    assert (kind[0] == FrameKind.SINK).sum() == 6


# ---------------------------------------------------------------------- storage


@pytest.mark.parametrize("policy", [StaticSinkPolicy(3, 6), DySinkPolicy(window_frames=3, top_k=1, bank_size=4)])
def test_memory_and_buffers_are_identical_after_100_and_10000_chunks(policy):
    cache = make_cache(policy, layers=2)
    gen = torch.Generator().manual_seed(0)
    k = v = torch.zeros(1, H, F * P, D)
    footprints = []
    for c in range(10_000):
        cache.begin_chunk(c * F, probe=False)
        cache.commit(0, k, v)
        cache.commit(1, k, v)
        cache.end_chunk(torch.randint(0, 256, (1, F, 3, 8, 8), dtype=torch.uint8, generator=gen))
        if c + 1 in (100, 10_000):
            ptrs = {name: b.data_ptr() if isinstance(b, torch.Tensor) else b.ctypes.data
                    for name, b in cache.buffers().items()}
            footprints.append((cache.memory_bytes(), ptrs))
    assert footprints[0] == footprints[1]


def test_memory_bytes_counts_the_kv_storage():
    cache = make_cache(StaticSinkPolicy(3, 6), layers=2)
    blocks = 1 + 2 + 1 + 1  # sink chunk, window chunks, the chunk being committed, scratch
    kv_bytes = 2 * 2 * 1 * H * blocks * F * P * D * 4  # K and V, 2 layers, batch 1, float32
    buffers = cache.buffers()
    assert buffers["keys"].nbytes + buffers["values"].nbytes == kv_bytes
    assert cache.memory_bytes() == sum(b.nbytes for b in buffers.values()) > kv_bytes


def test_attend_without_commit_leaves_the_cache_unchanged():
    policy = StaticSinkPolicy(3, 6)
    touched, clean = make_cache(policy, layers=2), make_cache(policy, layers=2)
    history = run_chunks(touched, 4)
    run_chunks(clean, 4)
    touched.begin_chunk(12, probe=True)
    before = [touched.context(layer) for layer in range(2)], touched.context_frames
    for _ in range(3):
        for layer in range(2):
            touched.attend(layer, *torch.randn(3, 1, H, F * P, D).unbind(0), commit=False)
    after = [touched.context(layer) for layer in range(2)], touched.context_frames
    for (k0, v0), (k1, v1) in zip(before[0], after[0]):
        assert torch.equal(k0, k1) and torch.equal(v0, v1)
    assert np.array_equal(before[1][0], after[1][0])

    # the next chunk sees exactly what a cache that never ran those denoising calls sees
    k, v = history[0]
    clean.begin_chunk(12, probe=False)
    for cache in (touched, clean):
        for layer in range(2):
            cache.commit(layer, k, v)
        cache.end_chunk(blank_frames())
        cache.begin_chunk(15, probe=False)
    q = torch.randn(1, H, F * P, D)
    torch.testing.assert_close(touched.attend(1, q, k, v, commit=False), clean.attend(1, q, k, v, commit=False))


def test_batch_elements_are_independent():
    single, batched = make_cache(StaticSinkPolicy(3, 3)), make_cache(StaticSinkPolicy(3, 3), batch=2)
    gen = torch.Generator().manual_seed(1)
    for c in range(4):
        q, k, v = torch.randn(3, 2, H, F * P, D, generator=gen).unbind(0)
        single.begin_chunk(c * F, probe=False)
        batched.begin_chunk(c * F, probe=False)
        out_single = single.attend(0, q[1:], k[1:], v[1:], commit=True)
        out_batched = batched.attend(0, q, k, v, commit=True)
        torch.testing.assert_close(out_batched[1:], out_single)
        single.end_chunk(blank_frames())
        batched.end_chunk(blank_frames(2))


# ---------------------------------------------------------------------- protocol and config errors


def test_protocol_errors_name_the_problem():
    cache = make_cache(WindowPolicy(6))
    qkv = torch.randn(3, 1, H, F * P, D).unbind(0)
    with pytest.raises(RuntimeError, match="begin_chunk"):
        cache.attend(0, *qkv, commit=False)
    with pytest.raises(ValueError, match="expected 0"):
        cache.begin_chunk(3, probe=False)
    cache.begin_chunk(0, probe=False)
    with pytest.raises(ValueError, match="layer=1"):
        cache.attend(1, *qkv, commit=False)
    with pytest.raises(ValueError, match="q must be"):
        cache.attend(0, qkv[0][:, :1], *qkv[1:], commit=False)
    with pytest.raises(RuntimeError, match=r"layers \[0\] did not commit"):
        cache.end_chunk(blank_frames())
    cache.attend(0, *qkv, commit=True)
    with pytest.raises(RuntimeError, match="already committed"):
        cache.attend(0, *qkv, commit=False)
    with pytest.raises(ValueError, match="frames must be"):
        cache.end_chunk(torch.zeros(1, 2, 3, 4, 4))


@pytest.mark.parametrize("name", ["window", "static", "deep", "dysink"])
def test_every_sink_config_builds(name):
    policy = build_policy(compose_run_config([f"sink={name}"]).sink, chunk_frames=3)
    assert policy.name == name
    make_cache(policy)  # the cache accepts it


def test_shipped_configs_have_the_documented_sizes():
    def load(name):
        return build_policy(compose_run_config([f"sink={name}"]).sink, chunk_frames=3)
    assert (load("window").sink_frames, load("window").window_frames) == (0, 12)
    assert (load("static").sink_frames, load("static").window_frames) == (3, 9)
    assert (load("deep").sink_frames, load("deep").window_frames) == (12, 9)
    dysink = load("dysink")
    assert (dysink.sink_frames, dysink.window_frames, dysink.top_k, dysink.bank_size) == (0, 9, 2, 64)
    assert (dysink.dedup_threshold, dysink.gate, dysink.gate_tau, dysink.embedder) == (0.95, True, 0.8, "pixel")


@pytest.mark.parametrize(("cfg", "match"), [
    ({"name": "window", "window_frames": 2}, "window_frames=2 is smaller than a chunk"),
    ({"name": "static", "sink_frames": -3, "window_frames": 9}, "sink_frames must be an integer >= 0"),
    ({"name": "deep", "sink_fraction": 1.5, "context_frames": 21}, "sink_fraction must be"),
    ({"name": "deep", "sink_fraction": 0.95, "context_frames": 21}, "smaller than a chunk"),
    ({"name": "dysink", "sink_frames": 0, "window_frames": 9, "top_k": 5, "bank_size": 4,
      "dedup_threshold": 0.95, "gate": True, "gate_tau": 0.8, "embedder": "pixel"}, "top_k=5 exceeds sink.bank_size=4"),
    ({"name": "dysink", "sink_frames": 0, "window_frames": 10, "top_k": 2, "bank_size": 64,
      "dedup_threshold": 0.95, "gate": True, "gate_tau": 0.8, "embedder": "pixel"}, "window_frames=10 must be a whole"),
    ({"name": "dysink", "sink_frames": 0, "window_frames": 9, "top_k": 2, "bank_size": 64,
      "dedup_threshold": 0.95, "gate": True, "gate_tau": 1.8, "embedder": "pixel"}, "gate_tau"),
    ({"name": "dysink", "sink_frames": 0, "window_frames": 9, "top_k": 2, "bank_size": 64,
      "dedup_threshold": 0.95, "gate": True, "gate_tau": 0.8, "embedder": "dino"}, r"embedder='dino' is not one of"),
])
def test_invalid_sink_configs_raise_naming_the_key(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_policy(OmegaConf.create(cfg), chunk_frames=3)


def test_invalid_cache_arguments_raise_naming_the_argument():
    with pytest.raises(ValueError, match="position_mode='relative' is not one of"):
        make_cache(WindowPolicy(6), mode="relative")
    rotary = Rotary(build_tables(RopeSpec(head_dim=D, num_heads=H)), grid_h=1, grid_w=P)
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        StreamingKVCache(WindowPolicy(6), rotary, "absolute", num_layers=0, batch=1, num_heads=H, head_dim=D,
                         chunk_frames=F)
    with pytest.raises(ValueError, match="window_frames=6 is smaller than a chunk"):
        StreamingKVCache(WindowPolicy(6), rotary, "absolute", num_layers=1, batch=1, num_heads=H, head_dim=D,
                         chunk_frames=8)
