"""Experiment tracking: where a run is reported besides its own directory (``logger`` config group).

- ``local`` (default) and ``none``: nothing beyond the files the runner writes into the run directory
  (summary.json, curves, video); ``none`` exists so that ``logger=none`` reads as meant on a command line.
- ``wandb``: a Weights & Biases run, **offline by default**: it is written under the run directory
  (``<run_dir>/wandb/offline-run-*``, upload later with ``wandb sync``) and never touches the network.
  ``logger.mode=online`` streams to the W&B server and needs a prior ``wandb login`` (or ``WANDB_API_KEY``);
  without credentials it stops with an error instead of prompting.

A W&B run holds the full resolved config, per-chunk generation statistics as they happen (``chunk/*``), and at
the end: per-frame curves (``frame/*``, e.g. sink distance and flow), per-chunk metric series (``chunk/*``,
e.g. head homogeneity), other series by position (``index/*``), the scalar metrics in its summary, the mp4,
the run's figures and a table of collapse events.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lolbench.results import VIDEO_FILE, load_tables

FIGURES_DIR = "figures"
OVERVIEW_FIGURE = "overview.png"


class RunLogger(ABC):
    """What the runner reports to while it generates (``log_chunk``) and once at the end (``finish``)."""

    @abstractmethod
    def log_chunk(self, step: int, scalars: Mapping[str, float]) -> None:
        """Scalars of chunk ``step`` (0, 1, 2, ...), e.g. its generation time and DySink gate statistics."""

    @abstractmethod
    def finish(self, summary: Mapping[str, Any], run_dir: Path) -> None:
        """Report the finished run: ``summary`` as written to summary.json, and the files in ``run_dir``."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to report to the same place (checkpointed with the run); the position in
        the run's history is the chunk index, which the runner's checkpoint carries."""
        return {}


class FilesOnly(RunLogger):
    """``local`` and ``none``: the run directory's files are the whole record."""

    def log_chunk(self, step: int, scalars: Mapping[str, float]) -> None:
        pass

    def finish(self, summary: Mapping[str, Any], run_dir: Path) -> None:
        pass


def _numeric_scalars(scalars: Mapping[str, Any], where: str) -> dict[str, float]:
    """Scalars as floats; a value that is not a real number is an error naming its key."""
    out = {}
    for key, value in scalars.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where}: {key}={value!r} is not a number")
        out[key] = float(value)
    return out


