"""Optical-flow backends: known global shifts, output grid and units, loading RAFT from a path."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from lolbench.metrics.flow import (
    FLOW_BACKENDS,
    estimate_flow,
    make_flow,
    resize_flow,
    top_flow_magnitude,
)


def texture(height: int, width: int, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """Smooth random RGB texture, uint8 [H, W, 3]."""
    noise = cv2.GaussianBlur(np.random.default_rng(seed).random((height, width, 3)).astype(np.float32), (0, 0), sigma)
    return np.round(255 * (noise - noise.min()) / (noise.max() - noise.min())).astype(np.uint8)


def shifted_pair(height: int, width: int, dx: int, dy: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two crops of one texture such that content at prev[y, x] appears at nxt[y + dy, x + dx]."""
    big, m = texture(height + 32, width + 32, seed), 16
    prev = big[m:m + height, m:m + width]
    nxt = big[m - dy:m - dy + height, m - dx:m - dx + width]
    return prev, nxt


@pytest.mark.parametrize("backend", ["dis", "farneback"])
@pytest.mark.parametrize("size", [(32, 32), (72, 120)])
@pytest.mark.parametrize("seed", [0, 1])
def test_global_shift_is_found(backend: str, size: tuple[int, int], seed: int) -> None:
    prev, nxt = shifted_pair(*size, dx=3, dy=-2, seed=seed)
    flow = estimate_flow(prev, nxt, backend)
    assert flow.shape == (*size, 2) and flow.dtype == np.float32
    assert abs(np.median(flow[..., 0]) - 3) < 0.25
    assert abs(np.median(flow[..., 1]) + 2) < 0.25


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_identical_frames_give_zero_flow(backend: str) -> None:
    frame = texture(30, 50)  # odd, non-square size: DIS upsamples it by 5
    flow = estimate_flow(frame, frame, backend)
    assert flow.shape == (30, 50, 2)
    assert np.abs(flow).max() < 0.1  # Farneback leaves ~0.06 px of polynomial-fit noise at borders


def test_resize_flow_rescales_each_axis() -> None:
    flow = np.zeros((64, 64, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    out = resize_flow(flow, 32, 16)
    assert out.shape == (32, 16, 2)
    np.testing.assert_allclose(out[..., 0], 0.5)  # width 64 -> 16
    np.testing.assert_allclose(out[..., 1], -0.5)  # height 64 -> 32


def test_top_flow_magnitude_is_mean_of_top_five_percent() -> None:
    flow = np.zeros((10, 10, 2), np.float32)
    flow[..., 0] = np.arange(100).reshape(10, 10)  # magnitudes 0..99; top 5 are 95..99
    assert top_flow_magnitude(flow) == pytest.approx(97.0)
    tiny = np.full((2, 3, 2), [3.0, 4.0], np.float32)  # 6 pixels -> int(0.3) = 0 -> uses the max
    assert top_flow_magnitude(tiny) == pytest.approx(5.0)


def test_bad_inputs_are_rejected() -> None:
    frame = texture(32, 32)
    with pytest.raises(ValueError, match="allowed: dis, farneback, raft"):
        make_flow("sea-raft")
    with pytest.raises(ValueError, match="flow_weights"):
        make_flow("raft")
    with pytest.raises(ValueError, match="takes no weights"):
        make_flow("dis", weights="/some/path.pth")
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        make_flow("raft", weights="/nonexistent/does-not-exist.pth")
    with pytest.raises(ValueError, match="differ in shape"):
        estimate_flow(frame, frame[:16])
    with pytest.raises(ValueError, match="uint8"):
        estimate_flow(frame.astype(np.float32), frame)
    assert FLOW_BACKENDS == ("dis", "farneback", "raft")


def _torchvision_raft_small():
    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    from torchvision.models.optical_flow import raft_small

    return raft_small(weights=None, progress=False)


def test_raft_loads_weights_from_path(tmp_path) -> None:
    import torch

    torch.manual_seed(0)
    model = _torchvision_raft_small()
    path = tmp_path / "raft_small.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # DataParallel-style keys
    flow = make_flow("raft", weights=str(path))
    assert flow.name == "raft-small"
    for key, value in model.state_dict().items():
        assert torch.equal(flow._model.state_dict()[key].cpu(), value)
    flow.iters = 2  # random weights: only shape and grid are meaningful, keep it quick
    out = flow(*shifted_pair(30, 44, 3, -2))  # upsampled 5x (RAFT needs >= 128 px), padded to 152 x 224, back to 30 x 44
    assert out.shape == (30, 44, 2) and out.dtype == np.float32 and np.isfinite(out).all()


def test_raft_rejects_a_foreign_state_dict(tmp_path) -> None:
    import torch

    path = tmp_path / "not_raft.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a torchvision raft_large/raft_small state dict"):
        make_flow("raft", weights=str(path))


@pytest.mark.skipif(not os.environ.get("LOLBENCH_RAFT_WEIGHTS"),
                    reason="needs real RAFT weights: set LOLBENCH_RAFT_WEIGHTS to a torchvision RAFT state dict")
def test_raft_with_real_weights_finds_shift() -> None:
    prev, nxt = shifted_pair(64, 96, dx=3, dy=-2)
    flow = make_flow("raft", weights=os.environ["LOLBENCH_RAFT_WEIGHTS"])(prev, nxt)
    assert abs(np.median(flow[..., 0]) - 3) < 0.25
    assert abs(np.median(flow[..., 1]) + 2) < 0.25
