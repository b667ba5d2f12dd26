"""Sink distance: how far each frame is from the attention-sink frames, and whether content returns to them.

LoL (arXiv 2601.16914) measures sink-collapse with RIFLEx's no-repeat idea: the normalized distance of every
frame to the initial (sink) frames over the rollout; Sink-Collapse Max / Avg are the worst / mean over prompts
of each video's maximum distance drop. LoL does not say what the drop is measured against. Measured against a
fixed early level, it reads 20-50 on videos that never return (the procedural world: a pan over a plane whose
views look alike by chance), so lolbench measures it against chance (definitions below, study in README).

- raw distance d(t): distance of frame t to the *nearest* of the first ``sink_frames`` frames (a collapse copies
  whichever sink frame the heads snap to; a mean over sink frames would never reach 0 for an exact copy).
  ``rms``: RMS pixel difference on [0, 1] pixels. ``cosine``: 1 - cosine similarity of feature-backbone
  embeddings (lolbench.metrics.backbones, named in the key). ``lpips``: LPIPS with AlexNet weights from a user
  path (frames with a short side below 64 px are upscaled first; AlexNet needs that much context).
- reference level: the median raw distance over frames [warmup, warmup + reference); normalized curve
  c(t) = d(t) / level, so 1.0 means "as far from the sink as usual". Undefined (reported unavailable) if the
  level is 0, i.e. the video never leaves its sink.
- settled: frames from warmup + reference on. Before that the video is still moving away from its sink; a
  minimum taken there measures the initial rise, not a return.
- anchors, the chance level: ``anchors`` chunks of ``sink_frames`` frames, one every ``anchor_every_s`` from the
  first settled frame, stand in for "other past content". An anchor counts only if its frames are at least as
  far from the sink as usual (c >= 1), so a frame that is itself a return to the sink is never one. Each anchor
  gets the sink's treatment (nearest-frame distance, its own reference level over its own reference window,
  minimum after it). Its minimum is how close the video comes back to arbitrary content by chance.
  chance = min(1, smallest anchor minimum).
- sink-collapse drop (the per-video score): 100 * max(0, 1 - m / chance), m = min of c over the settled frames.
  ~0 when the sink is returned to no more than other past content (a pan that looks alike by chance, a frozen
  video, a slow pan away); 100 for an exact copy of a sink frame; ~50 for frames blended halfway with the sink.
  A video that returns exactly to every kind of content (a loop) has chance 0: its drop is reported
  unavailable (such cycles are what the cycles metric measures).
- collapse curve: c / chance. Collapse events: runs of settled frames whose collapse curve is below
  ``threshold``; each run is one event at its deepest frame; of two events closer than ``min_separation``
  frames only the deeper is kept. An event's depth is 1 - collapse curve (1 = exact copy of a sink frame).
- the earlier score, kept under its own name for comparison: sink_distance_drop = 100 * max(0, 1 - min c from
  the warm-up on). It includes the initial rise and chance likeness and is not a sink-collapse measure.
- detrending: the curve minus its centred moving average over ``trend_s`` seconds (at most a third of the
  curve). A sink-distance curve first rises away from the sink and then drifts slowly; both are trend.
- periodic pull: the sinusoid that best fits (least squares) the detrended normalized curve after warm-up,
  over periods from ``min_period`` frames to half the trend window. Its period and amplitude (corrected for
  what the moving average removes) measure shallow periodic dips that never cross the threshold; r2 is the
  fraction of the detrended variance it explains, so a peak picked out of noise shows up as a small r2.
Statistics over several videos (Sink-Collapse Max / Avg, cross-run coherence) live in lolbench.stats.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from scipy.ndimage import median_filter
from scipy.optimize import minimize_scalar

from lolbench.metrics.backbones import load_feature_backbone
from lolbench.metrics.base import FrameMetric, Result, check_frames

DISTANCES = ("rms", "cosine", "lpips")
LPIPS_MIN_SIDE = 64
DEFAULT_TREND = 257  # frames of the detrending window: SinkSettings' default trend_s = 16 s at 16 fps
ANCHOR_ADMISSION = 1.0  # an anchor's frames must be at least as far from the sink as usual (normalized distance)
LOOP = ("chance level 0: the video returns exactly to other past content, so a return to the sink is not "
        "distinguishable from a loop")
SUMMARY_KEYS = (
    "sink_distance_reference", "sink_distance_min", "sink_distance_min_frame", "sink_distance_drop",
    "sink_distance_chance", "sink_distance_anchors", "sink_collapse_min", "sink_collapse_frame",
    "sink_collapse_drop", "sink_collapse_events", "sink_collapse_event_frames", "sink_collapse_event_depths",
    "sink_pull_period", "sink_pull_period_s", "sink_pull_amplitude", "sink_pull_r2",
)


class FrameDistance(Protocol):
    """Turns frames into descriptors and compares descriptors with the sink frames' descriptors."""

    name: str

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [F, H, W, 3] -> descriptors [F, ...]."""

    def __call__(self, frames: np.ndarray, sinks: np.ndarray) -> np.ndarray:
        """Descriptors [F, ...] and [n, ...] -> distances [F, n]."""


class RMSDistance:
    """RMS difference of [0, 1] pixels."""

    name = "rms"

    def embed(self, frames: np.ndarray) -> np.ndarray:
        return frames.reshape(len(frames), -1).astype(np.float32) / 255.0  # [F, H*W*3]

    def __call__(self, frames: np.ndarray, sinks: np.ndarray) -> np.ndarray:
        if frames.shape[1] != sinks.shape[1]:
            raise ValueError(f"frame size changed within the video: {frames.shape[1]} vs {sinks.shape[1]} values")
        return np.stack([np.sqrt(np.mean((frames - s) ** 2, axis=1)) for s in sinks], axis=1)  # [F, n]


class CosineDistance:
    """1 - cosine similarity of feature-backbone embeddings; named after the backbone."""

    def __init__(self, backbone: str, weights: str | None) -> None:
        self.backbone = load_feature_backbone(backbone, weights)
        self.name = self.backbone.name

    def embed(self, frames: np.ndarray) -> np.ndarray:
        features = np.asarray(self.backbone(frames), dtype=np.float64)  # [F, E]
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        return features / np.maximum(norms, 1e-12)

    def __call__(self, frames: np.ndarray, sinks: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - frames @ sinks.T, 0.0, 2.0)  # [F, n]


class LPIPSDistance:
    """LPIPS (v0.1 linear heads shipped with the lpips package) on an AlexNet trunk loaded from ``weights``.

    ``weights`` is torchvision's AlexNet state dict (e.g. alexnet-owt-7be5be79.pth); nothing is downloaded.
    """

    name = "lpips-alex"

    def __init__(self, weights: str) -> None:
        import torch

        from lolbench._compat import ensure_torchvision

        ensure_torchvision()
        import lpips
        import torchvision

        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"sink_distance.weights: no AlexNet weights file at {path}")
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained` flag
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
        alexnet = torchvision.models.alexnet(weights=None)
        alexnet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        for block in (self.model.net.slice1, self.model.net.slice2, self.model.net.slice3,
                      self.model.net.slice4, self.model.net.slice5):
            for index, layer in block.named_children():  # lpips names each layer by its index in features
                layer.load_state_dict(alexnet.features[int(index)].state_dict())
        self._torch = torch

    def embed(self, frames: np.ndarray) -> np.ndarray:
        height, width = frames.shape[1:3]
        scale = max(1.0, LPIPS_MIN_SIDE / min(height, width))
        if scale > 1.0:
            size = (round(width * scale), round(height * scale))
            frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])
        return frames.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0  # [F, 3, H, W] in [-1, 1]

    def __call__(self, frames: np.ndarray, sinks: np.ndarray) -> np.ndarray:
        torch = self._torch
        count, n = len(frames), len(sinks)
        a = torch.from_numpy(np.repeat(frames, n, axis=0))  # [F*n, 3, H, W], each frame n times
        b = torch.from_numpy(np.tile(sinks, (count, 1, 1, 1)))  # [F*n, 3, H, W], the sinks in turn
        with torch.no_grad():
            return self.model(a, b).reshape(count, n).numpy().astype(np.float64)  # [F, n]


def make_distance(distance: str = "rms", backbone: str | None = None, weights: str | None = None) -> FrameDistance:
    """Build the frame distance named by the ``sink_distance`` config keys; inconsistent keys are errors."""
    if distance not in DISTANCES:
        raise ValueError(f"sink_distance.distance must be one of {DISTANCES}, got {distance!r}")
    if distance == "cosine":
        if backbone is None:
            raise ValueError("sink_distance.backbone must be set (pixel, dino or clip) when distance is 'cosine'")
        return CosineDistance(backbone, weights)
    if backbone is not None:
        raise ValueError(f"sink_distance.backbone={backbone!r} is only used with distance 'cosine', "
                         f"got distance {distance!r}")
    if distance == "lpips":
        if weights is None:
            raise ValueError("sink_distance.weights must be a local AlexNet weights path when distance is 'lpips'")
        return LPIPSDistance(weights)
    if weights is not None:
        raise ValueError(f"sink_distance.weights={weights!r} is not used with distance 'rms'")
    return RMSDistance()


# ----------------------------------------------------------------------------------------------------------
# functional twins: each step from raw distances to the summary, on whole curves


def sink_distance_curve(frames: np.ndarray, sink_frames: int = 3, distance: FrameDistance | None = None
                        ) -> np.ndarray:
    """Raw distance of every frame to its nearest sink frame (the first ``sink_frames`` frames): [F]."""
    frames = check_frames(frames)
    distance = distance or RMSDistance()
    embedded = distance.embed(frames)
    return distance(embedded, embedded[:sink_frames]).min(axis=1)


def normalize_curve(raw: np.ndarray, warmup: int, reference: int) -> tuple[np.ndarray, float]:
    """Divide by the median raw distance over frames [warmup, warmup + reference); returns (curve, level)."""
    window = raw[warmup: warmup + reference]
    if len(window) == 0:
        raise ValueError(f"no frames after the warm-up of {warmup} frames (curve has {len(raw)})")
    level = float(np.median(window))
    if level <= 1e-12:
        raise ValueError("reference distance is 0: the video does not move away from its sink frames")
    return raw / level, level


def distance_drop(curve: np.ndarray, start: int = 0) -> float:
    """The earlier score: 100 * (1 - min normalized distance from ``start`` on), in %, never below 0."""
    return 100.0 * max(0.0, 1.0 - float(np.min(curve[start:])))


def anchor_starts(frames: int, settled: int, every: int, count: int) -> list[int]:
    """First frames of the candidate anchors: one every ``every`` frames from ``settled``, at most ``count``."""
    return [start for start in range(settled, settled + every * count, every) if start < frames]


def anchor_minimum(raw: np.ndarray, start: int, warmup: int, reference: int) -> float | None:
    """An anchor's minimum normalized distance after its own reference window, from its raw distances ``raw``
    (indexed by frame); None while its reference window is not complete or it never left the anchor."""
    settled = start + warmup + reference
    level = float(np.median(raw[start + warmup: settled])) if len(raw) > settled else 0.0
    return float(np.min(raw[settled:])) / level if level > 1e-12 else None


def chance_level(minima: Sequence[float | None]) -> float:
    """min(1, smallest anchor minimum): how close the video comes back to other content by chance."""
    return min([1.0, *(m for m in minima if m is not None)])


def sink_collapse_drop(settled_min: float, chance: float) -> float:
    """The per-video score: 100 * max(0, 1 - settled minimum / chance level), in %."""
    if chance <= 1e-12:
        raise ValueError(LOOP)
    return 100.0 * max(0.0, 1.0 - settled_min / chance)


def anchor_minima(embedded: np.ndarray, curve: np.ndarray, distance: FrameDistance, settings: SinkSettings
                  ) -> list[float | None]:
    """Batch twin of the streaming anchors: each admitted anchor's minimum (None when not measurable)."""
    n = settings.sink_frames
    minima: list[float | None] = []
    for start in anchor_starts(len(embedded), settings.settled, settings.anchor_every, settings.anchors):
        if start + n > len(embedded) or np.min(curve[start: start + n]) < ANCHOR_ADMISSION:
            continue
        raw = np.full(len(embedded), np.nan)
        raw[start + n:] = distance(embedded[start + n:], embedded[start: start + n]).min(axis=1)
        minima.append(anchor_minimum(raw, start, settings.warmup, settings.reference))
    return minima


