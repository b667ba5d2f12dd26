"""The results store: read run directories written by lolbench.runner into pandas, and aggregate them.

A run directory holds ``summary.json`` (config, provenance, scalar metrics, collapse events), ``curves.parquet``
(one row per frame), ``chunks.parquet`` (one row per generated chunk), ``series.parquet`` (per-chunk
series that do not cover every chunk, in long format: series, index, value, e.g. attention statistics of probed chunks), ``probes.npz`` (attention
probes) and ``video.mp4``. ``load_runs`` turns any set of run directories into one DataFrame, one row per run:

- run columns: ``run_dir completed frames frames_requested wall_seconds generation_fps seed prompt``;
- provenance: ``git_revision lolbench_version backbone checkpoint_sha256 backbones`` (``backbones``: the
  measurement backbones named in the metric keys, e.g. ``dis,pixel,rms``) and ``events`` (collapse events);
- ``cfg.<dotted key>`` for every leaf of the resolved run config, ``gen.<key>`` for generation statistics;
- every metric key verbatim (``sink_collapse_drop[rms]``), its value as stored: a number, a list, or the string
  ``"unavailable: <reason>"``. Aggregation reads numbers only; an unavailable value is never counted as 0.

Aggregation follows LoL: within one setting and seed, reduce over prompts (Sink-Collapse Max = worst prompt's
distance drop, Avg = mean drop, other metrics the mean); then report mean and sample standard deviation over
seeds. A (setting, seed) cell with a missing prompt value is left out (counted in ``missing``) rather than
averaged over fewer prompts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lolbench.atomic import atomic_write
from lolbench.stats import sink_collapse_summary
from lolbench.metrics.suite import backbone_names
from lolbench.probes import AttentionProbe, FrameKind

SUMMARY_FILE = "summary.json"
CURVES_FILE = "curves.parquet"
CHUNKS_FILE = "chunks.parquet"
PROBES_FILE = "probes.npz"
VIDEO_FILE = "video.mp4"
SERIES_FILE = "series.parquet"
REQUIRED_KEYS = ("completed", "frames", "seed", "prompt", "model", "environment", "config", "metrics")
RUN_COLUMNS = ("run_dir", "completed", "frames", "frames_requested", "wall_seconds", "generation_fps", "seed",
               "prompt")
CONFIG_PREFIX = "cfg."
GENERATION_PREFIX = "gen."
DEFAULT_DROP = "sink_collapse_drop[rms]"
_TAG = re.compile(r"\[([^\]]+)\]$")
_FRAME_INDEX = re.compile(r"_frame\[[^\]]+\]$")


# ----------------------------------------------------------------------------------------------------------
# reading one run


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's summary.json; a missing file or required key is an error naming the run directory."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no {SUMMARY_FILE}")
    summary = json.loads(path.read_text())
    missing = [key for key in REQUIRED_KEYS if key not in summary]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing} (a run summary needs {list(REQUIRED_KEYS)})")
    return summary


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"a.b.c": leaf}; lists become tuples so that config columns can be grouped on."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def run_record(summary: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """One DataFrame row for a run (columns: see the module docstring)."""
    model, env, metrics = summary["model"], summary["environment"], summary["metrics"]
    row: dict[str, Any] = {"run_dir": str(run_dir)}
    row.update({key: summary.get(key) for key in RUN_COLUMNS[1:]})
    row.update({
        "git_revision": env.get("git_revision"),
        "lolbench_version": env.get("lolbench"),
        "backbone": model.get("backbone"),
        "checkpoint_sha256": model.get("checkpoint_sha256"),
        "backbones": tuple(backbone_names(metrics)),
        "events": len(summary.get("events", [])),
    })
    row.update(flatten(summary["config"], CONFIG_PREFIX))
    row.update(flatten(summary.get("generation", {}), GENERATION_PREFIX))
    clash = sorted(set(metrics) & set(row))
    if clash:
        raise ValueError(f"{run_dir}: metric keys {clash} clash with run columns of the results table")
    row.update(metrics)
    return row


@dataclass
class RunTables:
    """The time series of one run: per frame, per chunk, and per-chunk series of probed chunks only."""

    frames: pd.DataFrame | None  # curves.parquet: column ``frame`` plus one column per curve
    chunks: pd.DataFrame | None  # chunks.parquet: ``chunk first_frame seconds`` plus per-chunk statistics
    series: dict[str, np.ndarray] = field(default_factory=dict)  # series.parquet, by name

    def indexed_series(self) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
        """Each series with the axis it lives on: name -> (axis, index, values), axis ``chunk``, ``frame`` or
        ``index`` (position only). Naming conventions of the metrics: ``head_*`` series belong to the chunks in
        ``head_chunk_index``; ``X[tag]`` belongs to the frames in ``X_frame[tag]`` when that series exists."""
        out = {}
        indices = {"head_chunk_index"} | {n for n in self.series if _FRAME_INDEX.search(n)}
        for name, values in self.series.items():
            if name in indices:
                continue
            frame_index = _TAG.sub(lambda m: f"_frame[{m.group(1)}]", name) if _TAG.search(name) else None
            if name.startswith("head_") and "head_chunk_index" in self.series:
                out[name] = ("chunk", self.series["head_chunk_index"], values)
            elif frame_index in self.series:
                out[name] = ("frame", self.series[frame_index], values)
            else:
                out[name] = ("index", np.arange(len(values)), values)
            if len(out[name][1]) != len(values):
                raise ValueError(f"series {name!r} has {len(values)} values but its {out[name][0]} index "
                                 f"has {len(out[name][1])}")
        return out


def load_tables(run_dir: str | Path) -> RunTables:
    """Read a run's curve files; a file the run did not write is None (or absent from ``series``)."""
    run_dir = Path(run_dir)

    def read(name: str) -> pd.DataFrame | None:
        path = run_dir / name
        return pd.read_parquet(path) if path.is_file() else None

    long = read(SERIES_FILE)
    series = {} if long is None else {
        str(name): group.sort_values("index")["value"].to_numpy() for name, group in long.groupby("series")
    }
    return RunTables(frames=read(CURVES_FILE), chunks=read(CHUNKS_FILE), series=series)


