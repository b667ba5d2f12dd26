"""Measure videos made by any model: ``python -m lolbench.eval PATH... [--out DIR] [--jobs N]``.

Each video (mp4, webm, gif, or a folder of frames; a folder of videos is expanded) is streamed chunk by chunk
through the frame metrics of ``conf/metrics/default.yaml`` (attention-probe metrics need an instrumented model
and are skipped) and leaves the runner's run record in ``DIR/<video name>/``: ``summary.json`` and
``curves.parquet`` (plus ``series.parquet`` where a metric has series of other lengths) with the keys that
``run.py`` writes, and ``sink_distance.png``. So ``lolbench.results.load_runs([DIR])`` and the figure scripts
read a folder of evaluated videos like a folder of generated runs.

A video whose record exists is skipped, so an interrupted batch resumes where it stopped. A video that
cannot be read, is empty or is too short is reported, leaves ``DIR/<name>/error.json`` (not a record: the
next run tries it again) and the others go on. After the batch, ``aggregate.csv`` / ``aggregate.json`` in
``DIR`` hold Sink-Collapse Max / Avg (LoL's statistics over the videos) and the mean of every metric, computed
from the records alone (``--summarize-only`` recomputes them). The exit status is the number of videos that
failed (at most 99); 100 means the command itself was wrong.

``--jobs N`` spreads the batch over N workers through the Hydra app ``lolbench.eval_batch`` with the joblib
launcher; on a cluster run that app with ``hydra/launcher=submitit_slurm`` yourself (README).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from lolbench.atomic import atomic_write, write_json
from lolbench.config import CONF_DIR
from lolbench.metrics.sink_distance import SinkDistance
from lolbench.metrics.suite import MetricSuite, build_suite
from lolbench.provenance import environment
from lolbench.results import SUMMARY_FILE, load_runs, numeric, seed_statistics, sink_collapse_table, write_series
from lolbench.video_io import IMAGE_SUFFIXES, VideoReadError, open_video

DEFAULT_METRICS = CONF_DIR / "metrics" / "default.yaml"
PROBE_GROUPS = ("heads",)  # need attention probes, which a video file does not have
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".avi", ".mov", ".mkv")
ERROR_FILE = "error.json"
WAN_VAE_STRIDE = 4  # Wan's VAE: the first latent frame is 1 pixel frame, every later one 4
EXIT_BAD_COMMAND = 100


class EvalError(Exception):
    """A video that can be read but not measured (too short, unknown frame rate)."""


def wan_sink_frames(latent_frames: int) -> int:
    """Pixel frames that ``latent_frames`` latent frames of Wan's VAE decode to: 1 + 4 (n - 1) (3 -> 9)."""
    if latent_frames < 1:
        raise ValueError(f"sink latent frames must be >= 1, got {latent_frames}")
    return 1 + WAN_VAE_STRIDE * (latent_frames - 1)


@dataclass(frozen=True)
class EvalSettings:
    """What every video of a batch is measured with."""

    metrics: DictConfig
    fps: float | None = None  # None: read from the file
    chunk: int = 3
    seed: int = 0  # grouping label for LoL's statistics (an external video's seed is unknown)


def metrics_config(cfg: DictConfig, sink_frames: int | None = None, sink_latent_frames: int | None = None,
                   overrides: Iterable[str] = ()) -> DictConfig:
    """The metrics group with overrides and the sink size applied, probe metrics disabled."""
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    if sink_frames is not None and sink_latent_frames is not None:
        raise ValueError("give the sink as pixel frames or as Wan latent frames, not both")
    if sink_latent_frames is not None:
        sink_frames = wan_sink_frames(sink_latent_frames)
    if sink_frames is not None and "sink_distance" in cfg:
        cfg.sink_distance.sink_frames = sink_frames
    for group in PROBE_GROUPS:
        if group in cfg:
            cfg[group].enabled = False
    return cfg


def load_metrics_config(path: Path, sink_frames: int | None = None, sink_latent_frames: int | None = None,
                        overrides: Iterable[str] = ()) -> DictConfig:
    if not path.is_file():
        raise FileNotFoundError(f"metrics config {path} not found; pass --metrics-config")
    return metrics_config(OmegaConf.load(path), sink_frames, sink_latent_frames, overrides)


