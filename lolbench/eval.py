"""Measure videos made by any model: ``python -m lolbench.eval PATH... [--out DIR]``.

Each video (mp4, webm, gif, or a folder of frames) is streamed chunk by chunk through the frame metrics of
``conf/metrics/default.yaml`` (attention-probe metrics need an instrumented model and are skipped). Writes, in
``--out``: ``<video>.json`` (results, collapse events, provenance), ``<video>.curves.npz`` (per-frame curves),
``<video>.sink_distance.png`` (the normalized sink-distance curve with its events), ``summary.csv`` (one row
per video plus SC-Max / SC-Avg rows in the distance-drop columns) and ``summary.json`` (the same aggregates,
cross-run coherence, and the files that failed). A file that cannot be read or is too short is reported on
stderr and skipped; the exit code is non-zero only if no video could be measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

import lolbench
from lolbench.atomic import atomic_write, write_json
from lolbench.config import CONF_DIR
from lolbench.metrics.sink_distance import SinkSettings
from lolbench.stats import cross_run_coherence, sink_collapse_summary
from lolbench.metrics.suite import MetricSuite, backbone_names, build_suite
from lolbench.provenance import git_revision
from lolbench.video_io import VideoReadError, open_video

DEFAULT_METRICS = CONF_DIR / "metrics" / "default.yaml"
PROBE_GROUPS = ("heads",)  # need attention probes, which a video file does not have


class EvalError(Exception):
    """A video that can be read but not measured (too short, unknown frame rate)."""


@dataclass
class Evaluation:
    """What one measured video leaves behind for the summary."""

    name: str
    record: dict[str, Any]
    sink_curves: dict[str, tuple[np.ndarray, int]]  # per distance tag: normalized curve after warm-up, trend


def load_metrics_config(path: Path, sink_frames: int | None, overrides: list[str]) -> DictConfig:
    """The metrics group from ``path`` with ``--sink-frames`` and ``--set`` applied, probe metrics disabled."""
    if not path.is_file():
        raise FileNotFoundError(f"metrics config {path} not found; pass --metrics-config")
    cfg = OmegaConf.load(path)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    if sink_frames is not None and "sink_distance" in cfg:
        cfg.sink_distance.sink_frames = sink_frames
    for group in PROBE_GROUPS:
        if group in cfg:
            cfg[group].enabled = False
    return cfg


def measure(path: Path, cfg: DictConfig, fps: float | None, chunk: int) -> tuple[MetricSuite, int, float]:
    """Stream one video through a fresh suite; returns (suite, frames, fps)."""
    source = open_video(path)
    rate = fps or source.fps
    if not rate:
        raise EvalError(f"{path}: frame rate unknown (a folder of frames has none); pass --fps")
    suite = build_suite(cfg, fps=rate, chunk_frames=chunk)
    frames = 0
    for frames_chunk in source.chunks(chunk):
        suite.update_frames(frames_chunk)
        frames += len(frames_chunk)
    needed = suite.min_frames()
    if frames < needed:
        raise EvalError(f"{path}: too short: {frames} frames, the metrics need at least {needed} "
                        f"(sink frames, warm-up and reference window at {rate:g} fps)")
    return suite, frames, rate


def plot_sink_distance(path: Path, suite: MetricSuite, fps: float, title: str, threshold: float) -> None:
    """Sink-collapse curve(s) (normalized distance / chance, drawn from the reference window's end) over time,
    collapse events marked."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    events = suite.events()
    for key, curve in suite.curves().items():
        if not key.startswith("sink_collapse_curve["):
            continue
        tag = key.removeprefix("sink_collapse_curve")
        ax.plot(np.arange(len(curve)) / fps, curve, lw=0.9, label=f"sink-collapse curve {tag}")
        ax.axhline(threshold, color="grey", ls="--", lw=0.8, label="event threshold")
        mine = [e for e in events if e["metric"] == f"sink_distance{tag}"]
        if mine:
            ax.scatter([e["time_s"] for e in mine], [e["distance"] for e in mine], color="red", zorder=3,
                       s=18, label=f"collapse events ({len(mine)})")
    ax.set(xlabel="time [s]", ylabel="distance / (reference x chance)", title=title)
    if ax.lines:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "sink distance unavailable (see the JSON for why)", ha="center", transform=ax.transAxes)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def save_curves(path: Path, curves: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **curves)

    atomic_write(path, write)


