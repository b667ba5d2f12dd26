"""Figure builders: data in, one matplotlib Figure out. Loading and saving are make_figures.py's job.

Every builder labels its axes with units, has a legend where there is more than one line, and states in its
title what was measured and over what (runs, seeds), so a figure read alone cannot be mistaken for another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from analysis.style import new_figure, styled
from lolbench.phase import frame_frequencies, head_averaged_kernel, local_maxima
from lolbench.probes import FrameKind
from lolbench.results import Probes
from lolbench.rope import JitterSpec, RopeSpec, build_tables

MIN_PROMINENCE = 0.02


def plural_runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


@dataclass
class Band:
    """A line with a spread: mean and standard deviation of several runs' curves (cut to the shortest)."""

    label: str
    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    runs: int

    @classmethod
    def of(cls, label: str, curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> Band:
        """``curves``: (x, y) per run, all on the same x grid (runs of one sweep)."""
        if not curves:
            raise ValueError(f"band {label!r} needs at least one curve")
        length = min(len(y) for _, y in curves)
        ys = np.stack([np.asarray(y[:length], dtype=float) for _, y in curves])  # [runs, length]
        return cls(label, np.asarray(curves[0][0][:length]), np.nanmean(ys, axis=0), np.nanstd(ys, axis=0),
                   len(curves))


@dataclass
class Point:
    """One setting's mean ± std over seeds."""

    label: str
    mean: float
    std: float


@dataclass
class Line:
    """Mean ± std over seeds of one metric at each value of a swept setting."""

    label: str
    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def kernel_on_deltas(spec: RopeSpec, deltas: np.ndarray, jitters: Sequence[JitterSpec] = (JitterSpec(),)
                     ) -> np.ndarray:
    """Head-averaged C(Δ), averaged over the given jitter draws (one per seed): [N]."""
    kernels = [head_averaged_kernel(frame_frequencies(build_tables(spec, j)), deltas) for j in jitters]
    return np.mean(kernels, axis=0)


def _mark_maxima(ax, deltas: np.ndarray, kernel: np.ndarray, top: int, color: str, label: str) -> None:
    maxima = local_maxima(kernel, deltas, MIN_PROMINENCE)[:top]
    if maxima:
        ax.scatter([d for d, _, _ in maxima], [v for _, v, _ in maxima], s=60, color=color, marker="v",
                   zorder=5, label=label)


@styled
def phase_kernel_figure(spec: RopeSpec, sigma: float, max_delta: int, model_name: str, seeds: Sequence[int] = (0,),
                        top: int = 8) -> Figure:
    """Model-free C(Δ) of ``spec``: shared base (every head alike) vs head-averaged under jitter ``sigma``."""
    deltas = np.arange(max_delta + 1, dtype=np.float64)  # [N]
    plain = kernel_on_deltas(spec, deltas)
    jittered = kernel_on_deltas(spec, deltas, [JitterSpec(sigma=sigma, seed=s) for s in seeds])
    fig, (ax,) = new_figure()
    ax.plot(deltas, plain, color="tab:red", label="no jitter (all heads share θ0)")
    draws = "one draw" if len(seeds) == 1 else f"mean of {len(seeds)} draws"
    ax.plot(deltas, jittered, color="tab:blue", label=f"head-averaged, jitter σ={sigma:g} ({draws})")
    _mark_maxima(ax, deltas, plain, top, "tab:red", f"top {top} local maxima (no jitter)")
    _mark_maxima(ax, deltas, jittered, top, "tab:blue", f"top {top} local maxima (σ={sigma:g})")
    ax.set_xlabel("query–sink distance Δ (latent frames)")
    ax.set_ylabel("phase coherence C(Δ) (1 = all phases aligned)")
    ax.set_xlim(0, max_delta)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{model_name}: temporal RoPE phase coherence, {spec.num_heads} heads, "
                 f"{spec.resolved_time_dim // 2} temporal frequencies")
    ax.legend(loc="upper right")
    return fig


