"""Streaming generation with the tiny model: the chunked few-step flow-matching sampler over the KV cache."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lolbench.cache import StreamingKVCache
from lolbench.generator import Chunk, NonFiniteOutputError
from lolbench.models.tiny import ClipAttention, TinyVideoNet


def sampling_times(steps: int, shift: float) -> list[float]:
    """Noise levels visited by the sampler, from 1 down (exclusive of 0), with the usual timestep shift
    t' = s t / (1 + (s - 1) t) that spends more steps at high noise when s > 1."""
    if steps < 1:
        raise ValueError(f"model.denoise_steps must be >= 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"model.time_shift must be > 0, got {shift}")
    ts = np.linspace(1.0, 0.0, steps + 1)[:-1]
    return [float(shift * t / (1 + (shift - 1) * t)) for t in ts]


def to_model_space(frames: np.ndarray) -> Tensor:
    """uint8 [B, F, H, W, 3] -> float [B, F, 3, H, W] in [-1, 1] (the inverse of ``to_uint8``)."""
    return torch.from_numpy(frames).permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)


def to_uint8(x: Tensor) -> np.ndarray:
    """[B, F, 3, H, W] in [-1, 1] -> uint8 [B, F, H, W, 3]."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 1, 3, 4, 2).cpu().numpy()


class TinyGenerator:
    """The tiny model as a :class:`lolbench.generator.VideoGenerator` and :class:`~lolbench.generator.FrequencyUsage`.

    Each chunk starts from Gaussian noise, is denoised in ``steps`` Euler steps (each a forward pass whose
    attention reads, but does not change, the cache), and is then passed once more at t = 0 so that its clean
    keys and values are committed to the cache, as in Self-Forcing / CausVid.
    """

    fps = 16.0

    def __init__(
        self,
        net: TinyVideoNet,
        cache: StreamingKVCache,
        scenes: list[str],
        chunk_frames: int = 3,
        steps: int = 4,
        time_shift: float = 1.0,
        name: str = "tiny",
    ):
        self.net = net.eval()
        self.cache = cache
        self.scenes = scenes
        self.chunk_frames = chunk_frames
        self.times = sampling_times(steps, time_shift)
        self.name = name
        self.device = next(net.parameters()).device
        self._scene: Tensor | None = None
        self._rng: torch.Generator | None = None
        self._next_frame = 0

    def _scene_id(self, prompt: str) -> Tensor:
        if prompt not in self.scenes:
            raise ValueError(f"prompt={prompt!r} is not a scene of the built-in model; allowed: {self.scenes}")
        return torch.tensor([self.scenes.index(prompt)], device=self.device)

    def reset(self, prompt: str, seed: int) -> None:
        self._scene = self._scene_id(prompt)
        self._rng = torch.Generator(device="cpu").manual_seed(seed)
        self._next_frame = 0
        self.cache.reset()

    def _attend(self, commit: bool):
        return lambda layer, q, k, v: self.cache.attend(layer, q, k, v, commit=commit)

    @torch.no_grad()
    def next_chunk(self, probe: bool = False) -> Chunk:
        if self._scene is None or self._rng is None:
            raise RuntimeError("call reset(prompt, seed) before next_chunk()")
        cfg = self.net.cfg
        first = self._next_frame
        shape = (1, self.chunk_frames, 3, cfg.image_size, cfg.image_size)
        x = torch.randn(shape, generator=self._rng).to(self.device)
        self.cache.begin_chunk(first, probe)
        attend = self._attend(commit=False)
        for i, t in enumerate(self.times):
            t_frames = torch.full((1, self.chunk_frames), t, device=self.device)
            x0 = self.net(x, t_frames, self._scene, attend)
            t_next = self.times[i + 1] if i + 1 < len(self.times) else 0.0
            noise = (x - (1 - t) * x0) / t  # the noise implied by the prediction
            x = (1 - t_next) * x0 + t_next * noise
        finite = torch.isfinite(x).flatten(2).all(dim=2)[0]  # [F]
        if not finite.all():
            raise NonFiniteOutputError(first // self.chunk_frames, first + int((~finite).nonzero()[0]))
        x0 = x.clamp(-1, 1)
        self.net(x0, torch.zeros(1, self.chunk_frames, device=self.device), self._scene, self._attend(commit=True))
        stats = self.cache.end_chunk(x0)
        self._next_frame += self.chunk_frames
        return Chunk(
            frames=to_uint8(x0)[0],
            first_frame=first,
            positions=np.asarray(stats.positions),
            probe=stats.probes[0] if stats.probes else None,
            stats=dict(stats.gate),
        )

    def state_dict(self) -> dict[str, Any]:
        """:class:`lolbench.generator.VideoGenerator` state: frame counter, noise RNG and the KV cache."""
        if self._rng is None:
            raise RuntimeError("call reset(prompt, seed) before state_dict()")
        return {"next_frame": self._next_frame, "rng": self._rng.get_state(), "cache": self.cache.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._rng is None:
            raise RuntimeError("call reset(prompt, seed) before load_state_dict()")
        self.cache.load_state_dict(state["cache"])
        if self.cache.num_frames != state["next_frame"]:
            raise ValueError(f"generator state at frame {state['next_frame']} holds a cache at frame "
                             f"{self.cache.num_frames}")
        self._rng.set_state(state["rng"])
        self._next_frame = int(state["next_frame"])

    @torch.no_grad()
    def temporal_pair_usage(self, clips: np.ndarray, prompt: str) -> np.ndarray:
        """:class:`lolbench.generator.FrequencyUsage`: ``E|q_i| * E|k_i|`` per layer, head, temporal pair: [L, H, K].

        One clean pass (t = 0) over the clips with block-causal attention at positions 0..F-1 (``ClipAttention``,
        with this generator's RoPE tables, jitter included), the way a video generated from its first frame is
        read. Magnitudes of the 2-vectors (q[2i], q[2i+1]) are rotation invariant, so "before rotation" only
        says where they are taken; means run over clips and tokens. Does not touch the cache or the rollout.
        """
        cfg = self.net.cfg
        if not isinstance(clips, np.ndarray) or clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
            raise ValueError(f"clips must be uint8 [B, F, H, W, 3], got {getattr(clips, 'dtype', type(clips))} "
                             f"{getattr(clips, 'shape', '')}")
        if clips.shape[2:4] != (cfg.image_size, cfg.image_size):
            raise ValueError(f"clips must be {cfg.image_size}x{cfg.image_size} frames, got {clips.shape[2:4]}")
        scene = self._scene_id(prompt)
        batch, frames = clips.shape[:2]
        rotary = self.cache.rotary
        pairs = rotary.tables.time.shape[1]  # K temporal pairs: head dims [0, 2K)
        clip_attention = ClipAttention(rotary, frames, self.chunk_frames)
        q_mag = torch.full((cfg.num_layers, cfg.num_heads, pairs), float("nan"), dtype=torch.float64)
        k_mag = torch.full_like(q_mag, float("nan"))

        def attend(layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            # q, k: [B, H, N, D] -> temporal pairs [B, H, N, K, 2] -> magnitudes averaged to [H, K]
            q_mag[layer] = q[..., : 2 * pairs].unflatten(-1, (pairs, 2)).norm(dim=-1).mean(dim=(0, 2)).double().cpu()
            k_mag[layer] = k[..., : 2 * pairs].unflatten(-1, (pairs, 2)).norm(dim=-1).mean(dim=(0, 2)).double().cpu()
            return clip_attention(layer, q, k, v)

        x = to_model_space(clips)  # [B, F, 3, H, W]
        self.net(x.to(self.device), torch.zeros(batch, frames, device=self.device), scene.expand(batch), attend)
        if torch.isnan(q_mag).any():
            raise RuntimeError("temporal_pair_usage: some layers never called attention")
        return (q_mag * k_mag).numpy()