def list_videos(paths: Iterable[str | Path]) -> list[Path]:
    """Videos named by ``paths``: files as given; a folder of images is one video; any other folder is
    expanded to the videos and image folders inside it (sorted). Missing paths are kept, to be reported."""
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir() or _is_frame_folder(path):
            out.append(path)
            continue
        out += sorted(p for p in path.iterdir()
                      if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and _is_frame_folder(p)))
    return out


def _is_frame_folder(path: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file())


def unique_names(paths: list[Path]) -> list[str]:
    """Record name per input: its stem (folder name for frame folders), numbered when two inputs share one."""
    names: list[str] = []
    for path in paths:
        stem = path.name if path.is_dir() else path.stem
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}-{k}", k + 1
        names.append(name)
    return names


def min_frames(suite: MetricSuite) -> int:
    """Frames a video needs: more than the sink-distance warm-up (which includes the sink frames)."""
    warmups = [m.settings.warmup for m in suite.frame_metrics if isinstance(m, SinkDistance)]
    return max(warmups, default=1) + 1


def measure(path: Path, settings: EvalSettings) -> tuple[MetricSuite, int, float]:
    """Stream one video through a fresh suite; returns (suite, frames, fps)."""
    source = open_video(path)
    rate = settings.fps or source.fps
    if not rate:
        raise EvalError(f"{path}: frame rate unknown (a folder of frames has none); pass --fps")
    suite = build_suite(settings.metrics, fps=rate, chunk_frames=settings.chunk)
    frames = 0
    for frames_chunk in source.chunks(settings.chunk):
        suite.update_frames(frames_chunk)
        frames += len(frames_chunk)
    needed = min_frames(suite)
    if frames < needed:
        raise EvalError(f"{path}: too short: {frames} frames, the metrics need at least {needed} "
                        f"(sink frames and warm-up at {rate:g} fps)")
    return suite, frames, rate


