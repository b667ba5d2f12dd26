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
    dino_pos_embed,
    load_feature_backbone,
)
from tests.vbench_weights import save_aesthetic_head, save_clip, save_dino

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


def test_dino_loads_vbench_s_checkpoint_with_its_geometry(tmp_path) -> None:
    import torch

    path = save_dino(tmp_path, dim=64, depth=1)
    backbone = DinoBackbone(str(path), device="cpu")
    assert backbone.name == "dino-vit-d64-l1-p16"  # not ViT-B/16: the name says what was loaded
    for key, value in torch.load(path).items():
        assert torch.equal(backbone._model.state_dict()[key], value)
    frames = random_frames(3)  # 30x50 -> short side 224 -> 224x373 -> 14 x 23 patches
    feats = backbone(frames)
    assert feats.shape == (3, 64) and feats.dtype == np.float32 and np.isfinite(feats).all()
    np.testing.assert_allclose(backbone(frames[[0, 0]])[1], feats[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(feats[0], feats[1])


def test_dino_position_embedding_is_resized_like_dino() -> None:
    import torch

    pos = torch.arange(1 + 4, dtype=torch.float32).reshape(1, 5, 1).repeat(1, 1, 2)  # CLS + a 2x2 grid
    assert dino_pos_embed(pos, 2, 2, square_image=True) is pos  # the trained grid, a square image: as is
    assert not torch.equal(dino_pos_embed(pos, 2, 2, square_image=False), pos)  # DINO resamples even then
    grown = dino_pos_embed(pos, 3, 5, square_image=False)
    assert grown.shape == (1, 1 + 15, 2) and grown[0, 0, 0] == 0  # CLS untouched
    # DINO's rule: bicubic with scale factors (n + 0.1) / side, which places samples differently from size=(3, 5)
    by_size = torch.nn.functional.interpolate(pos[:, 1:].reshape(1, 2, 2, 2).permute(0, 3, 1, 2), size=(3, 5),
                                              mode="bicubic")
    assert not torch.allclose(grown[0, 1:, 0], by_size[0, 0].flatten())


def test_dino_rejects_a_foreign_state_dict(tmp_path) -> None:
    import torch

    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"dino='.*other.pth': not a DINO ViT state dict"):
        DinoBackbone(str(path), device="cpu")


def test_clip_loads_an_openai_format_file(tmp_path) -> None:
    path = save_clip(tmp_path, embed_dim=16)
    backbone = ClipBackbone(str(path), device="cpu")
    assert backbone.name == "clip-vit-w64-l1-p32"
    feats = backbone(random_frames(2, 40, 30))
    assert feats.shape == (2, 16) and np.isfinite(feats).all()
    (tmp_path / "dino.pth").write_bytes((save_dino(tmp_path)).read_bytes())
    with pytest.raises(ValueError, match="is not a CLIP in OpenAI's format"):
        ClipBackbone(str(tmp_path / "dino.pth"), device="cpu")


def test_aesthetic_head_score_is_divided_by_ten(tmp_path) -> None:
    import torch

    clip_path = save_clip(tmp_path, "aesthetic_clip", embed_dim=768)
    head_path = save_aesthetic_head(tmp_path)
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.tensor([6.0])}, head_path)
    scorer = AestheticScorer(str(clip_path), str(head_path), device="cpu")
    np.testing.assert_allclose(scorer(random_frames(3)), [0.6, 0.6, 0.6], rtol=1e-6)
    torch.save({"weight": torch.zeros(1, 16), "bias": torch.tensor([6.0])}, head_path)
    with pytest.raises(ValueError, match="expects 16-d embeddings"):
        AestheticScorer(str(clip_path), str(head_path), device="cpu")


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
