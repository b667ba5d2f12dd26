"""Regenerate every figure and table from stored results: ``python analysis/make_figures.py``.

Reads the latest sweep of each experiment under ``<results>/runs/`` (``python run.py +experiment=NAME``
writes them; see the README), generates nothing, and writes PNG + PDF figures and CSV + Markdown
tables to ``<results>/figures/``. ``--rerun [NAME ...]`` first runs those experiments (all when no name is
given) and then makes the figures. An experiment without stored runs is reported and skipped; the model-free
figures need no runs at all.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable for `analysis`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from analysis.data import (
    EXPERIMENTS, ROPE_METHOD_LABELS, RUNS_DIR, SINK_ORDER, ExperimentRuns, load_experiment, metric_key,
    rope_method_label,
)
from analysis.figures import (
    Band, Line, Point, attention_maps_figure, band_panels, bar_panels, collapse_index_figure, errorbar_panels,
    kernel_on_deltas, phase_kernel_figure, plural_runs, sink_distance_figure, tradeoff_figure,
)
from analysis.style import mean_std, save_figure, write_table
from lolbench.phase import PRESETS
from lolbench.probes import FrameKind
from lolbench.results import load_probes, load_tables, numeric, read_summary, seed_statistics, sink_collapse_table
from lolbench.rope import RopeSpec, jitter_spec_from_config, rope_spec_from_config

ROOT = Path(__file__).resolve().parents[1]
WAN = "wan2.1-1.3b"
WAN_NAME = "Wan2.1-T2V-1.3B"
WAN_MAX_DELTA = 600  # latent frames; a 100 s video at 16 fps is ~400 latent frames
WAN_SIGMA = 0.8
BASES = (2500.0, 5000.0, 10000.0, 20000.0, 40000.0)
RIFLEX_KS = (2, 3, 4, 5, 6)  # Wan's components around its 21-latent-frame training length
TABLE_METRICS = ("dynamic_degree", "quality_score", "sink_pull_amplitude", "head_consensus")
DISPLAY = {  # metric base -> (table / axis heading, scale shown)
    "sc_max": ("SC-Max (%)", 1.0), "sc_avg": ("SC-Avg (%)", 1.0), "dynamic_degree": ("Dynamic Degree (%)", 100.0),
    "quality_score": ("Quality Score (%)", 100.0), "sink_pull_amplitude": ("Sink pull amplitude", 1.0),
    "head_consensus": ("Head consensus", 1.0),
}


class Skip(Exception):
    """An output that cannot be made honestly from the stored results; the message says why."""


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# statistics shared by the experiments


def metric_heading(base: str, key: str) -> str:
    """Display name of a metric with the backbone tag its key carries: ``Dynamic Degree (%) [dis]``."""
    return f"{DISPLAY[base][0]} {key[len(base):]}".strip()


def setting_stats(runs: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """SC-Max/SC-Avg and the table metrics (mean ± std over seeds) per setting, and base -> column key."""
    try:
        keys = {"sc": metric_key(runs, "sink_collapse_drop")}
    except KeyError as err:
        raise Skip(f"the runs have no sink-collapse drop to compute SC-Max / SC-Avg from ({err})") from None
    for base in TABLE_METRICS:
        try:
            keys[base] = metric_key(runs, base)
        except KeyError:
            continue  # metric not computed in these runs (e.g. quality disabled): no column for it
    stats = sink_collapse_table(runs, drop=keys["sc"], by=by)
    metrics = [keys[b] for b in TABLE_METRICS if b in keys]
    if metrics:
        stats = stats.merge(seed_statistics(runs, metrics, by).drop(columns="n_prompts"), on=by)
    return stats, keys


def stat_point(stats: pd.Series, base: str, key: str, label: str) -> Point:
    scale = DISPLAY[base][1]
    return Point(label, stats[f"{key}_mean"] * scale, stats[f"{key}_std"] * scale)


def stat_line(stats: pd.DataFrame, x: str, base: str, key: str, label: str) -> Line:
    scale = DISPLAY[base][1]
    return Line(label, stats[x].to_numpy(float), stats[f"{key}_mean"].to_numpy(float) * scale,
                stats[f"{key}_std"].to_numpy(float) * scale)


def write_stats_table(stats: pd.DataFrame, keys: dict[str, str], labels: Sequence[str], heading: str, out: Path,
                      name: str) -> list[Path]:
    """CSV with every number; Markdown with one "mean ± std" cell per metric and the run counts."""
    shown = pd.DataFrame({heading: list(labels)})
    columns = [("sc_max", "sc_max"), ("sc_avg", "sc_avg")] + [(b, keys[b]) for b in TABLE_METRICS if b in keys]
    for base, key in columns:
        scale = DISPLAY[base][1]
        shown[metric_heading(base, key)] = [mean_std(r[f"{key}_mean"] * scale, r[f"{key}_std"] * scale,
                                                     int(r[f"{key}_n"])) for _, r in stats.iterrows()]
    shown["seeds × prompts"] = [f"{int(r['sc_max_n'])} × {int(r['n_prompts'])}" for _, r in stats.iterrows()]
    numbers = stats.copy()
    numbers.insert(0, heading, list(labels))
    return write_table(numbers, shown, out, name)


def sink_curve(run_dir: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(column, frame, normalized sink distance) of a run; Skip when the run has no normalized curve."""
    frames = load_tables(run_dir).frames
    names = [] if frames is None else sorted(c for c in frames.columns if str(c).startswith("sink_distance["))
    if not names:
        raise Skip(f"run {run_dir} has no normalized sink-distance curve in curves.parquet")
    return names[0], frames["frame"].to_numpy(), frames[names[0]].to_numpy(float)


