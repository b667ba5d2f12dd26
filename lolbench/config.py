"""Where run configs come from: the ConfigStore schemas (lolbench/schema.py) and ``conf/``, for run.py and for
code outside a Hydra app (benchmarks, tests)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from lolbench.prompts import register_prompt_resolver
from lolbench.schema import SCHEMAS, RunSchema

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def register_configs() -> None:
    """Store the run schema (``run_schema``) and every group option's schema (``schema/<group>/<option>``), which
    conf/config.yaml and the option files of conf/ start from."""
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunSchema)
    for group, options in SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=f"schema/{group}", name=option, node=schema)
    register_prompt_resolver()


def compose_run_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """The config `python run.py OVERRIDES...` would get, for use outside a Hydra app (benchmarks, tests)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [])
