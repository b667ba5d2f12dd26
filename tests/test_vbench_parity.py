"""lolbench's VBench dimensions equal VBench's own dimension code on the same frames and the same weights.

The weights are random, saved in VBench's formats in a temporary cache (tests/vbench_weights.py); the video
is one VBench-Long clip (4 frames at 2 fps: clip length int(2) * 2 s) of 130x140 noise, so RAFT's and AMT's
padding is exercised. VBench's functions read videos from paths; they are handed the same decoded frames by
replacing their frame readers, so decoding is not part of the comparison. Tolerances, per dimension:

- dynamic degree, the static filter's decision: equal; their flow magnitudes to 1e-5 relative.
- temporal flickering: 1e-6 absolute (VBench averages in float32, lolbench exactly).
- motion smoothness: 1e-9 (same model, same uint8 arithmetic).
- subject / background consistency, aesthetic: 1e-5 absolute (float32 features; VBench resizes before
  dividing by 255, lolbench after).

Subject consistency hands VBench's loop lolbench's DINO forward (DINO's own code is not in the vbench wheel),
so it checks preprocessing and the score, not the architecture. These tests need the optional vbench wheel
(``.ci/run`` installs it); elsewhere they skip, saying why.
"""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.metrics.quality import vbench_quality
from lolbench.metrics.vbench_code import unavailable_reason

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"parity with VBench's code needs it: {REASON}")

FPS = 2
VIDEO = "clip.mp4"  # a name only: VBench's readers are replaced


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 130, 140, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from tests.vbench_weights import save_aesthetic_head, save_amt_s, save_clip, save_dino, save_raft_things

    root = tmp_path_factory.mktemp("vbench_cache")
    save_dino(root)
    save_clip(root)
    save_clip(root, "aesthetic_clip", embed_dim=768, seed=1)
    save_aesthetic_head(root)
    save_raft_things(root)
    save_amt_s(root)
    return root


@pytest.fixture(scope="module")
def lolbench_result(frames, cache):
    return vbench_quality(frames, fps=FPS, vbench_cache=str(cache))


def video_tensor(frames: np.ndarray):
    """What VBench's ``load_video`` returns: float [T, 3, H, W] in 0..255."""
    import torch

    return torch.Tensor(frames).permute(0, 3, 1, 2)


def test_every_dimension_uses_vbench_s_models(lolbench_result) -> None:
    result, _ = lolbench_result
    assert result["dynamic_degree[raft-things]"] in (0.0, 1.0)
    assert "motion_smoothness[amt-s]" in result
    assert "subject_consistency[dino-vit-d64-l1-p16/in-clip]" in result
    assert "background_consistency[clip-vit-w64-l1-p32/in-clip]" in result
    assert "aesthetic_quality[laion-aesthetic-clip-vit-w64-l1-p32]" in result
    assert result["quality_score_dims"] == ["subject_consistency", "background_consistency", "temporal_flickering",
                                            "motion_smoothness", "dynamic_degree", "aesthetic_quality"]


def test_temporal_flickering_and_static_filter(lolbench_result, frames, cache, monkeypatch) -> None:
    import torch
    import vbench.temporal_flickering as vbench_flicker
    from easydict import EasyDict
    from vbench.cli.static_filter import StaticFilter

    monkeypatch.setattr(vbench_flicker, "get_frames", lambda path: [f[..., ::-1] for f in frames])  # cv2: BGR
    expected = vbench_flicker.cal_score(VIDEO)
    args = EasyDict(model=str(cache / "raft_model/models/raft-things.pth"), small=False, mixed_precision=False,
                    alternate_corr=False)
    static_filter = StaticFilter(args, device="cpu")
    static_filter.get_frames = lambda path: [torch.from_numpy(f).permute(2, 0, 1).float()[None] for f in frames]
    is_static = static_filter.infer(VIDEO)
    result, _ = lolbench_result
    key = "temporal_flickering[static-filter-raft-things]"
    assert result["temporal_flickering_static_clips[static-filter-raft-things]"] == int(is_static)
    if is_static:
        assert result[key] == pytest.approx(expected, abs=1e-6)
    else:
        assert result[key].startswith("unavailable: none of the 1 clips passed")
    no_filter, _ = vbench_quality(frames, fps=FPS, flow="dis", vbench_cache=str(cache))
    assert no_filter["temporal_flickering[no-static-filter]"] == pytest.approx(expected, abs=1e-6)


def test_static_filter_rule() -> None:
    from vbench.cli.static_filter import StaticFilter

    from lolbench.metrics.quality import is_static_clip

    rule = StaticFilter.__new__(StaticFilter)  # the rule only: no model needed
    rng = np.random.default_rng(3)
    for n_frames in (4, 16, 32):
        rule.set_params(np.zeros((1, 3, 130, 140)), n_frames)
        threshold = 3.0 * 130 / 256
        for _ in range(200):
            scores = rng.exponential(threshold, n_frames + 1)
            assert is_static_clip(scores, n_frames, threshold) == rule.check_static(list(scores))


