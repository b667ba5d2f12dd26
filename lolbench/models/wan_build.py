"""Build ``model=wan`` from the run's config: transformer (+ weights, + LoRA), RoPE tables, KV cache, sampler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from lolbench.cache import ChunkEmbedder, StreamingKVCache, build_policy
from lolbench.models.wan import StreamingWan, WanArch, build_transformer, cast_transformer
from lolbench.models.wan_checkpoint import load_transformer, merge_lora
from lolbench.models.wan_sampler import LatentDecoder, WanGenerator, warped_sigmas
from lolbench.rope import Rotary, build_tables, jitter_spec_from_config, position_mode, rope_spec_from_config

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"model.dtype={name!r} is not one of {list(DTYPES)}")
    return DTYPES[name]


def load_weights(model_cfg: DictConfig, arch: WanArch) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The transformer in float32 with the configured weights (and LoRA), and what results must say about it."""
    if not model_cfg.checkpoint:
        if model_cfg.lora:
            raise ValueError("model.lora needs model.checkpoint (a LoRA on random weights means nothing)")
        log.warning("NO CHECKPOINT: model.checkpoint is null, the Wan transformer runs with RANDOM weights "
                    "(results are labelled backbone=wan2.1(random-init)).")
        torch.manual_seed(0)
        return build_transformer(arch), {"backbone": "wan2.1(random-init)", "checkpoint": None,
                                         "checkpoint_sha256": None}
    transformer, sha = load_transformer(arch, model_cfg.checkpoint, model_cfg.checkpoint_key)
    info = {"backbone": "wan2.1", "checkpoint": str(model_cfg.checkpoint), "checkpoint_sha256": sha}
    if model_cfg.lora:
        transformer, info["lora_sha256"] = merge_lora(transformer, model_cfg.lora, model_cfg.lora_rank,
                                                      model_cfg.lora_alpha)
        info["lora"] = str(model_cfg.lora)
    return transformer, info


def build_wan(
    cfg: DictConfig,
    text_encoder: Callable[[str], Tensor] | None = None,
    decoder: LatentDecoder | None = None,
    chunk_embedder: ChunkEmbedder | None = None,
) -> tuple[WanGenerator, dict[str, Any]]:
    """The Wan generator for the run config (groups model, sink, rope, jitter); part 2 passes its text encoder,
    streaming VAE decoder and retrieval encoder. Everything that can be wrong with the config fails here."""
    m = cfg.model
    arch = WanArch.from_config(m)
    arch.check_rope_split(m.rope_time_dim)
    dtype = _dtype(m.dtype)
    sigmas = warped_sigmas(list(m.timesteps), m.shift)
    positions = position_mode(cfg.rope)
    tables = build_tables(rope_spec_from_config(m, cfg.rope), jitter_spec_from_config(cfg.jitter))
    policy = build_policy(cfg.sink, m.chunk_frames)
    transformer, info = load_weights(m, arch)
    transformer = cast_transformer(transformer.to(m.device), dtype)
    cache = StreamingKVCache(
        policy=policy, rotary=Rotary(tables, *arch.grid), position_mode=positions, num_layers=arch.num_layers,
        batch=1, num_heads=arch.num_heads, head_dim=arch.head_dim, chunk_frames=m.chunk_frames, dtype=dtype,
        device=m.device, content_channels=arch.in_channels,
    )
    generator = WanGenerator(
        StreamingWan(transformer, cache, arch), sigmas, context_noise=m.context_noise, chunk_frames=m.chunk_frames,
        name=info["backbone"], text_encoder=text_encoder, decoder=decoder, chunk_embedder=chunk_embedder,
    )
    info.update(head_bases=tables.head_bases.tolist(), cache_bytes=cache.memory_bytes(), sigmas=sigmas)
    return generator, info
