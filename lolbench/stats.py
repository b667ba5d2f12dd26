"""Statistics over several videos or several metrics, each defined once.

The runner, ``python -m lolbench.eval``, ``lolbench.results`` and the analysis scripts all call these, so a
number with one name has one definition everywhere:

- Sink-Collapse Max / Avg (LoL): the largest / mean per-video sink-collapse drop over a set of videos.
- cross-run coherence: mean pairwise Pearson r of the runs' normalized sink-distance curves, each minus its
  moving median (RoPE-driven dips fall on the same frame for every seed and prompt; content drift does not).
- Pearson r with its guard: fewer than 3 finite pairs or a constant side is "unavailable: <reason>", never a
  number.
- co-occurrence of head homogeneity with dips, *not lagged*: a chunk's attention probe is taken while that chunk
  is generated, so the consensus of chunk c is compared with the pull toward the sink of chunk c's own frames.
- event matching: how many events fall within a tolerance of predicted frames, against what events at random
  frames would score.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lolbench.metrics.sink_distance import detrend_robust, trend_window

Number = float | str  # a value, or "unavailable: <reason>"


def unavailable(reason: str) -> str:
    return f"unavailable: {reason}"


def sink_collapse_summary(drops: Sequence[float]) -> dict[str, float]:
    """Sink-Collapse Max (worst video's drop) and Avg (mean drop) over a set of videos, in %."""
    if len(drops) == 0:
        raise ValueError("sink-collapse summary needs at least one video's sink-collapse drop")
    values = np.asarray(drops, dtype=np.float64)
    return {"sink_collapse_max": float(values.max()), "sink_collapse_avg": float(values.mean())}


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> Number:
    """Pearson r over the pairs where both values are finite; unavailable below 3 pairs or if a side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"pearson needs two series of one length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return unavailable(f"needs >= 3 finite pairs, got {int(ok.sum())}")
    if np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return unavailable(f"{'the first' if np.ptp(x[ok]) == 0 else 'the second'} series is constant over the "
                           f"{int(ok.sum())} pairs")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def cross_run_coherence(curves: Sequence[np.ndarray], start: int = 0, trend: int = 257) -> float:
    """Mean pairwise Pearson r of the detrended curves (after ``start``, cut to the shortest run).

    Detrending (``detrend_robust``; ``trend`` frames, fewer for short runs) matters: every run's distance rises
    away from the sink and then levels off, and that shared shape alone would correlate unrelated runs.
    """
    if len(curves) < 2:
        raise ValueError(f"cross-run coherence needs at least 2 curves, got {len(curves)}")
    length = min(len(c) for c in curves) - start
    window = trend_window(length, trend)
    if window < 3:
        raise ValueError(f"cross-run coherence needs at least 9 frames after frame {start}, shortest run has "
                         f"{length}")
    detrended = [detrend_robust(np.asarray(c[start: start + length]), window) for c in curves]
    for index, values in enumerate(detrended):
        if np.ptp(values) <= 1e-12:
            raise ValueError(f"curve {index} is flat after detrending; correlation is undefined")
    return float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in itertools.combinations(detrended, 2)]))


def homogeneity_dip_cooccurrence(chunk_series: Mapping[int, float], sink_curve: np.ndarray, chunk_frames: int,
                                 event_frames: Sequence[int] = (), start_frame: int = 0) -> dict[str, Number]:
    """How strongly head homogeneity while generating chunk c goes with chunk c's pull toward the sink.

    ``chunk_series`` maps chunk index -> homogeneity (e.g. consensus); ``sink_curve`` is the normalized sink
    distance per frame. Pull of chunk c = 1 - its minimum normalized distance. Over chunks that lie fully in the
    curve and start at or after ``start_frame``: ``corr`` is Pearson r of homogeneity and pull; ``at_events`` /
    ``elsewhere`` the mean homogeneity of chunks that hold a collapse event (``event_frames``) / of the others.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    homogeneity, pull, has_event = [], [], []
    events = np.asarray(event_frames, dtype=np.int64)
    for chunk, value in sorted(chunk_series.items()):
        first = chunk * chunk_frames
        if first < start_frame or first + chunk_frames > len(sink_curve):
            continue
        homogeneity.append(value)
        pull.append(1.0 - float(np.min(sink_curve[first: first + chunk_frames])))
        has_event.append(bool(np.any((events >= first) & (events < first + chunk_frames))))
    h, e = np.array(homogeneity, dtype=np.float64), np.array(has_event, dtype=bool)
    out: dict[str, Number] = {"chunks": len(h), "corr": pearson(h, pull)}
    if e.any() and (~e).any():
        out["at_events"] = float(h[e].mean())
        out["elsewhere"] = float(h[~e].mean())
    else:
        reason = "no collapse event" if not e.any() else "a collapse event in every chunk"
        out["at_events"] = out["elsewhere"] = unavailable(f"{reason} among the {len(h)} probed chunks")
    return out


@dataclass(frozen=True)
class Matching:
    """Events (or attention peaks) against predicted frames (e.g. kernel maxima)."""

    hits: int  # events within ±tolerance frames of a predicted frame
    misses: int  # events with no predicted frame that close
    coverage: float  # fraction of analysed frames within ±tolerance of a predicted frame: random events' hit rate

    @property
    def expected_hits(self) -> float:
        """Hits that events placed at random frames would score."""
        return self.coverage * (self.hits + self.misses)


def match_events(events: Sequence[int], predicted: Sequence[int], start: int, stop: int, tolerance: int = 3
                 ) -> Matching:
    """Count events within ``tolerance`` frames of a predicted frame, over the analysed frames [start, stop)."""
    if tolerance < 0 or stop <= start:
        raise ValueError(f"need tolerance >= 0 and stop > start, got tolerance={tolerance}, [{start}, {stop})")
    peaks = np.asarray(predicted, dtype=np.int64)
    frames = np.arange(start, stop)
    near = np.zeros(len(frames), dtype=bool)
    for peak in peaks:
        near |= np.abs(frames - peak) <= tolerance
    hits = sum(bool(len(peaks)) and int(np.min(np.abs(peaks - e))) <= tolerance for e in events)
    return Matching(hits=int(hits), misses=len(events) - int(hits), coverage=float(near.mean()))


HEAD_DIP_KEYS = {"chunks": "head_dip_chunks", "corr": "head_dip_corr", "at_events": "head_consensus_at_events",
                 "elsewhere": "head_consensus_elsewhere"}


def head_dip_results(results: Mapping[str, object], curves: Mapping[str, np.ndarray], chunk_frames: int
                     ) -> dict[str, Number]:
    """Co-occurrence of head consensus with sink-collapse dips, per sink distance, from a run's merged results and
    curves: ``sink_collapse_curve[tag]`` (NaN before the settled frames), ``sink_collapse_event_frames[tag]``,
    ``head_chunk_index`` and ``head_consensus``. Empty when the run measured no head homogeneity or no sink
    distance."""
    tags = [key[len("sink_collapse_drop"):] for key in results if key.startswith("sink_collapse_drop[")]
    if "head_probes" not in results or not tags:
        return {}
    out: dict[str, Number] = {}
    for tag in tags:
        curve = curves.get(f"sink_collapse_curve{tag}")
        if "head_consensus" not in curves or curve is None or not np.isfinite(curve).any():
            reason = unavailable("no attention probes" if "head_consensus" not in curves
                                 else "no sink-collapse curve")
            out.update({f"{key}{tag}": reason for key in HEAD_DIP_KEYS.values()})
            continue
        series = dict(zip(np.asarray(curves["head_chunk_index"]).tolist(),
                          np.asarray(curves["head_consensus"]).tolist()))
        events = results.get(f"sink_collapse_event_frames{tag}")
        found = homogeneity_dip_cooccurrence(series, curve, chunk_frames, events if isinstance(events, list) else [],
                                             start_frame=int(np.argmax(np.isfinite(curve))))
        out.update({f"{HEAD_DIP_KEYS[key]}{tag}": value for key, value in found.items()})
    return out
