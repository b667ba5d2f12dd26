"""The built-in model as a sink-collapse organism: rollout quality and collapse vs phase kernels (issue 5).

    python analysis/organism.py rollout [--checkpoint PATH] [--frames 2000] [--prompts meadow ocean lava]
    python analysis/organism.py collapse                  # the latest `python run.py +experiment=phase` sweep
    python analysis/organism.py collapse --runs DIR ...   # any run directories
    python analysis/organism.py collapse --make [--frames 1200 --prompts ... --seeds 0 1 2 --sigmas 0 0.8]

``rollout`` generates long videos with a local window (no sink) and the procedural world itself, streaming, and
writes per-bin curves of the shift-compensated error, pan match, sharpness, contrast, saturation, optical flow and
VBench dynamic degree (``rollout_quality.csv`` and ``.png``, ``rollout_summary.csv``) plus frame strips.

``collapse`` reads run directories (or first makes static-sink runs with an attention probe on every chunk) and
compares where the video is pulled back to its sink with the local maxima of the model's own uniform C(Δ) and of
its usage-weighted kernel U(Δ) (lolbench.phase); it also reports head homogeneity at event chunks vs ordinary
chunks, the periodic pull and cross-run coherence per setting, and how well each kernel predicts per-chunk sink
attention (``collapse_events.csv``, ``collapse_vs_kernel.csv``, ``collapse_settings.csv``,
``kernel_prediction.csv``, ``sink_attention_vs_kernels.png``, frame strips around the deepest events).

Every number is measured from generated frames, attention probes or the model's own RoPE tables; what cannot be
measured is written as ``unavailable: <reason>``. Defaults are the real sizes; use small ``--frames`` etc. to
develop. ``--threads`` sets torch's CPU threads for the command only (useful when other jobs share the cores).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable for `analysis`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from analysis.data import latest_sweep
from analysis.style import new_figure, save_figure, styled
from lolbench.atomic import atomic_write
from lolbench.cache import build_policy
from lolbench.config import compose_run_config
from lolbench.generator import VideoGenerator
from lolbench.metrics.clips import clip_length
from lolbench.metrics.dynamic import DynamicDegree
from lolbench.metrics.heads import probe_stats
from lolbench.metrics.motion import MotionFidelity
from lolbench.metrics.sink_distance import SinkSettings, collapse_events
from lolbench.models.build import build_generator
from lolbench.models.sampler import TinyGenerator
from lolbench.phase import coherence_kernel, frame_frequencies, local_maxima, reference_usage, usage_weighted_kernel
from lolbench.probes import AttentionProbe, FrameKind
from lolbench.results import Probes, find_runs, load_probes, load_runs, load_tables, read_summary, setting_columns
from lolbench.stats import Matching, cross_run_coherence, match_events, pearson
from lolbench.rope import build_tables, jitter_spec_from_config, position_mode, rope_spec_from_config
from lolbench.runner import run
from lolbench.video_io import open_video, write_frame_strip
from lolbench.world import ProceduralWorld

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "lolbench" / "checkpoints" / "tiny.pt"
RESULTS = ROOT / "results"
DEFAULT_OUT = RESULTS / "organism"
FPS = TinyGenerator.fps  # both built-in sources (tiny model, procedural world) run at 16 fps
CLIP_SECONDS = 2.0  # VBench-Long clips for dynamic degree
KERNELS = ("uniform", "usage")  # the model's own C(Δ) and its usage-weighted U(Δ)
KERNEL_STYLE = {"uniform": ("tab:red", "uniform C(Δ)"), "usage": ("tab:blue", "usage-weighted U(Δ)")}
FRAME_COLUMNS = ("shift_error", "pan_match", "sharpness", "contrast", "saturation")  # lolbench.metrics.motion
ROLLOUT_COLUMNS = (*FRAME_COLUMNS, "flow_top5", "dynamic")
ROLLOUT_LABELS = {
    "shift_error": "shift-compensated error (RMS, [0,1])", "pan_match": "pairs panning exactly +1 px",
    "sharpness": "sharpness (mean |∇|)", "contrast": "contrast (pixel std)", "saturation": "saturation (HSV)",
    "flow_top5": "optical flow, top 5% (px)", "dynamic": "dynamic degree per 2 s clip",
}
STRIP_EVENT_CONTEXT = 3  # frames shown before and after an event
EVENT_COLUMNS = ["setting", "run", "prompt", "seed", "frame", "depth", "distance", "chunk",
                 *(f"to_{name}_maximum" for name in KERNELS), "sink_attention", "consensus", "entropy"]


def unavailable(reason: str) -> str:
    return f"unavailable: {reason}"


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: leave as is), then restore the previous count."""
    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def checkpoint_override(checkpoint: str) -> str:
    """``model.checkpoint=...`` for ``--checkpoint``: a file, or ``none`` for random weights (labelled as such)."""
    if checkpoint.lower() == "none":
        return "model.checkpoint=null"
    path = Path(checkpoint).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint: no file at {path} (train one with `python -m lolbench.train`, or "
                                "pass --checkpoint none for random weights)")
    return f"model.checkpoint={path}"


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return path


