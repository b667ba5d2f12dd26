"""Feature backbones and per-frame scorers: offline stand-in, and real loaders fed small random models."""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.metrics.backbones import (
    AestheticScorer,
    ClipBackbone,
    DinoBackbone,
    MusiqScorer,
    PixelBackbone,
    load_feature_backbone,
)

TINY_VIT = {"embed_dim": 32, "depth": 1, "num_heads": 2}
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def random_frames(n: int, height: int = 30, width: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def test_pixel_backbone_is_centered_downsampled_pixels() -> None:
    frames = random_frames(3) // 2  # values 0..127
    feats = PixelBackbone()(frames)
    assert feats.shape == (3, 32 * 32 * 3) and feats.dtype == np.float32
    np.testing.assert_allclose(feats.mean(axis=1), 0, atol=1e-3)
    # centering makes it blind to a global brightness offset (documented limitation of the stand-in)
    np.testing.assert_allclose(PixelBackbone()(frames + 100), feats, atol=1e-3)
    assert load_feature_backbone("pixel").name == "pixel"


def test_loaders_reject_bad_kind_and_missing_weights() -> None:
    with pytest.raises(ValueError, match="allowed: pixel, dino, clip"):
        load_feature_backbone("siglip", None)
    for kind in ("dino", "clip"):
        with pytest.raises(ValueError, match=f"'{kind}' needs weights: a local path"):
            load_feature_backbone(kind, None)
        with pytest.raises(FileNotFoundError, match=f"{kind}='/nonexistent/w.pth'"):
            load_feature_backbone(kind, "/nonexistent/w.pth")
    with pytest.raises(ValueError, match="takes no weights"):
        load_feature_backbone("pixel", "/some/file.pth")
    with pytest.raises(FileNotFoundError, match="musiq="):
        MusiqScorer("/nonexistent/musiq.pt")
    with pytest.raises(ValueError, match="aesthetic_clip needs a local path"):
        AestheticScorer(None, "/nonexistent/head.pth")


def _tiny_vit():
    import torch

    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **TINY_VIT).eval()


def test_dino_loads_a_dino_style_checkpoint(tmp_path) -> None:
    import torch

    vit = _tiny_vit()
    # a full DINO training checkpoint: teacher weights under "backbone.", plus a projection head
    teacher = {f"backbone.{k}": v for k, v in vit.state_dict().items()}
    teacher["head.last_layer.weight"] = torch.zeros(4, 32)
    path = tmp_path / "dino.pth"
    torch.save({"teacher": teacher, "epoch": 3}, path)

    backbone = DinoBackbone(str(path), device="cpu", model_kwargs=TINY_VIT)
    assert backbone.name == "dino-vitb16+custom"
    for key, value in vit.state_dict().items():
        assert torch.equal(backbone._model.state_dict()[key], value)
    frames = random_frames(3)  # 30x50 -> short side 224 -> 224x373 -> cropped to 224x368
    feats = backbone(frames)
    assert feats.shape == (3, 32) and feats.dtype == np.float32 and np.isfinite(feats).all()
    np.testing.assert_allclose(backbone(frames[[0, 0]])[1], feats[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(feats[0], feats[1])


def test_dino_rejects_a_mismatched_state_dict(tmp_path) -> None:
    import torch

    path = tmp_path / "other.pth"
    torch.save(_tiny_vit().state_dict(), path)
    with pytest.raises(ValueError, match="does not fit ViT-B/16"):
        DinoBackbone(str(path), device="cpu", model_kwargs={**TINY_VIT, "depth": 2})


def _save_tiny_clip(path) -> None:
    import torch

    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None, **TINY_CLIP)
    torch.save({"state_dict": model.state_dict(), "epoch": 1}, path)  # open_clip training-checkpoint layout
    return model


def test_clip_loads_an_open_clip_checkpoint(tmp_path) -> None:
    import torch

    path = tmp_path / "clip.pt"
    reference = _save_tiny_clip(path)
    backbone = ClipBackbone(str(path), device="cpu", model_kwargs=TINY_CLIP)
    assert backbone.name == "clip-vitb32+custom"
    for key, value in reference.state_dict().items():
        assert torch.equal(backbone._model.state_dict()[key], value)
    feats = backbone(random_frames(2, 40, 30))
    assert feats.shape == (2, 16) and np.isfinite(feats).all()


def test_aesthetic_head_score_is_divided_by_ten(tmp_path) -> None:
    import torch

    clip_path, head_path = tmp_path / "clip.pt", tmp_path / "head.pth"
    _save_tiny_clip(clip_path)
    torch.save({"weight": torch.zeros(1, 16), "bias": torch.tensor([6.0])}, head_path)
    scorer = AestheticScorer(str(clip_path), str(head_path), clip_model="ViT-B-32", device="cpu",
                             model_kwargs=TINY_CLIP)
    np.testing.assert_allclose(scorer(random_frames(3)), [0.6, 0.6, 0.6], rtol=1e-6)

    torch.save({"weight": torch.zeros(1, 768), "bias": torch.tensor([6.0])}, head_path)
    with pytest.raises(ValueError, match="expects 768-d embeddings"):
        AestheticScorer(str(clip_path), str(head_path), clip_model="ViT-B-32", device="cpu", model_kwargs=TINY_CLIP)


def _scripted_mean_times_100():
    """Stand-in for MUSIQ with a known answer: 100 x the mean pixel value in [0, 1]."""
    import torch

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean() * 100.0

    return torch.jit.script(Mean())


def test_musiq_scorer_reads_torchscript_and_divides_by_100(tmp_path) -> None:
    path = tmp_path / "musiq.pt"
    _scripted_mean_times_100().save(str(path))
    scorer = MusiqScorer(str(path), device="cpu")
    frames = np.full((2, 20, 30, 3), 51, np.uint8)  # 51 / 255 = 0.2
    np.testing.assert_allclose(scorer(frames), [0.2, 0.2], rtol=1e-6)


def test_musiq_input_longer_side_is_capped_at_512(tmp_path) -> None:
    import torch

    class LongerSide(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor(float(max(x.shape[2], x.shape[3])))

    path = tmp_path / "size.pt"
    torch.jit.script(LongerSide()).save(str(path))
    scorer = MusiqScorer(str(path), device="cpu")
    assert scorer(np.zeros((1, 40, 600, 3), np.uint8))[0] == pytest.approx(5.12)  # resized to 34 x 512
    assert scorer(np.zeros((1, 40, 60, 3), np.uint8))[0] == pytest.approx(0.60)  # small frames untouched


def test_musiq_rejects_a_non_torchscript_file(tmp_path) -> None:
    import torch

    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a TorchScript archive"):
        MusiqScorer(str(path), device="cpu")
