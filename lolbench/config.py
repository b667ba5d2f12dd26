"""Structured schema of the top-level run config; the groups (model, sink, rope, ...) are checked by their builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig


@dataclass
class RunConfig:
    model: Any = field(default_factory=dict)
    sink: Any = field(default_factory=dict)
    jitter: Any = field(default_factory=dict)
    rope: Any = field(default_factory=dict)
    metrics: Any = field(default_factory=dict)
    logger: Any = field(default_factory=dict)
    num_frames: int = 480
    seed: int = 0
    prompt: str = "meadow"
    probe_every: int = 4
    video_scale: int = 4
    checkpoint_every: int = 100
    resume: Any = False
    threads: Optional[int] = None


def register_configs() -> None:
    """Make ``run_schema`` available to conf/config.yaml's defaults list (typed top-level keys)."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)


CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_run_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """The config `python run.py OVERRIDES...` would get, for use outside a Hydra app (benchmarks, tests)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [])
