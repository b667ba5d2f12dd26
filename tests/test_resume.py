"""Resume after SIGKILL: the same frames bitwise and the same metrics as an uninterrupted run; a playable video
after the kill; corrupt checkpoints fall back; a changed config is refused; NaN stops the run keeping what was
made; a run directory that cannot hold the run fails before the first frame."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from lolbench import checkpoint, runner
from lolbench.generator import NonFiniteOutputError
from lolbench.results import load_runs
from lolbench.runner import RunDirError, run
from lolbench.video_io import CONCAT_LIST, open_video

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 36  # 12 chunks
SMALL = ["probe_every=2", "metrics.quality.enabled=false", "checkpoint_every=2", "video_scale=1"]


def count_frames(path: Path) -> int:
    return sum(len(c) for c in open_video(path).chunks(16))


@pytest.fixture
def one_thread():
    """Bitwise-equal frames need the same thread count in every process; subprocesses get OMP_NUM_THREADS=1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    torch.set_num_threads(before)


def kill_after_checkpoint(args: list[str], run_dir: Path, env: dict[str, str], chunk: int) -> None:
    """Start run.py and SIGKILL it as soon as the checkpoint after ``chunk`` exists (mid-way through a chunk)."""
    proc = subprocess.Popen([sys.executable, "run.py", *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not any(int(p.stem[6:]) >= chunk for p in checkpoint.checkpoint_paths(run_dir)):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "run.py made no checkpoint in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("sink", ["static", "dysink"])
def test_sigkill_then_resume_gives_the_same_frames_and_metrics(run_config, tmp_path, one_thread, sink):
    args = [f"sink={sink}", f"num_frames={FRAMES}", *SMALL]
    reference = run(run_config(args), tmp_path / "reference", progress=False)

    killed = tmp_path / "killed"
    kill_after_checkpoint(args, killed, one_thread, chunk=random.Random(sink).choice([2, 4, 6, 8]))
    assert not (killed / "summary.json").exists()
    # the video up to the last cut plays after the kill: every finished segment, through the concat list
    newest = checkpoint.checkpoint_paths(killed)[0]
    assert count_frames(killed / "video" / CONCAT_LIST) >= 3 * int(newest.stem[6:])

    resumed = run(run_config([*args, "resume=true"]), killed, progress=False)
    assert resumed["completed"] and resumed["resumes"][0]["frame"] > 0
    assert resumed["frames_crc32"] == reference["frames_crc32"]
    chunks = [pd.read_parquet(d / "chunks.parquet") for d in (tmp_path / "reference", killed)]
    assert chunks[0]["frames_crc32"].tolist() == chunks[1]["frames_crc32"].tolist()
    assert resumed["metrics"] == reference["metrics"]
    curves = [pd.read_parquet(d / "curves.parquet") for d in (tmp_path / "reference", killed)]
    pd.testing.assert_frame_equal(curves[0], curves[1])
    assert count_frames(killed / "video.mp4") == FRAMES  # no frame duplicated or missing across the kill


def test_sigterm_checkpoints_writes_the_results_then_exits_as_terminated(tmp_path, one_thread):
    args = ["num_frames=300", *SMALL, f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, env=one_thread,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not checkpoint.checkpoint_paths(tmp_path):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == -signal.SIGTERM  # after the results, the signal is raised again
    summary = json.loads((tmp_path / "summary.json").read_text())
    newest = int(checkpoint.checkpoint_paths(tmp_path)[0].stem[6:])
    assert summary["completed"] is False and summary["stopped"] == f"SIGTERM at frame {3 * newest}"
    assert summary["frames"] == 3 * newest == count_frames(tmp_path / "video.mp4") < 300


def test_a_damaged_checkpoint_is_reported_and_the_previous_one_used(run_config, tmp_path, caplog):
    args = ["num_frames=18", *SMALL]
    run(run_config(args), tmp_path, progress=False)
    newest, previous = checkpoint.checkpoint_paths(tmp_path)[:2]
    newest.write_bytes(newest.read_bytes()[:-100])  # truncated
    summary = run(run_config(["num_frames=24", *SMALL[1:], "probe_every=2", "resume=true"]), tmp_path,
                  progress=False)
    assert "checksum mismatch" in caplog.text and newest.name in caplog.text
    assert summary["resumes"][-1]["checkpoint"] == previous.name
    assert summary["frames"] == 24 and count_frames(tmp_path / "video.mp4") == 24


def test_a_truncated_header_is_a_clear_error():
    data = checkpoint.encode({"a": 1})
    assert checkpoint.decode(data, "x") == {"a": 1}
    with pytest.raises(checkpoint.CheckpointCorrupt, match="not a lolbench run checkpoint"):
        checkpoint.decode(data[:10], "x")


def test_a_changed_config_is_refused_naming_the_keys(run_config, tmp_path):
    run(run_config(["num_frames=6", *SMALL]), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"jitter\.sigma: 0\.0 -> 0\.5.*seed: 0 -> 1"):
        run(run_config(["num_frames=12", *SMALL, "resume=true", "jitter.sigma=0.5", "seed=1"]), tmp_path,
            progress=False)


def test_resume_auto_starts_fresh_or_continues(run_config, tmp_path):
    """What a requeued Slurm job does (the same overrides again): continue if there is a checkpoint."""
    first = run(run_config(["num_frames=6", *SMALL, "resume=auto"]), tmp_path, progress=False)
    assert first["resumes"] == []
    second = run(run_config(["num_frames=12", *SMALL, "resume=auto"]), tmp_path, progress=False)
    assert second["resumes"][0]["frame"] == 6 and second["frames"] == 12


def test_submitit_requeue_resubmits_the_same_job():
    """Preemption calls the launcher's checkpoint(): it must requeue the same job (same overrides, same job
    directory), which with resume=auto continues from the run's checkpoint (test above)."""
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    launcher = SlurmLauncher(submitit_folder="x")
    job = (["seed=1", "resume=auto"], "hydra.sweep.dir", 3, "job_id_for_3", {})
    delayed = launcher.checkpoint(*job)
    assert delayed.function is launcher and delayed.args == job


def test_nan_stops_the_run_and_keeps_everything_before(run_config, tmp_path, monkeypatch):
    build = runner.build_generator

    def build_with_nan(cfg):  # test hook: the model output turns NaN from frame 12 on
        generator, info = build(cfg)
        forward = generator.net.forward

        def poisoned(x, *a, **k):
            out = forward(x, *a, **k)
            return out * float("nan") if generator._next_frame >= 12 else out

        generator.net.forward = poisoned
        return generator, info

    monkeypatch.setattr(runner, "build_generator", build_with_nan)
    with pytest.raises(NonFiniteOutputError, match="chunk 4 at frame 12"):
        run(run_config(["num_frames=30", *SMALL]), tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["completed"] is False and summary["stopped"] == "nan at frame 12" and summary["frames"] == 12
    runs = load_runs([tmp_path])
    assert runs.loc[0, "frames"] == 12 and not runs.loc[0, "completed"]
    assert count_frames(tmp_path / "video.mp4") == 12
    assert len(pd.read_parquet(tmp_path / "curves.parquet")) == 12


def test_an_unwritable_run_dir_fails_before_the_first_frame(run_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RunDirError, match="not writable"):
        run(run_config(["num_frames=6", *SMALL]), blocker / "run", progress=False)


def test_no_room_for_checkpoints_fails_before_the_first_frame(run_config, tmp_path, monkeypatch):
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: type("U", (), {"free": 2**20})())
    with pytest.raises(RunDirError, match="MiB free"):
        run(run_config(["num_frames=6", *SMALL]), tmp_path, progress=False)
    assert not (tmp_path / "video").exists() or not list((tmp_path / "video").glob("seg_*"))
