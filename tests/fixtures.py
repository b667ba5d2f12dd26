"""A fake results folder in exactly the formats lolbench.runner writes, with known numbers and no generation.

Each fake run has a sink-distance curve with dips of a chosen depth every ``period`` frames; its summary's
sink-distance keys are computed from that curve by lolbench's own functions, so every number is consistent
with the curve files. ``write_results`` lays out the sweeps of every experiment the way
``python run.py +experiment=NAME`` does: ``<root>/runs/<NAME>/<timestamp>/<job>/``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from lolbench.atomic import write_json
from lolbench.config import compose_run_config
from lolbench.metrics.sink_distance import SinkSettings, collapse_events, normalize_curve, summarize_sink_curve
from lolbench.probes import AttentionProbe, FrameKind
from lolbench.results import write_probes, write_series
from lolbench.video_io import VideoWriter

FPS = 16.0
CHUNK = 3
SINK_FRAMES = 3
LAYERS, HEADS = 2, 3
STAMP = "2026-01-01_00-00-00"
Job = tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]  # (group overrides, config values, write_run options)


@functools.lru_cache(maxsize=None)
def _composed(groups: tuple[str, ...]) -> DictConfig:
    return compose_run_config(list(groups))


def run_config(groups: tuple[str, ...] = (), **values: Any) -> dict[str, Any]:
    """The resolved config of ``python run.py GROUPS... key=value...``; ``values`` use ``__`` for dots."""
    cfg = copy.deepcopy(_composed(groups))
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value)
    return OmegaConf.to_container(cfg, resolve=True)


def sink_curve(frames: int, period: float, depth: float, seed: int) -> np.ndarray:
    """Raw distance to the sink: 0 on the sink frames, about 0.2 elsewhere, sharp dips of ``depth`` every period."""
    t = np.arange(frames)
    dips = np.maximum(0.0, np.cos(2 * np.pi * t / period)) ** 16  # [frames], 1 at multiples of the period
    noise = np.random.default_rng(seed).normal(0.0, 0.002, frames)
    raw = 0.2 * (1.0 - depth * dips) + noise
    raw[:SINK_FRAMES] = 0.0
    return raw


def write_run(run_dir: Path, config: dict[str, Any], *, frames: int = 120, period: float = 29.0,
              depth: float = 0.6, dynamic: float = 0.5, quality: float = 0.8, probe_every: int = 4,
              gate: bool = False, video: bool = False) -> dict[str, Any]:
    """Write one fake run directory; returns its summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    seed = int(config["seed"])
    settings = SinkSettings(sink_frames=SINK_FRAMES, fps=FPS)
    raw = sink_curve(frames, period, depth, seed)
    curve, _ = normalize_curve(raw, settings.warmup, settings.reference)
    collapse = curve.copy()  # no frames, so no anchors: chance level 1
    collapse[: settings.settled] = np.nan
    pd.DataFrame({"frame": np.arange(frames), "sink_distance_raw[rms]": raw, "sink_distance[rms]": curve,
                  "sink_collapse_curve[rms]": collapse}).to_parquet(run_dir / "curves.parquet", index=False)

    chunks = frames // CHUNK
    pull = np.array([1.0 - curve[c * CHUNK:(c + 1) * CHUNK].min() for c in range(chunks)])  # [chunks]
    probed = np.arange(0, chunks, probe_every)
    sink_mass = np.clip(0.1 + pull, 0.0, 0.95)  # attention on the sink follows the pull
    table = pd.DataFrame({"chunk": np.arange(chunks), "first_frame": np.arange(chunks) * CHUNK,
                          "seconds": np.full(chunks, 0.01)})
    table["sink_mass_mean"] = np.where(np.isin(table["chunk"], probed), sink_mass, np.nan)
    table["sink_mass_max_head"] = table["sink_mass_mean"]
    if gate:
        table["gate_fraction"] = np.clip(pull, 0.0, 1.0)
        table["gate_consensus_mean"] = np.clip(0.3 + pull, 0.0, 1.0)
    table.to_parquet(run_dir / "chunks.parquet", index=False)
    series = {"head_chunk_index": probed, "head_consensus": sink_mass[probed], "head_sink_mass": sink_mass[probed],
              "flow_top5[dis]": np.full(frames // 2 - 1, 3.0 * dynamic),
              "flow_top5_frame[dis]": 2 * np.arange(1, frames // 2)}
    write_series(run_dir / "series.parquet", series)
    _write_probes(run_dir, probed, sink_mass)
    if video:
        with VideoWriter(run_dir / "video.mp4", fps=FPS) as writer:
            writer.write(np.random.default_rng(seed).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8))

    events = collapse_events(curve, settings.threshold, settings.min_separation, settings.warmup)
    metrics = summarize_sink_curve(raw, [], "rms", settings)
    metrics.update({
        "dynamic_degree[dis]": dynamic, "quality_score[partial:pixel,flow-dis,dis]": quality,
        "head_consensus": float(sink_mass[probed].mean()),
        "imaging_quality": "unavailable: MUSIQ weights not given (fixture)",
    })
    summary = {
        "completed": True, "frames": frames, "frames_requested": frames, "wall_seconds": 1.0,
        "generation_fps": 100.0, "seed": seed, "prompt": config["prompt"],
        "model": {"backbone": "tiny", "checkpoint": "tiny.pt", "checkpoint_sha256": "ab" * 32},
        "environment": {"lolbench": "0.1.0", "git_revision": "0123abc", "torch": "2.13.0+cpu", "python": "3.11",
                        "threads": 2},
        "config": config, "generation": {"seconds_mean": 0.01},
        "metrics": metrics,
        "events": [{"metric": "sink_distance[rms]", "frame": e.frame, "time_s": e.frame / FPS,
                    "distance": e.distance, "depth": e.depth} for e in events],
        "files": ["curves.parquet", "chunks.parquet", "summary.json", "probes.npz"],
    }
    write_json(run_dir / "summary.json", summary)
    return summary


def _write_probes(run_dir: Path, probed: np.ndarray, sink_mass: np.ndarray) -> None:
    """probes.npz: chunk 0 sees only itself, chunk c < 4 fewer local frames (padded by write_probes), later
    chunks 3 sink + 9 local + 3 current frames; the sink mass of a chunk is ``sink_mass[chunk]``."""
    probes = []
    for chunk in probed:
        first = int(chunk) * CHUNK
        if chunk == 0:
            frames, kinds = np.arange(CHUNK), [FrameKind.CURRENT] * CHUNK
            mass = np.full((LAYERS, HEADS, CHUNK), 1.0 / CHUNK, np.float32)
        else:
            local = np.arange(max(SINK_FRAMES, first - 9), first)
            frames = np.concatenate([np.arange(SINK_FRAMES), local, np.arange(first, first + CHUNK)])
            kinds = [FrameKind.SINK] * SINK_FRAMES + [FrameKind.LOCAL] * len(local) + [FrameKind.CURRENT] * CHUNK
            mass = np.empty((LAYERS, HEADS, len(frames)), np.float32)  # [L, H, S]
            mass[:, :, :SINK_FRAMES] = sink_mass[chunk] / SINK_FRAMES
            mass[:, :, SINK_FRAMES:] = (1.0 - sink_mass[chunk]) / (len(frames) - SINK_FRAMES)
        probes.append(AttentionProbe(chunk_index=int(chunk), mass=mass, frame_index=frames.astype(np.int64),
                                     kind=np.array(kinds, np.int8)))
    write_probes(run_dir / "probes.npz", probes)


ROPE_METHODS = {"plain": ("none", 0.0), "pi": ("pi", 0.0), "ntk": ("ntk", 0.0), "yarn": ("yarn", 0.0),
                "riflex": ("riflex", 0.0), "lol": ("none", 0.8)}


def _sweep(root: Path, experiment: str, jobs: list[Job]) -> list[Path]:
    """Write the jobs (group overrides, config values, write_run options) as one sweep; returns run dirs."""
    dirs = []
    for number, (groups, values, options) in enumerate(jobs):
        run_dir = root / "runs" / experiment / STAMP / str(number)
        write_run(run_dir, run_config(groups, num_frames=options.get("frames", 120), **values), **options)
        dirs.append(run_dir)
    return dirs


SEEDS, PROMPTS = (0, 1), ("meadow", "desert")
REPS = [{"seed": s, "prompt": p} for s in SEEDS for p in PROMPTS]
HARDER = {"meadow": 0.0, "desert": 0.1}  # desert dips deeper, so SC-Max and SC-Avg differ
JOBS: dict[str, Callable[[], list[Job]]] = {
    "sigma": lambda: [((), {"jitter__sigma": sigma, **r},
                       {"depth": 0.6 * (1 - sigma) + HARDER[r["prompt"]] + 0.05 * r["seed"]})
                      for sigma in (0.0, 0.5, 0.8) for r in REPS],
    "heads": lambda: [((), {"jitter__sigma": 0.8, "jitter__head_fraction": f, **r}, {"depth": 0.6 * (1 - f)})
                      for f in (0.1, 1.0) for r in REPS],
    "rope_methods": lambda: [((f"rope={rope}",), {"jitter__sigma": sigma, **r},
                              {"depth": 0.1 if name in ("pi", "lol") else 0.6,
                               "dynamic": 0.05 if name == "pi" else 0.5})  # PI: collapse gone, motion gone
                             for name, (rope, sigma) in ROPE_METHODS.items() for r in REPS],
    "sinks": lambda: [((f"sink={sink}",), dict(r), {"depth": 0.6 if sink == "static" else 0.2,
                                                     "gate": sink == "dysink",
                                                     "dynamic": 0.7 if sink == "dysink" else 0.5})
                      for sink in ("window", "static", "deep", "dysink") for r in REPS],
    "phase": lambda: [((), {"jitter__sigma": sigma, "probe_every": 1, "seed": s, "prompt": "meadow"},
                       {"depth": 0.6 if sigma == 0 else 0.2, "probe_every": 1, "frames": 150})
                      for sigma in (0.0, 0.8) for s in SEEDS],
    "positions": lambda: [((), {"rope__positions": pos, "jitter__sigma": sigma, "seed": s, "prompt": "meadow"},
                           {"depth": 0.6 if (pos, sigma) == ("absolute", 0.0) else 0.2})
                          for pos in ("absolute", "rolling") for sigma in (0.0, 0.8) for s in SEEDS],
    "world": lambda: [(("model=world",), dict(r), {"depth": 0.0}) for r in REPS],  # the chance level: no dips
}


def write_results(root: Path, experiments: Iterable[str] = tuple(JOBS)) -> dict[str, list[Path]]:
    """A small stored sweep of each experiment under ``root``; returns the run dirs per experiment."""
    return {name: _sweep(root, name, JOBS[name]()) for name in experiments}
