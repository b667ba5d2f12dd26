"""Train the built-in tiny model on procedural-world clips: `python -m lolbench.train` (Hydra, conf/train.yaml).

Objective: "prefix-clean" diffusion forcing with flow matching. A clip of ``clip_frames`` frames (absolute RoPE
positions 0..clip_frames-1) is split into chunks; the chunks before a random chunk k are nearly clean
(t <= context_noise, like the clean KV cache at inference), every later chunk gets its own noise level, drawn with
more weight on high noise. Attention is block-causal, as in generation. The network predicts x0; the loss is the
velocity error (x0 error / t), clipped at small t, on the noisy chunks only. Sampling uses an EMA of the weights.
Reproducible from the config and seed (same data stream, same initialization, deterministic CPU kernels).
Every ``save_every`` steps the whole training state (weights, EMA, optimizer, both random streams, loss history)
is written atomically to ``train_state.pt`` in the run directory; ``resume=PATH`` continues from such a file and
ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from lolbench.atomic import atomic_write, write_json
from lolbench.config import register_configs
from lolbench.models.build import architecture_from_config
from lolbench.models.checkpoint import save_checkpoint
from lolbench.models.sampler import to_model_space
from lolbench.models.tiny import ClipAttention, TinyVideoNet
from lolbench.provenance import environment
from lolbench.rope import JitterSpec, Rotary, build_tables, rope_spec_from_config
from lolbench.world import SCENES, ProceduralWorld, sample_clips
from lolbench.world.world import MAX_CLIP_START

log = logging.getLogger(__name__)


def sample_batch(cfg: DictConfig, scenes: list[str], arch, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Clips uint8 [B, F, H, W, 3], scene ids [B] and the RoPE positions [F] of their frames.

    Plain clips are contiguous, at positions 0..F-1. With probability ``sink_context.prob`` the batch is instead
    built the way a static-sink cache shows a long video to the model (LongLive trains with its sink in
    context): the first chunk of a stream (positions 0..chunk-1) followed by the stream's frames from
    ``chunk + gap`` on, at their true positions, with gap a random multiple of the chunk up to
    ``sink_context.max_gap``. The model then learns what the sink frames are for at distances it will meet.
    """
    frames, chunk = cfg.clip_frames, arch.chunk_frames
    if rng.random() >= cfg.sink_context.prob:
        clips, scene_ids = sample_clips(scenes, cfg.batch, frames, arch.image_size, rng)
        return clips, scene_ids, torch.arange(frames)
    gap = chunk * int(rng.integers(1, cfg.sink_context.max_gap // chunk + 1))
    scene_ids = rng.integers(len(scenes), size=cfg.batch)
    clips = np.empty((cfg.batch, frames, arch.image_size, arch.image_size, 3), dtype=np.uint8)
    for b, scene in enumerate(scene_ids):
        world = ProceduralWorld(scenes[scene], int(rng.integers(2**31)), arch.image_size)
        origin = int(rng.integers(MAX_CLIP_START))
        clips[b, :chunk] = world.frames(origin, chunk)
        clips[b, chunk:] = world.frames(origin + chunk + gap, frames - chunk)
    positions = torch.cat([torch.arange(chunk), torch.arange(chunk + gap, gap + frames)])
    return clips, scene_ids.astype(np.int64), positions


def noise_levels(batch: int, num_chunks: int, context_noise: float, shift: float, rng: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chunk noise levels [B, C] and the mask [B, C] of chunks that are trained (the noisy suffix)."""
    first_noisy = torch.randint(0, num_chunks, (batch, 1), generator=rng)
    noisy = torch.arange(num_chunks)[None] >= first_noisy
    u = torch.rand(batch, num_chunks, generator=rng)
    t_noisy = shift * u / (1 + (shift - 1) * u)  # shifted toward 1: more high-noise training
    t_clean = context_noise * torch.rand(batch, num_chunks, generator=rng)
    return torch.where(noisy, t_noisy, t_clean), noisy


def flow_matching_loss(net: TinyVideoNet, attention: ClipAttention, x0: torch.Tensor, scene: torch.Tensor,
                       cfg: DictConfig, rng: torch.Generator) -> torch.Tensor:
    B, Fr = x0.shape[:2]
    chunk = net.cfg.chunk_frames
    t_chunk, trained = noise_levels(B, Fr // chunk, cfg.context_noise, cfg.noise_shift, rng)
    t = t_chunk.repeat_interleave(chunk, dim=1)  # [B, F]
    noise = torch.randn(x0.shape, generator=rng)
    x_t = (1 - t)[..., None, None, None] * x0 + t[..., None, None, None] * noise
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        pred = net(x_t, t, scene, attention)
    err = (pred.float() - x0).pow(2).mean(dim=(2, 3, 4))  # [B, F]
    weight = trained.repeat_interleave(chunk, dim=1) / t.clamp(min=cfg.min_t).pow(2)
    return (err * weight).sum() / trained.repeat_interleave(chunk, dim=1).sum()


STATE_FILE = "train_state.pt"
RESUME_FREE_KEYS = ("resume", "checkpoint_out", "threads", "log_every", "save_every")  # may change on resume


def save_state(path: Path, step: int, net: TinyVideoNet, ema: TinyVideoNet, opt: torch.optim.Optimizer,
               data_rng: np.random.Generator, noise_rng: torch.Generator, history: list[dict], cfg: DictConfig
               ) -> None:
    """Everything a resumed run needs to continue exactly where this one is, written atomically."""
    state = {"step": step, "net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
             "data_rng": data_rng.bit_generator.state, "noise_rng": noise_rng.get_state(), "history": history,
             "config": OmegaConf.to_container(cfg, resolve=True)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | Path, cfg: DictConfig) -> dict:
    """A saved training state, checked against ``cfg``: a resumed run must train the same thing."""
    state = torch.load(Path(hydra.utils.to_absolute_path(str(path))), map_location="cpu", weights_only=True)
    now = OmegaConf.to_container(cfg, resolve=True)
    changed = sorted(k for k in set(now) | set(state["config"])
                     if k not in RESUME_FREE_KEYS and now.get(k) != state["config"].get(k))
    if changed:
        raise ValueError(f"resume={path}: the config differs from the saved run's in {changed}")
    if state["step"] >= cfg.steps:
        raise ValueError(f"resume={path}: the saved run already finished step {state['step']} of steps={cfg.steps}")
    return state


def train(cfg: DictConfig, out_dir: Path) -> dict:
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    arch = architecture_from_config(cfg.model)
    if cfg.clip_frames % arch.chunk_frames or cfg.clip_frames != arch.train_frames:
        raise ValueError(f"clip_frames={cfg.clip_frames} must equal model.train_frames={arch.train_frames} "
                         f"and be a multiple of model.chunk_frames={arch.chunk_frames}")
    scenes = list(SCENES)[: arch.num_scenes]
    net = TinyVideoNet(arch)
    ema = TinyVideoNet(arch)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False)
    tables = build_tables(rope_spec_from_config(dataclasses.asdict(arch), {"name": "none", "positions": "absolute"}), JitterSpec())
    rotary = Rotary(tables, arch.grid, arch.grid)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    data_rng = np.random.default_rng(cfg.seed)
    noise_rng = torch.Generator().manual_seed(cfg.seed)
    history, first = [], 1
    if cfg.resume:
        state = load_state(cfg.resume, cfg)
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        data_rng.bit_generator.state = state["data_rng"]
        noise_rng.set_state(state["noise_rng"])
        history, first = state["history"], state["step"] + 1
        log.info("resumed from %s at step %d", cfg.resume, first)
    start = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)
    for step in range(first, cfg.steps + 1):
        lr = cfg.lr * min(1.0, step / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        clips, scene_ids, positions = sample_batch(cfg, scenes, arch, data_rng)
        attention = ClipAttention(rotary, cfg.clip_frames, arch.chunk_frames, positions)
        loss = flow_matching_loss(net, attention, to_model_space(clips), torch.from_numpy(scene_ids).long(),
                                  cfg, noise_rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters()):
                p_ema.lerp_(p, 1 - cfg.ema)
        history.append({"step": step, "loss": loss.item(), "lr": lr, "seconds": time.perf_counter() - start})
        if step % cfg.log_every == 0 or step == cfg.steps:
            recent = np.mean([h["loss"] for h in history[-cfg.log_every:]])
            log.info("step %d/%d loss %.4f lr %.2e %.2fs/step", step, cfg.steps, recent, lr,
                     history[-1]["seconds"] / step)
            atomic_write(out_dir / "loss.csv", lambda p: pd.DataFrame(history).to_csv(p, index=False))
        if step % cfg.save_every == 0 or step == cfg.steps:
            save_state(out_dir / STATE_FILE, step, net, ema, opt, data_rng, noise_rng, history, cfg)
    wall = history[-1]["seconds"]
    final_loss = float(np.mean([h["loss"] for h in history[-cfg.log_every:]]))
    meta = {
        "scenes": scenes,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "final_loss": final_loss,
        "train_seconds": wall,
        "train_config": OmegaConf.to_container(cfg, resolve=True),
        "environment": environment(),
    }
    checkpoint = Path(hydra.utils.to_absolute_path(cfg.checkpoint_out))
    sha = save_checkpoint(checkpoint, ema, meta)
    record = {**meta, "checkpoint": str(cfg.checkpoint_out), "sha256": sha}
    write_json(checkpoint.with_suffix(".json"), record)
    write_json(out_dir / "train_summary.json", record)
    log.info("saved %s (sha256 %s), final loss %.4f after %.0f s", checkpoint, sha[:12], final_loss, wall)
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    register_configs()  # the model group's schema (lolbench/schema.py)
    main()
