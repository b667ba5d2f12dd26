"""Shared set-up of the model=wan tests: a tiny random Wan built the way diffusers' own Wan tests build one."""

from __future__ import annotations

import copy

import pytest
import torch

from lolbench.cache import StreamingKVCache
from lolbench.models.wan import StreamingWan, WanArch, build_transformer
from lolbench.rope import JitterSpec, RopeSpec, Rotary, build_tables

ARCH = WanArch(num_layers=2, num_heads=2, head_dim=12, in_channels=4, out_channels=4, text_dim=16, freq_dim=256,
               ffn_dim=32, latent_height=4, latent_width=4)  # 2x2 = 4 tokens per frame
TOL = {"atol": 1e-5, "rtol": 1e-5}  # float32, 2 layers: streaming and diffusers differ by rounding only


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread: on a busy 2-core machine, two threads cost ~100x per small op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_stream(arch: WanArch, policy, chunk_frames: int = 3, jitter: JitterSpec = JitterSpec(),
                seed: int = 0) -> tuple[StreamingWan, torch.nn.Module]:
    """(streaming model, an untouched copy of the same diffusers transformer with its default processors)."""
    torch.manual_seed(seed)
    transformer = build_transformer(arch)
    reference = copy.deepcopy(transformer)
    tables = build_tables(RopeSpec(head_dim=arch.head_dim, num_heads=arch.num_heads), jitter)
    cache = StreamingKVCache(policy, Rotary(tables, *arch.grid), "absolute", arch.num_layers, 1, arch.num_heads,
                             arch.head_dim, chunk_frames, content_channels=arch.in_channels)
    return StreamingWan(transformer, cache, arch), reference