def describe(exp: ExperimentRuns) -> str:
    return f"{plural_runs(len(exp.runs))}, sweep {exp.sweep_dir.name}"


# ----------------------------------------------------------------------------------------------------------
# one function per experiment (plus the model-free figures)


def model_free(out: Path) -> list[Path]:
    """C(Δ) of Wan2.1-T2V-1.3B with and without jitter, and its maxima under other bases / RIFLEx components."""
    wan = RopeSpec(**PRESETS[WAN])
    written = save_figure(phase_kernel_figure(wan, WAN_SIGMA, WAN_MAX_DELTA, WAN_NAME), out,
                          "phase_kernel_wan2.1_t2v_1.3b")
    variants = [(f"θ0={b:g}", RopeSpec(**{**PRESETS[WAN], "theta": b})) for b in BASES]
    variants += [(f"RIFLEx k={k}", RopeSpec(**PRESETS[WAN], method="riflex", riflex_k=k,
                                            target_frames=WAN_MAX_DELTA)) for k in RIFLEX_KS]
    written += save_figure(collapse_index_figure(variants, WAN_MAX_DELTA, WAN_NAME), out,
                           "collapse_index_bases_riflex_wan2.1_t2v_1.3b")
    return written


def ablation(exp: ExperimentRuns, out: Path, column: str, xlabel: str, name: str) -> list[Path]:
    """Collapse (SC-Max, SC-Avg) and motion/quality against one swept setting, mean ± std over seeds."""
    stats, keys = setting_stats(exp.runs, [column])
    stats = stats.sort_values(column, ignore_index=True)
    collapse = [stat_line(stats, column, b, b, metric_heading(b, b)) for b in ("sc_max", "sc_avg")]
    motion = [stat_line(stats, column, b, keys[b], metric_heading(b, keys[b]))
              for b in ("dynamic_degree", "quality_score") if b in keys]
    panels = [("sink collapse (%)", collapse)]
    if motion:
        panels.append(("motion and quality (%)", motion))
    title = f"Ablation of the {xlabel}: mean ± std over seeds\n({describe(exp)})"
    written = save_figure(errorbar_panels(panels, xlabel, title), out, name)
    labels = [f"{v:g}" for v in stats[column]]
    return written + write_stats_table(stats, keys, labels, xlabel, out, name)


def sigma_outputs(exp: ExperimentRuns, out: Path) -> list[Path]:
    return ablation(exp, out, "cfg.jitter.sigma", "jitter strength σ", "ablation_sigma")


def heads_outputs(exp: ExperimentRuns, out: Path) -> list[Path]:
    return ablation(exp, out, "cfg.jitter.head_fraction", "fraction of heads jittered", "ablation_head_fraction")