def safe_name(text: str) -> str:
    """A file-name fragment for a setting label or prompt."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "all"


# ==========================================================================================================
# rollout: quality of long window-only rollouts, model vs the world it was trained on


@dataclass
class Rollout:
    """Per-frame and per-pair measurements of one streamed video, and the few frames kept for strips."""

    curves: dict[str, np.ndarray]
    kept: dict[int, np.ndarray]
    summary: dict[str, Any]


def strip_indices(frames: int) -> list[int]:
    """Five frames spread over the video: 0, 1/4, 1/2, 3/4, last (0, 500, 1000, 1500, 1999 for 2000)."""
    return sorted({0, frames // 4, frames // 2, 3 * frames // 4, frames - 1})


def camera_velocity(prompt: str, size: int) -> tuple[float, float]:
    """The procedural world's camera velocity for scene ``prompt`` in pixels per frame at ``size``."""
    world = ProceduralWorld(prompt, 0, size)
    vx, vy = world.camera(1) - world.camera(0)
    return float(vx), float(vy)


def stream_video(generator: VideoGenerator, prompt: str, seed: int, frames: int, keep: Sequence[int],
                 velocity: tuple[float, float]) -> Rollout:
    """Generate ``frames`` frames chunk by chunk into the motion and dynamic-degree metrics; keeps only ``keep``."""
    motion = MotionFidelity(camera_velocity=velocity)
    dynamic = DynamicDegree(fps=generator.fps, flow="dis", clip_seconds=CLIP_SECONDS)
    wanted, kept = set(keep), {}
    generator.reset(prompt, seed)
    done = 0
    while done < frames:
        chunk = generator.next_chunk().frames[: frames - done]
        motion.update(chunk)
        dynamic.update(chunk)
        kept.update({done + i: frame.copy() for i, frame in enumerate(chunk) if done + i in wanted})
        done += len(chunk)
    result, dynamic_curves = dynamic.summary()
    curves = {**motion.curves(), **dynamic_curves}
    return Rollout(curves=curves, kept=kept, summary={**motion.compute(), **result})


