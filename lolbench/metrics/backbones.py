"""Image models behind the VBench-style quality dimensions, loaded only from local files.

Nothing is downloaded. A real backbone needs the user's weight file; without one, lolbench uses the
offline ``pixel`` stand-in and says so in every result key (``subject_consistency[pixel]``).

- ``pixel`` (offline): frames resized to 32x32 (area averaging), flattened and centered per frame, so the
  cosine of two frames is their pixel correlation: 1 for identical frames, ~0 for unrelated ones. It is
  blind to global brightness and contrast changes and knows nothing about semantics.
- ``dino``: DINO ViT-B/16 (what VBench uses for subject consistency) as timm's ``vit_base_patch16_224``,
  state dict from a local path (``dino_vitbase16_pretrain.pth``; full DINO checkpoints work too, the
  teacher backbone is taken). VBench's preprocessing: short side resized to 224 keeping the aspect ratio,
  ImageNet normalization; the CLS token after the final norm is the feature. Sides are cropped to multiples
  of 16, which is what DINO's strided patch convolution does implicitly.
- ``clip``: CLIP ViT-B/32 (VBench's background-consistency model) through open_clip, from a local open_clip
  checkpoint or OpenAI's TorchScript ``ViT-B-32.pt`` (loaded with OpenAI's QuickGELU). VBench's
  preprocessing: short side to 224 (bicubic), center crop 224, CLIP normalization; ``encode_image`` output.

Per-frame scorers (VBench's absolute-quality dimensions):

- aesthetic: LAION's linear aesthetic head on L2-normalized CLIP ViT-L/14 image embeddings, divided by 10
  (both files from local paths).
- imaging: MUSIQ (SPAQ) as VBench uses it. Its implementation (pyiqa) cannot be installed here, so lolbench
  takes a user-provided *TorchScript* export of it: input float [1, 3, H, W] RGB in [0, 1], output its score
  in [0, 100]. Frames whose longer side exceeds 512 px are first resized to a longer side of 512 (VBench's
  default ``longer`` mode); the score is divided by 100.

Tests exercise every loader on small randomly initialized models of the same architecture family, passed
through ``model_kwargs`` (which mark the backbone's name with ``+custom``).
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, Protocol

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


def _custom(name: str, model_kwargs: dict[str, Any] | None) -> str:
    return f"{name}+custom" if model_kwargs else name


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
    """Resize [B, 3, H, W] so the short side is ``size``, keeping the aspect ratio (torchvision's rule)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if h <= w:
        new = (size, int(size * w / h))
    else:
        new = (int(size * h / w), size)
    return F.interpolate(x, size=new, mode=mode, align_corners=False, antialias=(mode == "bicubic"))


def _normalize(x, mean: tuple[float, ...], std: tuple[float, ...]):
    import torch

    return (x - torch.tensor(mean, device=x.device)[:, None, None]) / torch.tensor(std, device=x.device)[:, None, None]


def _load_state_dict(path: str) -> dict:
    """A plain state dict from a checkpoint file, unwrapping common containers and prefixes."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("teacher", "model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}


class DinoBackbone(_TorchImageModel):
    """DINO ViT-B/16 features (timm architecture) from a local state dict."""

    def __init__(self, weights: str, device: str | None = None, model_kwargs: dict[str, Any] | None = None) -> None:
        path = require_file("dino", weights, "a DINO ViT-B/16 state dict")
        super().__init__(device)
        from lolbench._compat import ensure_torchvision

        ensure_torchvision()
        import timm

        state = {k: v for k, v in _load_state_dict(path).items() if not k.startswith("head.")}
        model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True,
                                  **(model_kwargs or {}))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"dino={path!r} does not fit ViT-B/16: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self._model = model.eval().to(self.device)
        self._patch = model.patch_embed.patch_size[0]
        self.name = _custom("dino-vitb16", model_kwargs)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for x in self._batches(frames):
                x = _resize_short(x, 224, "bilinear")
                h, w = x.shape[-2:]
                x = x[..., : h - h % self._patch, : w - w % self._patch]
                out.append(self._model(_normalize(x, _IMAGENET_MEAN, _IMAGENET_STD)).float().cpu())
        return torch.cat(out).numpy()


def _is_torchscript(path: str) -> bool:
    """TorchScript archives (OpenAI's CLIP files) are zip files with a ``constants.pkl`` entry."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def _load_clip(key: str, path: str | None, model_name: str, model_kwargs: dict[str, Any] | None, device: str):
    """An open_clip model of ``model_name`` with the weights in ``path``, in eval mode on ``device``."""
    path = require_file(key, path, f"CLIP {model_name} weights (open_clip checkpoint or OpenAI .pt)")
    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    import open_clip

    try:
        if not model_kwargs and _is_torchscript(path):
            model = open_clip.load_openai_model(path, precision="fp32", device="cpu")
            expected = open_clip.get_model_config(model_name)["embed_dim"]
            if model.visual.output_dim != expected:
                raise ValueError(f"{key}={path!r} is a CLIP with {model.visual.output_dim}-d embeddings, "
                                 f"not {model_name} ({expected}-d)")
        else:
            model = open_clip.create_model(model_name, pretrained=path, **(model_kwargs or {}))
    except RuntimeError as err:
        raise ValueError(f"{key}={path!r} does not fit open_clip {model_name}: {err}") from err
    return model.eval().to(device)


def _clip_embed(model, x):
    """VBench's clip_transform then ``encode_image``: [B, 3, H, W] in [0, 1] -> float [B, E]."""
    x = _resize_short(x, 224, "bicubic")
    h, w = x.shape[-2:]
    top, left = (h - 224) // 2, (w - 224) // 2
    x = x[..., top:top + 224, left:left + 224]
    return model.encode_image(_normalize(x, _CLIP_MEAN, _CLIP_STD)).float()


class ClipBackbone(_TorchImageModel):
    """CLIP image embeddings (ViT-B/32 by default) from a local checkpoint."""

    def __init__(self, weights: str, model_name: str = "ViT-B-32", device: str | None = None,
                 model_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(device)
        self._model = _load_clip("clip", weights, model_name, model_kwargs, self.device)
        self.name = _custom("clip-" + model_name.lower().replace("-", ""), model_kwargs)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return torch.cat([_clip_embed(self._model, x).cpu() for x in self._batches(frames)]).numpy()


class AestheticScorer(_TorchImageModel):
    """LAION aesthetic predictor: linear head on normalized CLIP ViT-L/14 embeddings, score / 10."""

    def __init__(self, clip_weights: str, head_weights: str, clip_model: str = "ViT-L-14",
                 device: str | None = None, model_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(device)
        import torch

        self._clip = _load_clip("aesthetic_clip", clip_weights, clip_model, model_kwargs, self.device)
        head_path = require_file("aesthetic_head", head_weights, "the LAION aesthetic linear head state dict")
        state = _load_state_dict(head_path)
        weight = state.get("weight")
        if weight is None or weight.ndim != 2 or weight.shape[0] != 1:
            raise ValueError(f"aesthetic_head={head_path!r} is not a Linear(E, 1) state dict: keys {list(state)[:5]}")
        embed_dim = self._clip.visual.output_dim
        if weight.shape[1] != embed_dim:
            raise ValueError(f"aesthetic_head={head_path!r} expects {weight.shape[1]}-d embeddings, "
                             f"CLIP {clip_model} gives {embed_dim}-d")
        self._head = torch.nn.Linear(embed_dim, 1)
        self._head.load_state_dict(state)
        self._head.eval().to(self.device)
        self.name = _custom("laion-aesthetic", model_kwargs)

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
