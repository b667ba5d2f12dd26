"""Which stored runs belong to which experiment, and how a run's setting is named in figures and tables.

``python run.py +experiment=NAME`` writes its sweep to ``results/runs/NAME/<YYYY-mm-dd_HH-MM-SS>/<job>/``
(conf/experiment/NAME.yaml). The figures use the latest sweep of each experiment and its completed runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lolbench.results import load_runs

EXPERIMENTS = ("sigma", "heads", "rope_methods", "sinks", "phase", "positions", "world")
RUNS_DIR = "runs"
ROPE_METHOD_LABELS = {"none": "RoPE", "pi": "PI", "ntk": "NTK", "yarn": "YaRN", "riflex": "RIFLEx"}
SINK_ORDER = ("window", "static", "deep", "dysink")


@dataclass
class ExperimentRuns:
    """The completed runs of one sweep of an experiment."""

    name: str
    sweep_dir: Path
    runs: pd.DataFrame  # lolbench.results.load_runs, completed runs only
    incomplete: int  # runs of the sweep that stopped early (left out)


def latest_sweep(results_dir: Path, experiment: str) -> Path | None:
    """Newest sweep folder of ``experiment`` (names are timestamps, so the last in sorted order), or None."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment={experiment!r} is not one of {EXPERIMENTS}")
    root = Path(results_dir) / RUNS_DIR / experiment
    sweeps = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return sweeps[-1] if sweeps else None


def load_experiment(results_dir: Path, experiment: str) -> ExperimentRuns | None:
    """The latest sweep's completed runs, or None when the experiment has no stored runs."""
    sweep = latest_sweep(results_dir, experiment)
    if sweep is None:
        return None
    runs = load_runs([sweep])
    if runs.empty:
        return None
    done = runs[runs["completed"].astype(bool)].reset_index(drop=True)
    return ExperimentRuns(experiment, sweep, done, incomplete=len(runs) - len(done))


def metric_key(runs: pd.DataFrame, base: str) -> str:
    """The column of metric ``base`` whatever backbone tag it carries (``dynamic_degree`` -> ``dynamic_degree[dis]``).

    An untagged column of that name wins; otherwise the first tagged one in sorted order (the tag stays in the
    key, and every label shows the key, so the backbone used is always visible).
    """
    if base in runs.columns:
        return base
    tagged = sorted(str(c) for c in runs.columns if str(c).startswith(f"{base}["))
    if not tagged:
        raise KeyError(f"no metric {base!r} (with any backbone tag) among the results columns")
    return tagged[0]


def rope_method_label(rope: str, sigma: float) -> str:
    """Row name in the LoL Table 1 layout: the extension method, or LoL for jittered plain RoPE."""
    if rope not in ROPE_METHOD_LABELS:
        raise ValueError(f"rope={rope!r} is not one of {tuple(ROPE_METHOD_LABELS)}")
    if sigma > 0:
        return f"LoL (σ={sigma:g})" if rope == "none" else f"{ROPE_METHOD_LABELS[rope]} + LoL (σ={sigma:g})"
    return ROPE_METHOD_LABELS[rope]
