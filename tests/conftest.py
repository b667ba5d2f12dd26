"""Shared fixtures: compose the real Hydra configs the way run.py does."""

from __future__ import annotations

import pytest

from lolbench.config import compose_run_config


@pytest.fixture
def run_config():
    """``run_config(["sink=dysink", ...])`` -> the config `python run.py sink=dysink ...` would run with."""
    return compose_run_config
