"""Sink distance: how far each frame is from the attention-sink frames, and how often content snaps back.

LoL (arXiv 2601.16914) measures sink-collapse with RIFLEx's no-repeat idea: the distance of every frame to the
initial (sink) frames, normalized, over the whole rollout. Definitions used here:

- raw distance d(t): distance of frame t to the *nearest* of the first ``sink_frames`` frames. The nearest one,
  because a collapse copies whichever sink frame the heads snap to; a mean over sink frames would never reach 0
  even for an exact copy of one of them.
  ``rms``: RMS pixel difference on [0, 1] pixels. ``cosine``: 1 - cosine similarity of feature-backbone
  embeddings (lolbench.metrics.backbones, named in the key). ``lpips``: LPIPS with AlexNet weights from a user
  path (frames with a short side below 64 px are upscaled first; AlexNet needs that much context).
- reference level: the median raw distance over frames [warmup, warmup + reference). The median ignores a dip
  that happens to fall in that window. Normalized curve = d / reference, so 1.0 means "as far from the sink as
  usual"; it is undefined (reported unavailable) if the reference is 0, i.e. the video never leaves its sink.
- minimum and distance drop: min of the normalized curve after warm-up; drop = 100 * max(0, 1 - min) in %.
  Across videos, Sink-Collapse Max is the worst video's drop and Sink-Collapse Avg the mean drop (LoL).
- collapse events: runs of frames after warm-up whose normalized distance is below ``threshold``; each run is
  one event at its deepest frame; of two events closer than ``min_separation`` frames only the deeper is kept.
  An event's depth is 1 - normalized distance (1 = exact copy of a sink frame).
- detrending: the curve minus its centred moving average over ``trend_s`` seconds (at most a third of the
  curve). A sink-distance curve first rises away from the sink and then drifts slowly; both are trend.
- periodic pull: the sinusoid that best fits (least squares) the detrended curve after warm-up, over periods
  from ``min_period`` frames to half the trend window. Its period and amplitude (corrected for what the moving
  average removes) measure shallow periodic dips that never cross the threshold; r2 is the fraction of the
  detrended variance it explains, so a peak picked out of noise shows up as a small r2.
- cross-run coherence: mean pairwise Pearson correlation of the curves of several runs of one setting, each
  minus its moving median over the trend window (robust to the shared initial rise). RoPE-driven dips fall on
  the same frames for every seed and prompt, content drift does not.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from scipy.ndimage import median_filter
from scipy.optimize import minimize_scalar

from lolbench.metrics.backbones import load_feature_backbone
from lolbench.metrics.base import FrameMetric, Result, check_frames

DISTANCES = ("rms", "cosine", "lpips")
LPIPS_MIN_SIDE = 64
DEFAULT_TREND = 257  # frames of the detrending window: SinkSettings' default trend_s = 16 s at 16 fps
SUMMARY_KEYS = (
    "sink_distance_reference", "sink_distance_min", "sink_distance_min_frame", "sink_distance_drop",
    "sink_collapse_events", "sink_collapse_event_frames", "sink_collapse_event_depths",
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
    """100 * (1 - min normalized distance from ``start`` on), in %, never below 0."""
    return 100.0 * max(0.0, 1.0 - float(np.min(curve[start:])))


@dataclass(frozen=True)
class CollapseEvent:
    frame: int  # deepest frame of the dip
    distance: float  # normalized distance there

    @property
    def depth(self) -> float:
        return 1.0 - self.distance


def collapse_events(curve: np.ndarray, threshold: float = 0.5, min_separation: int = 8, start: int = 0
                    ) -> list[CollapseEvent]:
    """Dips of the normalized curve below ``threshold`` from ``start`` on, one per dip, in frame order."""
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


def cross_run_coherence(curves: Sequence[np.ndarray], start: int = 0, trend: int = DEFAULT_TREND) -> float:
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


def sink_collapse_summary(drops: Sequence[float]) -> dict[str, float]:
    """Sink-Collapse Max (worst video's drop) and Avg (mean drop) over a set of videos, in %."""
    if len(drops) == 0:
        raise ValueError("sink-collapse summary needs at least one video's distance drop")
    values = np.asarray(drops, dtype=np.float64)
    return {"sink_collapse_max": float(values.max()), "sink_collapse_avg": float(values.mean())}


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

    def __post_init__(self) -> None:
        rules = [
            ("sink_frames", self.sink_frames >= 1, ">= 1"), ("fps", self.fps > 0, "> 0"),
            ("threshold", 0 < self.threshold < 1, "in (0, 1)"),
            ("min_separation", self.min_separation >= 1, ">= 1 frame"), ("warmup_s", self.warmup_s >= 0, ">= 0"),
            ("reference_s", self.reference_s > 0, "> 0"), ("min_period", self.min_period >= 2, ">= 2 frames"),
            ("trend_s", self.trend > 2 * self.min_period, f"> 2 x min_period = {2 * self.min_period:g} frames"),
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
    def trend(self) -> int:
        """Width of the detrending moving average in frames (odd)."""
        return round(self.trend_s * self.fps) // 2 * 2 + 1


def summarize_sink_curve(raw: np.ndarray, tag: str, settings: SinkSettings) -> Result:
    """Every sink-distance result key from a raw curve; keys that cannot be computed say why."""
    warmup = settings.warmup
    try:
        if len(raw) <= warmup:
            raise ValueError(f"need more than {warmup} frames (warm-up), got {len(raw)}")
        curve, level = normalize_curve(raw, warmup, settings.reference)
    except ValueError as err:
        return {f"{key}[{tag}]": f"unavailable: {err}" for key in SUMMARY_KEYS}
    events = collapse_events(curve, settings.threshold, settings.min_separation, start=warmup)
    lowest = warmup + int(np.argmin(curve[warmup:]))
    out: Result = {
        "sink_distance_reference": level,
        "sink_distance_min": float(curve[lowest]),
        "sink_distance_min_frame": lowest,
        "sink_distance_drop": distance_drop(curve, warmup),
        "sink_collapse_events": len(events),
        "sink_collapse_event_frames": [e.frame for e in events],
        "sink_collapse_event_depths": [e.depth for e in events],
    }
    try:
        pull = periodic_pull(curve, warmup, settings.min_period, settings.trend)
        out.update({"sink_pull_period": pull["period"], "sink_pull_period_s": pull["period"] / settings.fps,
                    "sink_pull_amplitude": pull["amplitude"], "sink_pull_r2": pull["r2"]})
    except ValueError as err:
        out.update({key: f"unavailable: {err}" for key in SUMMARY_KEYS if key.startswith("sink_pull")})
    return {f"{key}[{tag}]": value for key, value in out.items()}


class SinkDistance(FrameMetric):
    """Streaming sink-distance curve and its summary. State: the sink frames' descriptors and one float per frame."""

    name = "sink_distance"
    version = "1"
    higher_is_better = None  # per key (schema.py): a higher minimum is better, a higher drop is worse

    def __init__(self, sink_frames: int = 3, fps: float = 16.0, distance: str = "rms", backbone: str | None = None,
                 weights: str | None = None, threshold: float = 0.5, min_separation: int = 8,
                 warmup_s: float = 1.0, reference_s: float = 2.0, min_period: float = 4.0,
                 trend_s: float = 16.0) -> None:
        self.settings = SinkSettings(sink_frames, fps, threshold, min_separation, warmup_s, reference_s, min_period,
                                     trend_s)
        self.distance = make_distance(distance, backbone, weights)
        self.tag = self.distance.name
        self.reset()

    def reset(self) -> None:
        self._sinks: np.ndarray | None = None  # descriptors of the sink frames seen so far
        self._raw: list[np.ndarray] = []

    def update(self, frames: np.ndarray) -> None:
        embedded = self.distance.embed(check_frames(frames))
        have = 0 if self._sinks is None else len(self._sinks)
        if have < self.settings.sink_frames:
            new = embedded[: self.settings.sink_frames - have]
            self._sinks = new if self._sinks is None else np.concatenate([self._sinks, new])
        self._raw.append(self.distance(embedded, self._sinks).min(axis=1))

    def raw_curve(self) -> np.ndarray:
        return np.concatenate(self._raw) if self._raw else np.zeros(0)

    def normalized_curve(self) -> np.ndarray | None:
        """Normalized curve, or None while the reference level is not available."""
        try:
            return normalize_curve(self.raw_curve(), self.settings.warmup, self.settings.reference)[0]
        except ValueError:
            return None

    def compute(self) -> Result:
        return summarize_sink_curve(self.raw_curve(), self.tag, self.settings)

    def events(self) -> list[CollapseEvent]:
        curve = self.normalized_curve()
        if curve is None:
            return []
        return collapse_events(curve, self.settings.threshold, self.settings.min_separation, self.settings.warmup)

    def curves(self) -> dict[str, np.ndarray]:
        out = {f"sink_distance_raw[{self.tag}]": self.raw_curve()}
        curve = self.normalized_curve()
        if curve is not None:
            out[f"sink_distance[{self.tag}]"] = curve
        return out


def sink_distance(frames: np.ndarray, sink_frames: int = 3, fps: float = 16.0, distance: str = "rms",
                  backbone: str | None = None, weights: str | None = None, threshold: float = 0.5,
                  min_separation: int = 8, warmup_s: float = 1.0, reference_s: float = 2.0,
                  min_period: float = 4.0, trend_s: float = 16.0) -> Result:
    """Functional twin of SinkDistance: the same result keys from a whole video at once."""
    settings = SinkSettings(sink_frames, fps, threshold, min_separation, warmup_s, reference_s, min_period,
                            trend_s)
    measure = make_distance(distance, backbone, weights)
    return summarize_sink_curve(sink_distance_curve(frames, sink_frames, measure), measure.name, settings)