@dataclass(frozen=True)
class CollapseEvent:
    frame: int  # deepest frame of the dip
    distance: float  # collapse curve there

    @property
    def depth(self) -> float:
        return 1.0 - self.distance


def collapse_events(curve: np.ndarray, threshold: float = 0.5, min_separation: int = 8, start: int = 0
                    ) -> list[CollapseEvent]:
    """Dips of ``curve`` below ``threshold`` from ``start`` on, one per dip, in frame order."""
    below = np.flatnonzero(curve[start:] < threshold) + start
    if len(below) == 0:
        return []
    runs = np.split(below, np.flatnonzero(np.diff(below) > 1) + 1)
    deepest = [int(run[np.argmin(curve[run])]) for run in runs]
    kept: list[int] = []
    for frame in sorted(deepest, key=lambda f: curve[f]):  # deepest first wins its neighbourhood
        if all(abs(frame - other) >= min_separation for other in kept):
            kept.append(frame)
    return [CollapseEvent(frame, float(curve[frame])) for frame in sorted(kept)]


def trend_window(length: int, trend: int) -> int:
    """Width of the moving average that defines the trend: ``trend`` frames, at most a third of the curve, odd."""
    width = min(trend, length // 3)
    return width if width % 2 else width - 1


def _check_window(window: int, length: int) -> None:
    if window < 3 or window % 2 == 0 or window > length:
        raise ValueError(f"detrend window must be odd, >= 3 and <= the curve length {length}, got {window}")


def detrend(values: np.ndarray, window: int) -> np.ndarray:
    """Curve minus its centred moving average of odd width ``window``, on the frames where the average is
    complete (``window // 2`` frames shorter at each end). Removes slow drift (a locally linear trend exactly)
    and keeps structure faster than the window; its effect on a sinusoid is known exactly (see periodic_pull)."""
    _check_window(window, len(values))
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    average = (sums[window:] - sums[:-window]) / window  # [n - window + 1], centred on frame i + window // 2
    half = window // 2
    return values[half: len(values) - half] - average


def detrend_robust(values: np.ndarray, window: int) -> np.ndarray:
    """Like ``detrend`` with a moving median: a run's fast initial rise away from the sink shifts a moving
    average for a whole window (and every run shares that shape), but barely moves a median."""
    _check_window(window, len(values))
    half = window // 2
    values = np.asarray(values, dtype=np.float64)
    return (values - median_filter(values, size=window, mode="nearest"))[half: len(values) - half]


def _moving_average_gain(frequency: float, window: int) -> float:
    """Gain of a centred moving average of width ``window`` on a sinusoid of ``frequency`` cycles per frame."""
    return float(np.sin(np.pi * frequency * window) / (window * np.sin(np.pi * frequency)))


def _sinusoid_fit(y: np.ndarray, frequency: float) -> tuple[float, float]:
    """Least-squares fit of c + a cos(2 pi f t) + b sin(2 pi f t); returns (amplitude, explained variance)."""
    t = np.arange(len(y), dtype=np.float64)
    design = np.stack([np.ones_like(t), np.cos(2 * np.pi * frequency * t), np.sin(2 * np.pi * frequency * t)], 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - design @ coef) ** 2))
    return float(np.hypot(coef[1], coef[2])), (1.0 - residual / total) if total > 0 else 0.0


