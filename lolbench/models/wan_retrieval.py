"""DySink's retrieval embedding for real models: decoded frames through Meta's Perception Encoder PE-Core-S16-384.

DySink (arXiv 2605.21028) embeds each generated chunk by decoding it to pixels, passing every frame (squashed to
384x384 by bilinear resizing, pixel values in [-1, 1]) through PE-Core's vision tower, averaging the projected
frame features over the chunk and L2-normalizing the mean. The architecture is timm's
``vit_pe_core_small_patch16_384``; its checkpoint filter reads both Meta's original ``PE-Core-S16-384.pt`` (the
file DySink points to) and timm/open_clip state dicts, so the weights come from any local file and nothing is
downloaded. Without such a file the Wan path uses the offline embedding of the cache and says so in its results.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from lolbench._compat import ensure_torchvision
from lolbench.cache.embed import EMBEDDERS

PE_CORE_ARCH = "vit_pe_core_small_patch16_384"
PE_CORE_DIM = 512  # width of PE-Core-S16-384's output projection


class PECoreEmbedder:
    """Chunk of decoded frames [B, F, 3, H, W] in [-1, 1] -> unit vectors [B, 512], as DySink computes them."""

    name = "pe-core-s16-384"
    dim = PE_CORE_DIM

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", **arch_overrides):
        """``arch_overrides`` (timm keyword arguments such as ``depth``) exist for tests with tiny random weights."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model.retrieval_encoder={path}: no such file (a PE-Core-S16-384 checkpoint)")
        ensure_torchvision()  # timm imports torchvision
        import timm

        self.model = timm.create_model(PE_CORE_ARCH, pretrained=True, num_classes=PE_CORE_DIM,
                                       pretrained_cfg_overlay={"file": str(path)}, **arch_overrides)
        self.model = self.model.eval().to(device=device, dtype=torch.float32).requires_grad_(False)
        self.image_size = tuple(self.model.patch_embed.img_size)  # (384, 384) for the real architecture
        self.device = torch.device(device)
        self.source = str(path)

    @torch.no_grad()
    def __call__(self, frames: Tensor) -> Tensor:
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be [B, F, 3, H, W] in [-1, 1], got {tuple(frames.shape)}")
        batch, count = frames.shape[:2]
        x = frames.flatten(0, 1).to(self.device, torch.float32).clamp(-1.0, 1.0)
        x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        features = self.model(x).unflatten(0, (batch, count))  # [B, F, dim]
        return F.normalize(features.mean(dim=1), dim=-1)


class _BankEntry:
    """What DySink's bank needs of PE-Core to size itself (name, width). The embeddings come from decoded frames
    through the generator's ``chunk_embedder``; the cache never computes them from its own chunk content."""

    name = PECoreEmbedder.name
    dim = PE_CORE_DIM

    def __init__(self, channels: int):
        del channels  # the bank passes its chunk content's channels; PE-Core reads decoded RGB frames instead

    def __call__(self, frames: Tensor) -> Tensor:
        raise RuntimeError(f"sink.embedder={self.name} embeds decoded frames: it needs model=wan with "
                           "model.retrieval_encoder=PATH")


EMBEDDERS[PECoreEmbedder.name] = _BankEntry  # makes sink.embedder=pe-core-s16-384 a valid bank embedding