def plot_sink_distance(path: Path, suite: MetricSuite, fps: float, title: str) -> None:
    """Normalized sink-distance curve(s) over time, warm-up shaded, collapse events marked."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for metric in suite.frame_metrics:
        if not isinstance(metric, SinkDistance):
            continue
        curve = metric.normalized_curve()
        if curve is None:
            continue
        seconds = np.arange(len(curve)) / fps
        ax.plot(seconds, curve, lw=0.9, label=f"sink distance [{metric.tag}]")
        ax.axhline(metric.settings.threshold, color="grey", ls="--", lw=0.8, label="event threshold")
        ax.axvspan(0, metric.settings.warmup / fps, color="grey", alpha=0.15, lw=0, label="warm-up")
        events = metric.events()
        if events:
            ax.scatter([e.frame / fps for e in events], [e.distance for e in events], color="red", zorder=3,
                       s=18, label=f"collapse events ({len(events)})")
    ax.set(xlabel="time [s]", ylabel="distance / reference", title=title)
    if ax.lines:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "sink distance unavailable (see summary.json for why)", ha="center",
                transform=ax.transAxes)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def write_metric_curves(out_dir: Path, curves: dict[str, np.ndarray]) -> list[str]:
    """Per-frame curves to curves.parquet (column ``frame`` plus one per curve), other series to
    series.parquet, as the runner writes them; returns the file names."""
    curves = {name: np.asarray(values) for name, values in curves.items()}
    frame_len = max((len(v) for v in curves.values()), default=0)
    per_frame = {name: v for name, v in curves.items() if len(v) == frame_len}
    other = {name: v for name, v in curves.items() if len(v) != frame_len}
    written = []
    if per_frame:
        table = pd.DataFrame({"frame": np.arange(frame_len), **per_frame})
        atomic_write(out_dir / "curves.parquet", lambda p: table.to_parquet(p, index=False))
        written.append("curves.parquet")
    if other:
        write_series(out_dir / "series.parquet", other)
        written.append("series.parquet")
    return written


def file_sha256(path: Path) -> str | None:
    """sha256 of a video file (None for a folder of frames)."""
    if path.is_dir():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluate(path: Path, name: str, out: Path, settings: EvalSettings) -> dict[str, Any]:
    """Measure one video and write its run record into ``out/name``; returns the summary."""
    start = time.perf_counter()
    suite, frames, rate = measure(path, settings)
    results = suite.compute()
    record_dir = out / name
    record_dir.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter() - start
    summary = {
        "completed": True,
        "frames": frames,
        "frames_requested": frames,
        "wall_seconds": wall,
        "generation_fps": None,  # not generated here
        "eval_fps": frames / wall,
        "seed": settings.seed,
        "prompt": name,
        "model": {"backbone": "video file", "checkpoint_sha256": None, "video": str(path),
                  "video_sha256": file_sha256(path)},
        "environment": environment(),
        "config": {"video": str(path), "fps": rate, "fps_source": "--fps" if settings.fps else "file",
                   "chunk_frames": settings.chunk, "seed": settings.seed,
                   "metrics": OmegaConf.to_container(settings.metrics, resolve=True)},
        "generation": {},
        "metrics": results,
        "events": suite.events(),
    }
    summary["files"] = [*write_metric_curves(record_dir, suite.curves()), "sink_distance.png", SUMMARY_FILE]
    plot_sink_distance(record_dir / "sink_distance.png", suite, rate, f"{name} ({frames} frames)")
    (record_dir / ERROR_FILE).unlink(missing_ok=True)
    write_json(record_dir / SUMMARY_FILE, summary)  # last: its presence marks the record complete
    return summary


@dataclass
class BatchOutcome:
    done: list[str]
    skipped: list[str]
    failed: list[str]


def run_batch(videos: list[Path], out: Path, settings: EvalSettings, shard: int = 0, shards: int = 1,
              log: Callable[[str], None] = print) -> BatchOutcome:
    """Evaluate ``videos[shard::shards]`` into ``out``, skipping videos whose record exists."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard must be in [0, shards), got shard={shard}, shards={shards}")
    outcome = BatchOutcome([], [], [])
    for path, name in list(zip(videos, unique_names(videos)))[shard::shards]:
        if (out / name / SUMMARY_FILE).is_file():
            outcome.skipped.append(name)
            log(f"{path}: record exists in {out / name}, skipped")
            continue
        try:
            summary = evaluate(path, name, out, settings)
        except (VideoReadError, EvalError) as err:
            print(f"lolbench.eval: skipped {err}", file=sys.stderr)  # messages start with the path
            write_json(out / name / ERROR_FILE, {"video": str(path), "error": str(err)})
            outcome.failed.append(name)
            continue
        outcome.done.append(name)
        drops = ", ".join(f"{k} = {v:.1f}" for k, v in summary["metrics"].items()
                          if k.startswith("sink_distance_drop[") and not isinstance(v, str))
        log(f"{path}: {summary['frames']} frames at {summary['eval_fps']:.1f} frames/s; "
            f"{drops or 'no sink-distance drop'}")
    return outcome


def failed_videos(out: Path) -> list[dict[str, str]]:
    """Videos of ``out`` whose last attempt failed (an error file and no record)."""
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"*/{ERROR_FILE}"))
            if not (p.parent / SUMMARY_FILE).is_file()]


def summarize(out: Path) -> dict[str, Any]:
    """Aggregate the records in ``out``: videos.csv (one row per video) and aggregate.csv / aggregate.json
    (Sink-Collapse Max / Avg per distance, and each metric's mean over the videos)."""
    runs = load_runs([out])
    aggregates: dict[str, Any] = {"videos": len(runs), "failed": failed_videos(out)}
    if runs.empty:
        write_json(out / "aggregate.json", aggregates)
        return aggregates
    scalar = [c for c in runs.columns if "[" in str(c) or c.startswith(("quality_score", "cycle", "recurrence"))]
    scalar = [c for c in scalar if numeric(runs, c).notna().any()]
    table = runs[["prompt", "frames", "cfg.fps", *scalar]].rename(columns={"prompt": "video", "cfg.fps": "fps"})
    atomic_write(out / "videos.csv", lambda tmp: table.to_csv(tmp, index=False))
    rows = []
    for drop in [c for c in scalar if c.startswith("sink_distance_drop[")]:
        tag = drop.removeprefix("sink_distance_drop")
        sc = sink_collapse_table(runs, drop=drop, by=[]).iloc[0]
        for stat in ("sc_max", "sc_avg"):
            name = f"sink_collapse_{stat[3:]}{tag}"
            aggregates[name] = None if np.isnan(sc[f"{stat}_mean"]) else float(sc[f"{stat}_mean"])
            rows.append({"metric": name, "value": aggregates[name], "videos": int(sc["n_prompts"]),
                         "missing": int(sc[f"{stat}_missing"])})
    means = seed_statistics(runs, scalar, by=[]).iloc[0]
    for metric in scalar:
        value = means[f"{metric}_mean"]
        rows.append({"metric": metric, "value": None if np.isnan(value) else float(value),
                     "videos": int(numeric(runs, metric).notna().sum()), "missing": int(means[f"{metric}_missing"])})
    aggregates["metrics"] = {r["metric"]: r["value"] for r in rows}
    atomic_write(out / "aggregate.csv", lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))
    write_json(out / "aggregate.json", aggregates)
    return aggregates