@styled
def collapse_index_figure(variants: Sequence[tuple[str, RopeSpec]], max_delta: int, model_name: str,
                          top: int = 5) -> Figure:
    """Model-free predicted collapse distances: the ``top`` most prominent C(Δ) maxima of each RoPE variant.

    Changing the global base or one RIFLEx component moves the maxima; it does not remove them (LoL Fig. 5).
    """
    deltas = np.arange(max_delta + 1, dtype=np.float64)  # [N]
    fig, (ax,) = new_figure()
    points = None
    for i, (_, spec) in enumerate(variants):
        maxima = local_maxima(kernel_on_deltas(spec, deltas), deltas, MIN_PROMINENCE)[:top]
        if maxima:
            points = ax.scatter([i] * len(maxima), [d for d, _, _ in maxima], c=[v for _, v, _ in maxima],
                                s=[40 + 400 * p for _, _, p in maxima], cmap="viridis", vmin=0, vmax=1,
                                edgecolors="black")
    if points is not None:
        fig.colorbar(points, ax=ax, label="C(Δ) at the maximum")
    ax.set_xticks(range(len(variants)), [label for label, _ in variants], rotation=30, ha="right")
    ax.set_xlabel("RoPE variant (global temporal base θ0, or RIFLEx on component k)")
    ax.set_ylabel("predicted collapse distance Δ (latent frames)")
    ax.set_ylim(0, max_delta)
    ax.set_title(f"{model_name}: the {top} most prominent C(Δ) maxima per RoPE variant\n"
                 "(model-free prediction; marker size: prominence)")
    return fig


@styled
def sink_distance_figure(runs: Sequence[tuple[str, np.ndarray, np.ndarray]], events: Sequence[int],
                         kernel: tuple[np.ndarray, np.ndarray] | None, metric: str, title: str,
                         top: int = 8) -> Figure:
    """Normalized sink distance per frame of several runs, with C(Δ) (Δ = frame index, absolute positions) on a
    second axis and its local maxima as dotted lines; collapse events as red marks on the frame axis."""
    fig, (ax,) = new_figure()
    for label, x, y in runs:
        ax.plot(x, y, linewidth=1.0, alpha=0.75, label=label)
    if events:
        ax.plot(events, np.zeros(len(events)), "|", color="tab:red", markersize=18, markeredgewidth=2,
                label="collapse events (all runs)")
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("frame index (frames)")
    ax.set_ylabel(f"{metric} (1 = usual distance)")
    ax.set_ylim(bottom=0)
    if kernel is not None:
        deltas, values = kernel
        twin = ax.twinx()
        twin.grid(False)
        twin.plot(deltas, values, color="black", linewidth=1.2, alpha=0.6, label="C(Δ), Δ = frame index")
        for d, _, _ in local_maxima(values, deltas, MIN_PROMINENCE)[:top]:
            ax.axvline(d, color="black", linestyle=":", linewidth=1.2)
        twin.set_ylabel("phase coherence C(Δ)")
        twin.set_ylim(0, 1.02)
        twin.legend(loc="lower right")
    ax.legend(loc="lower left", ncols=2)
    ax.set_title(title)
    return fig