def write_series(path: str | Path, series: Mapping[str, np.ndarray]) -> None:
    """Write named 1-D series of different lengths into one long-format parquet file (atomically)."""
    table = pd.concat(
        [pd.DataFrame({"series": name, "index": np.arange(len(v)), "value": np.asarray(v, dtype=np.float64)})
         for name, v in series.items()],
        ignore_index=True,
    )
    atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))


@dataclass
class Probes:
    """Attention probes of one run, padded to a common number of key frames ``S`` (early chunks see fewer).

    Padding slots have ``kind == -1`` and NaN mass; the others hold a ``lolbench.probes.FrameKind``.
    """

    mass: np.ndarray  # [n, L, H, S] float
    frame_index: np.ndarray  # [n, S] absolute key-frame index
    kind: np.ndarray  # [n, S] FrameKind, -1 = padding
    chunk_index: np.ndarray  # [n] chunk each probe belongs to

    def __post_init__(self) -> None:
        n, _, _, s = self.mass.shape
        if self.frame_index.shape != (n, s) or self.kind.shape != (n, s) or self.chunk_index.shape != (n,):
            raise ValueError(f"probe arrays disagree: mass {self.mass.shape}, frame_index {self.frame_index.shape}, "
                             f"kind {self.kind.shape}, chunk_index {self.chunk_index.shape}")

    def mass_on(self, *kinds: FrameKind) -> np.ndarray:
        """Attention mass on key frames of the given kinds, per probe, layer and head: [n, L, H]."""
        selected = np.isin(self.kind, [int(k) for k in kinds])  # [n, S]
        return np.where(selected[:, None, None, :], self.mass, 0.0).sum(axis=3)

    def context_frames(self) -> np.ndarray:
        """[n] real (unpadded) key frames of each probe."""
        return (self.kind >= 0).sum(axis=1)