def _summary_scalars(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B run summary: run-level numbers, metrics (numbers, lists and "unavailable: ..." strings alike, so a
    missing metric shows as such), generation statistics, and provenance (model checkpoint hash, git revision)."""
    out: dict[str, Any] = {key: summary[key] for key in ("completed", "frames", "frames_requested", "wall_seconds",
                                                         "generation_fps", "seed", "prompt") if key in summary}
    for group in ("metrics", "generation", "model", "environment"):
        out.update({f"{group}/{k}": v for k, v in summary.get(group, {}).items()})
    return out


class WandbLogger(RunLogger):
    """Report to one W&B run (see the module docstring for what it holds)."""

    def __init__(self, run: Any) -> None:
        import wandb

        self._wandb = wandb
        self.run = run
        self._chunk_keys: set[str] = set()
        run.define_metric("chunk")
        run.define_metric("chunk/*", step_metric="chunk")
        run.define_metric("frame")
        run.define_metric("frame/*", step_metric="frame")
        run.define_metric("index")
        run.define_metric("index/*", step_metric="index")

    def state_dict(self) -> dict[str, Any]:
        return {"wandb_run_id": self.run.id}

    def log_chunk(self, step: int, scalars: Mapping[str, float]) -> None:
        values = _numeric_scalars(scalars, f"chunk {step}")
        self._chunk_keys.update(values)
        self.run.log({"chunk": step, **{f"chunk/{k}": v for k, v in values.items()}})

    def _log_series(self, axis: str, index: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        """One history row per index value; NaN entries (e.g. unprobed chunks) are left out of their row."""
        for position, step in enumerate(index):
            row = {f"{axis}/{name}": float(values[position]) for name, values in columns.items()
                   if not math.isnan(float(values[position]))}
            if row:
                self.run.log({axis: int(step), **row})

    def _log_tables(self, run_dir: Path) -> None:
        tables = load_tables(run_dir)
        if tables.frames is not None:
            frames = tables.frames
            columns = {c: frames[c].to_numpy(dtype=float) for c in frames.columns if c != "frame"}
            self._log_series("frame", frames["frame"].to_numpy(), columns)
        if tables.chunks is not None:
            chunks = tables.chunks
            skip = {"chunk", *self._chunk_keys}  # already logged while generating
            columns = {c: chunks[c].to_numpy(dtype=float) for c in chunks.columns
                       if c not in skip and np.issubdtype(chunks[c].dtype, np.number)}
            self._log_series("chunk", chunks["chunk"].to_numpy(), columns)
        for name, (axis, index, values) in tables.indexed_series().items():
            self._log_series(axis, index, {name: np.asarray(values, dtype=float)})

    def _log_events(self, events: list[Mapping[str, Any]]) -> None:
        columns = sorted({key for event in events for key in event})
        data = [[event.get(c) for c in columns] for event in events]
        self.run.log({"collapse_events": self._wandb.Table(columns=columns or ["frame"], data=data)})

    def _log_figures(self, summary: Mapping[str, Any], run_dir: Path) -> None:
        """The overview figure, plus any PNG the user put into ``<run_dir>/figures/``."""
        with tempfile.TemporaryDirectory() as tmp:
            overview = Path(tmp) / OVERVIEW_FIGURE
            if render_overview(summary, run_dir, overview):
                self.run.log({"figures/overview": self._wandb.Image(str(overview))})
            for path in sorted((run_dir / FIGURES_DIR).glob("*.png")):
                self.run.log({f"figures/{path.stem}": self._wandb.Image(str(path))})

    def finish(self, summary: Mapping[str, Any], run_dir: Path) -> None:
        run_dir = Path(run_dir)
        self._log_tables(run_dir)
        self._log_events(list(summary.get("events", [])))
        if (run_dir / VIDEO_FILE).is_file() and summary.get("frames", 0):
            self.run.log({"video": self._wandb.Video(str(run_dir / VIDEO_FILE), format="mp4")})
        self._log_figures(summary, run_dir)
        self.run.summary.update({**_summary_scalars(summary), "run_dir": str(run_dir)})
        self.run.finish(exit_code=0 if summary.get("completed", True) else 1)


def render_overview(summary: Mapping[str, Any], run_dir: Path, path: Path) -> bool:
    """Write the run's overview figure (normalized sink distance per frame, collapse events marked) to ``path``.

    Returns False, writing nothing, when the run has no normalized sink-distance curve.
    """
    from matplotlib.figure import Figure

    frames = load_tables(run_dir).frames
    names = [] if frames is None else [c for c in frames.columns if c.startswith("sink_distance[")]
    if not names:
        return False
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot()
    x = frames["frame"].to_numpy()
    for name in names:
        ax.plot(x, frames[name].to_numpy(), label=name, linewidth=1.2)
    for event in summary.get("events", []):
        if "frame" in event:
            ax.axvline(float(event["frame"]), color="tab:red", alpha=0.5, linewidth=1)
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("frame index (frames)")
    ax.set_ylabel("sink distance (1 = usual level)")
    ax.set_title(f"{summary.get('prompt', '')} seed {summary.get('seed', '')}: distance to sink frames "
                 f"(red: collapse events)")
    ax.legend(loc="lower left")
    fig.savefig(path, dpi=100)
    return True


def _start_wandb(logger_cfg: Mapping[str, Any], run_dir: Path, cfg: DictConfig | Mapping[str, Any],
                 run_id: str | None = None) -> WandbLogger:
    mode = logger_cfg.get("mode", "offline")
    import wandb

    os.environ["WANDB_SILENT"] = "true"  # no banners; the W&B service process inherits the environment,
    os.environ["WANDB_MODE"] = mode  # so it makes the same offline/online choice as the settings below
    if mode == "online" and not wandb.login(prompt=False, verify=False):
        raise ValueError("logger.mode=online needs W&B credentials: run `wandb login` (or set WANDB_API_KEY), "
                         "or use logger.mode=offline and `wandb sync` later")
    directory = Path(logger_cfg.get("dir") or run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    name, group = _hydra_job()
    if wandb.run is not None:  # a run of this process that never reached finish() (e.g. a job that crashed
        wandb.run.finish(exit_code=1)  # in the same joblib worker) is failed, not continued by this one
    run = wandb.init(
        project=logger_cfg.get("project") or "lolbench",
        entity=logger_cfg.get("entity"),
        dir=str(directory),
        config=config,
        tags=list(logger_cfg.get("tags") or []),
        name=name,
        group=group,
        id=run_id,  # a resumed run continues its W&B run
        resume="allow" if run_id else None,
        settings=wandb.Settings(mode=mode, silent=True, console="off", disable_git=True, save_code=False),
    )
    return WandbLogger(run)


def _hydra_job() -> tuple[str | None, str | None]:
    """(run name, group) from the Hydra job when there is one: the job's overrides and, in a sweep, its folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, None
    hydra = HydraConfig.get()
    name = ",".join(hydra.overrides.task) or None
    group = str(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None
    return name, group


def build_logger(logger_cfg: DictConfig | Mapping[str, Any], run_dir: Path,
                 cfg: DictConfig | Mapping[str, Any], resume_state: Mapping[str, Any] | None = None) -> RunLogger:
    """The logger named by ``logger_cfg.name`` (``wandb``, or ``local``/``none``: files only; the names, keys and
    modes are the logger group's structured config, lolbench/schema.py) for a run writing into ``run_dir`` with
    the full config ``cfg``; ``resume_state`` is the ``state_dict()`` of the logger of the run being resumed."""
    if logger_cfg["name"] == "wandb":
        return _start_wandb(logger_cfg, Path(run_dir), cfg, (resume_state or {}).get("wandb_run_id"))
    return FilesOnly()
