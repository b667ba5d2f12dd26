"""VBench-style quality dimensions, drift and Quality Score: known answers and streaming == batch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lolbench.metrics.backbones import PixelBackbone
from lolbench.metrics.flow import make_flow
from lolbench.metrics.quality import (
    DIMENSIONS,
    VBenchQuality,
    consistency_terms,
    flicker_terms,
    quality_score,
    vbench_quality,
    warp_middle,
    weighted_quality,
)


def textured_strip(height: int, width: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return np.round(255 * (noise - noise.min()) / (noise.max() - noise.min())).astype(np.uint8)


def static_video(n_frames: int, size: int = 32) -> np.ndarray:
    return np.repeat(textured_strip(size, size)[None], n_frames, axis=0)


def panning_video(n_frames: int, px_per_frame: int, size: int = 32, seed: int = 0) -> np.ndarray:
    strip = textured_strip(size, size + px_per_frame * n_frames, seed)
    return np.stack([strip[:, px_per_frame * i: px_per_frame * i + size] for i in range(n_frames)])


def test_quality_score_matches_hand_computation() -> None:
    dims = {"subject_consistency": 0.95, "background_consistency": 0.96, "temporal_flickering": 0.97,
            "motion_smoothness": 0.98, "dynamic_degree": 0.5, "aesthetic_quality": 0.6, "imaging_quality": 0.7}
    by_hand = ((0.95 - 0.1462) / (1 - 0.1462) + (0.96 - 0.2615) / (1 - 0.2615) + (0.97 - 0.6293) / (1 - 0.6293)
               + (0.98 - 0.706) / (0.9975 - 0.706) + 0.5 * 0.5 + 0.6 + 0.7) / 6.5
    assert quality_score(dims) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(0.8148, abs=1e-4)  # 0.9414 + 0.9458 + 0.9191 + 0.9400 + 0.25 + 1.3 = 5.2963
    best = {"subject_consistency": 1, "background_consistency": 1, "temporal_flickering": 1,
            "motion_smoothness": 0.9975, "dynamic_degree": 1, "aesthetic_quality": 1, "imaging_quality": 1}
    worst = {"subject_consistency": 0.1462, "background_consistency": 0.2615, "temporal_flickering": 0.6293,
             "motion_smoothness": 0.706, "dynamic_degree": 0, "aesthetic_quality": 0, "imaging_quality": 0}
    assert quality_score(best) == pytest.approx(1.0)
    assert quality_score(worst) == pytest.approx(0.0)


def test_partial_score_renormalizes_weights_and_full_score_needs_all_dims() -> None:
    # dynamic (weight 0.5) at 1, flickering (weight 1) at its minimum: 0.5 / 1.5
    assert weighted_quality({"dynamic_degree": 1.0, "temporal_flickering": 0.6293}) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="missing aesthetic_quality, imaging_quality"):
        quality_score({d: 1.0 for d in DIMENSIONS[:5]})
    with pytest.raises(ValueError, match="subset of"):
        weighted_quality({"sharpness": 1.0})


def test_flickering_of_a_hand_made_video() -> None:
    f0 = np.full((4, 4, 3), 10, np.uint8)
    f1 = np.full((4, 4, 3), 40, np.uint8)
    f1[:2] = 100  # half the pixels
    video = np.stack([f0, f1, f1])
    # |f1 - f0| = 30 on half the pixels, 90 on the other half -> 60; |f2 - f1| = 0; m = 30
    np.testing.assert_allclose(flicker_terms(video), [(255 - 60) / 255, 1.0])
    result, _ = vbench_quality(video, fps=16)
    assert result["temporal_flickering[no-static-filter]"] == pytest.approx((255 - 30) / 255)


def test_consistency_is_one_for_identical_frames_and_drops_for_unrelated_ones() -> None:
    pixel = PixelBackbone()
    np.testing.assert_allclose(consistency_terms(pixel(static_video(5))), 1.0)
    noise = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    assert consistency_terms(pixel(noise)).max() < 0.1
    # VBench's term: mean of the (clamped) cosines to the previous and to the first frame
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(consistency_terms(feats), [0.0, 0.5, 0.0])
    # a constant frame has no texture left after centering: identical constant frames still count as 1
    np.testing.assert_allclose(consistency_terms(pixel(np.full((3, 8, 8, 3), 7, np.uint8))), 1.0)


def test_static_video_scores() -> None:
    result, curves = vbench_quality(static_video(40), fps=16)
    assert result["temporal_flickering[no-static-filter]"] == 1.0
    assert result["motion_smoothness[flow-dis]"] == pytest.approx(1.0, abs=1e-3)
    assert result["subject_consistency[pixel/in-clip]"] == pytest.approx(1.0)
    assert result["background_consistency[pixel/in-clip]"] == pytest.approx(1.0)
    assert result["dynamic_degree[dis]"] == 0.0
    assert result["quality_clips"] == 2
    assert curves["temporal_flickering[no-static-filter]"].shape == (40,)


def test_flow_warp_interpolates_a_uniform_pan() -> None:
    video = panning_video(3, 2)  # frame 1 is exactly half-way between frames 0 and 2
    middle = warp_middle(video[0], video[2], make_flow("dis")(video[0], video[2]))
    inner = (slice(4, -4), slice(4, -4))  # borders are replicated, not known
    assert np.abs(middle[inner].astype(int) - video[1][inner]).mean() < 2.0


def test_panning_video_is_smooth_and_dynamic() -> None:
    result, _ = vbench_quality(panning_video(40, 1), fps=16)
    assert result["dynamic_degree[dis]"] == 1.0
    assert result["motion_smoothness[flow-dis]"] > 0.98
    assert result["temporal_flickering[no-static-filter]"] < 0.99  # pixels change under motion; VBench filters such clips


def test_unavailable_dims_report_reasons_and_partial_score_lists_what_it_holds() -> None:
    result, _ = vbench_quality(static_video(20), fps=16)
    assert result["aesthetic_quality"].startswith("unavailable: needs CLIP ViT-L/14")
    assert result["imaging_quality"].startswith("unavailable: no MUSIQ")
    assert result["imaging_quality_drift"].startswith("unavailable:")
    assert "quality_score" not in result
    key = "quality_score[partial:temporal_flickering:no-static-filter,motion_smoothness:flow-dis,dynamic_degree:dis]"
    # the pixel stand-in is not on DINO's / CLIP's scale: neither consistency counts, let alone twice
    assert result["quality_score_dims"] == ["temporal_flickering", "motion_smoothness", "dynamic_degree"]
    dims = {d: result[k] for d, k in [("temporal_flickering", "temporal_flickering[no-static-filter]"),
                                      ("motion_smoothness", "motion_smoothness[flow-dis]"),
                                      ("dynamic_degree", "dynamic_degree[dis]")]}
    assert result[key] == pytest.approx(weighted_quality(dims))


def test_real_imaging_model_is_used_when_given(tmp_path) -> None:
    import torch

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean() * 100.0

    path = tmp_path / "musiq.pt"
    torch.jit.script(Mean()).save(str(path))
    video = np.full((20, 16, 16, 3), 51, np.uint8)
    result, _ = vbench_quality(video, fps=16, backbones={"musiq": str(path)})
    assert result["imaging_quality[musiq]"] == pytest.approx(0.2)
    assert 'quality_score[partial:temporal_flickering:no-static-filter,motion_smoothness:flow-dis,dynamic_degree:dis]'[:-1] + ",imaging_quality:musiq]" in result
    assert "imaging_quality" in result["quality_score_dims"]


def test_bad_backbone_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="allowed: dino, clip, aesthetic_clip, aesthetic_head, musiq, raft, amt"):
        VBenchQuality(fps=16, backbones={"dinov2": "/x.pth"})
    with pytest.raises(ValueError, match="drift_seconds"):
        VBenchQuality(fps=16, drift_seconds=0)


def test_drift_is_negative_when_the_second_half_is_noisier() -> None:
    rng = np.random.default_rng(0)
    video = static_video(64).astype(np.int16)
    video[32:] += rng.integers(-25, 26, video[32:].shape, dtype=np.int16)  # fresh noise every frame
    video = np.clip(video, 0, 255).astype(np.uint8)
    result, _ = vbench_quality(video, fps=16, clip_seconds=1.0, drift_seconds=1.0)
    assert result["temporal_flickering_drift[no-static-filter]"] < -0.03
    assert result["motion_smoothness_drift[flow-dis]"] < -0.01
    assert result["subject_consistency_drift[pixel/in-clip]"] < 0
    short, _ = vbench_quality(video[:20], fps=16, clip_seconds=1.0, drift_seconds=1.0)
    assert short["temporal_flickering_drift[no-static-filter]"].startswith("unavailable: video shorter than 2 x drift_seconds")


def _assert_same(streamed: tuple[dict, dict], batch: tuple[dict, dict]) -> None:
    assert streamed[0] == batch[0]
    assert streamed[1].keys() == batch[1].keys()
    for key in batch[1]:
        np.testing.assert_array_equal(streamed[1][key], batch[1][key])


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_streaming_equals_batch(chunk: int) -> None:
    # 45 frames, 16-frame clips: [0, 16), [16, 32) and the overlapping last clip [29, 45)
    rng = np.random.default_rng(1)
    video = np.concatenate([static_video(20), panning_video(25, 1, seed=2)])
    video[30:] = np.clip(video[30:] + rng.integers(0, 20, video[30:].shape), 0, 255).astype(np.uint8)
    kwargs = {"fps": 16, "clip_seconds": 1.0, "drift_seconds": 1.0}
    batch = vbench_quality(video, **kwargs)
    metric = VBenchQuality(**kwargs)
    for i in range(0, len(video), chunk):
        metric.update(video[i:i + chunk])
        if i == 21:
            metric.compute()  # computing mid-stream must not change the end result
    _assert_same(metric.summary(), batch)
    assert metric.compute() == batch[0]
    metric.reset()
    metric.update(video)
    _assert_same(metric.summary(), batch)


def test_empty_and_tiny_videos_are_unavailable_not_zero() -> None:
    empty = VBenchQuality(fps=16).compute()
    assert empty["temporal_flickering[no-static-filter]"].startswith("unavailable:")
    assert empty['quality_score[partial:temporal_flickering:no-static-filter,motion_smoothness:flow-dis,dynamic_degree:dis]'].startswith("unavailable:")
    two, _ = vbench_quality(static_video(2), fps=16)
    assert two["temporal_flickering[no-static-filter]"] == 1.0
    assert two["motion_smoothness[flow-dis]"].startswith("unavailable: needs a clip of at least 3 frames")