def periodic_pull(curve: np.ndarray, start: int = 0, min_period: float = 4.0, trend: int = DEFAULT_TREND
                  ) -> dict[str, float]:
    """Dominant period (frames), sinusoid amplitude and explained variance of the detrended curve after ``start``.

    The trend is a moving average of ``trend`` frames (fewer for short curves, see ``trend_window``); periods
    from ``min_period`` to half that window are searched. A zero-padded FFT finds the strongest one, a bounded
    least-squares search around it refines the frequency (so 29 frames in 600 comes out exact), and the
    amplitude is divided by the known residual gain 1 - g(f) of the moving average, so it is the amplitude of
    the sinusoid in the curve itself.
    """
    values = np.asarray(curve[start:], dtype=np.float64)
    window = trend_window(len(values), trend)
    if window // 2 <= min_period:
        raise ValueError(f"periodic pull needs a trend window over 2 x min_period = {2 * min_period:g} frames; "
                         f"got {window} from {len(values)} frames after warm-up and trend = {trend}")
    y = detrend(values, window)
    longest = window / 2
    pad = 8 * (1 << int(np.ceil(np.log2(len(y)))))
    spectrum = np.abs(np.fft.rfft(y - y.mean(), pad))
    freqs = np.fft.rfftfreq(pad)
    band = np.flatnonzero((freqs >= 1.0 / longest) & (freqs <= 1.0 / min_period))
    peak = freqs[band[np.argmax(spectrum[band])]]
    step = 1.0 / pad
    best = minimize_scalar(lambda f: -_sinusoid_fit(y, f)[0], method="bounded",
                           bounds=(max(peak - step, 1.0 / longest), min(peak + step, 1.0 / min_period)),
                           options={"xatol": 1e-7})
    frequency = float(best.x)
    amplitude, r2 = _sinusoid_fit(y, frequency)
    return {"period": 1.0 / frequency, "amplitude": amplitude / (1.0 - _moving_average_gain(frequency, window)),
            "r2": r2}


