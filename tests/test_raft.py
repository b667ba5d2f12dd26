"""RAFT in CI: a random-initialized torchvision RAFT saved by the test, loaded from its path like real weights.

Random weights say nothing about accuracy (that is the user's check with real weights: test_flow.py's
``test_raft_with_real_weights_finds_shift`` with LOLBENCH_RAFT_WEIGHTS set); they do exercise loading, the
resize to RAFT's input grid and back, and VBench's dynamic-degree rule applied to RAFT's flow, end to end. The
rule is re-applied here by hand to the RAFT scores the metric measured: threshold 6·min(H, W)/256, a clip is
dynamic when at least round(4·N/16) of its pairs exceed it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lolbench.metrics.dynamic import DynamicDegree
from lolbench.metrics.flow import make_flow

FPS, SIZE, SHIFT = 8.0, 48, 3  # 8 fps: every frame is sampled; 1 s clips of 8 frames


@pytest.fixture(scope="module")
def raft(tmp_path_factory):
    """A RAFT-small estimator with seeded random weights, loaded from a state dict file the test wrote."""
    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / "raft_small_random.pth"
    torch.save(raft_small(weights=None, progress=False).state_dict(), path)
    estimator = make_flow("raft", weights=str(path))
    estimator.iters = 2  # random weights: more refinement steps add time, not meaning
    return estimator


def panning_video(frames: int) -> np.ndarray:
    """A random texture moving SHIFT pixels right per frame: a known global shift."""
    strip = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE + SHIFT * frames, 3), dtype=np.uint8)
    return np.stack([strip[:, SHIFT * (frames - t): SHIFT * (frames - t) + SIZE] for t in range(frames)])


def test_raft_flow_on_a_global_shift_is_finite_on_the_frame_grid(raft):
    video = panning_video(2)
    flow = raft(video[0], video[1])
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    assert raft.name == "raft-small"


def test_dynamic_degree_with_raft_applies_vbenchs_rule_to_its_flow(raft):
    video = panning_video(16)  # two 1 s clips of 8 frames
    metric = DynamicDegree(fps=FPS, flow=raft, clip_seconds=1.0)
    for start in range(0, len(video), 3):
        metric.update(video[start: start + 3])
    result = metric.compute()

    threshold = 6 * SIZE / 256
    scores = metric.curves()["flow_top5[raft-small]"]  # [15] RAFT's top-5% flow of every pair (stride 1)
    assert len(scores) == 15 and np.isfinite(scores).all()
    clips = [scores[0:7], scores[8:15]]  # pairs inside each clip; pair 7 joins the two clips
    dynamic = [sum(s > threshold for s in clip) >= round(4 * 8 / 16) for clip in clips]
    assert result["dynamic_degree[raft-small]"] == pytest.approx(np.mean(dynamic))
    assert result["dynamic_degree_clips[raft-small]"] == 2
    assert result["dynamic_flow_ratio[raft-small]"] == pytest.approx(np.mean(scores) / threshold, rel=1e-5)