def bin_rollout(curves: dict[str, np.ndarray], frames: int, bin_frames: int, clip_frames: int) -> pd.DataFrame:
    """Per-bin means of the per-frame curves; flow pairs go to the bin of their later frame, and each bin gets the
    dynamic-degree decision of the VBench-Long clip (``clip_frames`` frames) it lies in."""
    def column(prefix: str) -> np.ndarray:
        matches = [key for key in curves if key.startswith(f"{prefix}[")]
        if len(matches) != 1:
            raise KeyError(f"expected one curve named {prefix}[...], found {matches}")
        return np.asarray(curves[matches[0]], dtype=np.float64)

    per_frame = {name: column(name) for name in FRAME_COLUMNS}
    flow, flow_frame, clips = column("flow_top5"), column("flow_top5_frame"), column("dynamic_clip")
    rows = []
    for start in range(0, frames, bin_frames):
        stop = min(start + bin_frames, frames)
        row: dict[str, Any] = {"bin": start // bin_frames, "frame_start": start, "frame_stop": stop}
        for name, values in per_frame.items():
            part = values[start:stop]
            row[name] = float(np.nanmean(part)) if np.isfinite(part).any() else np.nan
        in_bin = (flow_frame >= start) & (flow_frame < stop)
        row["flow_top5"] = float(flow[in_bin].mean()) if in_bin.any() else np.nan
        clip = start // clip_frames
        row["dynamic"] = float(clips[clip]) if clip < len(clips) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


@styled
def rollout_figure(table: pd.DataFrame, title: str) -> Figure:
    """One panel per measurement over frames: model (solid) and world (dashed), one colour per prompt."""
    fig = Figure(figsize=(18.0, 8.0), layout="constrained")
    axes = fig.subplots(2, 4).ravel()
    prompts = list(dict.fromkeys(table["prompt"]))
    colors = {p: f"C{i}" for i, p in enumerate(prompts)}
    for ax, column in zip(axes, ROLLOUT_COLUMNS):
        for (source, prompt), part in table.groupby(["source", "prompt"], sort=False):
            ax.plot(part["frame_start"], part[column], color=colors[prompt],
                    linestyle="-" if source == "model" else "--", label=f"{source} {prompt}")
        ax.set_title(ROLLOUT_LABELS[column], fontsize=12)
        ax.set_xlabel("frame")
    legend = axes[len(ROLLOUT_COLUMNS)]
    legend.axis("off")
    legend.legend(*axes[0].get_legend_handles_labels(), loc="center")
    fig.suptitle(title)
    return fig


def rollout(args: argparse.Namespace) -> list[Path]:
    """The ``rollout`` subcommand; returns the files written."""
    if args.frames < 2 or args.bin < 1:
        raise ValueError(f"--frames must be >= 2 and --bin >= 1, got {args.frames} and {args.bin}")
    base = [checkpoint_override(args.checkpoint), *args.set]
    model_cfg = compose_run_config([*base, "sink=window"])
    size = int(model_cfg.model.image_size)
    world_cfg = compose_run_config(["model=world", f"model.size={size}"])
    sources = {"model": build_generator(model_cfg), "world": build_generator(world_cfg)}
    keep = strip_indices(args.frames)
    out = Path(args.out)
    tables, summaries, written = [], [], []
    for prompt in args.prompts:
        velocity = camera_velocity(prompt, size)
        for source, (generator, info) in sources.items():
            result = stream_video(generator, prompt, args.seed, args.frames, keep, velocity)
            table = bin_rollout(result.curves, args.frames, args.bin, clip_length(FPS, CLIP_SECONDS))
            labels = {"source": source, "backbone": info["backbone"], "prompt": prompt, "seed": args.seed}
            tables.append(table.assign(**labels))
            summaries.append({**labels, "frames": args.frames, **result.summary})
            strip = out / f"rollout_strip_{source}_{safe_name(prompt)}.png"
            write_frame_strip(strip, np.stack([result.kept[i] for i in keep]))
            written.append(strip)
    table = pd.concat(tables, ignore_index=True)
    columns = ["source", "backbone", "prompt", "seed", "bin", "frame_start", "frame_stop", *ROLLOUT_COLUMNS]
    written.append(write_csv(table[columns], out / "rollout_quality.csv"))
    written.append(write_csv(pd.DataFrame(summaries), out / "rollout_summary.csv"))
    backbone = model_cfg.model.checkpoint or "random weights"
    fig = rollout_figure(table, f"window-only rollouts of {backbone} (solid) vs the procedural world (dashed), "
                                f"{args.bin}-frame bins")
    written += [p for p in save_figure(fig, out, "rollout_quality") if p.suffix == ".png"]
    return written


# ==========================================================================================================
# collapse: events and sink attention vs the model's own phase kernels


def nearest_distance(frame: int, maxima: Sequence[int]) -> float:
    """Frames from ``frame`` to the nearest maximum (NaN when there is none)."""
    return float(np.min(np.abs(np.asarray(maxima) - frame))) if len(maxima) else np.nan


@dataclass
class RunKernels:
    """A run's phase kernels over frame distance Δ = 0..N-1, or the reason each is unavailable."""

    kernels: dict[str, np.ndarray | str]  # name -> [N] values over Δ, or "unavailable: ..."
    mode: str  # rope.positions

    def at(self, name: str, deltas: np.ndarray) -> np.ndarray | None:
        """Kernel ``name`` at integer distances ``deltas`` of any shape (C and U are even in Δ, so the sign does
        not matter), or None if it is unavailable."""
        values = self.kernels[name]
        if isinstance(values, str):
            return None
        return values[np.abs(np.rint(deltas)).astype(np.int64)]


class UsageCache:
    """Usage [L, H, K] per (model config, prompt): measuring it needs a forward pass over reference clips."""

    def __init__(self, clips: int) -> None:
        self.clips = clips
        self._usage: dict[str, np.ndarray | str] = {}

    def get(self, summary: dict[str, Any], cfg: DictConfig) -> np.ndarray | str:
        key = json.dumps([OmegaConf.to_container(cfg[g], resolve=True) for g in ("model", "rope", "jitter")]
                         + [summary["prompt"]], sort_keys=True, default=str)
        if key not in self._usage:
            self._usage[key] = self._measure(summary, cfg)
        return self._usage[key]

    def _measure(self, summary: dict[str, Any], cfg: DictConfig) -> np.ndarray | str:
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        cfg.model.device = "cpu"
        checkpoint = cfg.model.checkpoint
        if checkpoint:
            path = Path(checkpoint)
            if not path.is_file() and (ROOT / path).is_file():
                cfg.model.checkpoint = str(ROOT / path)
        try:
            generator, info = build_generator(cfg)
            recorded = summary["model"].get("checkpoint_sha256")
            if recorded != info.get("checkpoint_sha256"):
                return unavailable(f"checkpoint {checkpoint} has sha256 {info.get('checkpoint_sha256')}, the run "
                                   f"recorded {recorded}")
            return reference_usage(generator, summary["prompt"], self.clips, int(cfg.model.train_frames),
                                   int(cfg.model.image_size))
        except (OSError, ValueError, TypeError) as err:
            return unavailable(f"usage not measurable ({err})")


def run_kernels(cfg: DictConfig, summary: dict[str, Any], max_delta: int, usage: UsageCache) -> RunKernels:
    """The uniform C(Δ) of the run's own RoPE tables (jitter included, mean over heads) and U(Δ) weighted by the
    model's measured pair usage (mean over layers and heads)."""
    mode = position_mode(cfg.rope)
    if cfg.model.name != "tiny":
        reason = unavailable(f"model={cfg.model.name} has no attention")
        return RunKernels({name: reason for name in KERNELS}, mode)
    tables = build_tables(rope_spec_from_config(cfg.model, cfg.rope), jitter_spec_from_config(cfg.jitter))
    freqs = frame_frequencies(tables)  # [H, K]
    deltas = np.arange(max_delta + 1, dtype=np.float64)
    kernels: dict[str, np.ndarray | str] = {"uniform": coherence_kernel(freqs, deltas).mean(axis=0)}
    measured = usage.get(summary, cfg)
    kernels["usage"] = measured if isinstance(measured, str) else \
        usage_weighted_kernel(freqs, measured, deltas).mean(axis=(0, 1))
    return RunKernels(kernels, mode)


@dataclass
class RunData:
    """What the collapse analysis reads from one run directory."""

    run_dir: Path
    summary: dict[str, Any]
    cfg: DictConfig
    setting: str
    settings: SinkSettings
    curve: np.ndarray | None  # normalized sink distance per frame
    events: list[tuple[int, float]]  # (frame, normalized distance)
    chunks: pd.DataFrame  # one row per probed chunk with sink frames in its context
    kernels: RunKernels
    sink_frames: list[int]

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def frames(self) -> int:
        return int(self.summary["frames"])

    def late_chunks(self) -> pd.DataFrame:
        """Probed chunks that start at or after the warm-up."""
        return self.chunks[self.chunks["first_frame"] >= self.settings.warmup] if len(self.chunks) else self.chunks


def sink_settings(cfg: DictConfig, threshold: float | None) -> SinkSettings:
    """The run's sink-distance parameters, with ``threshold`` replacing its event threshold when given."""
    keys = OmegaConf.to_container(cfg.metrics.sink_distance, resolve=True)
    values = {k: keys[k] for k in ("sink_frames", "threshold", "min_separation", "warmup_s", "reference_s",
                                   "min_period", "trend_s")}
    if threshold is not None:
        values["threshold"] = threshold
    return SinkSettings(fps=FPS, **values)


def stored_curve(run_dir: Path, prefix: str) -> np.ndarray | None:
    """The run's first ``prefix[...]`` per-frame curve (``sink_distance``: normalized; ``sink_collapse_curve``:
    normalized / chance, NaN before the settled frames), None without one."""
    frames = load_tables(run_dir).frames
    if frames is None:
        return None
    names = [c for c in frames.columns if c.startswith(f"{prefix}[")]
    return frames[names[0]].to_numpy(dtype=np.float64) if names else None


def chunk_table(probes: Probes | None, kernels: RunKernels) -> pd.DataFrame:
    """Per probed chunk whose context holds sink frames: Δ between its queries and the sink (positions as the
    cache rotates them: frame indices in absolute mode, slots of the re-indexed window in rolling mode), mean
    sink attention over layers and heads, head homogeneity, and each kernel averaged over query-sink pairs."""
    rows = []
    if probes is None:
        return pd.DataFrame(rows)
    for i in range(len(probes.chunk_index)):
        kind = probes.kind[i]
        slots = int((kind >= 0).sum())
        sink, current = np.flatnonzero(kind == FrameKind.SINK), np.flatnonzero(kind == FrameKind.CURRENT)
        if len(sink) == 0 or len(current) == 0:
            continue
        positions = probes.frame_index[i] if kernels.mode == "absolute" else np.arange(len(kind))
        deltas = positions[current][:, None] - positions[sink][None, :]  # [F, n_sink]
        probe = AttentionProbe(int(probes.chunk_index[i]), probes.mass[i, :, :, :slots].astype(np.float64),
                               probes.frame_index[i, :slots], kind[:slots])
        stats = probe_stats(probe)
        row = {"chunk": int(probes.chunk_index[i]), "first_frame": int(probes.frame_index[i][current].min()),
               "delta": float(deltas.mean()), "sink_attention": stats["sink_mass"],
               "consensus": stats["consensus"], "entropy": stats["entropy"]}
        for name in KERNELS:
            values = kernels.at(name, deltas)
            row[f"kernel_{name}"] = float(values.mean()) if values is not None else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def load_run(run_dir: Path, setting: str, threshold: float | None, usage: UsageCache) -> RunData:
    summary = read_summary(run_dir)
    cfg = OmegaConf.create(summary["config"])
    settings = sink_settings(cfg, threshold)
    curve = stored_curve(run_dir, "sink_distance")  # None: no part in cross-run coherence
    collapse = stored_curve(run_dir, "sink_collapse_curve")  # None: no events (a run before sink_distance v2)
    events = [] if collapse is None else [
        (e.frame, e.distance) for e in collapse_events(collapse, settings.threshold, settings.min_separation,
                                                       settings.settled)]
    kernels = run_kernels(cfg, summary, int(summary["frames"]) + 1, usage)
    chunk_frames = int(cfg.model.chunk_frames)
    sink = build_policy(cfg.sink, chunk_frames).sink_frames if cfg.model.name == "tiny" else 0
    return RunData(run_dir=run_dir, summary=summary, cfg=cfg, setting=setting, settings=settings, curve=curve,
                   events=events, chunks=chunk_table(load_probes(run_dir), kernels), kernels=kernels,
                   sink_frames=list(range(sink)))


def kernel_maxima(run: RunData, name: str, min_prominence: float) -> list[int] | str:
    """Frames where kernel ``name``, averaged over the sink frames (Δ = frame - sink position), has a local
    maximum, from the warm-up on; or why there are none to compare with."""
    values = run.kernels.kernels[name]
    if isinstance(values, str):
        return values
    if not run.sink_frames:
        return unavailable(f"sink={run.cfg.sink.name} keeps no sink frames")
    if run.kernels.mode != "absolute":
        return unavailable(f"rope.positions={run.kernels.mode}: the query-sink distance does not grow with the frame")
    frames = np.arange(run.frames)
    per_frame = run.kernels.at(name, frames[:, None] - np.asarray(run.sink_frames)[None, :]).mean(axis=1)  # [F]
    start = run.settings.warmup
    if run.frames - start < 3:
        return unavailable(f"fewer than 3 frames after the warm-up of {start}")
    return [int(d) for d, _, _ in local_maxima(per_frame[start:], frames[start:].astype(np.float64), min_prominence)]


def attention_peaks(chunks: pd.DataFrame, prominence: float) -> list[int]:
    """First frames of chunks where mean sink attention has a local maximum standing ``prominence`` standard
    deviations of the series above its surroundings."""
    if len(chunks) < 3:
        return []
    part = chunks.sort_values("first_frame")
    values = part["sink_attention"].to_numpy(dtype=np.float64)
    if np.ptp(values) == 0:
        return []
    found = local_maxima(values, part["first_frame"].to_numpy(dtype=np.float64), prominence * values.std())
    return [int(d) for d, _, _ in found]


def run_labels(run: RunData) -> dict[str, Any]:
    return {"setting": run.setting, "run": str(run.run_dir), "prompt": run.summary["prompt"],
            "seed": run.summary["seed"]}


def event_rows(run: RunData, maxima: dict[str, list[int] | str]) -> list[dict[str, Any]]:
    """One row per collapse event: depth, distance to each kernel's nearest maximum, head homogeneity of the
    chunk that generated it (NaN when that chunk was not probed)."""
    chunk_frames = int(run.cfg.model.chunk_frames)
    probed = run.chunks.set_index("chunk") if len(run.chunks) else pd.DataFrame()
    rows = []
    for frame, distance in run.events:
        chunk = frame // chunk_frames
        row = {**run_labels(run), "frame": frame, "depth": 1.0 - distance, "distance": distance, "chunk": chunk}
        for name, found in maxima.items():
            row[f"to_{name}_maximum"] = found if isinstance(found, str) else nearest_distance(frame, found)
        for stat in ("sink_attention", "consensus", "entropy"):
            row[stat] = float(probed.loc[chunk, stat]) if chunk in probed.index else np.nan
        rows.append(row)
    return rows


def kernel_rows(run: RunData, name: str, found: list[int] | str, tolerance: int, attention_prominence: float
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """How kernel ``name`` of the run predicts its collapse events and its per-chunk sink attention."""
    base = {**run_labels(run), "kernel": name, "runs": 1}
    late = run.late_chunks()
    if isinstance(found, str):
        return {**base, "events": len(run.events), "hits": found}, {**base, "chunks": len(late), "pearson_r": found}
    start, stop = run.settings.warmup, run.frames
    hits = match_events([f for f, _ in run.events], found, start, stop, tolerance)
    events = {**base, "events": len(run.events), "hits": hits.hits, "misses": hits.misses,
              "kernel_maxima": len(found), "coverage": hits.coverage, "expected_hits": hits.expected_hits}
    peaks = attention_peaks(late, attention_prominence)
    peak_hits = match_events(peaks, found, start, stop, tolerance)
    r = pearson(late[f"kernel_{name}"].to_numpy(), late["sink_attention"].to_numpy()) if len(late) else \
        unavailable("no probed chunk with sink frames in its context")
    attention = {**base, "chunks": len(late), "pearson_r": r, "attention_peaks": len(peaks),
                 "peak_hits": peak_hits.hits, "peak_misses": peak_hits.misses, "kernel_maxima": len(found),
                 "coverage": peak_hits.coverage, "expected_hits": peak_hits.expected_hits}
    return events, attention


def analyse_runs(runs: Sequence[RunData], tolerance: int, min_prominence: float, attention_prominence: float
                 ) -> dict[str, pd.DataFrame]:
    """Events, event-vs-kernel matching, kernel prediction of sink attention and per-setting summaries."""
    events, matches, prediction = [], [], []
    for run in runs:
        maxima = {name: kernel_maxima(run, name, min_prominence) for name in KERNELS}
        events += event_rows(run, maxima)
        for name, found in maxima.items():
            match, attention = kernel_rows(run, name, found, tolerance, attention_prominence)
            matches.append(match)
            prediction.append(attention)
    counts = ["events", "hits", "misses", "kernel_maxima", "expected_hits"]
    peak_counts = ["chunks", "attention_peaks", "peak_hits", "peak_misses", "kernel_maxima", "expected_hits"]
    return {
        "collapse_events": pd.DataFrame(events, columns=EVENT_COLUMNS),
        "collapse_vs_kernel": with_pooled(pd.DataFrame(matches), counts),
        "kernel_prediction": with_pooled(pd.DataFrame(prediction), peak_counts, pooled_r=pooled_pearson(runs)),
        "collapse_settings": setting_summary(runs),
    }


def with_pooled(table: pd.DataFrame, sums: Sequence[str], pooled_r: dict[tuple[str, str], float | str] | None = None
                ) -> pd.DataFrame:
    """Append, per setting and kernel, a ``run = pooled`` row with the count columns ``sums`` summed over the runs
    where they were measured (``runs`` says how many)."""
    if table.empty:
        return table
    rows = []
    for (setting, kernel), part in table.groupby(["setting", "kernel"], sort=False):
        counts = part.reindex(columns=list(sums)).apply(pd.to_numeric, errors="coerce")
        measured = counts.notna().all(axis=1)
        row: dict[str, Any] = {"setting": setting, "run": "pooled", "prompt": "all", "seed": "all",
                               "kernel": kernel, "runs": int(measured.sum())}
        totals = counts[measured].sum()
        row.update({c: float(totals[c]) if c == "expected_hits" else int(totals[c]) for c in sums})
        if pooled_r is not None:
            row["pearson_r"] = pooled_r[(setting, kernel)]
        rows.append(row)
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True)


def pooled_pearson(runs: Sequence[RunData]) -> dict[tuple[str, str], float | str]:
    """Pearson r of sink attention vs each kernel over the chunks of all runs of a setting (after warm-up)."""
    out = {}
    for setting in dict.fromkeys(r.setting for r in runs):
        parts = [r.late_chunks() for r in runs if r.setting == setting and len(r.chunks)]
        chunks = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        for name in KERNELS:
            out[(setting, name)] = pearson(chunks[f"kernel_{name}"].to_numpy(), chunks["sink_attention"].to_numpy()) \
                if len(chunks) else unavailable("no probed chunk with sink frames in its context")
    return out


def mean_std(values: Sequence[Any]) -> tuple[float | str, float | str, int]:
    """Mean and sample std of the numeric values (``unavailable`` strings left out), and how many there were."""
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").dropna().to_numpy(dtype=float)
    if len(numbers) == 0:
        reasons = [v for v in values if isinstance(v, str)]
        reason = reasons[0] if reasons else unavailable("no runs")
        return reason, reason, 0
    return float(numbers.mean()), float(numbers.std(ddof=1)) if len(numbers) > 1 else np.nan, len(numbers)


def metric_value(summary: dict[str, Any], base: str) -> Any:
    """The run's metric ``base[tag]`` (first tag found) or an ``unavailable`` string."""
    for key, value in summary["metrics"].items():
        if key.startswith(f"{base}["):
            return value
    return unavailable(f"the run has no {base} metric")


def homogeneity_at_events(runs: Sequence[RunData]) -> dict[str, float | int | str]:
    """Mean head statistics over probed chunks (after warm-up) that generated a collapse event vs all others."""
    parts: dict[str, list[pd.DataFrame]] = {"events": [], "ordinary": []}
    for run in runs:
        late = run.late_chunks()
        if len(late):
            is_event = late["chunk"].isin({f // int(run.cfg.model.chunk_frames) for f, _ in run.events})
            parts["events"].append(late[is_event])
            parts["ordinary"].append(late[~is_event])
    out: dict[str, float | int | str] = {}
    for label, frames in parts.items():
        chunks = pd.concat(frames) if frames else pd.DataFrame()
        out[f"chunks_{label}"] = len(chunks)
        for stat in ("consensus", "entropy", "sink_attention"):
            out[f"{stat}_{label}"] = float(chunks[stat].mean()) if len(chunks) else \
                unavailable(f"no probed {label} chunks after the warm-up")
    return out


def setting_summary(runs: Sequence[RunData]) -> pd.DataFrame:
    """Per setting: events, periodic pull, cross-run coherence, head homogeneity at event vs ordinary chunks."""
    rows = []
    for setting in dict.fromkeys(r.setting for r in runs):
        group = [r for r in runs if r.setting == setting]
        row: dict[str, Any] = {"setting": setting, "runs": len(group), "frames": sum(r.frames for r in group),
                               "events": sum(len(r.events) for r in group)}
        for base, column in (("sink_pull_period", "pull_period"), ("sink_pull_amplitude", "pull_amplitude"),
                             ("sink_pull_r2", "pull_r2")):
            row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_n"] = \
                mean_std([metric_value(r.summary, base) for r in group])
        curves = [r.curve for r in group if r.curve is not None]
        try:
            row["cross_run_coherence"] = cross_run_coherence(curves, start=group[0].settings.warmup,
                                                             trend=group[0].settings.trend)
        except ValueError as err:
            row["cross_run_coherence"] = unavailable(str(err))
        row.update(homogeneity_at_events(group))
        rows.append(row)
    return pd.DataFrame(rows)


def read_event_frames(run: RunData, wanted: set[int]) -> dict[int, np.ndarray]:
    """Frames ``wanted`` of the run's video.mp4 at the model's resolution (the mp4 is upscaled for viewing)."""
    size = int(run.cfg.model.image_size if run.cfg.model.name == "tiny" else run.cfg.model.size)
    found, index = {}, 0
    for chunk in open_video(run.run_dir / "video.mp4").chunks(64):
        for frame in chunk:
            if index in wanted:
                found[index] = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            index += 1
        if index > max(wanted):
            break
    return found


def event_strips(runs: Sequence[RunData], events: pd.DataFrame, per_setting: int, out: Path) -> list[Path]:
    """Strips of the sink frames, then frames event-3 .. event+3, for the deepest events of each setting."""
    written = []
    if events.empty or per_setting < 1:
        return written
    by_dir = {str(r.run_dir): r for r in runs}
    for setting, part in events.groupby("setting", sort=False):
        for _, event in part.sort_values("depth", ascending=False).head(per_setting).iterrows():
            run = by_dir[event["run"]]
            frame = int(event["frame"])
            around = [f for f in range(frame - STRIP_EVENT_CONTEXT, frame + STRIP_EVENT_CONTEXT + 1)
                      if 0 <= f < run.frames]
            order = run.sink_frames + around
            if not (run.run_dir / "video.mp4").is_file():
                print(f"skip strip of {run.run_dir} frame {frame}: no video.mp4")
                continue
            frames = read_event_frames(run, set(order))
            path = out / f"event_strip_{safe_name(setting)}_{safe_name(run.name)}_f{frame}.png"
            write_frame_strip(path, np.stack([frames[f] for f in order if f in frames]))
            written.append(path)
    return written


@styled
def sink_attention_figure(runs: Sequence[RunData]) -> Figure:
    """Per setting: mean sink attention per chunk against Δ, with both kernels (at the same chunks) overlaid."""
    settings = list(dict.fromkeys(r.setting for r in runs if len(r.chunks)))
    fig, axes = new_figure(ncols=max(1, len(settings)), size=(7.0 * max(1, len(settings)), 5.0))
    for ax, setting in zip(axes, settings):
        chunks = pd.concat([r.chunks for r in runs if r.setting == setting and len(r.chunks)], ignore_index=True)
        mean = chunks.groupby("delta").mean(numeric_only=True)
        ax.scatter(chunks["delta"], chunks["sink_attention"], s=6, color="0.6", alpha=0.5, label="chunks (runs)")
        ax.plot(mean.index, mean["sink_attention"], color="black", label="sink attention (mean over runs)")
        ax.set_xlabel("Δ = query − sink position (frames)")
        ax.set_ylabel("attention mass on sink frames")
        ax.set_title(setting, fontsize=12)
        twin = ax.twinx()
        for name, (color, label) in KERNEL_STYLE.items():
            if mean[f"kernel_{name}"].notna().any():
                twin.plot(mean.index, mean[f"kernel_{name}"], color=color, alpha=0.8, label=label)
        twin.set_ylabel("kernel")
        handles = ax.get_legend_handles_labels()
        twin_handles = twin.get_legend_handles_labels()
        ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=9, loc="upper right")
    if not settings:
        axes[0].text(0.5, 0.5, "no probed chunks with sink frames", ha="center", transform=axes[0].transAxes)
    return fig


def make_runs(args: argparse.Namespace) -> list[Path]:
    """Static-sink runs with a probe on every chunk, one per sigma x prompt x seed, under ``<out>/runs``.

    VBench quality and cycle metrics are switched off (this analysis reads neither; they dominate the cost);
    ``--set`` overrides come last and win."""
    made = []
    base = [checkpoint_override(args.checkpoint), "sink=static", "jitter=lol", "rope=none", "probe_every=1",
            "logger=none", "metrics.quality.enabled=false", "metrics.cycles.enabled=false",
            f"num_frames={args.frames}"]
    for sigma in args.sigmas:
        for prompt in args.prompts:
            for seed in args.seeds:
                cfg = compose_run_config([*base, f"jitter.sigma={sigma}", f"prompt={prompt}", f"seed={seed}",
                                          *args.set])
                out = Path(args.out) / "runs" / f"sigma{sigma:g}" / f"{prompt}_seed{seed}"
                run(cfg, out, progress=False)
                made.append(out)
    return made


def setting_label(columns: Sequence[str], values: Sequence[Any]) -> str:
    """``jitter.sigma=0.8, ...`` from the config columns that distinguish settings (results.setting_columns)."""
    return ", ".join(f"{c.removeprefix('cfg.')}={v}" for c, v in zip(columns, values)) or "all runs"


def collapse_run_dirs(args: argparse.Namespace) -> list[Path]:
    """Runs made with ``--make``, plus those under ``--runs``; neither given: the latest ``phase`` sweep."""
    run_dirs = make_runs(args) if args.make else []
    if args.runs:
        run_dirs += find_runs(args.runs)
    elif not args.make:
        sweep = latest_sweep(RESULTS, "phase")
        if sweep is None:
            raise FileNotFoundError(f"no --runs given and no sweep under {RESULTS / 'runs' / 'phase'}; run "
                                    "`python run.py +experiment=phase`, pass --runs DIR, or --make")
        run_dirs += find_runs([sweep])
    if not run_dirs:
        raise FileNotFoundError(f"no run directories (with summary.json) under {args.runs}")
    return run_dirs


def collapse(args: argparse.Namespace) -> list[Path]:
    """The ``collapse`` subcommand; returns the files written."""
    table = load_runs(collapse_run_dirs(args))
    unfinished = ~table["completed"].astype(bool)
    if unfinished.any():
        print(f"left out {int(unfinished.sum())} interrupted runs: {table.loc[unfinished, 'run_dir'].tolist()}")
        table = table[~unfinished].reset_index(drop=True)
    if table.empty:
        raise ValueError("no completed runs to analyse")
    varying = setting_columns(table)
    labels = {str(d): setting_label(varying, values)
              for d, values in zip(table["run_dir"], table[varying].itertuples(index=False, name=None))}
    usage = UsageCache(args.usage_clips)
    runs = [load_run(Path(d), labels[str(d)], args.threshold, usage) for d in table["run_dir"]]
    tables = analyse_runs(runs, args.tolerance, args.min_prominence, args.attention_prominence)
    out = Path(args.out)
    written = [write_csv(t, out / f"{name}.csv") for name, t in tables.items()]
    fig = sink_attention_figure(runs)
    written += [p for p in save_figure(fig, out, "sink_attention_vs_kernels") if p.suffix == ".png"]
    written += event_strips(runs, tables["collapse_events"], args.strips, out)
    return written


# ==========================================================================================================
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python analysis/organism.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser, frames: int) -> None:
        q.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT),
                       help="tiny-model checkpoint, or `none` for random weights (default: %(default)s)")
        q.add_argument("--frames", type=int, default=frames, help="frames per video (default %(default)s)")
        q.add_argument("--prompts", nargs="+", default=["meadow", "ocean", "lava"])
        q.add_argument("--out", type=Path, default=DEFAULT_OUT)
        q.add_argument("--threads", type=int, help="torch CPU threads for this command (default: torch's)")
        q.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="extra run.py overrides for the generated videos")

    r = sub.add_parser("rollout", help="window-only rollouts vs the world: quality curves and strips")
    common(r, 2000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--bin", type=int, default=16, help="frames per bin of the curves")

    c = sub.add_parser("collapse", help="collapse events and sink attention vs the model's phase kernels")
    common(c, 1200)
    c.add_argument("--runs", nargs="+", type=Path, help="run directories or folders holding them (default: the "
                                                        "latest sweep of `python run.py +experiment=phase`)")
    c.add_argument("--make", action="store_true", help="first make static-sink runs (sigmas x prompts x seeds)")
    c.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    c.add_argument("--sigmas", nargs="+", type=float, default=[0.0, 0.8])
    c.add_argument("--threshold", type=float, help="event threshold on the normalized sink distance "
                                                   "(default: each run's own)")
    c.add_argument("--tolerance", type=int, default=3, help="frames between an event and a kernel maximum that "
                                                            "still count as a hit")
    c.add_argument("--min-prominence", type=float, default=0.05, help="prominence of a kernel maximum")
    c.add_argument("--attention-prominence", type=float, default=0.5,
                   help="prominence of a sink-attention peak, in standard deviations of the series")
    c.add_argument("--usage-clips", type=int, default=8, help="reference clips the pair usage is measured on")
    c.add_argument("--strips", type=int, default=3, help="frame strips of the deepest events per setting")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = {"rollout": rollout, "collapse": collapse}[args.command]
    try:
        with torch_threads(args.threads):
            written = command(args)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
