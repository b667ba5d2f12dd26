"""Image models behind the VBench-style quality dimensions, loaded only from local files in VBench's formats.

Nothing is downloaded. lolbench.metrics.vbench_cache finds the files in the user's VBench cache; without
one, lolbench uses the offline ``pixel`` stand-in and says so in every result key.

- ``pixel`` (offline): frames resized to 32x32 (area averaging), flattened and centered per frame, so the
  cosine of two frames is their pixel correlation: 1 for identical frames, ~0 for unrelated ones.
- ``dino``: DINO's ViT (VBench: ViT-B/16, ``dino_vitbase16_pretrain.pth``, a plain state dict whose keys
  timm's VisionTransformer shares) built from the geometry the state dict shows. The forward is DINO's:
  CLS token after the final norm, the position embedding resized the way DINO's ``interpolate_pos_encoding``
  does it (bicubic, scale factor ``(n + 0.1) / grid``). VBench's preprocessing: short side resized to 224,
  bilinear without antialiasing (torchvision's tensor ``Resize``), ImageNet normalization, no crop.
- ``clip``: CLIP in OpenAI's format (VBench: ``ViT-B-32.pt``, a TorchScript archive; a plain OpenAI-layout
  state dict works too) through open_clip's OpenAI loader. VBench's preprocessing: short side to 224 by
  bicubic interpolation *without* antialiasing and without clamping, center crop 224 (torchvision's rounding),
  CLIP normalization; ``encode_image``.

Names come from the loaded geometry (``dino-vitb16``, ``clip-vitb32``, ``clip-vitl14``; anything else is named
by its width, depth and patch), so a result never claims a model it did not use. A file that is not the
expected format is an error naming the file.

Per-frame scorers (VBench's absolute-quality dimensions):

- aesthetic: LAION's linear head (``sa_0_4_vit_l_14_linear.pth``, ``nn.Linear(768, 1)``) on L2-normalized
  CLIP ViT-L/14 embeddings, divided by 10.
- imaging: a user-provided *TorchScript* MUSIQ (explicit path only); VBench's ``musiq_spaq_ckpt`` needs
  pyiqa's architecture, which lolbench does not have (see lolbench.metrics.vbench_cache).

Frame interpolation (motion smoothness): AMT-S from VBench's ``amt-s.pth`` through VBench's own AMT code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

FEATURE_KINDS = ("pixel", "dino", "clip")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_BATCH = 32  # frames per forward pass


class FeatureBackbone(Protocol):
    """Per-frame feature vectors: uint8 [F, H, W, 3] -> float32 [F, E]."""

    name: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


class FrameScorer(Protocol):
    """Per-frame quality on VBench's 0..1 scale: uint8 [F, H, W, 3] -> float64 [F]."""

    name: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


def require_file(key: str, path: str | None, what: str) -> str:
    """Return ``path`` if it names an existing file; otherwise raise an error naming ``key``."""
    if path is None:
        raise ValueError(f"{key} needs a local path to {what} (lolbench downloads nothing), got None")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}={path!r}: no such file (expected {what})")
    return path


class PixelBackbone:
    """Offline stand-in: downsampled, per-frame centered pixels (cosine = pixel correlation)."""

    name = "pixel"

    def __init__(self, size: int = 32) -> None:
        self.size = size

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.size * self.size * 3), np.float32)
        small = np.stack([cv2.resize(f.astype(np.float32), (self.size, self.size), interpolation=cv2.INTER_AREA)
                          for f in frames])
        flat = small.reshape(len(frames), -1)  # [F, size*size*3]
        return flat - flat.mean(axis=1, keepdims=True)


class _TorchImageModel:
    """Batching, device placement and tensor conversion shared by the torch backbones."""

    def __init__(self, device: str | None) -> None:
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    def _batches(self, frames: np.ndarray):
        """Yield float [B, 3, H, W] tensors in [0, 1] on the device."""
        import torch

        for i in range(0, len(frames), _BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(frames[i:i + _BATCH]))
            yield batch.permute(0, 3, 1, 2).float().div(255.0).to(self.device)  # [B, 3, H, W]