def rope_methods_stats(exp: ExperimentRuns) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Per-method statistics in LoL Table 1 row order (plain RoPE, PI, NTK, YaRN, RIFLEx, then jittered rows)."""
    stats, keys = setting_stats(exp.runs, ["cfg.rope.name", "cfg.jitter.sigma"])
    methods = list(ROPE_METHOD_LABELS)
    order = sorted(range(len(stats)), key=lambda i: (stats["cfg.jitter.sigma"][i] > 0,
                                                     methods.index(stats["cfg.rope.name"][i])))
    stats = stats.iloc[order].reset_index(drop=True)
    labels = [rope_method_label(r, s) for r, s in zip(stats["cfg.rope.name"], stats["cfg.jitter.sigma"])]
    return stats, keys, labels


def rope_methods_table(exp: ExperimentRuns, out: Path) -> list[Path]:
    stats, keys, labels = rope_methods_stats(exp)
    return write_stats_table(stats, keys, labels, "method", out, "rope_methods_table")


def rope_methods_tradeoff(exp: ExperimentRuns, out: Path) -> list[Path]:
    stats, keys, labels = rope_methods_stats(exp)
    if "dynamic_degree" not in keys:
        raise Skip("the runs have no dynamic_degree metric (metrics.dynamic disabled?)")
    rows = list(stats.iterrows())
    x = [stat_point(r, "sc_avg", "sc_avg", label) for label, (_, r) in zip(labels, rows)]
    y = [stat_point(r, "dynamic_degree", keys["dynamic_degree"], label) for label, (_, r) in zip(labels, rows)]
    fig = tradeoff_figure(labels, x, y, "SC-Avg (%, lower = less collapse)",
                          metric_heading("dynamic_degree", keys["dynamic_degree"]),
                          f"RoPE methods: collapse read with motion, mean ± std over seeds\n({describe(exp)})")
    return save_figure(fig, out, "rope_methods_collapse_vs_motion")


def sinks_stats(exp: ExperimentRuns) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    stats, keys = setting_stats(exp.runs, ["cfg.sink.name"])
    rank = {name: i for i, name in enumerate(SINK_ORDER)}
    stats = stats.iloc[sorted(range(len(stats)), key=lambda i: rank.get(stats["cfg.sink.name"][i], len(rank)))]
    stats = stats.reset_index(drop=True)
    return stats, keys, list(stats["cfg.sink.name"])


def sinks_table(exp: ExperimentRuns, out: Path) -> list[Path]:
    stats, keys, labels = sinks_stats(exp)
    return write_stats_table(stats, keys, labels, "sink", out, "sinks_table")


def sinks_motion_quality(exp: ExperimentRuns, out: Path) -> list[Path]:
    stats, keys, labels = sinks_stats(exp)
    rows = [r for _, r in stats.iterrows()]
    panels = [(metric_heading(b, keys[b]), [stat_point(r, b, keys[b], label) for label, r in zip(labels, rows)])
              for b in ("dynamic_degree", "quality_score") if b in keys]
    panels.append(("SC-Avg (%)", [stat_point(r, "sc_avg", "sc_avg", label) for label, r in zip(labels, rows)]))
    fig = bar_panels(labels, panels, f"Sink strategies: motion, quality and collapse, mean ± std over seeds\n"
                                     f"({describe(exp)})")
    return save_figure(fig, out, "sinks_motion_quality")


def chunk_band(label: str, run_dirs: Sequence[str], column: str) -> Band | None:
    """Band over runs of a chunks.parquet column against each chunk's first frame (NaN rows dropped)."""
    curves = []
    for run_dir in run_dirs:
        chunks = load_tables(run_dir).chunks
        if chunks is None or column not in chunks.columns:
            continue
        kept = chunks[["first_frame", column]].dropna()
        curves.append((kept["first_frame"].to_numpy(), kept[column].to_numpy(float)))
    return Band.of(label, curves) if curves else None


def dysink_gate_over_time(exp: ExperimentRuns, out: Path) -> list[Path]:
    runs = exp.runs
    dysink = list(runs.loc[runs["cfg.sink.name"] == "dysink", "run_dir"])
    if not dysink:
        raise Skip("no dysink runs in the sweep")
    gate = [b for b in (chunk_band("fraction of retrieved entries gated", dysink, "gate_fraction"),
                        chunk_band("mean head consensus ρ of tested entries", dysink, "gate_consensus_mean"))
            if b is not None]
    if not gate:
        raise Skip("the dysink runs' chunks.parquet has no gate_fraction / gate_consensus_mean columns")
    panels = [("DySink anomaly gate (fraction)", gate)]
    attention = [b for name in ("static", "dysink") if (b := chunk_band(
        name, list(runs.loc[runs["cfg.sink.name"] == name, "run_dir"]), "sink_mass_mean")) is not None]
    if attention:
        panels.append(("attention mass on sink / retrieved frames", attention))
    fig = band_panels(panels, "frame index at chunk start (frames)",
                      f"DySink vs static over time: mean ± std over runs\n({describe(exp)})")
    return save_figure(fig, out, "dysink_gate_over_time")


