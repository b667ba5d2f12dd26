"""`python -m lolbench.eval` on small generated videos, one of them corrupt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from lolbench.eval import main, wan_sink_frames
from lolbench.results import load_runs
from lolbench.video_io import VideoWriter

ROOT = Path(__file__).resolve().parent.parent
FPS = 16.0
RETURNS = [40, 70]


def drifting_video(frames: int, returns: list[int], seed: int) -> np.ndarray:
    """Smooth random blobs drifting right 2 px per frame (never repeating), back to frame 0 at ``returns``."""
    rng = np.random.default_rng(seed)
    strip = cv2.GaussianBlur(rng.integers(0, 256, (48, 48 + 2 * frames, 3)).astype(np.float32), (0, 0), 3)
    strip = (strip - strip.min()) / (strip.max() - strip.min()) * 255
    video = np.stack([strip[:, 2 * t: 2 * t + 48] for t in range(frames)]).astype(np.uint8)
    video[returns] = video[0]
    return video


def write_mp4(path, frames: np.ndarray) -> None:
    with VideoWriter(path, fps=FPS) as writer:
        writer.write(frames)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    write_mp4(folder / "collapsing.mp4", drifting_video(96, RETURNS, seed=0))
    write_mp4(folder / "drifting.mp4", drifting_video(96, [], seed=1))
    write_mp4(folder / "short.mp4", drifting_video(10, [], seed=2))
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    return folder


@pytest.fixture(scope="module")
def evaluated(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    paths = [inputs / name for name in ("collapsing.mp4", "corrupt.mp4", "drifting.mp4", "short.mp4")]
    return out, main([*map(str, paths), "--out", str(out)])


def test_good_videos_leave_run_records(evaluated):
    out, code = evaluated
    assert code == 2  # two videos failed
    assert sorted(p.parent.name for p in out.glob("*/summary.json")) == ["collapsing", "drifting"]
    for name in ("collapsing", "drifting"):
        assert (out / name / "sink_distance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        curves = pd.read_parquet(out / name / "curves.parquet")
        assert list(curves["frame"]) == list(range(96)) and "sink_distance[rms]" in curves
    assert not list(out.glob("*.json")) or sorted(p.name for p in out.glob("*.json")) == ["aggregate.json"]
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporary files


def test_records_load_like_generated_runs(evaluated):
    out, _ = evaluated
    runs = load_runs([out]).set_index("prompt")
    assert list(runs.index) == ["collapsing", "drifting"]
    assert runs.loc["collapsing", "frames"] == 96 and runs.loc["collapsing", "cfg.fps"] == pytest.approx(FPS)
    assert runs.loc["collapsing", "sink_collapse_event_frames[rms]"] == RETURNS
    assert runs.loc["collapsing", "events"] == len(RETURNS)
    assert runs.loc["drifting", "sink_collapse_events[rms]"] == 0
    assert not runs.loc["collapsing", "cfg.metrics.heads.enabled"]  # a video file has no attention probes
    summary = json.loads((out / "collapsing" / "summary.json").read_text())
    assert summary["model"]["video"].endswith("collapsing.mp4") and len(summary["model"]["video_sha256"]) == 64
    assert summary["environment"]["git_revision"] and summary["wall_seconds"] > 0


def test_aggregate_is_computed_from_the_records(evaluated):
    out, _ = evaluated
    drops = pd.read_csv(out / "videos.csv").set_index("video")["sink_distance_drop[rms]"]
    assert drops["collapsing"] > 90
    aggregate = json.loads((out / "aggregate.json").read_text())
    assert aggregate["sink_collapse_max[rms]"] == pytest.approx(drops.max())
    assert aggregate["sink_collapse_avg[rms]"] == pytest.approx(drops.mean())
    assert sorted(f["video"].rsplit("/", 1)[-1] for f in aggregate["failed"]) == ["corrupt.mp4", "short.mp4"]
    table = pd.read_csv(out / "aggregate.csv").set_index("metric")
    assert table.loc["sink_collapse_max[rms]", "videos"] == 2


def test_existing_records_are_skipped_and_failures_retried(inputs, evaluated, capsys):
    out, _ = evaluated
    before = (out / "collapsing" / "summary.json").stat().st_mtime_ns
    code = main([str(inputs / "collapsing.mp4"), str(inputs / "short.mp4"), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2  # short.mp4 fails again; corrupt.mp4's old failure still counts
    assert "record exists" in captured.out and "too short" in captured.err
    assert (out / "collapsing" / "summary.json").stat().st_mtime_ns == before


def test_bad_files_are_reported_on_stderr(inputs, tmp_path, capsys):
    code = main([str(inputs / "corrupt.mp4"), str(inputs / "short.mp4"), str(inputs / "drifting.mp4"),
                 "--out", str(tmp_path), "--set", "quality.enabled=false"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"skipped {inputs / 'corrupt.mp4'}: cannot read video" in err
    assert f"skipped {inputs / 'short.mp4'}: too short: 10 frames" in err
    assert json.loads((tmp_path / "short" / "error.json").read_text())["error"].endswith("10 frames, the metrics "
                                                                                         "need at least 17 (sink "
                                                                                         "frames and warm-up at "
                                                                                         "16 fps)")


def test_frame_folder_needs_a_frame_rate_and_wan_sinks_are_nine_frames(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(drifting_video(40, [30], seed=3)):
        cv2.imwrite(str(folder / f"{index}.png"), frame[:, :, ::-1])
    args = [str(folder), "--out", str(tmp_path / "out"), "--set", "quality.enabled=false"]
    assert main(args) == 1
    assert "pass --fps" in capsys.readouterr().err
    assert main([*args, "--fps", "8", "--sink-frames", "1"]) == 0
    summary = json.loads((tmp_path / "out" / "frames" / "summary.json").read_text())
    assert summary["config"]["fps"] == 8 and summary["config"]["fps_source"] == "--fps"
    assert summary["config"]["metrics"]["sink_distance"]["sink_frames"] == 1
    assert summary["metrics"]["sink_collapse_event_frames[rms]"] == [30]  # PNG frames are lossless
    assert wan_sink_frames(3) == 9 and wan_sink_frames(1) == 1
    assert main([str(folder), "--out", str(tmp_path / "wan"), "--fps", "8", "--sink-latent-frames", "3",
                 "--set", "quality.enabled=false"]) == 0
    summary = json.loads((tmp_path / "wan" / "frames" / "summary.json").read_text())
    assert summary["config"]["metrics"]["sink_distance"]["sink_frames"] == 9


def test_bad_metrics_override_fails_once_with_the_key(inputs, tmp_path, capsys):
    assert main([str(inputs / "drifting.mp4"), "--out", str(tmp_path), "--set", "cycles.period=3"]) == 100
    assert "metrics.cycles.period" in capsys.readouterr().err


def test_a_batch_runs_as_a_hydra_multirun_and_resumes(inputs, tmp_path):
    out = tmp_path / "batch"
    command = [sys.executable, "-m", "lolbench.eval_batch", "--multirun", f"videos=[{inputs}]", f"out={out}",
               "shards=2", "shard=range(2)", "metrics.quality.enabled=false", "metrics.cycles.enabled=false"]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert sorted(p.parent.name for p in out.glob("*/summary.json")) == ["collapsing", "drifting"]
    assert sorted(p.parent.name for p in out.glob("*/error.json")) == ["corrupt", "short"]
    again = subprocess.run(command, check=True, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert again.stdout.count("record exists") == 2
    assert main(["--summarize-only", "--out", str(out)]) == 2
    assert json.loads((out / "aggregate.json").read_text())["videos"] == 2
