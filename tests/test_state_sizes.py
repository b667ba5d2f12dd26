"""The streaming state a checkpoint carries does not grow with the video: the KV cache's state (contents,
layout, DySink bank) has the same size after 1,000 and after 20,000 frames."""

from __future__ import annotations

import pytest
import torch

from lolbench.checkpoint import state_nbytes
from lolbench.models.build import build_generator


def advance(cache, frames: int, generator: torch.Generator) -> None:
    """Commit random chunks straight into the cache (no model) until it holds ``frames`` frames."""
    shape = (cache.batch, cache.num_heads, cache.chunk_frames * cache.tokens_per_frame, cache.head_dim)
    while cache.num_frames < frames:
        cache.begin_chunk(cache.num_frames, probe=False)
        for layer in range(cache.num_layers):
            cache.commit(layer, torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))
        cache.end_chunk(torch.rand(cache.batch, cache.chunk_frames, 3, 32, 32, generator=generator) * 2 - 1)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds start-up cost
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("sink", ["static", "dysink"])
def test_cache_state_size_is_the_same_after_1000_and_20000_frames(run_config, one_thread, sink):
    # one layer and head of a random-init model: the cache's bookkeeping is what is under test, and it is cheap
    generator, _ = build_generator(run_config([f"sink={sink}", "model.checkpoint=null", "model.num_layers=1",
                                               "model.num_heads=1"]))
    cache, rng = generator.cache, torch.Generator().manual_seed(0)
    advance(cache, 1_000, rng)
    early = cache.state_dict()
    advance(cache, 20_000, rng)
    late = cache.state_dict()
    assert early["num_frames"] >= 1_000 and late["num_frames"] >= 20_000
    assert state_nbytes(late) == state_nbytes(early) > 0
    assert {k: tuple(v.shape) for k, v in late.items() if hasattr(v, "shape")} == \
        {k: tuple(v.shape) for k, v in early.items() if hasattr(v, "shape")}
