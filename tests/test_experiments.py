"""Named experiments: every conf/experiment file composes into a valid sweep, and one command runs a sweep."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from analysis.data import EXPERIMENTS
from lolbench.cache import build_policy
from lolbench.config import CONF_DIR, register_configs
from lolbench.results import load_runs
from lolbench.rope import jitter_spec_from_config, rope_spec_from_config
from lolbench.runner import check_run_config
from lolbench.world import SCENES

ROOT = Path(__file__).resolve().parent.parent

REPLICATES = ("seed", "prompt")  # swept for statistics, not settings


def compose_with_hydra(overrides: list[str]) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def sweep_params(name: str) -> dict[str, list[str]]:
    """The experiment's hydra.sweeper.params, each expanded to its list of values."""
    params = compose_with_hydra([f"+experiment={name}"]).hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return {o.get_key_element(): list(o.sweep_string_iterator()) if o.is_sweep_override()
            else [o.get_value_element_as_str()] for o in parsed}


def setting_jobs(name: str) -> list[list[str]]:
    """Override lists of the sweep's settings (every combination of its non-replicate parameters)."""
    params = {k: v for k, v in sweep_params(name).items() if k not in REPLICATES}
    return [[f"{k}={v}" for k, v in zip(params, combo)] for combo in itertools.product(*params.values())]


def test_the_experiment_files_are_the_documented_experiments():
    files = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert files == sorted(EXPERIMENTS)
    docs = (ROOT / "README.md").read_text()
    for name in EXPERIMENTS:
        assert f"python run.py +experiment={name}" in docs


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_is_a_multirun_into_results_runs(name):
    cfg = compose_with_hydra([f"+experiment={name}"])
    assert cfg.hydra.mode == RunMode.MULTIRUN  # `python run.py +experiment=NAME` sweeps without -m
    sweep_dir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["dir"]
    assert sweep_dir.startswith(f"results/runs/{name}/")
    params = sweep_params(name)
    assert len(params["seed"]) >= 3  # mean ± std over seeds needs several
    assert set(params.get("prompt", [cfg.prompt])) <= set(SCENES)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_setting_of_every_experiment_composes_into_a_valid_run(name):
    jobs = setting_jobs(name)
    assert jobs, f"experiment {name} sweeps no setting"
    for job in jobs:
        cfg = compose_with_hydra([f"+experiment={name}", *job])
        check_run_config(cfg)
        if cfg.model.name == "world":  # the world has no attention: rope, jitter and sink keys do not apply
            continue
        rope_spec_from_config(cfg.model, cfg.rope)
        jitter_spec_from_config(cfg.jitter)
        build_policy(cfg.sink, cfg.model.chunk_frames)


def test_rope_methods_sweep_has_the_lol_table1_rows():
    rows = set()
    for job in setting_jobs("rope_methods"):
        cfg = compose_with_hydra(["+experiment=rope_methods", *job])
        rows.add((cfg.rope.name, cfg.jitter.sigma))
    assert rows == {("none", 0.0), ("pi", 0.0), ("ntk", 0.0), ("yarn", 0.0), ("riflex", 0.0), ("none", 0.8)}


def test_ablation_sweeps_cover_the_papers_values():
    assert {float(s) for s in sweep_params("sigma")["jitter.sigma"]} >= {0.1, 0.5, 0.8, 0.9}
    assert {float(f) for f in sweep_params("heads")["jitter.head_fraction"]} == {0.1, 0.4, 0.7, 1.0}
    assert set(sweep_params("sinks")["sink"]) == {"window", "static", "deep", "dysink"}
    assert set(sweep_params("positions")["rope.positions"]) == {"absolute", "rolling"}


def test_an_experiment_command_runs_a_two_job_joblib_sweep_that_loads_into_one_table(tmp_path):
    """`python run.py +experiment=sigma` with the sweep narrowed to two settings, on the joblib launcher."""
    done = subprocess.run(
        [sys.executable, "run.py", "+experiment=sigma", "jitter.sigma=0,0.8", "seed=0", "prompt=meadow",
         "num_frames=9", "metrics.quality.enabled=false", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         f"hydra.sweep.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = load_runs([tmp_path])
    assert len(runs) == 2
    assert sorted(runs["cfg.jitter.sigma"]) == [0.0, 0.8]
    assert set(runs["frames"]) == {9} and runs["completed"].all()
    assert set(runs["cfg.sink.name"]) == {"static"}  # the experiment's own setting


def test_the_slurm_launcher_composes_with_an_experiment():
    cfg = compose_with_hydra(["+experiment=rope_methods", "hydra/launcher=submitit_slurm",
                              "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu"
