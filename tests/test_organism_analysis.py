"""analysis/organism.py: rollout measurements with known answers, hit counting, and both subcommands end to end."""

from __future__ import annotations

import dataclasses
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from analysis import organism
from analysis.organism import bin_rollout, main, nearest_distance, stream_video, strip_indices
from lolbench.stats import Matching, match_events
from lolbench.generator import Chunk
from lolbench.metrics.motion import motion_fidelity
from lolbench.phase import coherence_kernel, frame_frequencies, local_maxima
from lolbench.rope import RopeSpec, build_tables
from lolbench.world import ProceduralWorld, get_scene

SIZE = 32


class FrameSource:
    """A VideoGenerator over a fixed frame function: a still world (exact 1-px pans) or a frozen picture."""

    name = "test"
    chunk_frames = 3
    fps = 16.0

    def __init__(self, frozen: bool) -> None:
        self.world = ProceduralWorld(dataclasses.replace(get_scene("meadow"), sprite_count=0), seed=1, size=SIZE)
        self.frozen = frozen
        self.next = 0

    def reset(self, prompt: str, seed: int) -> None:
        self.next = 0

    def next_chunk(self, probe: bool = False) -> Chunk:
        first = self.next
        self.next += self.chunk_frames
        frames = self.world.frames(0 if self.frozen else first, self.chunk_frames)
        if self.frozen:
            frames = np.repeat(frames[:1], self.chunk_frames, axis=0)
        return Chunk(frames=frames, first_frame=first, positions=np.arange(first, self.next))


def test_shift_compensated_error_is_zero_for_the_world_and_large_for_a_frozen_video():
    keep = strip_indices(40)
    world = stream_video(FrameSource(frozen=False), "meadow", 0, 40, keep, (1.0, 0.0))
    frozen = stream_video(FrameSource(frozen=True), "meadow", 0, 40, keep, (1.0, 0.0))
    assert sorted(world.kept) == keep == [0, 10, 20, 30, 39]
    world_bins = bin_rollout(world.curves, 40, 16, 32)
    frozen_bins = bin_rollout(frozen.curves, 40, 16, 32)
    assert world_bins["frame_start"].tolist() == [0, 16, 32] and world_bins["frame_stop"].tolist() == [16, 32, 40]
    assert (world_bins["shift_error"] == 0.0).all() and (world_bins["pan_match"] == 1.0).all()
    assert (frozen_bins["shift_error"] > 0.03).all() and (frozen_bins["pan_match"] == 0.0).all()
    # VBench dynamic degree: a 1 px/frame pan moves 2 px per ~8 fps pair, over the 0.75 px threshold at 32 px
    assert (world_bins["dynamic"] == 1.0).all() and (frozen_bins["dynamic"] == 0.0).all()
    assert (world_bins["flow_top5"] > 1.0).all() and (frozen_bins["flow_top5"] < 0.1).all()
    assert world.summary["shift_error[rms]"] == 0.0 and frozen.summary["pan_match[int]"] == 0.0


def test_bins_average_frames_and_assign_flow_pairs_and_clips():
    curves = {f"{k}[t]": np.arange(10, dtype=float) for k in ("shift_error", "pan_match", "sharpness", "contrast",
                                                              "saturation")}
    curves.update({"flow_top5[t]": np.array([1.0, 2.0, 3.0, 4.0]), "flow_top5_frame[t]": np.array([2, 4, 6, 8]),
                   "dynamic_clip[t]": np.array([1.0, 0.0])})
    table = bin_rollout(curves, frames=10, bin_frames=4, clip_frames=8)
    assert table["shift_error"].tolist() == [1.5, 5.5, 8.5]
    assert table["flow_top5"].tolist() == [1.0, 2.5, 4.0]  # pairs ending at 2 | 4, 6 | 8
    assert table["dynamic"].tolist() == [1.0, 1.0, 0.0]  # bins start at 0, 4 (clip 0) and 8 (clip 1)


def test_hit_and_miss_counting():
    found = match_events([10, 50, 100, 15, 16], [12, 48, 70], start=0, stop=120, tolerance=3)
    assert (found.hits, found.misses) == (3, 2)  # 10->12, 50->48, 15->12 (edge counts); 100 and 16 miss
    assert found.coverage == pytest.approx(21 / 120)  # 3 maxima x 7 frames, none overlapping
    assert found.expected_hits == pytest.approx(5 * 21 / 120)
    assert match_events([5, 9], [], 0, 10) == Matching(hits=0, misses=2, coverage=0.0)
    assert match_events([], [4], 0, 10, tolerance=0) == Matching(hits=0, misses=0, coverage=0.1)
    assert nearest_distance(50, [12, 48, 70]) == 2.0 and np.isnan(nearest_distance(5, []))
    with pytest.raises(ValueError, match="tolerance"):
        match_events([1], [1], 0, 10, tolerance=-1)


