"""The built-in tiny AR video model: a Wan-like causal video diffusion transformer in miniature.

Frames (default 32x32 RGB) are embedded by an overlapping strided convolution into a grid of tokens (4x4), run
through transformer blocks whose attention uses 3D RoPE with per-head frequency tables, and decoded by a linear
patch projection followed by a small convolutional pixel head (so no patch seams). Timestep and scene prompt
condition every block through adaLN, once per frame. The network predicts the clean frames x0 from
x_t = (1 - t) x0 + t noise (flow matching); the sampler turns that into a few Euler steps.

Attention is delegated: every block calls ``attend(layer, q, k, v)`` with un-rotated per-head queries, keys and
values of the frames it is given. During generation that is the streaming KV cache (lolbench.cache), which owns
positions, sinks and probes; during training it is ``ClipAttention`` below (block-causal over a whole clip).
Left out on purpose: text encoders (a scene id is the prompt), a VAE (pixels are the latent), cross-attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lolbench.rope import Rotary


@dataclass
class TinyConfig:
    image_size: int = 32
    patch_stride: int = 8  # token grid = image_size / patch_stride per side
    patch_kernel: int = 12  # > stride: neighbouring tokens overlap, which removes seams
    num_heads: int = 6
    head_dim: int = 32
    num_layers: int = 4
    mlp_ratio: int = 4
    head_channels: int = 32  # channels of the convolutional pixel head
    num_scenes: int = 8
    chunk_frames: int = 3  # frames per autoregressive step
    train_frames: int = 21  # clip length seen in training: RoPE positions 0..train_frames-1
    rope_theta: float = 10000.0
    rope_time_dim: int | None = None  # None: Wan's split of the head dim

    @property
    def width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_stride

    def __post_init__(self) -> None:
        if self.image_size % self.patch_stride:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_stride {self.patch_stride}")


class Attend(Protocol):
    def __call__(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q, k, v: [B, H, N, D] un-rotated; returns attention output [B, H, N, D]."""


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    # x: [B, F, P, C]; shift, scale: [B, F, 1, C] (one modulation per frame)
    return x * (1 + scale) + shift


class SelfAttention(nn.Module):
    def __init__(self, cfg: TinyConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.q_norm = RMSNorm(cfg.head_dim)  # q/k norm keeps logits bounded, as in Wan
        self.k_norm = RMSNorm(cfg.head_dim)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: Tensor, attend: Attend) -> Tensor:
        B, Fr, P, C = x.shape
        qkv = self.qkv(x).view(B, Fr * P, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, H, F*P, D]
        y = attend(self.layer, self.q_norm(q), self.k_norm(k), v)  # [B, H, F*P, D]
        y = y.transpose(1, 2).reshape(B, Fr, P, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig, layer: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(cfg, layer)
        self.norm2 = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width),
            nn.GELU(approximate="tanh"),
            nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width),
        )
        self.ada = nn.Linear(cfg.width, 6 * cfg.width)
        nn.init.zeros_(self.ada.weight)  # blocks start as identity (adaLN-zero)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, cond: Tensor, attend: Attend) -> Tensor:
        # x: [B, F, P, C]; cond: [B, F, C]
        mods = self.ada(F.silu(cond)).unsqueeze(2).chunk(6, dim=-1)  # 6 x [B, F, 1, C]
        shift1, scale1, gate1, shift2, scale2, gate2 = mods
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), attend)
        x = x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled to 0..1000 like diffusion timesteps): [...] -> [..., dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float().unsqueeze(-1) * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class PixelHead(nn.Module):
    """Tokens -> pixels: a linear map to a coarse patch image, refined by two 3x3 convolutions across patch borders."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(cfg.width, 2 * cfg.width)
        self.linear = nn.Linear(cfg.width, cfg.patch_stride**2 * cfg.head_channels)
        self.refine = nn.Sequential(
            nn.Conv2d(cfg.head_channels, cfg.head_channels, 3, padding=1),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(cfg.head_channels, 3, 3, padding=1),
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        B, Fr, P, C = x.shape
        shift, scale = self.ada(F.silu(cond)).unsqueeze(2).chunk(2, dim=-1)
        x = self.linear(modulate(self.norm(x), shift, scale))  # [B, F, P, s*s*c]
        g, s, c = self.cfg.grid, self.cfg.patch_stride, self.cfg.head_channels
        x = x.view(B * Fr, g, g, s, s, c).permute(0, 5, 1, 3, 2, 4)  # [B*F, c, g, s, g, s]
        x = x.reshape(B * Fr, c, g * s, g * s)
        return self.refine(x).view(B, Fr, 3, g * s, g * s)


class TinyVideoNet(nn.Module):
    """x0-predicting video transformer; frames are [B, F, 3, H, W] in [-1, 1]."""

    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        pad = (cfg.patch_kernel - cfg.patch_stride) // 2
        self.embed = nn.Conv2d(3, cfg.width, cfg.patch_kernel, stride=cfg.patch_stride, padding=pad)
        self.scene = nn.Embedding(cfg.num_scenes, cfg.width)
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.width, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width)
        )
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.head = PixelHead(cfg)

    def forward(self, x: Tensor, t: Tensor, scene: Tensor, attend: Attend) -> Tensor:
        """x: [B, F, 3, H, W] noisy frames; t: [B, F] noise level per frame; scene: [B] ids -> x0 estimate."""
        B, Fr = x.shape[:2]
        h = self.embed(x.flatten(0, 1))  # [B*F, C, g, g]
        h = h.flatten(2).transpose(1, 2).reshape(B, Fr, -1, self.cfg.width)  # [B, F, P, C]
        cond = self.time_mlp(timestep_embedding(t, self.cfg.width)) + self.scene(scene)[:, None]  # [B, F, C]
        for block in self.blocks:
            h = block(h, cond, attend)
        return self.head(h, cond)


class ClipAttention:
    """Block-causal attention over a whole clip, for training and for checking the streaming cache.

    Frames are grouped into chunks of ``chunk_frames``; a token attends to every token of its own chunk and of
    earlier chunks. Queries and keys are rotated at the given temporal ``positions`` (one per frame; by default
    0..num_frames-1, as when a video is generated from its first frame).
    """

    def __init__(self, rotary: Rotary, num_frames: int, chunk_frames: int, positions: Tensor | None = None):
        if num_frames % chunk_frames:
            raise ValueError(f"num_frames={num_frames} is not a multiple of chunk_frames={chunk_frames}")
        self.rotary = rotary
        self.positions = torch.arange(num_frames) if positions is None else positions
        P = rotary.tokens_per_frame
        chunk_of_token = torch.arange(num_frames).repeat_interleave(P) // chunk_frames  # [F*P]
        self.mask = chunk_of_token[:, None] >= chunk_of_token[None, :]  # [N, N]: query may see key
        self.scale = rotary.tables.attn_scale

    def __call__(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q = self.rotary.rotate(q, self.positions)
        k = self.rotary.rotate(k, self.positions)
        mask = self.mask.to(q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale / math.sqrt(q.shape[-1]))
