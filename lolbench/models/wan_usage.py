"""Temporal RoPE pair usage of a Wan model, measured on chunks it generates itself.

The tiny model's usage is read on procedural-world clips (``TinyGenerator.temporal_pair_usage``); a real model
has no such ground-truth video, but its own first chunks for a prompt are the content its attention reads in a
rollout. ``own_chunk_usage`` generates a few chunks and, on each chunk's clean re-pass (the pass whose keys are
cached), averages the magnitudes of every temporal pair (q[2i], q[2i+1]) of the un-rotated queries and keys per
layer and head. Magnitudes are rotation invariant, so they are what RoPE's phases weight at any distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lolbench.models.wan_sampler import WanGenerator


class _PairMagnitudes:
    """Stands in for the cache in the attention processors: sums |q_i| and |k_i| of committing passes, then
    hands the call on unchanged."""

    def __init__(self, cache: Any, pairs: int):
        self._cache = cache
        self.pairs = pairs
        shape = (cache.num_layers, cache.num_heads, pairs)
        self.q_sum = torch.zeros(shape, dtype=torch.float64)
        self.k_sum = torch.zeros(shape, dtype=torch.float64)
        self.tokens = torch.zeros(cache.num_layers, dtype=torch.float64)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cache, name)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor, commit: bool) -> Tensor:
        if commit:  # q, k: [B, H, N, D] -> temporal pairs [B, H, N, K, 2] -> magnitudes summed to [H, K]
            def pair_sum(x: Tensor) -> Tensor:
                pairs = x[..., : 2 * self.pairs].float().unflatten(-1, (self.pairs, 2))
                return pairs.norm(dim=-1).sum(dim=(0, 2)).double().cpu()

            self.q_sum[layer] += pair_sum(q)
            self.k_sum[layer] += pair_sum(k)
            self.tokens[layer] += q.shape[0] * q.shape[2]
        return self._cache.attend(layer, q, k, v, commit=commit)


def own_chunk_usage(generator: WanGenerator, prompt: str, chunks: int, seed: int = 0) -> np.ndarray:
    """``E|q_i| * E|k_i|`` per layer, head and temporal pair [L, H, K] over the first ``chunks`` chunks the model
    generates for ``prompt`` (latents only; the VAE is not needed)."""
    if chunks < 1:
        raise ValueError(f"chunks must be >= 1, got {chunks}")
    stream = generator.model
    recorder = _PairMagnitudes(stream.cache, pairs=stream.cache.rotary.tables.time.shape[1])
    generator.reset(prompt, seed)
    stream.cache = recorder
    try:
        for _ in range(chunks):
            generator.next_latents()
    finally:
        stream.cache = recorder._cache
    if torch.any(recorder.tokens == 0):
        raise RuntimeError("own_chunk_usage: some layers never committed keys")
    tokens = recorder.tokens[:, None, None]
    return ((recorder.q_sum / tokens) * (recorder.k_sum / tokens)).numpy()