def test_rollout_end_to_end(tmp_path):
    assert main(["rollout", "--checkpoint", "none", "--frames", "36", "--prompts", "ocean", "--bin", "12",
                 "--out", str(tmp_path), "--threads", "1"]) == 0
    table = pd.read_csv(tmp_path / "rollout_quality.csv")
    assert sorted(set(table["source"])) == ["model", "world"] and set(table["prompt"]) == {"ocean"}
    assert table.groupby("source").size().tolist() == [3, 3]
    assert set(table.loc[table["source"] == "model", "backbone"]) == {"tiny(random-init)"}
    # the world's bins are the metric on the world's own frames
    _, curves = motion_fidelity(ProceduralWorld("ocean", 0, SIZE).frames(0, 36), (1.0, 0.0))
    world = table[table["source"] == "world"]
    np.testing.assert_allclose(world["sharpness"], curves["sharpness[grad]"].reshape(3, 12).mean(axis=1))
    np.testing.assert_allclose(world["shift_error"], [np.nanmean(curves["shift_error[rms]"][i: i + 12])
                                                      for i in (0, 12, 24)])
    summary = pd.read_csv(tmp_path / "rollout_summary.csv")
    assert {"shift_error[rms]", "pan_match[int]", "dynamic_degree[dis]"} <= set(summary.columns)
    for name in ("rollout_quality.png", "rollout_strip_model_ocean.png", "rollout_strip_world_ocean.png"):
        assert (tmp_path / name).is_file()
    strip = cv2.imread(str(tmp_path / "rollout_strip_world_ocean.png"))
    assert strip.shape == (4 * SIZE, 5 * 4 * SIZE + 4 * 2, 3)  # 5 frames, upscaled 4x, 2-px gaps


def test_collapse_end_to_end(tmp_path, monkeypatch):
    frames, warmup = 48, 16
    assert main(["collapse", "--make", "--checkpoint", "none", "--frames", str(frames), "--prompts", "meadow",
                 "--seeds", "0", "1", "--sigmas", "0", "--threshold", "0.999", "--usage-clips", "1",
                 "--strips", "1", "--out", str(tmp_path), "--threads", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "sigma0").iterdir()) == ["meadow_seed0", "meadow_seed1"]

    matches = pd.read_csv(tmp_path / "collapse_vs_kernel.csv")
    per_run = matches[matches["run"] != "pooled"]
    assert len(per_run) == 4 and set(per_run["kernel"]) == {"uniform", "usage"}
    event_count = int(per_run.loc[per_run["kernel"] == "uniform", "events"].sum())
    # the uniform kernel's maxima follow from the RoPE tables alone: sink at 0..2, Δ = frame - sink
    freqs = frame_frequencies(build_tables(RopeSpec(head_dim=32, num_heads=6)))
    t = np.arange(frames, dtype=float)
    per_frame = coherence_kernel(freqs, np.arange(frames + 1.0)).mean(axis=0)[
        np.abs(t[:, None] - np.arange(3)[None, :]).astype(int)].mean(axis=1)
    expected = len(local_maxima(per_frame[warmup:], t[warmup:], 0.05))
    assert (per_run.loc[per_run["kernel"] == "uniform", "kernel_maxima"] == expected).all()
    assert (pd.to_numeric(per_run["hits"]) + pd.to_numeric(per_run["misses"]) == per_run["events"]).all()
    pooled = matches[matches["run"] == "pooled"]
    assert pooled["runs"].tolist() == [2, 2] and pooled["events"].tolist() == [event_count, event_count]

    prediction = pd.read_csv(tmp_path / "kernel_prediction.csv")
    per_run = prediction[prediction["run"] != "pooled"]
    assert (per_run["chunks"] == 10).all()  # probed chunks starting at frames 18, 21, ..., 45 (after warm-up)
    assert np.all(np.abs(pd.to_numeric(per_run["pearson_r"])) <= 1.0)

    events = pd.read_csv(tmp_path / "collapse_events.csv")
    assert list(events.columns[:8]) == ["setting", "run", "prompt", "seed", "frame", "depth", "distance", "chunk"]
    assert len(events) == event_count
    assert (events["frame"] >= warmup).all() and (events["depth"] > 0).all()
    strips = list(tmp_path.glob("event_strip_*.png"))
    assert len(strips) == (1 if len(events) else 0)

    settings = pd.read_csv(tmp_path / "collapse_settings.csv")
    assert settings["setting"].tolist() == ["all runs"] and settings["runs"].tolist() == [2]
    assert -1.0 <= float(settings["cross_run_coherence"].iloc[0]) <= 1.0
    assert (tmp_path / "sink_attention_vs_kernels.png").is_file()

    # without --runs the latest phase sweep is analysed: the same runs give the same numbers
    sweep = tmp_path / "results" / "runs" / "phase" / "2026-01-01_00-00-00"
    shutil.copytree(tmp_path / "runs" / "sigma0", sweep)
    monkeypatch.setattr(organism, "RESULTS", tmp_path / "results")
    assert main(["collapse", "--threshold", "0.999", "--usage-clips", "1", "--strips", "0",
                 "--out", str(tmp_path / "again"), "--threads", "1"]) == 0
    again = pd.read_csv(tmp_path / "again" / "collapse_vs_kernel.csv")
    pd.testing.assert_frame_equal(again.drop(columns="run"), matches.drop(columns="run"))


def test_collapse_needs_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(organism, "RESULTS", tmp_path)  # no phase sweep stored here
    with pytest.raises(SystemExit):
        main(["collapse", "--out", str(tmp_path)])
    assert "no sweep under" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["collapse", "--runs", str(tmp_path), "--out", str(tmp_path)])
    assert "no run directories" in capsys.readouterr().err
