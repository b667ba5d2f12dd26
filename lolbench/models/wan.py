"""Wan2.1's transformer, streaming chunk by chunk through lolbench's KV cache.

The network is diffusers' ``WanTransformer3DModel``, unchanged, run by its own ``forward``. Only its attention
processors are replaced, through diffusers' processor API (``set_attn_processor``):

- self-attention (``attn1``) projects and q/k-normalizes exactly as diffusers' ``WanAttnProcessor`` does, then hands
  the un-rotated per-head queries, keys and values to ``StreamingKVCache.attend``, which owns positions (absolute
  or rolling, any length: no 1024-frame table), per-head RoPE tables with LoL jitter and extension methods, the
  sink policy and the probes. The rotary table diffusers computes for the chunk is ignored.
- cross-attention (``attn2``) computes the text keys and values once per prompt and reuses them for every chunk and
  denoising step.

Diffusers has no causal or streaming Wan; causal Wan checkpoints (Self-Forcing, LongLive, DySink) use Wan2.1's
architecture with per-chunk timesteps, which for a chunk that shares one timestep is this forward.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lolbench._compat import ensure_torchvision
from lolbench.cache import StreamingKVCache
from lolbench.rope import wan_time_dim

ensure_torchvision()  # diffusers imports torchvision when it is installed
from diffusers import WanTransformer3DModel  # noqa: E402


@dataclass(frozen=True)
class WanArch:
    """Architecture of the Wan transformer (defaults: Wan2.1-T2V-1.3B) and the latent grid of one frame."""

    num_layers: int = 30
    num_heads: int = 12
    head_dim: int = 128
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    ffn_dim: int = 8960
    patch_size: tuple[int, int, int] = (1, 2, 2)
    cross_attn_norm: bool = True
    eps: float = 1e-6
    latent_height: int = 60  # 480 px / 8 (Wan's VAE)
    latent_width: int = 104  # 832 px / 8

    def __post_init__(self) -> None:
        for f in ("num_layers", "num_heads", "head_dim", "in_channels", "out_channels", "text_dim", "freq_dim",
                  "ffn_dim", "latent_height", "latent_width"):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{f} must be a positive integer, got {value!r}")
        p_t, p_h, p_w = self.patch_size
        if p_t != 1:
            raise ValueError(f"model.patch_size={list(self.patch_size)}: streaming needs a temporal patch of 1 frame")
        if self.latent_height % p_h or self.latent_width % p_w:
            raise ValueError(f"model.latent_height/width={self.latent_height}x{self.latent_width} is not a multiple "
                             f"of the patch {p_h}x{p_w}")

    @property
    def grid(self) -> tuple[int, int]:
        """Tokens per frame as (rows, columns)."""
        return self.latent_height // self.patch_size[1], self.latent_width // self.patch_size[2]

    def diffusers_config(self) -> dict:
        """The ``WanTransformer3DModel`` constructor arguments (text-to-video: no image branch)."""
        return {
            "patch_size": tuple(self.patch_size), "num_attention_heads": self.num_heads,
            "attention_head_dim": self.head_dim, "in_channels": self.in_channels, "out_channels": self.out_channels,
            "text_dim": self.text_dim, "freq_dim": self.freq_dim, "ffn_dim": self.ffn_dim,
            "num_layers": self.num_layers, "cross_attn_norm": self.cross_attn_norm,
            "qk_norm": "rms_norm_across_heads", "eps": self.eps, "image_dim": None, "added_kv_proj_dim": None,
        }

    @classmethod
    def from_config(cls, model_cfg) -> WanArch:
        """The architecture keys of the ``model`` group."""
        values = {f.name: model_cfg[f.name] for f in dataclasses.fields(cls)}
        values["patch_size"] = tuple(values["patch_size"])
        return cls(**values)

    def check_rope_split(self, rope_time_dim: int | None) -> None:
        """Wan's checkpoints are trained with Wan's split of the head dim; another split is an error."""
        if rope_time_dim not in (None, wan_time_dim(self.head_dim)):
            raise ValueError(f"model.rope_time_dim={rope_time_dim}: Wan uses {wan_time_dim(self.head_dim)} temporal "
                             f"dims of {self.head_dim} (leave it null)")


def build_transformer(arch: WanArch) -> WanTransformer3DModel:
    """A randomly initialized Wan transformer of this architecture (lolbench.models.wan_checkpoint loads weights)."""
    return WanTransformer3DModel(**arch.diffusers_config())


def cast_transformer(transformer: WanTransformer3DModel, dtype: torch.dtype) -> WanTransformer3DModel:
    """Cast to ``dtype`` except the parameters diffusers keeps in float32 when it loads in low precision (its
    ``_keep_in_fp32_modules``: time embedding, modulation tables, norms), by diffusers' own name rule."""
    keep = transformer._keep_in_fp32_modules or []
    for name, param in transformer.named_parameters():
        param.data = param.data.to(torch.float32 if any(m in name.split(".") for m in keep) else dtype)
    return transformer


