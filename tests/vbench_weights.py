"""Small random-initialized weights saved the way VBench's cache ships them (a stand-in for the real files).

Each writer puts one file at VBench's own path under a cache root and returns that path. Architectures are
shrunk where the format allows it (DINO and CLIP are built from whatever geometry the file shows); RAFT and
AMT-S are their real size, initialized at random, since VBench's code builds them with fixed sizes.
"""

from __future__ import annotations

from pathlib import Path

from lolbench.metrics.vbench_cache import FILES


def cache_path(root: Path, role: str) -> Path:
    path = root / FILES[role].relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_dino(root: Path, dim: int = 64, depth: int = 1, seed: int = 0) -> Path:
    """A DINO-layout ViT (patch 16, 224 px, CLS + 196 positions) as a plain state dict."""
    import torch

    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    torch.manual_seed(seed)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, embed_dim=dim, depth=depth,
                            num_heads=max(1, dim // 64))
    with torch.no_grad():  # timm starts pos_embed near zero; DINO's are not, and resizing them must matter
        vit.pos_embed.normal_(0, 0.5)
    path = cache_path(root, "dino")
    torch.save(vit.state_dict(), path)
    return path


def openai_clip_state(embed_dim: int, width: int = 64, patch: int = 32, seed: int = 0) -> dict:
    """State dict of a one-layer CLIP in OpenAI's key layout (what ``ViT-B-32.pt`` holds)."""
    import torch

    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    model = CLIP(embed_dim, CLIPVisionCfg(layers=1, width=width, patch_size=patch, image_size=224),
                 CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1), quick_gelu=True)
    with torch.no_grad():  # make the embedding depend on every pixel strongly enough to tell frames apart
        model.visual.proj.normal_(0, 1)
    return {k: v for k, v in model.state_dict().items() if k != "attn_mask"}


def save_clip(root: Path, role: str = "clip", embed_dim: int = 32, seed: int = 0) -> Path:
    """That CLIP as a TorchScript archive of OpenAI's own CLIP class, as OpenAI's ``.pt`` files are (OpenAI's
    loader, which VBench calls, needs one), when the ``clip`` package is there; else a plain OpenAI-layout state
    dict, which lolbench's loader reads too."""
    import torch

    state = openai_clip_state(embed_dim, seed=seed)
    path = cache_path(root, role)
    try:
        from clip.model import build_model
    except ImportError:
        torch.save(state, path)
        return path
    model = build_model(state).float().eval()
    example = (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long))
    torch.jit.trace(model, example, check_trace=False).save(str(path))
    return path


def save_aesthetic_head(root: Path, dim: int = 768, seed: int = 0) -> Path:
    """The LAION head: ``nn.Linear(768, 1)`` state dict."""
    import torch

    torch.manual_seed(seed)
    path = cache_path(root, "aesthetic_head")
    torch.save(torch.nn.Linear(dim, 1).state_dict(), path)
    return path


def save_raft_things(root: Path, seed: int = 0) -> Path:
    """RAFT (full size, VBench's code) at random, keys prefixed ``module.`` as in ``raft-things.pth``."""
    import argparse

    import torch

    from lolbench.metrics.vbench_code import unavailable_reason

    assert unavailable_reason() is None
    from vbench.third_party.RAFT.core.raft import RAFT

    torch.manual_seed(seed)
    model = RAFT(argparse.Namespace(small=False, mixed_precision=False, alternate_corr=False))
    path = cache_path(root, "raft")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    return path


def save_amt_s(root: Path, seed: int = 0) -> Path:
    """AMT-S (VBench's code) at random as ``{"state_dict": ...}``."""
    import torch
    from omegaconf import OmegaConf

    from lolbench.metrics.vbench_code import amt_config_path, unavailable_reason

    assert unavailable_reason() is None
    from vbench.third_party.amt.utils.build_utils import build_from_cfg

    torch.manual_seed(seed)
    model = build_from_cfg(OmegaConf.load(amt_config_path()).network)
    path = cache_path(root, "amt")
    torch.save({"state_dict": model.state_dict()}, path)
    return path
