"""Shared fixtures: compose the real Hydra configs the way run.py does, and one real sweep per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lolbench.config import compose_run_config

ROOT = Path(__file__).resolve().parent.parent
REAL_SWEEP = ["+experiment=sigma", "jitter.sigma=0,0.8", "seed=0,1", "prompt=meadow", "num_frames=48"]
STAMP = "2026-01-01_00-00-00"


@pytest.fixture
def run_config():
    """``run_config(["sink=dysink", ...])`` -> the config `python run.py sink=dysink ...` would run with."""
    return compose_run_config


@pytest.fixture(autouse=True)
def empty_vbench_cache(tmp_path_factory, monkeypatch):
    """Every test sees an empty VBench weight cache unless it builds its own: results must not depend on
    whether the machine running the tests happens to hold VBench's weights."""
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("empty_vbench_cache")))


@pytest.fixture(scope="session")
def real_results(tmp_path_factory) -> Path:
    """A results folder made by the user's command, ``python run.py +experiment=sigma ...``: 4 runs of 48 frames
    (σ 0 and 0.8, seeds 0 and 1) in ``<root>/runs/sigma/<STAMP>/<job>/``, made once per test session. 48 frames
    are the fewest with a sink-distance drop (1 s warm-up + 2 s reference window at 16 fps)."""
    root = tmp_path_factory.mktemp("real_results")
    sweep = root / "runs" / "sigma" / STAMP
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 cores: one thread per run is fastest and leaves one free
    done = subprocess.run([sys.executable, "run.py", *REAL_SWEEP, f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return root
