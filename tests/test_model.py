"""The tiny model: determinism, checkpoints, and streaming attention equal to a direct recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lolbench.cache import StaticSinkPolicy, StreamingKVCache, WindowPolicy
from lolbench.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lolbench.models.sampler import TinyGenerator, sampling_times
from lolbench.models.tiny import ClipAttention, TinyConfig, TinyVideoNet
from lolbench.rope import RopeSpec, Rotary, build_tables

SMALL = TinyConfig(image_size=16, patch_stride=8, patch_kernel=12, num_heads=2, head_dim=16, num_layers=2,
                   head_channels=8, num_scenes=2)


def make_net(seed: int = 0) -> TinyVideoNet:
    torch.manual_seed(seed)
    net = TinyVideoNet(SMALL)
    # adaLN-zero makes a fresh net ignore attention; randomize so the test exercises it
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def make_rotary() -> Rotary:
    tables = build_tables(RopeSpec(head_dim=SMALL.head_dim, num_heads=SMALL.num_heads, time_dim=8))
    return Rotary(tables, SMALL.grid, SMALL.grid)


def make_cache(policy, rotary: Rotary, mode: str = "absolute") -> StreamingKVCache:
    return StreamingKVCache(policy=policy, rotary=rotary, position_mode=mode, num_layers=SMALL.num_layers,
                            batch=1, num_heads=SMALL.num_heads, head_dim=SMALL.head_dim,
                            chunk_frames=SMALL.chunk_frames)


def test_sampling_times_are_uniform_without_shift_and_shifted_up_with_it():
    assert sampling_times(4, 1.0) == [1.0, 0.75, 0.5, 0.25]
    shifted = sampling_times(4, 3.0)
    assert shifted[0] == 1.0 and all(s > u for s, u in zip(shifted[1:], [0.75, 0.5, 0.25]))
    with pytest.raises(ValueError, match="denoise_steps"):
        sampling_times(0, 1.0)


def generate(seed: int, chunks: int = 3) -> np.ndarray:
    rotary = make_rotary()
    gen = TinyGenerator(make_net(), make_cache(StaticSinkPolicy(3, 6), rotary), scenes=["a", "b"],
                        chunk_frames=SMALL.chunk_frames)
    gen.reset("b", seed)
    out = [gen.next_chunk() for _ in range(chunks)]
    assert [c.first_frame for c in out] == [0, 3, 6]
    return np.concatenate([c.frames for c in out])


def test_same_seed_same_frames_and_different_seeds_differ():
    a, b, c = generate(1), generate(1), generate(2)
    assert a.shape == (9, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_prompt_is_rejected_with_the_allowed_scenes():
    gen = TinyGenerator(make_net(), make_cache(WindowPolicy(6), make_rotary()), scenes=["a", "b"])
    with pytest.raises(ValueError, match=r"prompt='zzz'.*\['a', 'b'\]"):
        gen.reset("zzz", 0)


def stream_clean_pass(net, cache, frames, scene) -> torch.Tensor:
    """Run the clean re-pass chunk by chunk through the cache; returns the net's outputs for all frames."""
    chunk = SMALL.chunk_frames
    outs = []
    cache.reset()
    for start in range(0, frames.shape[1], chunk):
        x = frames[:, start:start + chunk]
        cache.begin_chunk(start, False)
        attend = lambda layer, q, k, v: cache.attend(layer, q, k, v, commit=True)  # noqa: E731
        outs.append(net(x, torch.zeros(1, chunk), scene, attend))
        cache.end_chunk(x)
    return torch.cat(outs, dim=1)


@torch.no_grad()
def test_streaming_cache_equals_full_clip_recomputation():
    net, rotary = make_net(), make_rotary()
    frames = torch.rand(1, 12, 3, 16, 16) * 2 - 1
    scene = torch.tensor([1])
    streamed = stream_clean_pass(net, make_cache(WindowPolicy(12), rotary), frames, scene)
    direct = net(frames, torch.zeros(1, 12), scene, ClipAttention(rotary, 12, SMALL.chunk_frames))
    torch.testing.assert_close(streamed, direct, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_static_sink_cache_equals_masked_recomputation():
    """Sink 3 + window 3: chunk c sees frames 0-2, the chunk before it, and itself; nothing else."""
    net, rotary = make_net(), make_rotary()
    frames = torch.rand(1, 15, 3, 16, 16) * 2 - 1
    scene = torch.tensor([0])
    streamed = stream_clean_pass(net, make_cache(StaticSinkPolicy(3, 3), rotary), frames, scene)
    P = rotary.tokens_per_frame
    chunk_of = torch.arange(15).repeat_interleave(P) // 3
    visible = (chunk_of[None] == 0) | (chunk_of[None] == chunk_of[:, None]) | (chunk_of[None] == chunk_of[:, None] - 1)
    positions = torch.arange(15)

    def attend(layer, q, k, v):
        q, k = rotary.rotate(q, positions), rotary.rotate(k, positions)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=1 / math.sqrt(q.shape[-1]))

    direct = net(frames, torch.zeros(1, 15), scene, attend)
    torch.testing.assert_close(streamed, direct, rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    net = make_net()
    path = tmp_path / "tiny.pt"
    sha = save_checkpoint(path, net, {"scenes": ["a", "b"]})
    loaded, meta, sha2 = load_checkpoint(path)
    assert sha == sha2 and meta["scenes"] == ["a", "b"] and loaded.cfg == SMALL
    for key, value in net.state_dict().items():
        assert torch.equal(value.half().float(), loaded.state_dict()[key])  # stored as float16
    with pytest.raises(CheckpointError, match="no file"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_checkpoint(tmp_path / "corrupt.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a lolbench"):
        load_checkpoint(tmp_path / "foreign.pt")
