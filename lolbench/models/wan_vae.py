"""Wan2.1's VAE (diffusers' ``AutoencoderKLWan``) decoding latents chunk by chunk as they are generated.

LongLive and Self-Forcing decode the whole latent video at the end, which holds every latent (and every pixel
frame) of an hour-long run in memory. Wan's decoder is causal in time: it already decodes one latent frame at a
time, carrying the last two input frames of each causal convolution in a feature cache. ``StreamingWanDecoder``
keeps that cache alive between chunks instead of clearing it, so each chunk's pixels come out as soon as its
latents exist, memory stays bounded (two frames per convolution), and the frames equal a one-shot decode of all
latents. Latent frame 0 decodes to 1 pixel frame, every later latent frame to 4.

diffusers has no public streaming API for this VAE; the decoder's ``feat_cache`` / ``feat_idx`` / ``first_chunk``
arguments used here are the ones its own ``decode`` loop passes, and the tests compare against that ``decode``.

Weights load from a local Wan2.1 folder: ``vae/`` (diffusers layout) or ``Wan2.1_VAE.pth`` (original layout,
renamed with diffusers' own ``convert_wan_vae_to_diffusers``; its width is read off the tensors, the rest of the
architecture and the latent statistics are Wan2.1's, which diffusers' defaults hold).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lolbench._compat import ensure_torchvision

log = logging.getLogger(__name__)

ORIGINAL_VAE = "Wan2.1_VAE.pth"
DIFFUSERS_VAE = "vae"


class VAEError(ValueError):
    """A VAE that cannot be found or loaded; the message names the config key and the files."""


def pixel_frames(latent_frames: int) -> int:
    """Pixel frames decoded from the first ``latent_frames`` latent frames (1 for frame 0, 4 for each later one)."""
    return 0 if latent_frames <= 0 else 1 + 4 * (latent_frames - 1)


def _conv_count(vae) -> int:
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    return sum(isinstance(m, WanCausalConv3d) for m in vae.decoder.modules())


class StreamingWanDecoder:
    """Decode a stream of latent chunks [B, C, f, h, w] into pixel frames [B, f', 3, H, W] in [-1, 1].

    Latents are taken as the transformer sees them (normalized per channel); the VAE's ``latents_mean`` /
    ``latents_std`` undo that before decoding. Call ``reset`` before a new video.
    """

    def __init__(self, vae):
        if getattr(vae.config, "patch_size", None) is not None:
            raise VAEError(f"VAE patch_size={vae.config.patch_size}: only Wan2.1's unpatched VAE is supported")
        self.vae = vae.eval()
        param = next(vae.parameters())
        shape = (1, vae.config.z_dim, 1, 1, 1)
        self._mean = torch.tensor(vae.config.latents_mean, dtype=param.dtype, device=param.device).view(shape)
        self._std = torch.tensor(vae.config.latents_std, dtype=param.dtype, device=param.device).view(shape)
        self._convs = _conv_count(vae)
        self.reset()

    def reset(self) -> None:
        self._cache: list[Tensor | None] = [None] * self._convs
        self._latent_frames = 0

    def state_dict(self) -> dict[str, Any]:
        """The temporal state between chunks, for resuming a video: each causal convolution's cached input frames
        (copied to the CPU; diffusers also stores the marker string "Rep" or None there) and the frame count."""
        return {"cache": [c.detach().cpu().clone() if isinstance(c, Tensor) else c for c in self._cache],
                "latent_frames": self._latent_frames}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cache = list(state["cache"])
        if len(cache) != self._convs:
            raise ValueError(f"VAE decoder state has {len(cache)} convolution caches, this VAE {self._convs}")
        self._cache = [c.to(self._mean.device) if isinstance(c, Tensor) else c for c in cache]
        self._latent_frames = int(state["latent_frames"])

    @property
    def latent_frames(self) -> int:
        """Latent frames decoded since ``reset``."""
        return self._latent_frames

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        if latents.ndim != 5 or latents.shape[1] != self.vae.config.z_dim:
            raise ValueError(f"latents must be [B, {self.vae.config.z_dim}, F, h, w], got {tuple(latents.shape)}")
        z = latents.to(self._mean.dtype) * self._std + self._mean
        x = self.vae.post_quant_conv(z)  # 1x1x1 convolution: no temporal state
        out = []
        for i in range(x.shape[2]):  # one latent frame at a time, as the causal decoder expects
            out.append(self.vae.decoder(x[:, :, i:i + 1], feat_cache=self._cache, feat_idx=[0],
                                        first_chunk=self._latent_frames == 0))
            self._latent_frames += 1
        return torch.cat(out, dim=2).clamp(-1.0, 1.0).transpose(1, 2)  # [B, 3, f', H, W] -> [B, f', 3, H, W]


def _vae_width(state: dict[str, Tensor], path: Path) -> int:
    try:
        return int(state["encoder.conv_in.weight"].shape[0])
    except KeyError:
        raise VAEError(f"{path} is not a Wan VAE state dict (no encoder.conv1.weight)") from None


def _load_original(path: Path, dtype: torch.dtype):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    state = convert_wan_vae_to_diffusers(raw)
    vae = AutoencoderKLWan(base_dim=_vae_width(state, path))
    expected = vae.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or extra or wrong:
        raise VAEError(f"{path} does not fit Wan2.1's VAE: missing {missing[:5]}, unexpected {extra[:5]}, "
                       f"wrong shape {wrong[:5]}")
    vae.load_state_dict(state)
    return vae.to(dtype)


def load_vae(wan_dir: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
             key: str = "model.wan_dir"):
    """``AutoencoderKLWan`` from ``wan_dir/vae/`` or ``wan_dir/Wan2.1_VAE.pth``; never downloads."""
    ensure_torchvision()  # diffusers imports torchvision
    from diffusers import AutoencoderKLWan

    wan_dir = Path(wan_dir)
    folder, original = wan_dir / DIFFUSERS_VAE, wan_dir / ORIGINAL_VAE
    if (folder / "config.json").is_file():
        vae, layout = AutoencoderKLWan.from_pretrained(folder, local_files_only=True, torch_dtype=dtype), "diffusers"
    elif original.is_file():
        vae, layout = _load_original(original, dtype), "original"
    else:
        raise VAEError(f"{key}={wan_dir} has no VAE: looked for {folder / 'config.json'} (diffusers layout) and "
                       f"{original} (original layout)")
    log.info("VAE: AutoencoderKLWan (%s layout) from %s", layout, wan_dir)
    return vae.to(device)