def _resize_short(x, size: int, mode: str):
    """Resize [B, 3, H, W] so the short side is ``size``, keeping the aspect ratio (torchvision's rule);
    no antialiasing, as VBench's transforms ask."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if h <= w:
        new = (size, int(size * w / h))
    else:
        new = (int(size * h / w), size)
    return F.interpolate(x, size=new, mode=mode, align_corners=False, antialias=False)  # VBench: antialias=False


def _normalize(x, mean: tuple[float, ...], std: tuple[float, ...]):
    import torch

    return (x - torch.tensor(mean, device=x.device)[:, None, None]) / torch.tensor(std, device=x.device)[:, None, None]


def _load_state_dict(path: str) -> dict:
    """A plain state dict from a checkpoint file, unwrapping common containers and prefixes."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{path!r} cannot be read as a checkpoint ({type(err).__name__}: {err})") from err
    for key in ("teacher", "model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}


def _vit_geometry(state: dict) -> tuple[int, int, int]:
    """(embed dim, depth, patch size) of a ViT state dict in DINO's / timm's key layout."""
    try:
        dim = int(state["cls_token"].shape[-1])
        patch = int(state["patch_embed.proj.weight"].shape[-1])
    except KeyError as err:
        raise ValueError(f"not a DINO ViT state dict (no {err.args[0]!r}; keys {sorted(state)[:5]})") from None
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    return dim, depth, patch


def dino_pos_embed(pos_embed, grid_h: int, grid_w: int, square_image: bool):
    """DINO's position-embedding interpolation for a ``grid_h x grid_w`` patch grid: [1, 1 + N, D] -> [1, 1 + h*w, D].

    Like DINO, the trained table is used unchanged only when the patch count matches and the *image* is square;
    otherwise it is resampled, even onto a grid of the trained size."""
    import torch
    import torch.nn.functional as F

    n = pos_embed.shape[1] - 1
    side = int(n ** 0.5)
    if grid_h * grid_w == n and square_image:
        return pos_embed
    patches = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, scale_factor=((grid_h + 0.1) / side, (grid_w + 0.1) / side), mode="bicubic")
    if patches.shape[-2:] != (grid_h, grid_w):
        raise ValueError(f"position embedding resized to {tuple(patches.shape[-2:])}, expected {(grid_h, grid_w)}")
    return torch.cat([pos_embed[:, :1], patches.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)], dim=1)


class DinoBackbone(_TorchImageModel):
    """DINO ViT features (DINO's forward on timm's modules) from a local state dict."""

    def __init__(self, weights: str, device: str | None = None) -> None:
        path = require_file("dino", weights, "a DINO ViT-B/16 state dict (dino_vitbase16_pretrain.pth)")
        super().__init__(device)
        from lolbench._compat import ensure_torchvision

        ensure_torchvision()
        import timm

        try:
            state = {k: v for k, v in _load_state_dict(path).items() if not k.startswith("head.")}
            dim, depth, patch = _vit_geometry(state)
        except ValueError as err:
            raise ValueError(f"dino={path!r}: {err}") from None
        side = int((state["pos_embed"].shape[1] - 1) ** 0.5)
        model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, embed_dim=dim,
                                  depth=depth, num_heads=max(1, dim // 64), patch_size=patch, img_size=side * patch)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"dino={path!r} does not fit a DINO ViT: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self._model = model.eval().to(self.device)
        self._patch = patch
        self.name = "dino-vitb16" if (dim, depth, patch) == (768, 12, 16) else f"dino-vit-d{dim}-l{depth}-p{patch}"

    def _forward(self, x):
        """DINO's VisionTransformer forward: patch tokens + CLS + resized positions -> blocks -> norm -> CLS."""
        import torch

        m = self._model
        tokens = m.patch_embed.proj(x)  # [B, D, h, w]
        grid_h, grid_w = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)  # [B, h*w, D]
        tokens = torch.cat([m.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = tokens + dino_pos_embed(m.pos_embed, grid_h, grid_w, x.shape[-1] == x.shape[-2])
        return m.norm(m.blocks(tokens))[:, 0]

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for x in self._batches(frames):
                x = _resize_short(x, 224, "bilinear")
                out.append(self._forward(_normalize(x, _IMAGENET_MEAN, _IMAGENET_STD)).float().cpu())
        return torch.cat(out).numpy()


def _clip_name(model) -> str:
    """``clip-vitb32`` / ``clip-vitl14`` from the visual tower's geometry, else width, depth and patch."""
    width, _, patch, _ = model.visual.conv1.weight.shape
    depth = len(model.visual.transformer.resblocks)
    known = {(768, 12, 32): "clip-vitb32", (1024, 24, 14): "clip-vitl14"}
    return known.get((width, depth, patch), f"clip-vit-w{width}-l{depth}-p{patch}")


def load_openai_clip(key: str, path: str | None, device: str):
    """A CLIP in OpenAI's format (TorchScript archive or OpenAI-layout state dict), fp32, eval, on ``device``."""
    path = require_file(key, path, "a CLIP model in OpenAI's format (e.g. VBench's clip_model/ViT-B-32.pt)")
    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    import open_clip

    try:
        model = open_clip.load_openai_model(path, precision="fp32", device="cpu")
    except Exception as err:  # open_clip raises KeyError/RuntimeError/UnpicklingError for foreign files
        raise ValueError(f"{key}={path!r} is not a CLIP in OpenAI's format ({type(err).__name__}: {err})") from err
    return model.eval().to(device)


def _clip_embed(model, x):
    """VBench's clip_transform then ``encode_image``: [B, 3, H, W] in [0, 1] -> float [B, E]."""
    x = _resize_short(x, 224, "bicubic")
    h, w = x.shape[-2:]
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))  # torchvision's center_crop
    x = x[..., top:top + 224, left:left + 224]
    return model.encode_image(_normalize(x, _CLIP_MEAN, _CLIP_STD)).float()


