"""The metric suite built from the real config group, and the result schema that documents its keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from lolbench.metrics.heads import HeadHomogeneity
from lolbench.metrics.schema import SCHEMA, find_spec, render_markdown, undocumented
from lolbench.metrics.sink_distance import SinkDistance
from lolbench.metrics.suite import MetricSuite, backbone_names, build_suite
from lolbench.probes import AttentionProbe, FrameKind

ROOT = Path(__file__).resolve().parent.parent
FPS, CHUNK = 16.0, 3
EVENTS = [70, 92, 120]  # frames of returning_video() that copy the sink


def returning_video() -> np.ndarray:
    """Random frames; frames 70 and 120 copy frame 0 and frame 92 is 95 % frame 0."""
    video = np.random.default_rng(0).integers(0, 256, (160, 32, 32, 3), dtype=np.uint8)
    video[70] = video[120] = video[0]
    video[92] = np.round(0.95 * video[0] + 0.05 * video[92]).astype(np.uint8)
    return video


def probe(chunk: int, on_sink: bool) -> AttentionProbe:
    """3 sink + 9 local key frames; every head on the sink, or random heads."""
    kinds = np.array([FrameKind.SINK] * 3 + [FrameKind.LOCAL] * 9, dtype=np.int8)
    mass = np.random.default_rng(chunk).dirichlet(np.ones(12), size=(2, 6))  # [L, H, S]
    if on_sink:
        mass = np.zeros_like(mass)
        mass[:, :, 0] = 1.0
    return AttentionProbe(chunk, mass.astype(np.float32), np.arange(12, dtype=np.int64), kinds)


def default_cfg():
    return OmegaConf.load(ROOT / "conf" / "metrics" / "default.yaml")


@pytest.fixture(scope="module")
def measured() -> MetricSuite:
    """The default suite after a 10 s video, with a probe per chunk; homogeneous heads in each event's chunk."""
    suite = build_suite(default_cfg(), fps=FPS, chunk_frames=CHUNK)
    video = returning_video()
    event_chunks = {e // CHUNK for e in EVENTS}
    for chunk, start in enumerate(range(0, len(video), CHUNK)):
        suite.update_frames(video[start: start + CHUNK])
        suite.update_probe(probe(chunk, on_sink=chunk in event_chunks))
    return suite


def test_default_suite_has_every_metric(measured):
    # quality computes the dynamic degree itself, so the dynamic group is folded into it
    assert [m.name for m in measured.metrics] == ["sink_distance", "cycles", "vbench_quality", "heads"]
    assert "dynamic_degree[dis]" in measured.compute()


def test_dynamic_group_sets_the_flow_of_quality_or_stands_alone():
    cfg = default_cfg()
    cfg.dynamic.flow = "farneback"
    suite = build_suite(cfg, fps=FPS, chunk_frames=CHUNK)
    suite.update_frames(returning_video()[:40])
    assert "dynamic_degree[farneback]" in suite.compute()
    cfg.quality.enabled = False
    assert [m.name for m in build_suite(cfg, fps=FPS, chunk_frames=CHUNK).metrics] == [
        "sink_distance", "cycles", "dynamic_degree", "heads"]
    cfg.quality.enabled = True
    cfg.dynamic.clip_seconds = 4.0
    with pytest.raises(ValueError, match="metrics.dynamic.clip_seconds=4.0 must equal"):
        build_suite(cfg, fps=FPS, chunk_frames=CHUNK)


def test_results_are_flat_and_every_key_is_documented(measured):
    results = measured.compute()
    assert undocumented(results) == []
    assert results["sink_collapse_event_frames[rms]"] == EVENTS
    assert "rms" in backbone_names(results) and "dis" in backbone_names(results)


def test_head_homogeneity_is_read_against_the_dips_of_the_same_chunk(measured):
    results = measured.compute()
    assert results["head_consensus_at_events[rms]"] == 1.0
    assert results["head_consensus_elsewhere[rms]"] < 0.5
    assert results["head_dip_corr[rms]"] > 0.5


def test_events_and_curves(measured):
    events = measured.events()
    assert [e["frame"] for e in events] == EVENTS
    assert events[0]["metric"] == "sink_distance[rms]" and events[0]["time_s"] == pytest.approx(70 / FPS)
    assert events[0]["depth"] == pytest.approx(1.0)
    curves = measured.curves()
    assert len(curves["sink_distance[rms]"]) == 160
    assert len(curves["head_consensus"]) == len(curves["head_chunk_index"]) == 54


def test_streamed_chunk_size_does_not_change_the_results():
    cfg = default_cfg()
    cfg.quality.enabled = False
    video = returning_video()[:100]
    results = []
    for chunk in (1, 7):
        suite = build_suite(cfg, fps=FPS, chunk_frames=CHUNK)
        for start in range(0, len(video), chunk):
            suite.update_frames(video[start: start + chunk])
        results.append(suite.compute())
    assert results[0].keys() == results[1].keys()
    for key, value in results[0].items():
        assert results[1][key] == (value if isinstance(value, (str, list)) else pytest.approx(value)), key


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"unknown metrics group\(s\) \['sink'\]"):
        build_suite({"sink": {}}, fps=FPS, chunk_frames=CHUNK)
    with pytest.raises(ValueError, match=r"metrics.cycles.period.*allowed: \['enabled', 'size'"):
        build_suite({"cycles": {"period": 3}}, fps=FPS, chunk_frames=CHUNK)
    with pytest.raises(ValueError, match="metrics.sink_distance.fps"):
        build_suite({"sink_distance": {"fps": 8}}, fps=FPS, chunk_frames=CHUNK)


def test_disabled_and_absent_groups_are_not_built():
    suite = build_suite({"sink_distance": {"enabled": False}, "heads": {"enabled": True}}, fps=FPS, chunk_frames=3)
    assert suite.frame_metrics == [] and [m.name for m in suite.probe_metrics] == ["heads"]


def test_composed_run_config_reaches_the_metrics(run_config):
    suite = build_suite(run_config(["metrics.sink_distance.threshold=0.6", "metrics.quality.enabled=false"]).metrics,
                        fps=FPS, chunk_frames=CHUNK)
    assert suite.frame_metrics[0].settings.threshold == 0.6


def test_duplicate_result_keys_are_an_error():
    suite = MetricSuite([SinkDistance(), SinkDistance()], [HeadHomogeneity()])
    suite.update_frames(returning_video()[:40])
    with pytest.raises(RuntimeError, match="already set"):
        suite.compute()


def test_schema_rows_are_unique_and_render_as_markdown():
    patterns = [spec.pattern for spec in SCHEMA]
    assert len(set(patterns)) == len(patterns)
    assert find_spec("sink_distance_min[dino-vitb16]").pattern == "sink_distance_min[{distance}]"
    assert find_spec("sink_distance_min") is None and find_spec("sink_distance_min[rms]x") is None
    table = render_markdown().splitlines()
    assert table[0].startswith("| key |") and len([line for line in table if line.startswith("| `")]) == len(SCHEMA)
    assert "| `sink_distance_drop[{distance}]` |" in render_markdown()
