"""VBench-style quality dimensions on VBench-Long clips, their drift, and the Quality Score.

Per clip (VBench-Long: 2 s clips, see lolbench.metrics.clips), following VBench's code:

- subject / background consistency (one function, two backbones): for each frame i >= 1 of the clip,
  ``(max(0, cos(f_i, f_{i-1})) + max(0, cos(f_i, f_0))) / 2``; the clip's score is the mean over its frames
  (VBench's ``video_sim / (len(images) - 1)``). VBench uses DINO ViT-B/16 and CLIP ViT-B/32; without their
  weights the ``pixel`` stand-in is used and named in the key. VBench-Long also fuses in a clip-to-clip
  score of the clips' first frames (DreamSim / DINOv2 features, calibrated mapping); lolbench reports the
  in-clip score only.
- temporal flickering: ``(255 - m) / 255`` with m the mean absolute difference of consecutive frames in
  0..255, over *all* frames of the clip (VBench reads every frame, no subsampling). VBench scores only the
  clips its RAFT-based static filter keeps; lolbench scores every clip, so moving content lowers it.
- motion smoothness: the odd frames are predicted from their even neighbours and scored by
  ``(255 - MAE) / 255`` (VBench: frames 1, 3, ... between kept frames 0, 2, 4, ...; a trailing odd frame with
  no right neighbour is skipped). VBench interpolates with AMT, which is not available here; lolbench warps
  both neighbours half-way along the optical flow between them and averages (exact for a uniform pan), and
  names the interpolator in the key: ``motion_smoothness[flow-dis]``.
- aesthetic (LAION head on CLIP ViT-L/14, / 10) and imaging quality (MUSIQ, / 100): per-frame means, only
  with the real models from local paths, otherwise the string ``"unavailable: <reason>"``.
- dynamic degree comes from a DynamicDegree that VBenchQuality owns and feeds (it also holds the clip
  buffer both read, so frames are buffered once and flow is computed once per pair); its keys appear in
  this metric's result, so a suite with VBenchQuality needs no separate DynamicDegree.

A dimension's value is the mean of its clip scores. Every dimension is also a mean of per-frame terms
(attributed to the frame they score), kept as per-frame scalars: ``curves()`` returns them and the
**drift** of a dimension is the mean of its terms over the last ``drift_seconds`` minus the mean over the
first ``drift_seconds`` (negative = quality decays). Frames covered by both a full clip and VBench-Long's
overlapping last clip keep the full clip's terms. Dynamic degree is a per-clip decision, so it has no drift
(its continuous companion is the ``flow_top5`` curve).

**Quality Score** (VBench): each dimension is normalized ``(x - min) / (max - min)`` with VBench's constants,
weighted 1 (dynamic degree 0.5), summed and divided by 6.5. ``quality_score(dims)`` computes exactly that
from the seven values. VBenchQuality never reports a plain ``quality_score``: motion smoothness here is
never AMT's, so its score is always ``quality_score[partial:<backbones used>]``, the same formula over the
dimensions it could compute with their weights renormalized, next to ``quality_score_dims`` listing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np

from lolbench.metrics.backbones import (
    AestheticScorer,
    FeatureBackbone,
    FrameScorer,
    MusiqScorer,
    load_feature_backbone,
)
from lolbench.metrics.base import FrameMetric, Result, check_frames
from lolbench.metrics.clips import clip_length, clip_spans
from lolbench.metrics.dynamic import DynamicDegree, dynamic_degree
from lolbench.metrics.flow import FlowEstimator, make_flow

DIMENSIONS = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
              "dynamic_degree", "aesthetic_quality", "imaging_quality")
# VBench's (min, max) for normalizing each dimension, and its weights.
NORMALIZATION = {
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "dynamic_degree": (0.0, 1.0),
    "aesthetic_quality": (0.0, 1.0),
    "imaging_quality": (0.0, 1.0),
}
WEIGHTS = {dim: 0.5 if dim == "dynamic_degree" else 1.0 for dim in DIMENSIONS}
BACKBONE_KEYS = ("dino", "clip", "aesthetic_clip", "aesthetic_head", "musiq", "raft")
_CLIP_DIMS = DIMENSIONS[:4] + DIMENSIONS[5:]  # the dimensions scored here per clip (not dynamic degree)


def weighted_quality(dims: dict[str, float]) -> float:
    """VBench's normalized, weighted mean over the given dimensions (weights renormalized to those present)."""
    unknown = sorted(set(dims) - set(DIMENSIONS))
    if unknown or not dims:
        raise ValueError(f"dims must be a non-empty subset of {', '.join(DIMENSIONS)}; got {sorted(dims)}")
    total = sum(WEIGHTS[d] * (value - NORMALIZATION[d][0]) / (NORMALIZATION[d][1] - NORMALIZATION[d][0])
                for d, value in dims.items())
    return total / sum(WEIGHTS[d] for d in dims)