def run_config(run_dir: str) -> dict:
    return read_summary(run_dir)["config"]


def phase_kernel(run_dirs: Sequence[str], max_frame: int) -> tuple[np.ndarray, np.ndarray] | None:
    """C(Δ) for the runs' RoPE (head-averaged, averaged over the runs' jitter draws), Δ = frame index."""
    configs = [run_config(d) for d in run_dirs]
    try:
        spec = rope_spec_from_config(configs[0]["model"], configs[0]["rope"])
        jitters = [jitter_spec_from_config(c["jitter"]) for c in configs]
    except (KeyError, ValueError):
        return None  # a model without RoPE tables (e.g. model=world): no kernel to overlay
    deltas = np.arange(max_frame + 1, dtype=np.float64)
    return deltas, kernel_on_deltas(spec, deltas, jitters)


def absolute_runs(exp: ExperimentRuns) -> pd.DataFrame:
    runs = exp.runs[exp.runs["cfg.rope.positions"] == "absolute"]
    if runs.empty:
        raise Skip("no runs with rope.positions=absolute (Δ = frame index needs absolute positions)")
    return runs


def phase_sink_distance(exp: ExperimentRuns, out: Path) -> list[Path]:
    runs = absolute_runs(exp)
    events_key = metric_key(runs, "sink_collapse_event_frames")
    written = []
    for sigma, group in runs.groupby("cfg.jitter.sigma", sort=True):
        curves, events, metric = [], [], ""
        for _, row in group.iterrows():
            metric, x, y = sink_curve(row["run_dir"])
            curves.append((f"{row['prompt']} seed {row['seed']}", x, y))
            if isinstance(row[events_key], (list, tuple)):
                events += [int(f) for f in row[events_key]]
        kernel = phase_kernel(list(group["run_dir"]), max(int(x.max()) for _, x, _ in curves))
        note = "" if kernel is not None else " (no RoPE kernel: model without RoPE tables)"
        title = f"Sink distance vs frame, jitter σ={sigma:g}, {plural_runs(len(curves))}{note}"
        fig = sink_distance_figure(curves, sorted(events), kernel, metric, title)
        written += save_figure(fig, out, f"sink_distance_vs_frame_sigma{sigma:g}")
    return written


def phase_attention_maps(exp: ExperimentRuns, out: Path) -> list[Path]:
    runs = absolute_runs(exp)
    runs = runs[runs["cfg.jitter.sigma"] == runs["cfg.jitter.sigma"].min()]
    try:
        drop = numeric(runs, metric_key(runs, "sink_collapse_drop"))
    except KeyError as err:
        raise Skip(f"the runs have no sink-collapse drop to pick the deepest collapse by ({err})") from None
    for index in drop.sort_values(ascending=False, na_position="last").index:  # deepest collapse with probes
        probes = load_probes(runs.loc[index, "run_dir"])
        if probes is not None:
            break
    else:
        raise Skip("no run of the lowest σ recorded attention probes (probes.npz); set probe_every > 0")
    sink_mass = probes.mass_on(FrameKind.SINK, FrameKind.RETRIEVED).mean(axis=(1, 2))  # [n]
    context = probes.context_frames()
    full = np.flatnonzero(context == context.max())  # early chunks with a short context are no comparison
    if len(full) < 2:
        raise Skip(f"{runs.loc[index, 'run_dir']}: fewer than two probed chunks with a full context")
    collapse = int(full[np.argmax(sink_mass[full])])
    others = full[full != collapse]
    ordinary = int(others[np.argmin(np.abs(sink_mass[others] - np.median(sink_mass[full])))])
    row = runs.loc[index]
    title = (f"Per-head attention, {row['prompt']} seed {row['seed']} (σ={row['cfg.jitter.sigma']:g}): "
             f"median vs highest sink attention")
    return save_figure(attention_maps_figure(probes, ordinary, collapse, title), out,
                       "attention_maps_ordinary_vs_collapse")


