"""VBench's quality dimensions on VBench-Long clips, their drift, and the Quality Score.

Per clip (VBench-Long: 2 s clips, see lolbench.metrics.clips), following VBench's code; the models come
from the user's VBench cache (lolbench.metrics.vbench_cache) or, where a file is missing, from a named stand-in:

- subject / background consistency (one function, two backbones): for each frame i >= 1 of the clip,
  ``(max(0, cos(f_i, f_{i-1})) + max(0, cos(f_i, f_0))) / 2``; the clip's score is the mean over its frames.
  VBench uses DINO ViT-B/16 and CLIP ViT-B/32; the stand-in is ``pixel``. Keys carry ``/in-clip``:
  VBench-Long's ``--dev_flag`` run fuses this with a clip-to-clip score of the clips' first frames
  (DINOv2 / DreamSim features and calibrated mapping tables, neither in VBench's weight cache); without that
  flag its fusion weight is 0 and the in-clip score is what it reports.
- temporal flickering: ``(255 - m) / 255`` with m the mean absolute difference of consecutive frames in
  0..255, over all frames of the clip. VBench-Long scores only the clips its static filter keeps (RAFT;
  top 2 % flow magnitude per consecutive pair and for the first/last pair both ways; threshold
  ``3 * min(H, W) / 256``; at most ``round(2 * N / 16)`` moving pairs, and neither wrap-around pair above
  ``threshold * 2 * that``). lolbench applies that filter whenever its flow is a RAFT
  (``temporal_flickering[static-filter-raft-things]``) and otherwise scores every clip under
  ``temporal_flickering[no-static-filter]``. VBench additionally caps the standard prompt suite at 5 static
  clips per prompt; lolbench scores every static clip.
- motion smoothness: the odd frames are predicted from their even neighbours and scored by
  ``(255 - MAE) / 255`` (a trailing odd frame with no right neighbour is skipped). VBench interpolates with
  AMT-S (``[amt-s]``); the stand-in warps both neighbours half-way along their optical flow
  (``[flow-dis]``; exact for a uniform pan).
- aesthetic (LAION head on CLIP ViT-L/14, / 10) and imaging quality (MUSIQ, / 100): per-frame means, only
  with the real models, otherwise ``"unavailable: <reason>"``.
- dynamic degree comes from a DynamicDegree that VBenchQuality owns and feeds; it shares the clip buffer and
  the ``PairFlows`` cache, so each frame pair's flow is computed once for every dimension that needs it.

A dimension's value is the mean of its clip scores. Every dimension is also a mean of per-frame terms
(attributed to the frame they score), kept as per-frame scalars: ``curves()`` returns them and the
**drift** of a dimension is the mean of its terms over the last ``drift_seconds`` minus the mean over the
first ``drift_seconds`` (negative = quality decays). Frames covered by both a full clip and VBench-Long's
overlapping last clip keep the full clip's terms. Dynamic degree is a per-clip decision, so it has no drift.

**Quality Score** (VBench): each dimension normalized ``(x - min) / (max - min)`` with VBench's constants,
weighted 1 (dynamic degree 0.5), summed and divided by 6.5. ``quality_score`` is reported only when all seven
dimensions come from VBench's own models and rules. Otherwise ``quality_score[partial:<dim>:<tag>,...]``
applies the same formula, weights renormalized, to the dimensions measured on VBench's scale, each once and
each listed in the key; consistency measured by the ``pixel`` stand-in is left out (its cosines are not on
the DINO/CLIP scale the constants were calibrated for).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import cv2
import numpy as np

from lolbench.metrics.backbones import (
    AestheticScorer,
    AMTInterpolator,
    FeatureBackbone,
    FrameScorer,
    MusiqScorer,
    load_feature_backbone,
)
from lolbench.metrics.base import FrameMetric, Result, check_frames
from lolbench.metrics.clips import clip_length, clip_spans
from lolbench.metrics.dynamic import DynamicDegree, dynamic_degree
from lolbench.metrics.flow import PairFlows, top_flow_magnitude
from lolbench.metrics.vbench_cache import cache_dir, locate, resolve_flow

log = logging.getLogger(__name__)

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
BACKBONE_KEYS = ("dino", "clip", "aesthetic_clip", "aesthetic_head", "musiq", "raft", "amt")
STAND_IN_TAGS = ("pixel/in-clip",)  # consistency stand-ins left out of the partial score
Interpolator = Callable[[int, int, np.ndarray, np.ndarray], np.ndarray]  # (i, j, frame i, frame j) -> middle
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
    mae = [cv2.absdiff(b, a).mean() for a, b in zip(frames[:-1], frames[1:])]  # uint8 in, exact float64 mean
    return (255.0 - np.array(mae, dtype=np.float64)) / 255.0


def warp_middle(first: np.ndarray, last: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """The frame half-way between two frames: both warped half-way along ``motion`` (their flow on the input
    grid), averaged (uint8)."""
    h, w = first.shape[:2]
    xs, ys = _pixel_grid(h, w)
    half = 0.5 * motion
    from_first = cv2.remap(first, xs - half[..., 0], ys - half[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    from_last = cv2.remap(last, xs + half[..., 0], ys + half[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return cv2.addWeighted(from_first, 0.5, from_last, 0.5, 0.0)  # the mean, rounded


@lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y coordinates of every pixel, float32 [H, W] each (built once per frame size)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def flow_interpolator(flows: PairFlows) -> Interpolator:
    """The flow-warping stand-in for AMT, reading each pair's flow from the shared cache."""
    def middle(i: int, j: int, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        field = flows.field(i, j, first, last)
        return warp_middle(first, last, flows.estimator.to_input_grid(field, *first.shape[:2]))

    return middle


def smoothness_terms(frames: np.ndarray, start: int, interpolate: Interpolator) -> np.ndarray:
    """``(255 - MAE) / 255`` of each odd frame 1, 3, ... of a clip starting at absolute frame ``start``,
    predicted from its even neighbours: [n_even - 1]."""
    terms = [(255.0 - cv2.absdiff(interpolate(start + k - 1, start + k + 1, frames[k - 1], frames[k + 1]),
                                  frames[k]).mean()) / 255.0
             for k in range(1, len(frames) - 1, 2)]
    return np.array(terms, dtype=np.float64)


def is_static_clip(scores: np.ndarray, n_frames: int, threshold: float) -> bool:
    """VBench's static filter on one clip's top-2 % flow magnitudes: consecutive pairs, then the two
    wrap-around pairs (first -> last, last -> first)."""
    allowed = round(2 * n_frames / 16)
    if int(np.sum(scores[:-2] > threshold)) > allowed:
        return False
    return not np.any(scores[-2:] > threshold * allowed * 2)


def static_filter_scores(frames: np.ndarray, start: int, flows: PairFlows) -> np.ndarray:
    """Top-2 % flow magnitude of the pairs VBench's static filter reads, in its order."""
    last = len(frames) - 1
    pairs = [(k, k + 1) for k in range(last)] + [(0, last), (last, 0)]
    return np.array([top_flow_magnitude(flows.field(start + a, start + b, frames[a], frames[b]), 0.02)
                     for a, b in pairs], dtype=np.float64)


@dataclass
class _Scorers:
    """The models one VBenchQuality uses, the tag each dimension's key carries, and why a dim is missing."""

    subject: FeatureBackbone | None
    background: FeatureBackbone | None
    flows: PairFlows
    interpolate: Interpolator
    static_filter: bool
    aesthetic: FrameScorer | None
    imaging: FrameScorer | None
    tags: dict[str, str | None]
    exact: set[str]  # dimensions measured with VBench's own models and rules
    unavailable: dict[str, str] = field(default_factory=dict)


def _load(dim: str, loader: Callable[[], object], unavailable: dict[str, str]) -> object | None:
    """``loader()``, or None after recording why ``dim`` is unavailable (a bad file is named, others go on)."""
    try:
        return loader()
    except (ValueError, ImportError, FileNotFoundError, RuntimeError) as err:
        log.error("%s: %s", dim, err)
        unavailable[dim] = f"unavailable: {err}"
        return None


def _build_scorers(backbones: dict[str, str | None] | None, flow: str, vbench_cache: str | None) -> _Scorers:
    paths = dict(backbones or {})
    unknown = sorted(set(paths) - set(BACKBONE_KEYS))
    if unknown:
        raise ValueError(f"unknown backbones key(s) {unknown}; allowed: {', '.join(BACKBONE_KEYS)}")
    root = cache_dir(vbench_cache)

    def find(role: str, instead: str) -> str | None:
        if paths.get(role):
            return paths[role]
        found = locate(role, root, instead)
        return None if found is None else str(found)

    unavailable: dict[str, str] = {}
    exact: set[str] = {"temporal_flickering"}
    pixel = load_feature_backbone("pixel")
    features = {}
    for dim, role, kind in (("subject_consistency", "dino", "dino"), ("background_consistency", "clip", "clip")):
        path = find(role, f"{dim} uses the pixel stand-in")
        features[dim] = pixel if path is None else _load(dim, lambda: load_feature_backbone(kind, path), unavailable)
        if path is not None and features[dim] is not None:
            exact.add(dim)
    estimator, raft_error = resolve_flow(flow, paths.get("raft"), root)
    if raft_error:
        unavailable["dynamic_degree"] = raft_error
    flows = PairFlows(estimator)
    is_raft = estimator.name.startswith("raft")
    if is_raft:
        exact.add("dynamic_degree")
    interpolate: Interpolator = flow_interpolator(flows)
    amt_path = find("amt", "motion smoothness uses the flow-warping stand-in")
    amt = None if amt_path is None else _load("motion_smoothness", lambda: AMTInterpolator(amt_path), unavailable)
    if amt is not None:
        interpolate = lambda i, j, a, b: amt(a, b)  # noqa: E731
        exact.add("motion_smoothness")
    clip_l = find("aesthetic_clip", "aesthetic quality is unavailable")
    head = find("aesthetic_head", "aesthetic quality is unavailable")
    aesthetic = None
    if clip_l and head:
        aesthetic = _load("aesthetic_quality", lambda: AestheticScorer(clip_l, head), unavailable)
    else:
        unavailable["aesthetic_quality"] = ("unavailable: needs CLIP ViT-L/14 (clip_model/ViT-L-14.pt) and the "
                                            f"LAION head (aesthetic_model/emb_reader/...) in the VBench cache {root}")
    imaging = None
    if paths.get("musiq"):
        imaging = _load("imaging_quality", lambda: MusiqScorer(paths["musiq"]), unavailable)
    else:
        found = find("musiq", "imaging quality is unavailable")
        unavailable["imaging_quality"] = (
            f"unavailable: {found} needs pyiqa's MUSIQ architecture, which lolbench does not ship; set "
            "backbones.musiq to a TorchScript MUSIQ" if found else
            f"unavailable: no MUSIQ (pyiqa_model/musiq_spaq_ckpt-358bb6af.pth) in the VBench cache {root}")
    for dim in ("aesthetic_quality", "imaging_quality"):
        if dim not in unavailable:
            exact.add(dim)
    subject, background = features["subject_consistency"], features["background_consistency"]
    tags = {
        "subject_consistency": f"{subject.name}/in-clip" if subject else "in-clip",
        "background_consistency": f"{background.name}/in-clip" if background else "in-clip",
        "temporal_flickering": f"static-filter-{estimator.name}" if is_raft else "no-static-filter",
        "motion_smoothness": amt.name if amt is not None else f"flow-{estimator.name}",
        "dynamic_degree": estimator.name,
        "aesthetic_quality": aesthetic.name if aesthetic else None,
        "imaging_quality": imaging.name if imaging else None,
    }
    return _Scorers(subject, background, flows, interpolate, is_raft, aesthetic, imaging, tags, exact, unavailable)


def clip_terms(frames: np.ndarray, start: int, scorers: _Scorers) -> dict[str, np.ndarray]:
    """Per-frame terms of every available dimension for the clip at absolute frame ``start``:
    dim -> [len(frames)], NaN where none."""
    n = len(frames)

    def placed(index: slice | np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        out[index] = values
        return out

    terms: dict[str, np.ndarray] = {}
    features: dict[int, np.ndarray] = {}
    for dim, backbone in (("subject_consistency", scorers.subject), ("background_consistency", scorers.background)):
        if backbone is not None:
            if id(backbone) not in features:
                features[id(backbone)] = backbone(frames)
            terms[dim] = placed(slice(1, None), consistency_terms(features[id(backbone)]))
    flicker = flicker_terms(frames)
    if scorers.static_filter and n >= 2:
        threshold = 3.0 * min(frames.shape[1:3]) / 256.0
        if not is_static_clip(static_filter_scores(frames, start, scorers.flows), n, threshold):
            flicker = np.full_like(flicker, np.nan)
    terms["temporal_flickering"] = placed(slice(1, None), flicker)
    n_pred = max(0, (n + 1) // 2 - 1)  # odd frames with an even neighbour on both sides
    terms["motion_smoothness"] = placed(np.arange(1, 2 * n_pred, 2),
                                        smoothness_terms(frames, start, scorers.interpolate))
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


def _score_dims(scorers: _Scorers) -> list[str]:
    """Dimensions the (partial) Quality Score holds: those on VBench's scale that this configuration measures."""
    return [d for d in DIMENSIONS if d not in scorers.unavailable and scorers.tags[d] not in STAND_IN_TAGS]


def _score_key(dims: list[str], scorers: _Scorers) -> str:
    """``quality_score`` when every dimension is VBench's own, else the partial key listing what it holds."""
    if dims == list(DIMENSIONS) and scorers.exact >= set(DIMENSIONS):
        return "quality_score"
    return "quality_score[partial:" + ",".join(f"{d}:{scorers.tags[d]}" for d in dims) + "]"


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
        if dim == "temporal_flickering" and scorers.static_filter:
            result[_key("temporal_flickering_static_clips", tags[dim])] = len(scores)
        if not scores:
            need = 3 if dim == "motion_smoothness" else 2
            reason = (f"unavailable: none of the {len(acc.clip_scores[dim])} clips passed VBench's static filter"
                      if dim == "temporal_flickering" and scorers.static_filter and acc.clip_scores[dim]
                      else f"unavailable: needs a clip of at least {need} frames")
            result[key] = result[drift_key] = reason
            continue
        values[dim] = result[key] = float(np.mean(scores))
        result[drift_key] = _drift(terms, drift_frames)
    dynamic_key = _key("dynamic_degree", tags["dynamic_degree"])
    if "dynamic_degree" in scorers.unavailable:
        dyn_result = {k: scorers.unavailable["dynamic_degree"] for k in dyn_result}
    result.update(dyn_result)
    curves.update(dyn_curves)
    if not isinstance(result[dynamic_key], str):
        values["dynamic_degree"] = result[dynamic_key]
    dims = _score_dims(scorers)
    missing = [d for d in dims if d not in values]
    if not dims:
        score: float | str = "unavailable: no dimension on VBench's scale"
    elif missing:
        score = f"unavailable: no value for {', '.join(missing)}"
    else:
        score = weighted_quality({d: values[d] for d in dims})
    result[_score_key(dims, scorers)] = score
    result["quality_score_dims"] = dims
    return result, curves


class VBenchQuality(FrameMetric):
    """Streaming VBench quality dimensions per VBench-Long clip, their drift, and a (partial) Quality Score.

    Models come from ``vbench_cache`` (see lolbench.metrics.vbench_cache); ``backbones`` overrides single files
    by role (``dino``, ``clip``, ``aesthetic_clip``, ``aesthetic_head``, ``amt``, ``musiq`` as TorchScript,
    ``raft`` as torchvision RAFT weights when ``flow="raft"``). ``flow="auto"`` uses the cache's RAFT when
    it is there, else DIS. Holds one clip of frames (in the owned DynamicDegree's window), the flow fields
    of that clip's pairs, and per-clip / per-frame scalars.
    """

    name: ClassVar[str] = "vbench_quality"
    version: ClassVar[str] = "2"
    higher_is_better: ClassVar[bool | None] = True

    def __init__(self, fps: float, clip_seconds: float = 2.0, drift_seconds: float = 5.0,
                 backbones: dict[str, str | None] | None = None, flow: str = "auto",
                 vbench_cache: str | None = None) -> None:
        self.fps = fps
        self.drift_frames = _drift_frames(fps, drift_seconds)
        self._scorers = _build_scorers(backbones, flow, vbench_cache)
        self.dynamic = DynamicDegree(fps, flow=self._scorers.flows, clip_seconds=clip_seconds)
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
                start = window.n_frames - window.clip_len
                self._acc.add(start, clip_terms(window.frames(), start, self._scorers))

    def compute(self) -> Result:
        return self.summary()[0]

    def curves(self) -> dict[str, np.ndarray]:
        return self.summary()[1]

    def summary(self) -> tuple[Result, dict[str, np.ndarray]]:
        """``compute()`` and ``curves()`` in one pass."""
        acc = self._acc.copy()
        pending = self.dynamic.window.pending_clip()
        if pending is not None:
            acc.add(pending[0], clip_terms(pending[1], pending[0], self._scorers))
        return _assemble(acc, self.dynamic.summary(), self._scorers, self.drift_frames)


def vbench_quality(frames: np.ndarray, fps: float, clip_seconds: float = 2.0, drift_seconds: float = 5.0,
                   backbones: dict[str, str | None] | None = None, flow: str = "auto",
                   vbench_cache: str | None = None) -> tuple[Result, dict[str, np.ndarray]]:
    """Functional twin of VBenchQuality on a whole video: (result, curves)."""
    frames = check_frames(frames)
    scorers = _build_scorers(backbones, flow, vbench_cache)
    acc = _Accumulator()
    for start, stop in clip_spans(len(frames), clip_length(fps, clip_seconds)):
        acc.add(start, clip_terms(frames[start:stop], start, scorers))
    dynamic = dynamic_degree(frames, fps, scorers.flows, clip_seconds=clip_seconds)
    return _assemble(acc, dynamic, scorers, _drift_frames(fps, drift_seconds))