def _heads(x: Tensor, heads: int) -> Tensor:
    return x.unflatten(2, (heads, -1)).transpose(1, 2)  # [B, N, H*D] -> [B, H, N, D]


class CachedSelfAttention:
    """``attn1`` processor: Wan's projections and q/k norm, attention by the streaming KV cache."""

    def __init__(self, stream: StreamingWan, layer: int):
        self.stream = stream
        self.layer = layer

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, rotary_emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        q = _heads(attn.norm_q(attn.to_q(hidden_states)), attn.heads)  # [B, H, N, D]
        k = _heads(attn.norm_k(attn.to_k(hidden_states)), attn.heads)
        v = _heads(attn.to_v(hidden_states), attn.heads)
        out = self.stream.cache.attend(self.layer, q, k, v, commit=self.stream.committing)
        out = out.transpose(1, 2).flatten(2).type_as(q)  # [B, N, H*D]
        return attn.to_out[1](attn.to_out[0](out))


class CachedCrossAttention:
    """``attn2`` processor: text keys and values computed on the first call after a prompt change, then reused."""

    def __init__(self, stream: StreamingWan, layer: int):
        self.stream = stream
        self.layer = layer

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor,
                 attention_mask: Tensor | None = None, rotary_emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        kv = self.stream.text_kv[self.layer]
        if kv is None:
            kv = (_heads(attn.norm_k(attn.to_k(encoder_hidden_states)), attn.heads),
                  _heads(attn.to_v(encoder_hidden_states), attn.heads))  # [B, H, L, D] each
            self.stream.text_kv[self.layer] = kv
        q = _heads(attn.norm_q(attn.to_q(hidden_states)), attn.heads)
        out = F.scaled_dot_product_attention(q, *kv).transpose(1, 2).flatten(2).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))


class StreamingWan:
    """A Wan transformer whose attention goes through ``cache``: one call = one forward pass over one chunk.

    The caller drives the cache's chunk protocol (``begin_chunk`` ... ``end_chunk``) around the calls; within a
    chunk every call but the last uses ``commit=False`` and the last (the clean re-pass) ``commit=True``.
    """

    def __init__(self, transformer: WanTransformer3DModel, cache: StreamingKVCache, arch: WanArch):
        geometry = (cache.num_layers, cache.num_heads, cache.head_dim)
        if geometry != (arch.num_layers, arch.num_heads, arch.head_dim):
            raise ValueError(f"cache geometry (layers, heads, head dim) = {geometry} does not match the model's "
                             f"{(arch.num_layers, arch.num_heads, arch.head_dim)}")
        grid = (cache.rotary.grid_h, cache.rotary.grid_w)
        if grid != arch.grid:
            raise ValueError(f"cache token grid {grid} is not the model's {arch.grid}")
        self.transformer = transformer.eval()
        self.cache = cache
        self.arch = arch
        self.committing = False
        self.text_kv: list[tuple[Tensor, Tensor] | None] = [None] * arch.num_layers
        self._text: Tensor | None = None
        processors = {}
        for i in range(arch.num_layers):
            processors[f"blocks.{i}.attn1.processor"] = CachedSelfAttention(self, i)
            processors[f"blocks.{i}.attn2.processor"] = CachedCrossAttention(self, i)
        transformer.set_attn_processor(processors)

    @property
    def device(self) -> torch.device:
        return self.cache.device

    @property
    def dtype(self) -> torch.dtype:
        """Activations' dtype: the cache's (= the model's low-precision dtype)."""
        return self.cache.dtype

    def set_text(self, prompt_embeds: Tensor) -> None:
        """Text embeddings [B, L, text_dim] for the following chunks; drops the cached text keys and values."""
        expected = (self.cache.batch, self.arch.text_dim)
        if prompt_embeds.ndim != 3 or (prompt_embeds.shape[0], prompt_embeds.shape[2]) != expected:
            raise ValueError(f"prompt_embeds must be [B={expected[0]}, L, text_dim={expected[1]}], "
                             f"got {tuple(prompt_embeds.shape)}")
        self._text = prompt_embeds.to(device=self.device, dtype=self.dtype)
        self.text_kv = [None] * self.arch.num_layers

    @torch.no_grad()
    def __call__(self, latents: Tensor, timestep: float, commit: bool) -> Tensor:
        """Flow prediction (noise − x0) for the chunk ``latents`` [B, C, F, h, w] at ``timestep`` (0..1000)."""
        if self._text is None:
            raise RuntimeError("set_text(prompt_embeds) before the first forward pass")
        self.committing = commit
        t = torch.full((latents.shape[0],), float(timestep), device=self.device)
        out = self.transformer(latents.to(self.dtype), t, self._text, return_dict=False)[0]
        return out.float()
