"""Streaming generation with Wan: the chunked few-step flow-matching sampler of Self-Forcing / LongLive.

Per chunk of ``chunk_frames`` latent frames: start from Gaussian noise; at each timestep of the warped schedule
predict x0 from the model's flow prediction (x0 = x_t − σ_t·v) and re-noise it with fresh noise to the next
timestep; the last prediction is the chunk. Then one more pass over the clean chunk at timestep
``context_noise`` writes its keys and values into the cache (LongLive and Self-Forcing feed the clean chunk and
only change the timestep). Only the last pass of a chunk changes the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from lolbench.cache import ChunkEmbedder
from lolbench.generator import Chunk
from lolbench.models.sampler import to_uint8
from lolbench.models.wan import StreamingWan
from lolbench.probes import AttentionProbe
from lolbench.timing import timed

NUM_TRAIN_TIMESTEPS = 1000


def warped_sigmas(timesteps: Sequence[float], shift: float) -> list[float]:
    """Noise levels σ of a denoising step list after the flow-matching shift: σ = shift·s / (1 + (shift − 1)·s)
    with s = t / 1000. Self-Forcing's and LongLive's ``warp_denoising_step`` picks these entries of a 1000-step
    shifted schedule ([1000, 750, 500, 250] at shift 5 -> σ = 1, 0.9375, 0.8333, 0.625); the model is fed 1000·σ.
    """
    ts = [float(t) for t in timesteps]
    if not ts or any(not 0 < t <= NUM_TRAIN_TIMESTEPS for t in ts) or any(a <= b for a, b in zip(ts, ts[1:])):
        raise ValueError(f"model.timesteps={list(timesteps)} must be strictly decreasing values in (0, 1000]")
    if not shift > 0:
        raise ValueError(f"model.shift must be > 0, got {shift}")
    s = [t / NUM_TRAIN_TIMESTEPS for t in ts]
    return [shift * x / (1 + (shift - 1) * x) for x in s]


class LatentDecoder(Protocol):
    """A streaming VAE decoder (part 2): keeps its own temporal state between chunks of one video."""

    def reset(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """Its temporal state between chunks (for resuming a video)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def decode(self, latents: Tensor) -> Tensor:
        """[B, C, F, h, w] latents -> [B, F', 3, H, W] frames in [-1, 1] (F' may differ from chunk to chunk)."""


@dataclass
class LatentChunk:
    """One chunk in latent space."""

    latents: Tensor  # [C, F, h, w] float32, the clean prediction x0
    first_frame: int  # latent-frame index of latents[:, 0]
    positions: np.ndarray  # [F] temporal RoPE positions of the chunk's queries
    probe: AttentionProbe | None = None
    stats: dict[str, float] = field(default_factory=dict)