def evaluate(path: Path, name: str, out: Path, cfg: DictConfig, fps: float | None, chunk: int) -> Evaluation:
    """Measure one video and write its JSON, curves and plot."""
    start = time.perf_counter()
    suite, frames, rate = measure(path, cfg, fps, chunk)
    results = suite.compute()
    record = {
        "video": str(path),
        "lolbench_version": lolbench.__version__,
        "git_revision": git_revision(),
        "backbones": backbone_names(results),
        "frames": frames,
        "fps": rate,
        "fps_source": "--fps" if fps else "file",
        "chunk_frames": chunk,
        "metrics_config": OmegaConf.to_container(cfg, resolve=True),
        "results": results,
        "events": suite.events(),
        "wall_time_s": time.perf_counter() - start,
    }
    curves = suite.curves()
    save_curves(out / f"{name}.curves.npz", curves)
    sink_cfg = cfg.get("sink_distance") or {}
    plot_sink_distance(out / f"{name}.sink_distance.png", suite, rate, f"{name} ({frames} frames)",
                       sink_cfg.get("threshold", SinkSettings.threshold))
    write_json(out / f"{name}.json", record)
    trend = SinkSettings(fps=rate, trend_s=sink_cfg.get("trend_s", SinkSettings.trend_s)).trend
    settled = {key.removeprefix("sink_collapse_curve"): int(np.argmax(np.isfinite(curve)))
               for key, curve in curves.items() if key.startswith("sink_collapse_curve[")}
    return Evaluation(name, record, {tag[1:-1]: (curves[f"sink_distance{tag}"][start:], trend)
                                     for tag, start in settled.items()})


def summarize(done: list[Evaluation], failed: list[dict[str, str]], out: Path) -> dict[str, Any]:
    """Write summary.csv and summary.json; returns the aggregates."""
    rows = [{"video": e.name, "frames": e.record["frames"], "fps": e.record["fps"],
             **{k: v for k, v in e.record["results"].items() if not isinstance(v, list)}} for e in done]
    table = pd.DataFrame(rows)
    aggregates: dict[str, Any] = {}
    sc_max: dict[str, Any] = {"video": "SC-Max"}
    sc_avg: dict[str, Any] = {"video": "SC-Avg"}
    for column in [c for c in table.columns if c.startswith("sink_collapse_drop[")]:
        tag = column.removeprefix("sink_collapse_drop")  # "[rms]"
        drops = pd.to_numeric(table[column], errors="coerce").dropna().tolist()
        if drops:
            summary = sink_collapse_summary(drops)
            aggregates[f"sink_collapse_max{tag}"] = sc_max[column] = summary["sink_collapse_max"]
            aggregates[f"sink_collapse_avg{tag}"] = sc_avg[column] = summary["sink_collapse_avg"]
    table = pd.concat([table, pd.DataFrame([sc_max, sc_avg])], ignore_index=True).convert_dtypes()
    atomic_write(out / "summary.csv", lambda tmp: table.to_csv(tmp, index=False))
    tags = sorted({tag for e in done for tag in e.sink_curves})
    for tag in tags:
        curves = [e.sink_curves[tag][0] for e in done if tag in e.sink_curves]
        trend = min(e.sink_curves[tag][1] for e in done if tag in e.sink_curves)
        key = f"cross_run_coherence[{tag}]"
        try:
            aggregates[key] = cross_run_coherence(curves, trend=trend)
        except ValueError as err:
            aggregates[key] = f"unavailable: {err}"
    write_json(out / "summary.json", {"videos": [e.name for e in done], "failed": failed, **aggregates,
                                      "note": "cross-run coherence assumes the videos are runs of one setting"})
    return aggregates


def unique_names(paths: list[Path]) -> list[str]:
    """Output name per input: its stem (folder name for frame folders), numbered when two inputs share one."""
    names: list[str] = []
    for path in paths:
        stem = path.name if path.is_dir() else path.stem
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}-{k}", k + 1
        names.append(name)
    return names


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
                                     "and VBench-style quality of video files from any model.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="video files or folders of frames")
    parser.add_argument("--sink-frames", type=_positive(int), default=None,
                        help="sink frames at the start (default: sink_distance.sink_frames of the config, 3)")
    parser.add_argument("--fps", type=_positive(float), default=None, help="frame rate (default: read from the file)")
    parser.add_argument("--out", type=Path, default=Path("results/eval"), help="output folder")
    parser.add_argument("--chunk", type=_positive(int), default=3, help="frames per streamed chunk (default 3)")
    parser.add_argument("--metrics-config", type=Path, default=DEFAULT_METRICS, help="metrics group YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a metrics key, e.g. --set sink_distance.threshold=0.6 (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_metrics_config(args.metrics_config, args.sink_frames, args.set)
        build_suite(cfg, fps=args.fps or 16.0, chunk_frames=args.chunk)  # fail once on a bad config
    except (FileNotFoundError, ValueError) as err:
        print(f"lolbench.eval: {err}", file=sys.stderr)
        return 2
    done: list[Evaluation] = []
    failed: list[dict[str, str]] = []
    for path, name in zip(args.paths, unique_names(args.paths)):
        try:
            done.append(evaluate(path, name, args.out, cfg, args.fps, args.chunk))
        except (VideoReadError, EvalError) as err:
            print(f"lolbench.eval: skipped {err}", file=sys.stderr)  # messages start with the path
            failed.append({"video": str(path), "error": str(err)})
            continue
        results = done[-1].record["results"]
        drops = ", ".join(f"{k} = {v:.1f}" for k, v in results.items()
                          if k.startswith("sink_collapse_drop[") and not isinstance(v, str))
        print(f"{path}: {done[-1].record['frames']} frames; {drops or 'no sink-collapse drop'}")
    if not done:
        print(f"lolbench.eval: none of the {len(args.paths)} videos could be measured", file=sys.stderr)
        return 1
    summarize(done, failed, args.out)
    print(f"wrote {len(done)} results and summary.csv to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