@dataclass(frozen=True)
class SinkSettings:
    """Validated sink-distance parameters shared by SinkDistance and its functional twin."""

    sink_frames: int = 3
    fps: float = 16.0
    threshold: float = 0.5
    min_separation: int = 8
    warmup_s: float = 1.0
    reference_s: float = 2.0
    min_period: float = 4.0
    trend_s: float = 16.0
    anchors: int = 32
    anchor_every_s: float = 1.0

    def __post_init__(self) -> None:
        rules = [
            ("sink_frames", self.sink_frames >= 1, ">= 1"), ("fps", self.fps > 0, "> 0"),
            ("threshold", 0 < self.threshold < 1, "in (0, 1)"),
            ("min_separation", self.min_separation >= 1, ">= 1 frame"), ("warmup_s", self.warmup_s >= 0, ">= 0"),
            ("reference_s", self.reference_s > 0, "> 0"), ("min_period", self.min_period >= 2, ">= 2 frames"),
            ("trend_s", self.trend > 2 * self.min_period, f"> 2 x min_period = {2 * self.min_period:g} frames"),
            ("anchors", self.anchors >= 0, ">= 0"), ("anchor_every_s", self.anchor_every_s > 0, "> 0"),
        ]
        for key, ok, rule in rules:
            if not ok:
                raise ValueError(f"sink_distance.{key} must be {rule}, got {getattr(self, key)}")

    @property
    def warmup(self) -> int:
        """Frames skipped before anything is measured: at least the sink frames themselves."""
        return max(self.sink_frames, round(self.warmup_s * self.fps))

    @property
    def reference(self) -> int:
        """Length of the reference window in frames."""
        return max(1, round(self.reference_s * self.fps))

    @property
    def settled(self) -> int:
        """First frame after the reference window: where returns are looked for."""
        return self.warmup + self.reference

    @property
    def anchor_every(self) -> int:
        """Frames between two anchors."""
        return max(1, round(self.anchor_every_s * self.fps))

    @property
    def trend(self) -> int:
        """Width of the detrending moving average in frames (odd)."""
        return round(self.trend_s * self.fps) // 2 * 2 + 1