def quality_score(dims: dict[str, float]) -> float:
    """VBench's Quality Score from all seven dimension values (sum of weighted normalized values / 6.5)."""
    missing = [d for d in DIMENSIONS if d not in dims]
    if missing:
        raise ValueError(f"quality_score needs all of {', '.join(DIMENSIONS)}; missing {', '.join(missing)}")
    return weighted_quality(dims)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of [N, E] arrays; two zero rows count as identical (1), one zero row as unrelated (0)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), np.einsum("ne,ne->n", a, b) / (na * nb), 0.0)
    return np.where((na == 0) & (nb == 0), 1.0, np.clip(cos, -1.0, 1.0))


def consistency_terms(features: np.ndarray) -> np.ndarray:
    """VBench's consistency term of each frame i >= 1 from its features: [F, E] -> [F - 1]."""
    if len(features) < 2:
        return np.zeros(0)
    rest = features[1:]
    to_prev = np.maximum(0.0, cosine_rows(features[:-1], rest))
    to_first = np.maximum(0.0, cosine_rows(np.broadcast_to(features[:1], rest.shape), rest))
    return (to_prev + to_first) / 2


def flicker_terms(frames: np.ndarray) -> np.ndarray:
    """``(255 - mean |f_i - f_{i-1}|) / 255`` for each frame i >= 1: [F, H, W, 3] -> [F - 1]."""
    if len(frames) < 2:
        return np.zeros(0)
    diff = np.abs(frames[1:].astype(np.float32) - frames[:-1].astype(np.float32))
    return (255.0 - diff.reshape(len(diff), -1).mean(axis=1, dtype=np.float64)) / 255.0