def _positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, which must be > 0."""
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lolbench.eval", description="Measure sink-collapse, cycles "
                                     "and VBench quality of video files from any model.")
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="videos, frame folders, or folders of them")
    sink = parser.add_mutually_exclusive_group()
    sink.add_argument("--sink-frames", type=_positive(int), default=None,
                      help="sink frames at the start, in pixel frames (default: the config's 3)")
    sink.add_argument("--sink-latent-frames", type=_positive(int), default=None,
                      help="sink size in latent frames of Wan's VAE (1 + 4 (n - 1) pixel frames; 3 -> 9)")
    parser.add_argument("--fps", type=_positive(float), default=None, help="frame rate (default: read from the file)")
    parser.add_argument("--out", type=Path, default=Path("results/eval"), help="output folder")
    parser.add_argument("--chunk", type=_positive(int), default=3, help="frames per streamed chunk (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed label of these videos for LoL's statistics")
    parser.add_argument("--metrics-config", type=Path, default=DEFAULT_METRICS, help="metrics group YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a metrics key, e.g. --set sink_distance.threshold=0.6 (repeatable)")
    parser.add_argument("--jobs", type=_positive(int), default=1,
                        help="workers; > 1 runs the batch through Hydra's joblib launcher")
    parser.add_argument("--summarize-only", action="store_true", help="only recompute the aggregate from --out")
    args = parser.parse_args(argv)
    if not args.paths and not args.summarize_only:
        parser.error("give at least one PATH (or --summarize-only)")
    return args


def _launch_joblib(args: argparse.Namespace) -> int:
    """Run the batch as a Hydra multirun of lolbench.eval_batch, one shard per joblib worker."""
    overrides = [f"videos=[{','.join(repr(str(p)) for p in args.paths)}]", f"out={args.out}",
                 f"shards={args.jobs}", f"shard=range({args.jobs})", f"chunk={args.chunk}", f"seed={args.seed}",
                 "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
    for key in ("fps", "sink_frames", "sink_latent_frames"):
        if getattr(args, key) is not None:
            overrides.append(f"{key}={getattr(args, key)}")
    overrides += [f"metrics.{kv}" for kv in args.set]
    if args.metrics_config != DEFAULT_METRICS:
        raise ValueError("--jobs uses the metrics group of conf/; give changes with --set instead of --metrics-config")
    command = [sys.executable, "-m", "lolbench.eval_batch", "--multirun", *overrides]
    return subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summarize_only:
        try:
            cfg = load_metrics_config(args.metrics_config, args.sink_frames, args.sink_latent_frames, args.set)
            build_suite(cfg, fps=args.fps or 16.0, chunk_frames=args.chunk)  # fail once on a bad config
        except (FileNotFoundError, ValueError) as err:
            print(f"lolbench.eval: {err}", file=sys.stderr)
            return EXIT_BAD_COMMAND
        if args.jobs > 1:
            try:
                status = _launch_joblib(args)
            except ValueError as err:
                print(f"lolbench.eval: {err}", file=sys.stderr)
                return EXIT_BAD_COMMAND
            if status != 0:
                print("lolbench.eval: the joblib batch failed (see its log above)", file=sys.stderr)
                return EXIT_BAD_COMMAND
        else:
            run_batch(list_videos(args.paths), args.out, EvalSettings(cfg, args.fps, args.chunk, args.seed))
    aggregates = summarize(args.out)
    failed = aggregates["failed"]
    print(f"{aggregates['videos']} records in {args.out} (aggregate.csv); {len(failed)} failed"
          + "".join(f"\n  {f['video']}: {f['error']}" for f in failed))
    return min(len(failed), 99)


if __name__ == "__main__":
    sys.exit(main())
