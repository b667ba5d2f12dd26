"""Temporal pair usage of the tiny model (FrequencyUsage) and the usage-weighted kernel it feeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lolbench.cache import StreamingKVCache, WindowPolicy
from lolbench.generator import FrequencyUsage
from lolbench.models.sampler import TinyGenerator
from lolbench.models.tiny import TinyConfig, TinyVideoNet
from lolbench.phase import frame_frequencies, local_maxima, reference_usage, usage_weighted_kernel
from lolbench.rope import JitterSpec, RopeSpec, Rotary, build_tables
from lolbench.world import WorldVideo, sample_clips

SCENES = ["meadow", "ocean"]
CFG = TinyConfig(image_size=16, patch_stride=8, patch_kernel=12, num_heads=2, head_dim=16, num_layers=2,
                 head_channels=8, num_scenes=2)
TIME_DIM = 8  # K = 4 temporal pairs: head dims 0..7
PERIOD = 30.0
THETA = (PERIOD / (2 * math.pi)) ** 4  # ω_1 = θ^(-2/8) = 2π/30: pair 1 turns once every 30 frames


def make_generator(sigma: float = 0.0, keep_pair: int | None = None) -> TinyGenerator:
    """A small random net (adaLN gates randomized so attention matters); with ``keep_pair`` its q and k
    projections are zero except on that temporal pair of every head, and q/k norms have unit weights."""
    torch.manual_seed(0)
    net = TinyVideoNet(CFG)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        if keep_pair is not None:
            width, d = CFG.width, CFG.head_dim
            rows = torch.arange(2 * width)  # q rows then k rows of the fused qkv projection
            keep = (rows % d) // 2 == keep_pair  # dim within the head -> its pair
            for block in net.blocks:
                block.attn.qkv.weight[: 2 * width][~keep] = 0.0
                block.attn.qkv.bias[: 2 * width][~keep] = 0.0
                block.attn.q_norm.weight.fill_(1.0)
                block.attn.k_norm.weight.fill_(1.0)
    spec = RopeSpec(head_dim=CFG.head_dim, num_heads=CFG.num_heads, theta=THETA, time_dim=TIME_DIM)
    rotary = Rotary(build_tables(spec, JitterSpec(sigma=sigma, seed=1)), CFG.grid, CFG.grid)
    cache = StreamingKVCache(policy=WindowPolicy(window_frames=6), rotary=rotary, position_mode="absolute",
                             num_layers=CFG.num_layers, batch=1, num_heads=CFG.num_heads, head_dim=CFG.head_dim,
                             chunk_frames=CFG.chunk_frames)
    return TinyGenerator(net.eval(), cache, scenes=SCENES, chunk_frames=CFG.chunk_frames, steps=2)


def clips(count: int = 2, frames: int = 6) -> np.ndarray:
    return sample_clips(["meadow"], count, frames, CFG.image_size, np.random.default_rng(0))[0]


def test_usage_shape_and_sign():
    generator = make_generator()
    assert isinstance(generator, FrequencyUsage)
    assert not isinstance(WorldVideo(), FrequencyUsage)
    usage = generator.temporal_pair_usage(clips(), "meadow")
    assert usage.shape == (CFG.num_layers, CFG.num_heads, TIME_DIM // 2)
    assert usage.dtype == np.float64 and np.all(np.isfinite(usage)) and np.all(usage > 0)


def test_a_net_using_one_pair_has_usage_and_kernel_only_there():
    generator = make_generator(keep_pair=1)
    usage = generator.temporal_pair_usage(clips(), "meadow")
    others = np.delete(usage, 1, axis=2)
    np.testing.assert_array_equal(others, 0.0)
    # q/k RMSNorm scales a vector with one non-zero pair to |pair| = sqrt(head_dim): usage = head_dim
    np.testing.assert_allclose(usage[:, :, 1], CFG.head_dim, rtol=1e-3)

    freqs = frame_frequencies(generator.cache.rotary.tables)  # [H, K]
    deltas = np.arange(0, 201, dtype=np.float64)
    kernel = usage_weighted_kernel(freqs, usage, deltas)  # [L, H, N]
    np.testing.assert_allclose(kernel, np.broadcast_to(np.cos(2 * math.pi * deltas / PERIOD), kernel.shape),
                               atol=1e-9)
    maxima = sorted(d for d, _, _ in local_maxima(kernel.mean(axis=(0, 1)), deltas))
    assert maxima == [30.0, 60.0, 90.0, 120.0, 150.0, 180.0]


def test_usage_is_taken_before_rotation():
    """Layer 0's queries and keys do not depend on RoPE, so jitter leaves its usage unchanged; later layers read
    attention outputs, which jitter changes."""
    videos = clips()
    plain = make_generator(sigma=0.0).temporal_pair_usage(videos, "meadow")
    jittered = make_generator(sigma=0.8).temporal_pair_usage(videos, "meadow")
    np.testing.assert_allclose(plain[0], jittered[0], rtol=1e-6)
    assert not np.allclose(plain[1], jittered[1], rtol=1e-6)


def test_measuring_usage_leaves_the_rollout_unchanged():
    generator = make_generator()
    generator.reset("ocean", seed=3)
    first = [generator.next_chunk().frames for _ in range(2)]
    generator.reset("ocean", seed=3)
    second = [generator.next_chunk().frames]
    generator.temporal_pair_usage(clips(), "meadow")
    second.append(generator.next_chunk().frames)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_bad_clips_and_prompts_are_named():
    generator = make_generator()
    with pytest.raises(ValueError, match="uint8"):
        generator.temporal_pair_usage(clips().astype(np.float32), "meadow")
    with pytest.raises(ValueError, match="16x16"):
        generator.temporal_pair_usage(np.zeros((1, 3, 8, 8, 3), np.uint8), "meadow")
    with pytest.raises(ValueError, match="num_frames=5 is not a multiple of chunk_frames=3"):
        generator.temporal_pair_usage(clips(frames=5), "meadow")
    with pytest.raises(ValueError, match="prompt='lava' is not a scene"):
        generator.temporal_pair_usage(clips(), "lava")


def test_reference_usage_measures_on_world_clips():
    generator = make_generator()
    usage = reference_usage(generator, "meadow", clips=2, frames=6, size=CFG.image_size, seed=0)
    np.testing.assert_allclose(usage, generator.temporal_pair_usage(clips(2, 6), "meadow"))
    with pytest.raises(TypeError, match="WorldVideo does not measure frequency usage"):
        reference_usage(WorldVideo(), "meadow", clips=1, frames=6, size=16)
    with pytest.raises(ValueError, match="clips must be >= 1"):
        reference_usage(generator, "meadow", clips=0, frames=6, size=16)