def positions_label(positions: str, sigma: float) -> str:
    return f"{positions}, σ={sigma:g}"


def positions_sink_distance(exp: ExperimentRuns, out: Path) -> list[Path]:
    bands = []
    for (positions, sigma), group in exp.runs.groupby(["cfg.rope.positions", "cfg.jitter.sigma"], sort=True):
        curves = [sink_curve(d)[1:] for d in group["run_dir"]]
        bands.append(Band.of(positions_label(positions, sigma), curves))
    metric = sink_curve(exp.runs["run_dir"].iloc[0])[0]
    fig = band_panels([(f"{metric} (1 = usual distance)", bands)], "frame index (frames)",
                      f"RoPE positions: absolute vs rolling, mean ± std over runs\n({describe(exp)})")
    return save_figure(fig, out, "positions_sink_distance")


def positions_table(exp: ExperimentRuns, out: Path) -> list[Path]:
    by = ["cfg.rope.positions", "cfg.jitter.sigma"]
    stats, keys = setting_stats(exp.runs, by)
    stats = stats.sort_values(by, ignore_index=True)
    labels = [positions_label(p, s) for p, s in zip(stats[by[0]], stats[by[1]])]
    return write_stats_table(stats, keys, labels, "positions", out, "positions_table")


def world_table(exp: ExperimentRuns, out: Path) -> list[Path]:
    """The chance level: the procedural world through the same metrics (one row, no setting varies)."""
    stats, keys = setting_stats(exp.runs, ["cfg.model.name"])
    return write_stats_table(stats, keys, list(stats["cfg.model.name"]), "source", out, "world_reference")


OUTPUTS: dict[str, tuple[Callable[[ExperimentRuns, Path], list[Path]], ...]] = {
    "sigma": (sigma_outputs,),
    "heads": (heads_outputs,),
    "rope_methods": (rope_methods_table, rope_methods_tradeoff),
    "sinks": (sinks_table, sinks_motion_quality, dysink_gate_over_time),
    "phase": (phase_sink_distance, phase_attention_maps),
    "positions": (positions_sink_distance, positions_table),
    "world": (world_table,),
}


# ----------------------------------------------------------------------------------------------------------
# entry points


def make_all(results: Path, out: Path) -> Report:
    """Every figure and table that the stored results allow; the report says what was skipped and why."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report(written=model_free(out))
    for name in EXPERIMENTS:
        exp = load_experiment(results, name)
        if exp is None:
            report.skipped[name] = (f"no runs under {results / RUNS_DIR / name}; make them with "
                                    f"`python run.py +experiment={name}` or --rerun {name}")
            continue
        if exp.incomplete:
            report.skipped[f"{name} (incomplete runs)"] = f"{exp.incomplete} interrupted runs left out"
        for output in OUTPUTS[name]:
            try:
                report.written += output(exp, out)
            except Skip as reason:
                report.skipped[f"{name}: {output.__name__}"] = str(reason)
    return report


def rerun(names: Sequence[str], results: Path, overrides: Sequence[str]) -> None:
    """Run each experiment's sweep into ``<results>/runs/<name>/<now>`` (blocking; stops at the first failure)."""
    for name in names:
        sweep = results.resolve() / RUNS_DIR / name / time.strftime("%Y-%m-%d_%H-%M-%S")
        command = [sys.executable, str(ROOT / "run.py"), f"+experiment={name}", f"hydra.sweep.dir={sweep}",
                   *overrides]
        print("+ " + " ".join(command), flush=True)
        subprocess.run(command, cwd=ROOT, check=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python analysis/make_figures.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    p.add_argument("--out", type=Path, help="output folder (default: <results>/figures)")
    p.add_argument("--rerun", nargs="*", metavar="NAME", choices=EXPERIMENTS,
                   help=f"re-run these experiments first (no name: all of {', '.join(EXPERIMENTS)})")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra Hydra override for --rerun, e.g. hydra/launcher=joblib (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.rerun is not None:
        rerun(args.rerun or EXPERIMENTS, args.results, args.override)
    report = make_all(args.results, args.out or args.results / "figures")
    for path in report.written:
        print(f"wrote {path}")
    for what, reason in report.skipped.items():
        print(f"skipped {what}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
