"""Sink distance on synthetic videos whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from lolbench.metrics.sink_distance import SinkDistance, collapse_events, distance_drop, periodic_pull, sink_distance

FPS = 16.0


def noise_video(frames: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """Independent random frames: every frame is about equally far from every other."""
    return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def returning_video() -> np.ndarray:
    """Noise that returns exactly to frame 0 at frames 70 and 120, and dips for frames 90..94 (deepest at 92)."""
    video = noise_video(160)
    video[70] = video[0]
    video[120] = video[0]
    for frame, alpha in zip(range(90, 95), (0.7, 0.85, 0.95, 0.85, 0.7)):
        video[frame] = np.round(alpha * video[0] + (1 - alpha) * video[frame].astype(float)).astype(np.uint8)
    return video


def ripple_video(frames: int = 600, period: float = 29.0, amplitude: float = 0.1) -> np.ndarray:
    """Frames whose RMS distance to the (constant) sink is proportional to 1 + amplitude * sin(2 pi t / period)."""
    rng = np.random.default_rng(1)
    base = rng.integers(60, 196, (32, 32, 3)).astype(float)
    pattern = rng.choice([-40.0, 40.0], (32, 32, 3))
    scale = 1 + amplitude * np.sin(2 * np.pi * np.arange(frames) / period)
    scale[:3] = 0  # the sink chunk is the base image itself
    return np.clip(np.round(base + scale[:, None, None, None] * pattern), 0, 255).astype(np.uint8)


def stream(metric: SinkDistance, video: np.ndarray, chunk: int) -> SinkDistance:
    for start in range(0, len(video), chunk):
        metric.update(video[start: start + chunk])
    return metric


def assert_same_results(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], str):
            assert a[key] == b[key], key
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_returns_to_the_sink_are_events_at_exactly_those_frames():
    result = sink_distance(returning_video(), fps=FPS)
    assert result["sink_collapse_event_frames[rms]"] == [70, 92, 120]
    assert result["sink_collapse_events[rms]"] == 3
    depths = result["sink_collapse_event_depths[rms]"]
    assert depths[0] == pytest.approx(1.0) and depths[2] == pytest.approx(1.0)  # exact copies of frame 0
    assert 0.9 < depths[1] < 1.0  # the blended dip: 95 % of frame 0
    assert result["sink_distance_min[rms]"] == pytest.approx(0.0)
    assert result["sink_distance_drop[rms]"] == pytest.approx(100.0)


def test_noise_is_about_as_far_from_the_sink_as_usual():
    metric = stream(SinkDistance(fps=FPS), noise_video(120), 5)
    curve = metric.curves()["sink_distance[rms]"]
    assert np.all(curve[:3] == 0)  # the sink frames themselves
    assert np.median(curve[metric.settings.warmup:]) == pytest.approx(1.0, abs=0.02)
    assert metric.compute()["sink_collapse_events[rms]"] == 0
    assert metric.events() == []


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_streaming_equals_batch(chunk):
    video = returning_video()
    metric = stream(SinkDistance(fps=FPS, sink_frames=3), video, chunk)
    assert_same_results(metric.compute(), sink_distance(video, sink_frames=3, fps=FPS))
    assert [e["frame"] for e in metric.events()] == [70, 92, 120]


def test_periodic_ripple_without_dips_reports_its_period_and_amplitude():
    # reference window = two whole periods, so the reference level is the ripple's centre
    result = sink_distance(ripple_video(), fps=FPS, reference_s=58 / FPS)
    assert "loop" in result["sink_collapse_drop[rms]"]  # every frame recurs exactly each period: no sink-collapse
    assert result["sink_distance_min[rms]"] > 0.85
    assert result["sink_pull_period[rms]"] == pytest.approx(29.0, abs=0.1)
    assert result["sink_pull_period_s[rms]"] == pytest.approx(29.0 / FPS, abs=0.01)
    assert result["sink_pull_amplitude[rms]"] == pytest.approx(0.1, abs=0.005)
    assert result["sink_pull_r2[rms]"] > 0.9


def test_periodic_pull_amplitude_is_the_sinusoid_amplitude_under_a_trend():
    t = np.arange(800)
    curve = 0.8 + 0.0005 * t + 0.07 * np.cos(2 * np.pi * t / 41.5 + 1.0)
    pull = periodic_pull(curve)
    assert pull["period"] == pytest.approx(41.5, abs=0.05)
    assert pull["amplitude"] == pytest.approx(0.07, abs=1e-3)


def test_periodic_pull_of_noise_explains_little_variance():
    pull = periodic_pull(np.random.default_rng(0).normal(1.0, 0.05, 600))
    assert pull["r2"] < 0.05


def test_collapse_events_merge_runs_and_respect_min_separation():
    curve = np.ones(60)
    curve[10:14] = [0.4, 0.2, 0.3, 0.45]  # one dip over four frames
    curve[16] = 0.1  # deeper dip 6 frames later
    curve[40] = 0.3
    assert [e.frame for e in collapse_events(curve, threshold=0.5, min_separation=8)] == [16, 40]
    assert [e.frame for e in collapse_events(curve, threshold=0.5, min_separation=3)] == [11, 16, 40]
    assert collapse_events(curve, threshold=0.5, min_separation=3, start=20)[0].frame == 40
    assert distance_drop(curve, start=20) == pytest.approx(70.0)
    assert distance_drop(np.full(10, 1.3)) == 0.0


def test_unmeasurable_videos_say_why():
    frozen = np.repeat(noise_video(1), 60, axis=0)
    assert sink_distance(frozen)["sink_distance_min[rms]"].startswith("unavailable: reference distance is 0")
    short = sink_distance(noise_video(10), fps=FPS)
    assert all(isinstance(v, str) and "warm-up" in v for v in short.values())


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="sink_distance.distance"):
        SinkDistance(distance="l2")
    with pytest.raises(ValueError, match="sink_distance.backbone"):
        SinkDistance(distance="cosine")
    with pytest.raises(ValueError, match="sink_distance.weights"):
        SinkDistance(distance="lpips")
    with pytest.raises(ValueError, match="sink_distance.threshold"):
        SinkDistance(threshold=1.5)
    with pytest.raises(ValueError, match="sink_distance.backbone"):
        SinkDistance(distance="rms", backbone="dino")


def test_feature_cosine_distance_is_named_after_its_backbone():
    metric = stream(SinkDistance(fps=FPS, distance="cosine", backbone="pixel"), returning_video(), 4)
    result = metric.compute()
    tag = metric.tag
    assert tag == "pixel"
    assert result[f"sink_distance_min[{tag}]"] == pytest.approx(0.0, abs=1e-6)  # frame 70 is frame 0
    assert 70 in result[f"sink_collapse_event_frames[{tag}]"]


def test_lpips_uses_alexnet_weights_from_a_local_path(tmp_path):
    torch = pytest.importorskip("torch")
    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    video = returning_video()[:40]
    metric = stream(SinkDistance(fps=FPS, distance="lpips", weights=str(path)), video, 8)
    raw = metric.curves()["sink_distance_raw[lpips-alex]"]
    assert np.all(raw[:3] == pytest.approx(0.0, abs=1e-6))  # sink frames are at distance 0 from themselves
    assert np.all(raw[3:] > 0)
    with pytest.raises(FileNotFoundError, match="sink_distance.weights"):
        SinkDistance(distance="lpips", weights=str(tmp_path / "missing.pth"))
