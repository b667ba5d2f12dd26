"""run.py end to end: every sink strategy writes a video of exactly the requested length; bad settings fail early."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lolbench.runner import run
from lolbench.video_io import open_video

ROOT = Path(__file__).resolve().parent.parent

FAST = ["num_frames=20", "probe_every=2", "metrics.quality.enabled=false"]


def count_frames(path) -> int:
    return sum(len(c) for c in open_video(path).chunks(16))


@pytest.mark.parametrize("sink", ["window", "static", "deep", "dysink"])
def test_each_sink_writes_exactly_the_requested_frames(run_config, tmp_path, sink):
    summary = run(run_config([f"sink={sink}", *FAST]), tmp_path, progress=False)
    assert summary["frames"] == 20 and summary["completed"]
    assert count_frames(tmp_path / "video.mp4") == 20
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["config"]["sink"]["name"] == sink
    assert saved["model"]["backbone"] == "tiny" and len(saved["model"]["checkpoint_sha256"]) == 64
    assert (tmp_path / "curves.parquet").exists() and (tmp_path / "chunks.parquet").exists()


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["jitter.sigma=-0.1"], "sigma"),
        (["sink=dysink", "sink.top_k=100", "sink.bank_size=4"], "top_k"),
        (["sink.window_frames=2"], "window_frames"),
        (["prompt=nowhere"], "prompt"),
        (["num_frames=0"], "num_frames"),
        (["rope.positions=sideways"], "rope.positions"),
        (["model.checkpoint=/no/such/tiny.pt"], "model.checkpoint"),
        (["model.num_layers=6"], "model.num_layers"),
    ],
)
def test_invalid_settings_fail_before_any_frame(run_config, tmp_path, overrides, key):
    with pytest.raises(ValueError, match=key):
        run(run_config([*FAST, *overrides]), tmp_path, progress=False)
    assert not (tmp_path / "video.mp4").exists()


def test_without_a_checkpoint_results_say_random_init(run_config, tmp_path, caplog):
    summary = run(run_config([*FAST, "model.checkpoint=null"]), tmp_path, progress=False)
    assert summary["model"]["backbone"] == "tiny(random-init)" and summary["model"]["checkpoint_sha256"] is None
    assert "RANDOM weights" in caplog.text


def test_the_users_command_works_as_typed_and_unknown_options_are_named(tmp_path):
    ok = subprocess.run(
        [sys.executable, "run.py", "sink=dysink", "jitter.sigma=0.1", "num_frames=9",
         "metrics.quality.enabled=false", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert count_frames(tmp_path / "video.mp4") == 9
    bad = subprocess.run([sys.executable, "run.py", "sink=bogus", f"hydra.run.dir={tmp_path}/bad"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "sink" in bad.stderr and "dysink" in bad.stderr  # Hydra lists the available options