def test_dynamic_degree(lolbench_result, frames, cache) -> None:
    import torch
    from easydict import EasyDict
    from vbench.dynamic_degree import DynamicDegree

    args = EasyDict(model=str(cache / "raft_model/models/raft-things.pth"), small=False, mixed_precision=False,
                    alternate_corr=False)
    vbench_dynamic = DynamicDegree(args, device="cpu")
    vbench_dynamic.get_frames = lambda path: [torch.from_numpy(f).permute(2, 0, 1).float()[None] for f in frames]
    scores, score = [], vbench_dynamic.get_score  # interval 1 at 2 fps: every frame is kept
    vbench_dynamic.get_score = lambda img, flow: scores.append(score(img, flow)) or scores[-1]
    is_dynamic = vbench_dynamic.infer(VIDEO)
    result, curves = lolbench_result
    assert result["dynamic_degree[raft-things]"] == float(is_dynamic)
    np.testing.assert_allclose(curves["flow_top5[raft-things]"], scores, rtol=1e-5)


def test_dynamic_degree_rule() -> None:
    from vbench.dynamic_degree import DynamicDegree

    from lolbench.metrics.dynamic import clip_is_dynamic, motion_threshold

    rule = DynamicDegree.__new__(DynamicDegree)
    rng = np.random.default_rng(4)
    for n_kept in (2, 3, 8, 16, 17):
        rule.set_params(np.zeros((1, 3, 480, 832)), n_kept)
        assert rule.params["thres"] == pytest.approx(motion_threshold(480, 832))
        for _ in range(200):
            scores = rng.exponential(rule.params["thres"], n_kept - 1)
            assert clip_is_dynamic(scores, n_kept, rule.params["thres"]) == rule.check_move(list(scores))


def test_motion_smoothness(lolbench_result, frames, cache) -> None:
    from vbench.motion_smoothness import MotionSmoothness

    from lolbench.metrics.vbench_code import amt_config_path

    motion = MotionSmoothness(str(amt_config_path()), str(cache / "amt_model/amt-s.pth"), "cpu")
    motion.fp.get_frames = lambda path: list(frames)
    result, _ = lolbench_result
    assert result["motion_smoothness[amt-s]"] == pytest.approx(motion.motion_score(VIDEO), abs=1e-9)


def test_subject_consistency(lolbench_result, frames, cache, monkeypatch) -> None:
    import torch
    import vbench.subject_consistency as vbench_subject

    from lolbench.metrics.backbones import DinoBackbone

    backbone = DinoBackbone(str(cache / "dino_model/dino_vitbase16_pretrain.pth"), device="cpu")

    class Dino(torch.nn.Module):  # the hub model's call: preprocessed [1, 3, H, W] -> CLS features
        def forward(self, x):
            return backbone._forward(x)

    monkeypatch.setattr(vbench_subject, "load_video", lambda path: video_tensor(frames))
    _, videos = vbench_subject.subject_consistency(Dino(), [VIDEO], "cpu", False)
    result, _ = lolbench_result
    assert result["subject_consistency[dino-vit-d64-l1-p16/in-clip]"] == pytest.approx(videos[0]["video_results"],
                                                                                       abs=1e-5)


def test_background_consistency(lolbench_result, frames, cache, monkeypatch) -> None:
    import clip
    import vbench.background_consistency as vbench_background

    model, preprocess = clip.load(str(cache / "clip_model/ViT-B-32.pt"), device="cpu")
    monkeypatch.setattr(vbench_background, "load_video", lambda path: video_tensor(frames))
    _, videos = vbench_background.background_consistency(model, preprocess, [VIDEO], "cpu", False)
    result, _ = lolbench_result
    assert result["background_consistency[clip-vit-w64-l1-p32/in-clip]"] == pytest.approx(
        videos[0]["video_results"], abs=1e-5)


def test_aesthetic_quality(lolbench_result, frames, cache, monkeypatch) -> None:
    import clip
    import vbench.aesthetic_quality as vbench_aesthetic

    head = vbench_aesthetic.get_aesthetic_model(str(cache / "aesthetic_model/emb_reader"))
    model, _ = clip.load(str(cache / "clip_model/ViT-L-14.pt"), device="cpu")
    monkeypatch.setattr(vbench_aesthetic, "load_video", lambda path: video_tensor(frames))
    _, videos = vbench_aesthetic.laion_aesthetic(head, model, [VIDEO], "cpu")
    result, _ = lolbench_result
    assert result["aesthetic_quality[laion-aesthetic-clip-vit-w64-l1-p32]"] == pytest.approx(
        videos[0]["video_results"], abs=1e-5)