def write_probes(path: str | Path, probes: Sequence[AttentionProbe]) -> None:
    """Write a run's probes as probes.npz (atomically): mass [n, L, H, S], frame_index [n, S], kind [n, S],
    chunk_index [n]; padded with NaN / -1 where an early chunk had fewer key frames."""
    n = len(probes)
    L, H = probes[0].mass.shape[:2]
    S = max(len(p.frame_index) for p in probes)
    mass = np.full((n, L, H, S), np.nan, dtype=np.float32)
    frame_index = np.full((n, S), -1, dtype=np.int64)
    kind = np.full((n, S), -1, dtype=np.int8)
    for i, p in enumerate(probes):
        s = len(p.frame_index)
        mass[i, :, :, :s], frame_index[i, :s], kind[i, :s] = p.mass, p.frame_index, p.kind
    chunk_index = np.array([p.chunk_index for p in probes], dtype=np.int64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez_compressed(f, mass=mass, frame_index=frame_index, kind=kind, chunk_index=chunk_index)

    atomic_write(path, write)


def load_probes(run_dir: str | Path) -> Probes | None:
    """The run's probes.npz, or None when the run recorded no attention probes."""
    path = Path(run_dir) / PROBES_FILE
    if not path.is_file():
        return None
    with np.load(path) as data:
        return Probes(mass=data["mass"], frame_index=data["frame_index"], kind=data["kind"],
                      chunk_index=data["chunk_index"])


# ----------------------------------------------------------------------------------------------------------
# many runs


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories at or below ``paths`` (directories holding summary.json), sorted, without duplicates."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"no such results path: {path}")
        if (path / SUMMARY_FILE).is_file():
            found.add(path)
        else:
            found.update(p.parent for p in path.rglob(SUMMARY_FILE))
    return sorted(found)


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per run found at or below ``paths``; an empty DataFrame (run columns only) when there is none."""
    rows = [run_record(read_summary(run_dir), run_dir) for run_dir in find_runs(paths)]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(RUN_COLUMNS))


def numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """A metric column as floats: numbers stay, ``"unavailable: ..."`` and other non-numbers become NaN."""
    if column not in frame.columns:
        raise KeyError(f"no column {column!r} in the results table (columns: {sorted(map(str, frame.columns))})")
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """Config columns that vary between runs and are not the seed or prompt (or copies of them, like a
    ``jitter.seed`` that follows ``${seed}``): what distinguishes one setting from another."""
    replicates = [frame[c].astype(str) for c in ("seed", "prompt") if c in frame.columns]
    out = []
    for column in (c for c in frame.columns if str(c).startswith(CONFIG_PREFIX)):
        values = frame[column].astype(str)
        if column in (f"{CONFIG_PREFIX}seed", f"{CONFIG_PREFIX}prompt") or values.nunique() < 2:
            continue
        if any(values.equals(r) for r in replicates):
            continue
        out.append(column)
    return out


Reducer = Callable[[np.ndarray], float]


def _over_prompts_then_seeds(frame: pd.DataFrame, reducers: Mapping[str, tuple[str, Reducer]],
                             by: Sequence[str] | None) -> pd.DataFrame:
    """Per setting and seed reduce each column over prompts, then mean/std/count over seeds.

    ``reducers``: output name -> (column, function of that column's values over the prompts of one seed).
    """
    by = list(setting_columns(frame) if by is None else by)
    missing_columns = [c for c in [*by, "seed", "prompt"] if c not in frame.columns]
    if missing_columns:
        raise KeyError(f"results table has no columns {missing_columns}")
    if frame.empty:
        raise ValueError("cannot aggregate an empty results table")
    work = frame[by + ["seed", "prompt"]].copy()
    repeated = work.astype(str).duplicated(keep=False).to_numpy()
    if repeated.any():
        where = frame["run_dir"][repeated].tolist() if "run_dir" in frame.columns else work[repeated].index.tolist()
        raise ValueError(f"runs repeat a (setting, seed, prompt) and would be counted twice: {where}; "
                         f"load one sweep per experiment or pass the columns that tell them apart as `by`")
    for name, (column, _) in reducers.items():
        work[name] = numeric(frame, column)
    per_seed_rows = []
    for key, cell in work.groupby(by + ["seed"], sort=False, dropna=False):
        row = dict(zip(by + ["seed"], key))
        row["prompts"] = cell["prompt"].nunique()
        for name, (_, reduce) in reducers.items():
            column = cell[name].to_numpy()
            missing = int(np.isnan(column).sum())
            row[name] = np.nan if missing else reduce(column)
            row[f"{name}__missing"] = missing
        per_seed_rows.append(row)
    per_seed = pd.DataFrame(per_seed_rows)
    groups = per_seed.groupby(by, sort=False, dropna=False) if by else [((), per_seed)]
    out_rows = []
    for key, cell in groups:
        row = dict(zip(by, key))
        row["n_prompts"] = int(cell["prompts"].max())
        for name in reducers:
            valid = cell[name].dropna()
            row[f"{name}_mean"] = float(valid.mean()) if len(valid) else np.nan
            row[f"{name}_std"] = float(valid.std(ddof=1)) if len(valid) > 1 else np.nan
            row[f"{name}_n"] = int(len(valid))
            row[f"{name}_missing"] = int(cell[f"{name}__missing"].sum())
        out_rows.append(row)
    out = pd.DataFrame(out_rows)
    try:
        return out.sort_values(by, ignore_index=True) if by else out
    except TypeError:  # a setting column mixing types (e.g. None and numbers) keeps the order of appearance
        return out


def seed_statistics(frame: pd.DataFrame, metrics: Sequence[str], by: Sequence[str] | None = None) -> pd.DataFrame:
    """Per setting: each metric averaged over prompts within a seed, then ``<metric>_mean``, ``_std`` (sample
    standard deviation), ``_n`` (seeds used) and ``_missing`` (unavailable values) over seeds.

    ``by``: the setting columns (default: ``setting_columns(frame)``).
    """
    return _over_prompts_then_seeds(frame, {m: (m, lambda v: float(np.mean(v))) for m in metrics}, by)


def sink_collapse_table(frame: pd.DataFrame, drop: str = DEFAULT_DROP, by: Sequence[str] | None = None
                        ) -> pd.DataFrame:
    """Per setting: Sink-Collapse Max and Avg (LoL) over prompts within a seed, then mean ± std over seeds.

    ``drop``: the per-video distance-drop metric (in %). Columns ``sc_max_mean sc_max_std sc_max_n
    sc_max_missing`` and the same for ``sc_avg``, plus ``n_prompts``.
    """
    reducers = {
        "sc_max": (drop, lambda v: sink_collapse_summary(v)["sink_collapse_max"]),
        "sc_avg": (drop, lambda v: sink_collapse_summary(v)["sink_collapse_avg"]),
    }
    return _over_prompts_then_seeds(frame, reducers, by)
