"""Shared fixtures: compose the real Hydra configs the way run.py does."""

from __future__ import annotations

import pytest

from lolbench.config import compose_run_config


@pytest.fixture
def run_config():
    """``run_config(["sink=dysink", ...])`` -> the config `python run.py sink=dysink ...` would run with."""
    return compose_run_config


@pytest.fixture(autouse=True)
def empty_vbench_cache(tmp_path_factory, monkeypatch):
    """Every test sees an empty VBench weight cache unless it builds its own: results must not depend on
    whether the machine running the tests happens to hold VBench's weights."""
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("empty_vbench_cache")))
