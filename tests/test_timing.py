"""Stage timing: blocks of one stage add up; the runner's summary and chunk table carry the split."""

from __future__ import annotations

import time

import pandas as pd

from lolbench.runner import run
from lolbench.timing import peak_gpu_memory_bytes, timed


def test_timed_sums_repeated_stages():
    stats: dict[str, float] = {}
    for _ in range(2):
        with timed(stats, "seconds_vae"):
            time.sleep(0.01)
    assert 0.02 <= stats["seconds_vae"] < 1.0


def test_no_peak_gpu_memory_without_cuda():
    assert peak_gpu_memory_bytes() is None  # CPU-only test machine: CUDA never initialized


def test_run_reports_generation_and_metric_seconds(run_config, tmp_path):
    summary = run(run_config(["model=world", "num_frames=9", "logger=none"]), tmp_path, progress=False)
    chunks = pd.read_parquet(tmp_path / "chunks.parquet")
    assert len(chunks) == 3 and (chunks["seconds_metrics"] > 0).all() and (chunks["seconds"] > 0).all()
    generation = summary["generation"]
    assert generation["seconds_per_chunk"] == chunks["seconds"].mean()
    assert generation["seconds_metrics_mean"] == chunks["seconds_metrics"].mean()
    assert "peak_gpu_memory_bytes" not in generation