@dataclass(frozen=True)
class SinkCurves:
    """A video's normalized curve, its chance level and its collapse curve (c / chance)."""

    normalized: np.ndarray
    level: float
    chance: float
    anchors: int
    settled: int

    @property
    def collapse(self) -> np.ndarray:
        """c / chance from the first settled frame on, NaN before (no return is looked for there)."""
        if self.chance <= 1e-12:
            raise ValueError(LOOP)
        out = self.normalized / self.chance
        out[: self.settled] = np.nan
        return out


def sink_curves(raw: np.ndarray, minima: Sequence[float | None], settings: SinkSettings) -> SinkCurves:
    """Normalize the raw curve and fix the chance level; errors say why either is undefined."""
    if len(raw) <= settings.settled:
        raise ValueError(f"need more than {settings.settled} frames (warm-up + reference window), got {len(raw)}")
    curve, level = normalize_curve(raw, settings.warmup, settings.reference)
    return SinkCurves(curve, level, chance_level(minima), sum(m is not None for m in minima), settings.settled)


def summarize_sink_curve(raw: np.ndarray, minima: Sequence[float | None], tag: str, settings: SinkSettings
                         ) -> Result:
    """Every sink-distance result key from a raw curve and the anchors' minima; keys that cannot be computed say
    why."""
    warmup, settled = settings.warmup, settings.settled
    try:
        curves = sink_curves(raw, minima, settings)
    except ValueError as err:
        return {f"{key}[{tag}]": f"unavailable: {err}" for key in SUMMARY_KEYS}
    curve = curves.normalized
    lowest = warmup + int(np.argmin(curve[warmup:]))
    returned = settled + int(np.argmin(curve[settled:]))
    out: Result = {
        "sink_distance_reference": curves.level,
        "sink_distance_min": float(curve[lowest]),
        "sink_distance_min_frame": lowest,
        "sink_distance_drop": distance_drop(curve, warmup),
        "sink_distance_chance": curves.chance,
        "sink_distance_anchors": curves.anchors,
        "sink_collapse_min": float(curve[returned]),
        "sink_collapse_frame": returned,
    }
    try:
        events = collapse_events(curves.collapse, settings.threshold, settings.min_separation, start=settled)
        out.update({"sink_collapse_drop": sink_collapse_drop(float(curve[returned]), curves.chance),
                    "sink_collapse_events": len(events), "sink_collapse_event_frames": [e.frame for e in events],
                    "sink_collapse_event_depths": [e.depth for e in events]})
    except ValueError as err:  # a loop: chance level 0
        out.update({key: f"unavailable: {err}" for key in ("sink_collapse_drop", "sink_collapse_events",
                                                           "sink_collapse_event_frames", "sink_collapse_event_depths")})
    try:
        pull = periodic_pull(curve, warmup, settings.min_period, settings.trend)
        out.update({"sink_pull_period": pull["period"], "sink_pull_period_s": pull["period"] / settings.fps,
                    "sink_pull_amplitude": pull["amplitude"], "sink_pull_r2": pull["r2"]})
    except ValueError as err:
        out.update({key: f"unavailable: {err}" for key in SUMMARY_KEYS if key.startswith("sink_pull")})
    return {f"{key}[{tag}]": value for key, value in out.items()}


