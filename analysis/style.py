"""One look for every figure and table: slide-readable sizes, PNG + PDF side by side, CSV + Markdown tables."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from lolbench.atomic import atomic_write

RC = {  # readable on a slide: large text, thick lines
    "font.size": 14, "axes.titlesize": 15, "axes.labelsize": 14, "legend.fontsize": 12,
    "xtick.labelsize": 12, "ytick.labelsize": 12, "lines.linewidth": 2.0, "axes.grid": True,
    "grid.alpha": 0.3,
}
SIZE = (10.0, 5.6)  # inches, 16:9
DPI = 150
FORMATS = ("png", "pdf")
P = ParamSpec("P")


def styled(build: Callable[P, Figure]) -> Callable[P, Figure]:
    """Run a figure builder under the slide style (matplotlib reads rcParams when each artist is made)."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with matplotlib.rc_context(RC):
            return build(*args, **kwargs)

    return wrapper


def new_figure(ncols: int = 1, size: tuple[float, float] = SIZE) -> tuple[Figure, list]:
    """A figure with ``ncols`` axes side by side (object API: no pyplot global state, no display needed)."""
    fig = Figure(figsize=size, layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.pdf into ``out_dir``; returns the paths."""
    paths = []
    for fmt in FORMATS:
        path = Path(out_dir) / f"{name}.{fmt}"
        atomic_write(path, lambda tmp, f=fmt: fig.savefig(tmp, format=f, dpi=DPI))
        paths.append(path)
    return paths


def mean_std(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``12.34 ± 0.56`` (std over seeds); ``12.34 (n=1)`` when a std is undefined; ``n/a`` when nothing is known."""
    if n == 0 or not math.isfinite(mean):
        return "n/a"
    if n == 1 or not math.isfinite(std):
        return f"{mean:.{digits}f} (n={n})"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table of the cells as strings."""
    header = [str(c) for c in table.columns]
    rows = [[str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(numbers: pd.DataFrame, shown: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """``name``.csv with the raw numbers (means, stds, counts) and ``name``.md with the formatted cells."""
    csv, md = Path(out_dir) / f"{name}.csv", Path(out_dir) / f"{name}.md"
    atomic_write(csv, lambda tmp: numbers.to_csv(tmp, index=False))
    text = markdown(shown)
    atomic_write(md, lambda tmp: tmp.write_text(text))
    return [csv, md]
