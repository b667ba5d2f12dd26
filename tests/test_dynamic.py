"""Dynamic degree: VBench's rule, VBench-Long clips, and streaming == batch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lolbench.metrics.clips import ClipWindow, clip_length, clip_spans
from lolbench.metrics.dynamic import (
    DynamicDegree,
    clip_is_dynamic,
    dynamic_degree,
    frame_stride,
    motion_threshold,
    required_pairs,
)


def panning_video(n_frames: int, px_per_frame: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """A window sliding right over a smooth texture: content moves left ``px_per_frame`` each frame."""
    width = size + px_per_frame * n_frames
    noise = np.random.default_rng(seed).random((size, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0)
    strip = np.round(255 * (noise - noise.min()) / (noise.max() - noise.min())).astype(np.uint8)
    return np.stack([strip[:, px_per_frame * i: px_per_frame * i + size] for i in range(n_frames)])


def stream(metric: DynamicDegree, video: np.ndarray, chunk: int) -> DynamicDegree:
    for i in range(0, len(video), chunk):
        metric.update(video[i:i + chunk])
    return metric


def test_vbench_rule_constants() -> None:
    assert [frame_stride(f) for f in (4, 8, 16, 24, 30, 60)] == [1, 1, 2, 3, 4, 8]
    assert motion_threshold(32, 32) == pytest.approx(0.75)  # 6 * 32 / 256, whatever the frame rate
    assert motion_threshold(480, 832) == pytest.approx(11.25)  # min side 480
    # round(4 * N / 16) kept frames, Python rounding: N = 2 needs 0 pairs, so any pair makes it dynamic
    assert [required_pairs(n) for n in (2, 3, 10, 16, 17)] == [0, 1, 2, 4, 4]
    assert clip_is_dynamic([0.0], 2, threshold=0.75) is True
    assert clip_is_dynamic([1.0, 0.0, 0.0], 4, threshold=0.75) is True
    assert clip_is_dynamic([0.5, 0.75, 0.0], 4, threshold=0.75) is False  # strictly above the threshold
    assert clip_is_dynamic([], 1, threshold=0.75) is None


def test_clip_spans_follow_vbench_long() -> None:
    assert clip_length(16, 2.0) == 32
    assert clip_length(29.97, 2.0) == 58  # VBench-Long reads fps as int
    assert clip_spans(70, 32) == [(0, 32), (32, 64), (38, 70)]  # leftover -> last 32 frames
    assert clip_spans(64, 32) == [(0, 32), (32, 64)]
    assert clip_spans(10, 32) == [(0, 10)]  # shorter than a clip -> whole video
    assert clip_spans(0, 32) == []
    with pytest.raises(ValueError, match="at least 2 frames"):
        clip_length(1.5, 1.0)


def test_clip_window_matches_clip_spans() -> None:
    window = ClipWindow(32)
    frames = np.arange(70, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    done = [t + 1 for t, frame in enumerate(frames) if window.push(frame)]
    assert done == [32, 64]
    assert window.pending_span() == (38, 70)
    start, clip = window.pending_clip()
    assert start == 38 and list(clip[:, 0, 0, 0]) == list(range(38, 70))
    window.reset()
    for frame in frames[:64]:
        window.push(frame)
    assert window.pending_clip() is None
    with pytest.raises(ValueError, match="size changed"):
        window.push(np.zeros((3, 3, 3), np.uint8))


def test_static_video_is_not_dynamic() -> None:
    video = np.repeat(panning_video(1, 1), 40, axis=0)
    result, curves = dynamic_degree(video, fps=16)
    assert result["dynamic_degree[dis]"] == 0.0
    assert result["dynamic_degree_clips[dis]"] == 2  # 40 frames: [0, 32) and the last 32
    assert np.abs(curves["flow_top5[dis]"]).max() < 0.05


def test_panning_video_is_dynamic() -> None:
    video = panning_video(40, 2)  # 2 px per frame, 4 px per ~8 fps pair at 32x32
    result, curves = dynamic_degree(video, fps=16)
    assert result["dynamic_degree[dis]"] == 1.0
    assert np.median(curves["flow_top5[dis]"]) == pytest.approx(4.0, abs=1.0)
    assert result["dynamic_flow_ratio[dis]"] > 1.0


def test_half_static_half_panning_scores_half() -> None:
    pan = panning_video(64, 2, seed=3)
    video = np.concatenate([np.repeat(pan[:1], 64, axis=0), pan])  # clips 0-1 static, 2-3 moving
    result, curves = dynamic_degree(video, fps=16)
    assert result["dynamic_degree[dis]"] == 0.5
    assert list(curves["dynamic_clip[dis]"]) == [0, 0, 1, 1]


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_streaming_equals_batch(chunk: int) -> None:
    # 75 frames at 16 fps: clips [0, 32), [32, 64) on the 8 fps grid and the last clip [43, 75) off it
    pan = panning_video(45, 2, seed=1)
    video = np.concatenate([np.repeat(pan[:1], 30, axis=0), pan])
    batch_result, batch_curves = dynamic_degree(video, fps=16)
    metric = stream(DynamicDegree(fps=16), video, chunk)
    assert metric.compute() == batch_result
    curves = metric.curves()
    assert curves.keys() == batch_curves.keys()
    for key in curves:
        np.testing.assert_array_equal(curves[key], batch_curves[key])
    metric.reset()
    assert stream(metric, video, chunk).compute() == batch_result


def test_compute_mid_stream_does_not_disturb_state() -> None:
    video = panning_video(50, 2)
    metric = DynamicDegree(fps=16)
    metric.update(video[:20])
    metric.compute()
    metric.update(video[20:])
    assert metric.compute() == dynamic_degree(video, fps=16)[0]


def test_too_short_video_is_unavailable() -> None:
    result = DynamicDegree(fps=16).compute()
    assert result["dynamic_degree[dis]"].startswith("unavailable:")
    result, _ = dynamic_degree(panning_video(2, 1), fps=16)  # one ~8 fps sample only
    assert result["dynamic_degree[dis]"].startswith("unavailable:")
