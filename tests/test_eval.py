"""`python -m lolbench.eval` on small generated videos, one of them corrupt."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest

from lolbench.eval import main
from lolbench.video_io import VideoWriter

FPS = 16.0
RETURNS = [56, 80]  # after the 3 s warm-up + reference window, where returns are scored


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


def test_good_videos_get_json_plots_and_curves(evaluated):
    out, code = evaluated
    assert code == 0
    assert sorted(p.name for p in out.glob("*.json")) == ["collapsing.json", "drifting.json", "summary.json"]
    for name in ("collapsing", "drifting"):
        assert (out / f"{name}.sink_distance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        curves = np.load(out / f"{name}.curves.npz")
        assert len(curves["sink_distance[rms]"]) == 96
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_json_records_results_and_provenance(evaluated):
    out, _ = evaluated
    record = json.loads((out / "collapsing.json").read_text())
    assert record["frames"] == 96 and record["fps"] == pytest.approx(FPS) and record["fps_source"] == "file"
    assert record["lolbench_version"] and record["wall_time_s"] > 0
    assert {"rms", "dis", "pixel"} <= set(record["backbones"])
    assert record["results"]["sink_collapse_event_frames[rms]"] == RETURNS
    assert [e["frame"] for e in record["events"]] == RETURNS
    assert record["metrics_config"]["heads"]["enabled"] is False  # a video file has no attention probes
    drifting = json.loads((out / "drifting.json").read_text())
    assert drifting["results"]["sink_collapse_events[rms]"] == 0


def test_summary_has_one_row_per_video_and_sink_collapse_rows(evaluated):
    out, _ = evaluated
    table = pd.read_csv(out / "summary.csv")
    assert list(table["video"]) == ["collapsing", "drifting", "SC-Max", "SC-Avg"]
    drops = table.set_index("video")["sink_collapse_drop[rms]"]
    assert drops["collapsing"] > 90
    assert drops["SC-Max"] == pytest.approx(max(drops["collapsing"], drops["drifting"]))
    assert drops["SC-Avg"] == pytest.approx((drops["collapsing"] + drops["drifting"]) / 2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sink_collapse_max[rms]"] == pytest.approx(drops["SC-Max"])
    assert isinstance(summary["cross_run_coherence[rms]"], float)
    assert sorted(f["video"].rsplit("/", 1)[-1] for f in summary["failed"]) == ["corrupt.mp4", "short.mp4"]


def test_bad_files_are_reported_on_stderr(inputs, tmp_path, capsys):
    code = main([str(inputs / "corrupt.mp4"), str(inputs / "short.mp4"), str(inputs / "drifting.mp4"),
                 "--out", str(tmp_path), "--set", "quality.enabled=false"])
    err = capsys.readouterr().err
    assert code == 0
    assert f"skipped {inputs / 'corrupt.mp4'}: cannot read video" in err
    assert f"skipped {inputs / 'short.mp4'}: too short: 10 frames" in err


def test_exit_code_is_nonzero_when_nothing_could_be_measured(inputs, tmp_path, capsys):
    assert main([str(inputs / "corrupt.mp4"), str(tmp_path / "missing.mp4"), "--out", str(tmp_path)]) == 1
    assert "none of the 2 videos could be measured" in capsys.readouterr().err
    assert not (tmp_path / "summary.csv").exists()


def test_frame_folder_needs_a_frame_rate(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(drifting_video(40, [30], seed=3)):
        cv2.imwrite(str(folder / f"{index}.png"), frame[:, :, ::-1])
    args = [str(folder), "--out", str(tmp_path / "out"), "--set", "quality.enabled=false"]
    assert main(args) == 1
    assert "pass --fps" in capsys.readouterr().err
    assert main([*args, "--fps", "8", "--sink-frames", "1"]) == 0
    record = json.loads((tmp_path / "out" / "frames.json").read_text())
    assert record["fps"] == 8 and record["fps_source"] == "--fps"
    assert record["metrics_config"]["sink_distance"]["sink_frames"] == 1
    assert record["results"]["sink_collapse_event_frames[rms]"] == [30]  # PNG frames are lossless


def test_bad_metrics_override_fails_once_with_the_key(inputs, tmp_path, capsys):
    assert main([str(inputs / "drifting.mp4"), "--out", str(tmp_path), "--set", "cycles.period=3"]) == 2
    assert "metrics.cycles.period" in capsys.readouterr().err
