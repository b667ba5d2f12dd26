"""Build a generator from the run's Hydra config (model, sink, rope and jitter groups)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from omegaconf import DictConfig

from lolbench.cache import StreamingKVCache, build_policy
from lolbench.generator import VideoGenerator
from lolbench.models.checkpoint import load_checkpoint, resolve_checkpoint
from lolbench.models.sampler import TinyGenerator
from lolbench.models.tiny import TinyConfig, TinyVideoNet
from lolbench.rope import Rotary, build_tables, jitter_spec_from_config, position_mode, rope_spec_from_config
from lolbench.world import SCENES, WorldVideo

log = logging.getLogger(__name__)

MODELS = ("tiny", "world", "wan")


def architecture_from_config(model_cfg: DictConfig) -> TinyConfig:
    """The architecture keys of the model group as a TinyConfig."""
    return TinyConfig(**{f.name: model_cfg[f.name] for f in dataclasses.fields(TinyConfig)})


def _load_net(model_cfg: DictConfig) -> tuple[TinyVideoNet, dict[str, Any]]:
    """The network and what results must say about it (backbone name, checkpoint hash)."""
    wanted = architecture_from_config(model_cfg)
    if not model_cfg.checkpoint:
        log.warning("=" * 72)
        log.warning("NO CHECKPOINT: model.checkpoint is null, the tiny model runs with RANDOM weights.")
        log.warning("Its videos are noise; results are labelled backbone=tiny(random-init).")
        log.warning("=" * 72)
        torch.manual_seed(0)
        return TinyVideoNet(wanted), {"backbone": "tiny(random-init)", "checkpoint": None,
                                      "checkpoint_sha256": None, "scenes": list(SCENES)}
    net, meta, sha = load_checkpoint(model_cfg.checkpoint, device="cpu")
    for field in dataclasses.fields(TinyConfig):
        if getattr(net.cfg, field.name) != getattr(wanted, field.name):
            raise ValueError(
                f"model.{field.name}={getattr(wanted, field.name)} but checkpoint {model_cfg.checkpoint} was "
                f"trained with {getattr(net.cfg, field.name)}"
            )
    return net, {"backbone": "tiny", "checkpoint": str(resolve_checkpoint(model_cfg.checkpoint)),
                 "checkpoint_sha256": sha,
                 "scenes": meta.get("scenes", list(SCENES)), "checkpoint_meta": meta}


def build_tiny(cfg: DictConfig) -> tuple[TinyGenerator, dict[str, Any]]:
    positions = position_mode(cfg.rope)
    net, info = _load_net(cfg.model)
    arch = net.cfg
    tables = build_tables(
        rope_spec_from_config(dataclasses.asdict(arch), cfg.rope), jitter_spec_from_config(cfg.jitter)
    )
    rotary = Rotary(tables, arch.grid, arch.grid)
    cache = StreamingKVCache(
        policy=build_policy(cfg.sink, arch.chunk_frames),
        rotary=rotary,
        position_mode=positions,
        num_layers=arch.num_layers,
        batch=1,
        num_heads=arch.num_heads,
        head_dim=arch.head_dim,
        chunk_frames=arch.chunk_frames,
        device=cfg.model.device,
    )
    generator = TinyGenerator(
        net.to(cfg.model.device), cache, scenes=info["scenes"], chunk_frames=arch.chunk_frames,
        steps=cfg.model.denoise_steps, time_shift=cfg.model.time_shift, name=info["backbone"],
    )
    info["head_bases"] = tables.head_bases.tolist()
    info["cache_bytes"] = cache.memory_bytes()
    return generator, info


def build_generator(cfg: DictConfig) -> tuple[VideoGenerator, dict[str, Any]]:
    """Everything that can be wrong with the config fails here, before a frame is generated."""
    name = cfg.model.name
    if name == "tiny":
        return build_tiny(cfg)
    if name == "world":
        world = WorldVideo(size=cfg.model.size, chunk_frames=cfg.model.chunk_frames)
        return world, {"backbone": "world(procedural reference, no model)"}
    if name == "wan":
        from lolbench.models.wan_pipeline import build_wan_pipeline  # imports diffusers, which takes a while

        return build_wan_pipeline(cfg)
    raise ValueError(f"model.name={name!r}; allowed: {list(MODELS)}")