@styled
def attention_maps_figure(probes: Probes, ordinary: int, collapse: int, title: str) -> Figure:
    """Per-head attention over key frames (rows: layer × head) for an ordinary chunk and a collapse chunk
    (``ordinary`` and ``collapse`` index the probes: the chunks with median and highest sink attention)."""
    fig, axes = new_figure(ncols=2, size=(12.0, 5.6))
    _, layers, heads, _ = probes.mass.shape
    vmax = float(np.nanmax(probes.mass[[ordinary, collapse]]))  # one colour scale for both panels
    image = None
    for ax, index, name in zip(axes, (ordinary, collapse), ("median", "highest")):
        slots = np.flatnonzero(probes.kind[index] >= 0)
        mass = probes.mass[index][:, :, slots].reshape(layers * heads, len(slots))  # [L*H, S]
        image = ax.imshow(mass, aspect="auto", cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        ax.grid(False)
        frames = probes.frame_index[index, slots]
        step = max(1, len(slots) // 8)
        ax.set_xticks(range(0, len(slots), step), [str(f) for f in frames[::step]])
        ax.set_yticks([layer * heads for layer in range(layers)], [f"layer {layer}" for layer in range(layers)])
        sink = np.isin(probes.kind[index, slots], [int(FrameKind.SINK), int(FrameKind.RETRIEVED)])
        if sink.any():
            ax.axvspan(np.flatnonzero(sink).min() - 0.5, np.flatnonzero(sink).max() + 0.5, ymin=0.98, ymax=1.0,
                       color="tab:cyan", clip_on=False)
        sink_mass = probes.mass_on(FrameKind.SINK, FrameKind.RETRIEVED)[index].mean()
        ax.set_xlabel("key frame (absolute frame index; cyan bar: sink)")
        ax.set_title(f"chunk {probes.chunk_index[index]}, {name} sink attention: mean {sink_mass:.2f}")
    axes[0].set_ylabel("head (grouped by layer)")
    fig.colorbar(image, ax=axes, label="attention mass (fraction of the head's total)")
    fig.suptitle(title)
    return fig


@styled
def errorbar_panels(panels: Sequence[tuple[str, Sequence[Line]]], xlabel: str, title: str) -> Figure:
    """Side-by-side panels of mean ± std (over seeds) against a swept setting; each panel (y label, lines)."""
    fig, axes = new_figure(ncols=len(panels))
    for ax, (ylabel, lines) in zip(axes, panels):
        for line in lines:
            ax.errorbar(line.x, line.mean, yerr=np.nan_to_num(line.std), marker="o", capsize=5, label=line.label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xticks(np.unique(np.concatenate([line.x for line in lines])))
        ax.legend()
    fig.suptitle(title)
    return fig


@styled
def bar_panels(categories: Sequence[str], panels: Sequence[tuple[str, Sequence[Point]]], title: str) -> Figure:
    """Side-by-side bar panels, one bar per category with a mean ± std (over seeds) error bar."""
    fig, axes = new_figure(ncols=len(panels))
    positions = np.arange(len(categories))
    for ax, (ylabel, points) in zip(axes, panels):
        ax.bar(positions, [p.mean for p in points], yerr=np.nan_to_num([p.std for p in points]), capsize=6,
               color=[f"C{i}" for i in range(len(points))])
        ax.set_xticks(positions, categories)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("sink strategy")
    fig.suptitle(title)
    return fig


@styled
def tradeoff_figure(labels: Sequence[str], x: Sequence[Point], y: Sequence[Point], xlabel: str, ylabel: str,
                    title: str) -> Figure:
    """One marker per setting at (x, y) with mean ± std error bars both ways: collapse read with motion."""
    fig, (ax,) = new_figure()
    for i, (label, px, py) in enumerate(zip(labels, x, y)):
        ax.errorbar(px.mean, py.mean, xerr=np.nan_to_num(px.std), yerr=np.nan_to_num(py.std), marker="o",
                    markersize=10, capsize=5, color=f"C{i}", label=label)
        ax.annotate(label, (px.mean, py.mean), xytext=(8, 8), textcoords="offset points", color=f"C{i}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.set_title(title)
    return fig


@styled
def band_panels(panels: Sequence[tuple[str, Sequence[Band]]], xlabel: str, title: str) -> Figure:
    """Side-by-side panels of curves over time: mean over runs with a ±1 std band."""
    fig, axes = new_figure(ncols=len(panels))
    for ax, (ylabel, bands) in zip(axes, panels):
        for band in bands:
            ax.plot(band.x, band.mean, label=f"{band.label} ({plural_runs(band.runs)})")
            ax.fill_between(band.x, band.mean - band.std, band.mean + band.std, alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="best")
    fig.suptitle(title)
    return fig