class WanGenerator:
    """Wan as a :class:`lolbench.generator.VideoGenerator` (with a ``decoder``) and a latent-chunk source.

    ``text_encoder`` maps a prompt to embeddings [1, L, text_dim] for ``reset(prompt, seed)``;
    ``reset_embeds`` takes embeddings directly. With a ``chunk_embedder`` (a learned encoder on decoded frames,
    e.g. DySink's retrieval encoder) the cache's chunk memory stores its embedding; otherwise the memory embeds the
    latents with ``sink.embedder``.
    """

    fps = 16.0  # Wan2.1's frame rate (pixel frames)

    def __init__(
        self,
        model: StreamingWan,
        sigmas: Sequence[float],
        context_noise: float = 0.0,
        chunk_frames: int = 3,
        name: str = "wan2.1",
        text_encoder: Callable[[str], Tensor] | None = None,
        decoder: LatentDecoder | None = None,
        chunk_embedder: ChunkEmbedder | None = None,
    ):
        if not 0 <= context_noise <= NUM_TRAIN_TIMESTEPS:
            raise ValueError(f"model.context_noise must be a timestep in [0, 1000], got {context_noise}")
        if chunk_embedder is not None and decoder is None:
            raise ValueError("a chunk_embedder reads decoded frames: it needs a decoder")
        if model.cache.chunk_frames != chunk_frames:
            raise ValueError(f"model.chunk_frames={chunk_frames}, but the cache was built for "
                             f"{model.cache.chunk_frames}")
        self.model = model
        self.cache = model.cache
        self.sigmas = list(sigmas)
        self.context_noise = float(context_noise)
        self.chunk_frames = chunk_frames
        self.name = name
        self.text_encoder = text_encoder
        self.decoder = decoder
        self.chunk_embedder = chunk_embedder
        self._rng: torch.Generator | None = None
        self._next_frame = 0
        self._next_pixel = 0

    def reset(self, prompt: str, seed: int) -> None:
        if self.text_encoder is None:
            raise RuntimeError("model=wan needs a text encoder to take a prompt: set model.wan_dir (a local Wan2.1 "
                               "folder), or give text embeddings with reset_embeds(prompt_embeds, seed)")
        self.reset_embeds(self.text_encoder(prompt), seed)

    def reset_embeds(self, prompt_embeds: Tensor, seed: int) -> None:
        """Start a new video conditioned on text embeddings [1, L, text_dim]; the text K/V are computed once."""
        self.model.set_text(prompt_embeds)
        self._rng = torch.Generator(device="cpu").manual_seed(seed)
        self._next_frame = self._next_pixel = 0
        self.cache.reset()
        if self.decoder is not None:
            self.decoder.reset()

    def state_dict(self) -> dict[str, Any]:
        """Resume protocol (lolbench.generator): RNG, frame counters, cache (and decoder) state, between chunks.
        The text keys and values are not included: ``reset`` with the same prompt recomputes them."""
        if self._rng is None:
            raise RuntimeError("state_dict() needs a started video (reset first)")
        state = {"rng": self._rng.get_state(), "next_frame": self._next_frame, "next_pixel": self._next_pixel,
                 "cache": self.cache.state_dict()}
        if self.decoder is not None:
            state["decoder"] = self.decoder.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a video after ``reset`` with the same prompt and seed."""
        if self._rng is None:
            raise RuntimeError("load_state_dict() after reset(prompt, seed)")
        self.cache.load_state_dict(state["cache"])
        self._rng.set_state(torch.as_tensor(state["rng"]))
        self._next_frame, self._next_pixel = int(state["next_frame"]), int(state["next_pixel"])
        if self.decoder is not None:
            self.decoder.load_state_dict(state["decoder"])

    def _noise(self, shape: tuple[int, ...]) -> Tensor:
        """Gaussian noise drawn on the CPU (the same video for a seed on any device)."""
        return torch.randn(shape, generator=self._rng).to(self.model.device)

    def _denoise(self, first: int, probe: bool) -> Tensor:
        """The chunk's clean latents x0 [1, C, F, h, w] (float32) after the denoising steps; cache unchanged."""
        arch = self.model.arch
        shape = (self.cache.batch, arch.in_channels, self.chunk_frames, arch.latent_height, arch.latent_width)
        x = self._noise(shape)
        self.cache.begin_chunk(first, probe)
        for i, sigma in enumerate(self.sigmas):
            flow = self.model(x, NUM_TRAIN_TIMESTEPS * sigma, commit=False)
            x0 = (x.double() - sigma * flow.double()).float()  # in float64, as the reference samplers do
            if i + 1 == len(self.sigmas):
                return x0
            nxt = self.sigmas[i + 1]
            x = (1 - nxt) * x0 + nxt * self._noise(shape)
        raise AssertionError("unreachable: sigmas is never empty")

    @torch.no_grad()
    def _step(self, probe: bool) -> tuple[LatentChunk, Tensor | None]:
        if self._rng is None:
            raise RuntimeError("call reset(prompt, seed) or reset_embeds(prompt_embeds, seed) before generating")
        first = self._next_frame
        seconds: dict[str, float] = {}
        with timed(seconds, "seconds_transformer"):
            x0 = self._denoise(first, probe)
            self.model(x0, self.context_noise, commit=True)
        pixels = embedding = None
        if self.decoder is not None:
            with timed(seconds, "seconds_vae"):
                pixels = self.decoder.decode(x0)
        if self.chunk_embedder is not None:
            with timed(seconds, "seconds_retrieval"):
                embedding = self.chunk_embedder(pixels)
        content = x0.transpose(1, 2)  # [B, F, C, h, w]: what the chunk memory embeds without a learned encoder
        stats = self.cache.end_chunk(content, embedding=embedding)
        self._next_frame += self.chunk_frames
        chunk = LatentChunk(latents=x0[0].cpu(), first_frame=first, positions=np.asarray(stats.positions),
                            probe=stats.probes[0] if stats.probes else None, stats={**stats.gate, **seconds})
        return chunk, pixels

    def next_latents(self, probe: bool = False) -> LatentChunk:
        """The next chunk in latent space (decoded too when a decoder is attached, to keep its state in step)."""
        return self._step(probe)[0]

    def next_chunk(self, probe: bool = False) -> Chunk:
        """The next chunk as frames; needs a ``decoder`` (``Chunk.first_frame`` counts pixel frames,
        ``Chunk.positions`` are the latent frames' RoPE positions)."""
        if self.decoder is None:
            raise RuntimeError("model=wan makes latents; next_chunk needs a VAE decoder (use next_latents without one)")
        latent, pixels = self._step(probe)
        frames = to_uint8(pixels)[0]  # [F', H, W, 3]
        first = self._next_pixel
        self._next_pixel += len(frames)
        return Chunk(frames=frames, first_frame=first, positions=latent.positions, probe=latent.probe,
                     stats=latent.stats)
