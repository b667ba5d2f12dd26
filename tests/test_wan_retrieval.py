"""DySink's PE-Core retrieval embedding: loaded from a local file, mean of frame features, unit norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lolbench._compat import ensure_torchvision
from lolbench.models.wan_retrieval import PE_CORE_ARCH, PE_CORE_DIM, PECoreEmbedder

TINY = {"depth": 2, "img_size": 64}  # PE-Core-S16-384's widths, fewer blocks and a smaller input


@pytest.fixture(scope="module")
def tiny_pe(tmp_path_factory):
    """A random PE-Core-S16 (2 blocks, 64 px) saved to a file, and the model itself."""
    ensure_torchvision()
    import timm

    torch.manual_seed(0)
    model = timm.create_model(PE_CORE_ARCH, num_classes=PE_CORE_DIM, **TINY).eval()
    path = tmp_path_factory.mktemp("pe") / "PE-Core-S16-384.pt"
    torch.save(model.state_dict(), path)
    return path, model


def test_embedding_is_normalized_mean_of_frame_features(tiny_pe):
    path, model = tiny_pe
    embedder = PECoreEmbedder(path, **TINY)
    frames = torch.rand(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1  # [B, F, 3, H, W]
    with torch.no_grad():
        per_frame = model(frames.flatten(0, 1)).view(2, 3, PE_CORE_DIM)
    expected = per_frame.mean(1) / per_frame.mean(1).norm(dim=-1, keepdim=True)
    out = embedder(frames)
    assert out.shape == (2, embedder.dim)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_frames_are_resized_to_the_encoder_input(tiny_pe):
    path, model = tiny_pe
    frames = torch.rand(1, 2, 3, 32, 48) * 2 - 1
    resized = F.interpolate(frames[0], size=(64, 64), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = F.normalize(model(resized).mean(0, keepdim=True), dim=-1)
    torch.testing.assert_close(PECoreEmbedder(path, **TINY)(frames), expected, atol=1e-5, rtol=1e-5)


def test_missing_file_names_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.retrieval_encoder=.*nope.pt"):
        PECoreEmbedder(tmp_path / "nope.pt")