class ClipBackbone(_TorchImageModel):
    """CLIP image embeddings (VBench: ViT-B/32) from a local OpenAI-format file."""

    def __init__(self, weights: str, device: str | None = None) -> None:
        super().__init__(device)
        self._model = load_openai_clip("clip", weights, self.device)
        self.name = _clip_name(self._model)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return torch.cat([_clip_embed(self._model, x).cpu() for x in self._batches(frames)]).numpy()


class AestheticScorer(_TorchImageModel):
    """LAION aesthetic predictor: linear head on normalized CLIP (ViT-L/14) embeddings, score / 10."""

    def __init__(self, clip_weights: str | None, head_weights: str | None, device: str | None = None) -> None:
        super().__init__(device)
        import torch

        self._clip = load_openai_clip("aesthetic_clip", clip_weights, self.device)
        head_path = require_file("aesthetic_head", head_weights, "the LAION aesthetic linear head state dict")
        state = _load_state_dict(head_path)
        weight = state.get("weight")
        if weight is None or weight.ndim != 2 or weight.shape[0] != 1:
            raise ValueError(f"aesthetic_head={head_path!r} is not a Linear(E, 1) state dict: keys {list(state)[:5]}")
        embed_dim = self._clip.visual.output_dim
        if weight.shape[1] != embed_dim:
            raise ValueError(f"aesthetic_head={head_path!r} expects {weight.shape[1]}-d embeddings, "
                             f"the CLIP in {clip_weights!r} gives {embed_dim}-d")
        self._head = torch.nn.Linear(embed_dim, 1)
        self._head.load_state_dict(state)
        self._head.eval().to(self.device)
        clip_name = _clip_name(self._clip)
        self.name = "laion-aesthetic" if clip_name == "clip-vitl14" else f"laion-aesthetic-{clip_name}"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            scores = [self._head(F.normalize(_clip_embed(self._clip, x), dim=-1))[:, 0].cpu()
                      for x in self._batches(frames)]
        return torch.cat(scores).double().numpy() / 10.0


class MusiqScorer(_TorchImageModel):
    """Imaging quality from a user-provided TorchScript MUSIQ: [1, 3, H, W] in [0, 1] -> score in [0, 100]."""

    name = "musiq"

    def __init__(self, weights: str, device: str | None = None) -> None:
        super().__init__(device)
        import torch

        path = require_file("musiq", weights, "a TorchScript MUSIQ model")
        try:
            self._model = torch.jit.load(path, map_location=self.device).eval()
        except RuntimeError as err:
            raise ValueError(f"musiq={path!r} is not a TorchScript archive: {err}") from err

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        scores = []
        with torch.inference_mode():
            for batch in self._batches(frames):
                h, w = batch.shape[-2:]
                if max(h, w) > 512:  # VBench's "longer" mode
                    scale = 512.0 / max(h, w)
                    batch = F.interpolate(batch, size=(int(scale * h), int(scale * w)), mode="bilinear",
                                          align_corners=False)
                scores.extend(float(self._model(frame[None])) for frame in batch)
        return np.array(scores, dtype=np.float64) / 100.0


class AMTInterpolator(_TorchImageModel):
    """The middle frame of two frames by AMT-S (VBench's ``amt-s.pth`` through VBench's AMT code).

    As VBench runs it: frames to [0, 1] tensors, replicate-padded to multiples of 16, one pass at
    ``scale_factor`` 1 with time step 1/2, unpadded, back to uint8 by truncation. (VBench lowers the scale
    factor only on GPUs too small for the frame; lolbench always uses 1.)
    """

    name = "amt-s"

    def __init__(self, weights: str, device: str | None = None) -> None:
        super().__init__(device)
        import torch

        from lolbench.metrics.vbench_code import load_amt_s

        self._model = load_amt_s(Path(require_file("amt", weights, "VBench's AMT-S checkpoint (amt-s.pth)")),
                                 self.device)
        self._embt = torch.tensor(0.5).float().view(1, 1, 1, 1).to(self.device)

    def __call__(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        import torch
        from vbench.third_party.amt.utils.utils import InputPadder, img2tensor, tensor2img

        a, b = (img2tensor(frame).to(self.device) for frame in (first, last))
        padder = InputPadder(a.shape, 16)
        a, b = padder.pad(a, b)
        with torch.inference_mode():
            middle = self._model(a, b, self._embt, scale_factor=1.0, eval=True)["imgt_pred"]
        return tensor2img(padder.unpad(middle).cpu())


def load_feature_backbone(kind: str, weights: str | None = None, device: str | None = None) -> FeatureBackbone:
    """Build a feature backbone: ``pixel`` takes no weights; ``dino`` and ``clip`` need a local weight path."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown feature backbone {kind!r}; allowed: {', '.join(FEATURE_KINDS)}")
    if kind == "pixel":
        if weights is not None:
            raise ValueError(f"backbone 'pixel' takes no weights, got weights={weights!r}")
        return PixelBackbone()
    if weights is None:
        raise ValueError(f"backbone {kind!r} needs weights: a local path (lolbench downloads nothing); "
                         f"use kind='pixel' for the offline stand-in")
    if kind == "dino":
        return DinoBackbone(weights, device=device)
    return ClipBackbone(weights, device=device)