def interpolate_middle(first: np.ndarray, last: np.ndarray, flow: FlowEstimator) -> np.ndarray:
    """The frame half-way between two frames: both warped half-way along their flow, averaged (uint8)."""
    motion = flow(first, last)  # [H, W, 2]
    h, w = first.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    half_x, half_y = 0.5 * motion[..., 0], 0.5 * motion[..., 1]
    from_first = cv2.remap(first.astype(np.float32), xs - half_x, ys - half_y, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    from_last = cv2.remap(last.astype(np.float32), xs + half_x, ys + half_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return np.clip(np.rint((from_first + from_last) / 2), 0, 255).astype(np.uint8)


def smoothness_terms(frames: np.ndarray, flow: FlowEstimator) -> np.ndarray:
    """``(255 - MAE) / 255`` of each odd frame 1, 3, ... predicted from its even neighbours: [n_even - 1]."""
    evens = frames[::2]
    terms = [(255.0 - np.abs(interpolate_middle(a, b, flow).astype(np.float32) - odd).mean()) / 255.0
             for a, b, odd in zip(evens[:-1], evens[1:], frames[1::2])]
    return np.array(terms, dtype=np.float64)


@dataclass
class _Scorers:
    """The models one VBenchQuality uses, the tag each dimension's key carries, and why a dim is missing."""

    subject: FeatureBackbone
    background: FeatureBackbone
    flow: FlowEstimator
    aesthetic: FrameScorer | None
    imaging: FrameScorer | None
    tags: dict[str, str | None]
    unavailable: dict[str, str]


def _build_scorers(backbones: dict[str, str | None] | None, flow: str) -> _Scorers:
    paths = dict(backbones or {})
    unknown = sorted(set(paths) - set(BACKBONE_KEYS))
    if unknown:
        raise ValueError(f"unknown backbones key(s) {unknown}; allowed: {', '.join(BACKBONE_KEYS)}")
    pixel = load_feature_backbone("pixel")
    subject = load_feature_backbone("dino", paths["dino"]) if paths.get("dino") else pixel
    background = load_feature_backbone("clip", paths["clip"]) if paths.get("clip") else pixel
    estimator = make_flow(flow, paths.get("raft"))
    unavailable = {}
    aesthetic = None
    if paths.get("aesthetic_clip") or paths.get("aesthetic_head"):
        aesthetic = AestheticScorer(paths.get("aesthetic_clip"), paths.get("aesthetic_head"))
    else:
        unavailable["aesthetic_quality"] = ("unavailable: needs backbones.aesthetic_clip (CLIP ViT-L/14 weights) "
                                            "and backbones.aesthetic_head (LAION linear head) as local paths")
    imaging = MusiqScorer(paths["musiq"]) if paths.get("musiq") else None
    if imaging is None:
        unavailable["imaging_quality"] = ("unavailable: MUSIQ (pyiqa) is not installable here; set "
                                          "backbones.musiq to a TorchScript MUSIQ model path")
    tags = {
        "subject_consistency": subject.name,
        "background_consistency": background.name,
        "temporal_flickering": None,
        "motion_smoothness": f"flow-{estimator.name}",
        "dynamic_degree": estimator.name,
        "aesthetic_quality": aesthetic.name if aesthetic else None,
        "imaging_quality": imaging.name if imaging else None,
    }
    return _Scorers(subject, background, estimator, aesthetic, imaging, tags, unavailable)


def clip_terms(frames: np.ndarray, scorers: _Scorers) -> dict[str, np.ndarray]:
    """Per-frame terms of every available dimension for one clip: dim -> [len(frames)], NaN where none."""
    n = len(frames)

    def placed(index: slice | np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        out[index] = values
        return out

    subject = scorers.subject(frames)
    background = subject if scorers.background is scorers.subject else scorers.background(frames)
    n_pred = max(0, (n + 1) // 2 - 1)  # odd frames with an even neighbour on both sides
    terms = {
        "subject_consistency": placed(slice(1, None), consistency_terms(subject)),
        "background_consistency": placed(slice(1, None), consistency_terms(background)),
        "temporal_flickering": placed(slice(1, None), flicker_terms(frames)),
        "motion_smoothness": placed(np.arange(1, 2 * n_pred, 2), smoothness_terms(frames, scorers.flow)),
    }
    if scorers.aesthetic is not None:
        terms["aesthetic_quality"] = scorers.aesthetic(frames)
    if scorers.imaging is not None:
        terms["imaging_quality"] = scorers.imaging(frames)
    return terms


@dataclass
class _Accumulator:
    """Per-clip scores and per-frame terms of each dimension, clip by clip in video order."""

    clip_scores: dict[str, list[float]] = field(default_factory=lambda: {d: [] for d in _CLIP_DIMS})
    frame_terms: dict[str, list[np.ndarray]] = field(default_factory=lambda: {d: [] for d in _CLIP_DIMS})
    covered: int = 0  # frames [0, covered) have their terms

    def add(self, start: int, terms: dict[str, np.ndarray]) -> None:
        """Add the clip starting at frame ``start``; frames already covered keep their earlier terms."""
        for dim, values in terms.items():
            finite = values[np.isfinite(values)]
            self.clip_scores[dim].append(float(finite.mean()) if finite.size else np.nan)
            self.frame_terms[dim].append(values[self.covered - start:])
        self.covered = start + len(next(iter(terms.values())))

    def copy(self) -> _Accumulator:
        return _Accumulator({d: list(v) for d, v in self.clip_scores.items()},
                            {d: list(v) for d, v in self.frame_terms.items()}, self.covered)

    def per_frame(self, dim: str) -> np.ndarray:
        parts = self.frame_terms[dim]
        return np.concatenate(parts) if parts else np.zeros(0)


def _key(dim: str, tag: str | None, suffix: str = "") -> str:
    return f"{dim}{suffix}[{tag}]" if tag else f"{dim}{suffix}"


def _drift_frames(fps: float, drift_seconds: float) -> int:
    if drift_seconds <= 0:
        raise ValueError(f"drift_seconds must be positive, got {drift_seconds}")
    return max(1, round(fps * drift_seconds))


def _drift(terms: np.ndarray, window: int) -> float | str:
    if len(terms) < 2 * window:
        return f"unavailable: video shorter than 2 x drift_seconds ({len(terms)} < {2 * window} frames)"
    first, last = terms[:window], terms[-window:]
    if not (np.isfinite(first).any() and np.isfinite(last).any()):
        return "unavailable: no scored frame in the first or last drift window"
    return float(np.nanmean(last) - np.nanmean(first))


def _assemble(acc: _Accumulator, dynamic: tuple[Result, dict[str, np.ndarray]], scorers: _Scorers,
              drift_frames: int) -> tuple[Result, dict[str, np.ndarray]]:
    """Result keys and curves from accumulated clips and the dynamic-degree summary."""
    dyn_result, dyn_curves = dynamic
    tags = scorers.tags
    result: Result = {"quality_clips": len(acc.clip_scores["temporal_flickering"])}
    curves: dict[str, np.ndarray] = {}
    values: dict[str, float] = {}
    for dim in _CLIP_DIMS:
        key, drift_key = _key(dim, tags[dim]), _key(dim, tags[dim], "_drift")
        if dim in scorers.unavailable:
            result[key] = result[drift_key] = scorers.unavailable[dim]
            continue
        scores = [s for s in acc.clip_scores[dim] if np.isfinite(s)]
        terms = acc.per_frame(dim)
        curves[key] = terms.astype(np.float32)
        if not scores:
            need = 3 if dim == "motion_smoothness" else 2
            result[key] = result[drift_key] = f"unavailable: needs a clip of at least {need} frames"
            continue
        values[dim] = result[key] = float(np.mean(scores))
        result[drift_key] = _drift(terms, drift_frames)
    result.update(dyn_result)
    curves.update(dyn_curves)
    dynamic_value = dyn_result[_key("dynamic_degree", tags["dynamic_degree"])]
    if not isinstance(dynamic_value, str):
        values["dynamic_degree"] = dynamic_value
    used = [tags[d] for d in DIMENSIONS if tags[d] and d not in scorers.unavailable]
    score_key = f"quality_score[partial:{','.join(dict.fromkeys(used))}]"
    included = [d for d in DIMENSIONS if d in values]
    result[score_key] = weighted_quality(values) if values else "unavailable: no dimension could be computed"
    result["quality_score_dims"] = included
    return result, curves


class VBenchQuality(FrameMetric):
    """Streaming VBench quality dimensions per VBench-Long clip, their drift, and a (partial) Quality Score.

    ``backbones`` maps ``dino``, ``clip``, ``aesthetic_clip``, ``aesthetic_head``, ``musiq`` and ``raft`` (flow
    weights when ``flow="raft"``) to local weight paths or None. Holds one clip of frames (in the owned
    DynamicDegree's window) and per-clip / per-frame scalars.
    """

    name: ClassVar[str] = "vbench_quality"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool | None] = True

    def __init__(self, fps: float, clip_seconds: float = 2.0, drift_seconds: float = 5.0,
                 backbones: dict[str, str | None] | None = None, flow: str = "dis") -> None:
        self.fps = fps
        self.drift_frames = _drift_frames(fps, drift_seconds)
        self._scorers = _build_scorers(backbones, flow)
        self.dynamic = DynamicDegree(fps, flow=self._scorers.flow, clip_seconds=clip_seconds)
        self.reset()

    def reset(self) -> None:
        self.dynamic.reset()
        self._acc = _Accumulator()

    def update(self, frames: np.ndarray) -> None:
        frames = check_frames(frames)
        window = self.dynamic.window
        i = 0
        while i < len(frames):
            part = frames[i: i + window.clip_len - window.n_frames % window.clip_len]  # up to the clip's end
            self.dynamic.update(part)
            i += len(part)
            if window.n_frames % window.clip_len == 0:
                self._acc.add(window.n_frames - window.clip_len, clip_terms(window.frames(), self._scorers))

    def compute(self) -> Result:
        return self.summary()[0]

    def curves(self) -> dict[str, np.ndarray]:
        return self.summary()[1]

    def summary(self) -> tuple[Result, dict[str, np.ndarray]]:
        """``compute()`` and ``curves()`` in one pass."""
        acc = self._acc.copy()
        pending = self.dynamic.window.pending_clip()
        if pending is not None:
            acc.add(pending[0], clip_terms(pending[1], self._scorers))
        return _assemble(acc, self.dynamic.summary(), self._scorers, self.drift_frames)


def vbench_quality(frames: np.ndarray, fps: float, clip_seconds: float = 2.0, drift_seconds: float = 5.0,
                   backbones: dict[str, str | None] | None = None,
                   flow: str = "dis") -> tuple[Result, dict[str, np.ndarray]]:
    """Functional twin of VBenchQuality on a whole video: (result, curves)."""
    frames = check_frames(frames)
    scorers = _build_scorers(backbones, flow)
    acc = _Accumulator()
    for start, stop in clip_spans(len(frames), clip_length(fps, clip_seconds)):
        acc.add(start, clip_terms(frames[start:stop], scorers))
    dynamic = dynamic_degree(frames, fps, scorers.flow, clip_seconds=clip_seconds)
    return _assemble(acc, dynamic, scorers, _drift_frames(fps, drift_seconds))