@dataclass
class _Anchor:
    """Streaming state of one anchor: its frames' descriptors, its reference-window distances, its minimum."""

    start: int
    descriptors: list[np.ndarray]
    reference: list[float]
    lowest: float = np.inf

    def minimum(self) -> float | None:
        level = float(np.median(self.reference)) if self.reference else 0.0
        return self.lowest / level if np.isfinite(self.lowest) and level > 1e-12 else None


class SinkDistance(FrameMetric):
    """Streaming sink-distance curve, chance level and summary.

    State: the sink frames' descriptors, one float per frame (the curve itself), and at most ``anchors`` anchors
    of ``sink_frames`` descriptors and ``reference`` floats each; per frame the cost is 1 + anchors distances.
    """

    name = "sink_distance"
    version = "2"
    higher_is_better = None  # per key (schema.py): a higher minimum is better, a higher drop is worse

    def __init__(self, sink_frames: int = 3, fps: float = 16.0, distance: str = "rms", backbone: str | None = None,
                 weights: str | None = None, threshold: float = 0.5, min_separation: int = 8,
                 warmup_s: float = 1.0, reference_s: float = 2.0, min_period: float = 4.0,
                 trend_s: float = 16.0, anchors: int = 32, anchor_every_s: float = 1.0) -> None:
        self.settings = SinkSettings(sink_frames, fps, threshold, min_separation, warmup_s, reference_s, min_period,
                                     trend_s, anchors, anchor_every_s)
        self.distance = make_distance(distance, backbone, weights)
        self.tag = self.distance.name
        self.reset()

    def reset(self) -> None:
        self._sinks: np.ndarray | None = None  # descriptors of the sink frames seen so far
        self._raw: list[np.ndarray] = []
        self._seen = 0
        self._level: float | None = None
        self._anchors: dict[int, _Anchor] = {}  # by first frame; only admitted (or still filling) anchors
        self._starts = set(anchor_starts(np.iinfo(np.int64).max, self.settings.settled, self.settings.anchor_every,
                                         self.settings.anchors))

    def update(self, frames: np.ndarray) -> None:
        embedded = self.distance.embed(check_frames(frames))
        n = self.settings.sink_frames
        have = 0 if self._sinks is None else len(self._sinks)
        if have < n:
            new = embedded[: n - have]
            self._sinks = new if self._sinks is None else np.concatenate([self._sinks, new])
        raw = self.distance(embedded, self._sinks).min(axis=1)
        self._raw.append(raw)
        first = self._seen
        self._seen += len(frames)
        if self._level is None and self._seen >= self.settings.settled:  # 0.0: known, and the video never left
            self._level = float(np.median(self.raw_curve()[self.settings.warmup: self.settings.settled]))
        self._collect_anchors(embedded, raw, first)
        self._measure_anchors(embedded, first)

    def _collect_anchors(self, embedded: np.ndarray, raw: np.ndarray, first: int) -> None:
        """Start anchors whose first frame is in this chunk; fill or drop those still collecting frames."""
        n = self.settings.sink_frames
        for offset in range(len(embedded)):
            frame = first + offset
            if frame in self._starts:
                self._anchors[frame] = _Anchor(frame, [], [])
            for anchor in [a for a in self._anchors.values() if a.start <= frame < a.start + n]:
                if not self._level or raw[offset] / self._level < ANCHOR_ADMISSION:
                    del self._anchors[anchor.start]  # a frame near the sink is no stand-in for other content
                else:
                    anchor.descriptors.append(embedded[offset])

    def _measure_anchors(self, embedded: np.ndarray, first: int) -> None:
        """Distances of this chunk's frames to every complete anchor: reference window, then running minimum."""
        warmup, settled = self.settings.warmup, self.settings.warmup + self.settings.reference
        for anchor in self._anchors.values():
            begin = max(first, anchor.start + warmup)
            if begin >= first + len(embedded):
                continue
            distances = self.distance(embedded[begin - first:], np.stack(anchor.descriptors)).min(axis=1)
            frames = np.arange(begin, first + len(embedded))
            anchor.reference += distances[frames < anchor.start + settled].tolist()
            late = distances[frames >= anchor.start + settled]
            if len(late):
                anchor.lowest = min(anchor.lowest, float(late.min()))

    def min_frames(self) -> int:
        return self.settings.settled + 1

    def raw_curve(self) -> np.ndarray:
        return np.concatenate(self._raw) if self._raw else np.zeros(0)

    def anchor_minima(self) -> list[float | None]:
        return [anchor.minimum() for anchor in self._anchors.values()]

    def sink_curves(self) -> SinkCurves | None:
        """Normalized and collapse curves, or None while they are not available."""
        try:
            return sink_curves(self.raw_curve(), self.anchor_minima(), self.settings)
        except ValueError:
            return None

    def compute(self) -> Result:
        return summarize_sink_curve(self.raw_curve(), self.anchor_minima(), self.tag, self.settings)

    def events(self) -> list[dict[str, Any]]:
        """Collapse events as records (frame, time, collapse-curve value, depth); none while unavailable."""
        curves = self.sink_curves()
        if curves is None or curves.chance <= 1e-12:
            return []
        found = collapse_events(curves.collapse, self.settings.threshold, self.settings.min_separation,
                                self.settings.settled)
        return [{"metric": f"sink_distance[{self.tag}]", "frame": e.frame, "time_s": e.frame / self.settings.fps,
                 "distance": e.distance, "depth": e.depth} for e in found]

    def curves(self) -> dict[str, np.ndarray]:
        out = {f"sink_distance_raw[{self.tag}]": self.raw_curve()}
        try:
            out[f"sink_distance[{self.tag}]"] = normalize_curve(self.raw_curve(), self.settings.warmup,
                                                                self.settings.reference)[0]
        except ValueError:
            return out
        curves = self.sink_curves()
        if curves is not None and curves.chance > 1e-12:
            out[f"sink_collapse_curve[{self.tag}]"] = curves.collapse
        return out


def sink_distance(frames: np.ndarray, sink_frames: int = 3, fps: float = 16.0, distance: str = "rms",
                  backbone: str | None = None, weights: str | None = None, threshold: float = 0.5,
                  min_separation: int = 8, warmup_s: float = 1.0, reference_s: float = 2.0,
                  min_period: float = 4.0, trend_s: float = 16.0, anchors: int = 32, anchor_every_s: float = 1.0
                  ) -> Result:
    """Functional twin of SinkDistance: the same result keys from a whole video at once."""
    settings = SinkSettings(sink_frames, fps, threshold, min_separation, warmup_s, reference_s, min_period,
                            trend_s, anchors, anchor_every_s)
    measure = make_distance(distance, backbone, weights)
    embedded = measure.embed(check_frames(frames))
    raw = measure(embedded, embedded[:sink_frames]).min(axis=1)
    try:
        curve = normalize_curve(raw, settings.warmup, settings.reference)[0] if len(raw) > settings.settled else None
    except ValueError:
        curve = None
    minima = anchor_minima(embedded, curve, measure, settings) if curve is not None else []
    return summarize_sink_curve(raw, minima, measure.name, settings)
