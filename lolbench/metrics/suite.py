"""All metrics of a run behind one object: frames and probes in, one flat result dict out.

``build_suite`` turns the Hydra group ``conf/metrics`` into metric objects. Each group (sink_distance, cycles,
heads, dynamic, quality) is built when it is present and ``enabled`` is not false; its other keys are the
constructor arguments of the metric class, so a typo is an error that lists the allowed keys. ``fps`` comes
from the video, never from the config.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from lolbench.metrics.base import FrameMetric, ProbeMetric, Result, StreamingMetric
from lolbench.metrics.cycles import CycleDetector
from lolbench.metrics.dynamic import DynamicDegree
from lolbench.metrics.heads import HeadHomogeneity
from lolbench.metrics.quality import VBenchQuality
from lolbench.metrics.sink_distance import SinkDistance
from lolbench.probes import AttentionProbe
from lolbench.stats import head_dip_results

GROUPS: dict[str, type[StreamingMetric]] = {
    "sink_distance": SinkDistance,
    "cycles": CycleDetector,
    "heads": HeadHomogeneity,
    "dynamic": DynamicDegree,
    "quality": VBenchQuality,
}


class MetricSuite:
    """Feeds every frame metric the frames and every probe metric the probes; merges their results."""

    def __init__(self, frame_metrics: Sequence[FrameMetric], probe_metrics: Sequence[ProbeMetric] = (),
                 chunk_frames: int = 3) -> None:
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.frame_metrics = list(frame_metrics)
        self.probe_metrics = list(probe_metrics)
        self.chunk_frames = chunk_frames
        self.frames_seen = 0

    @property
    def metrics(self) -> list[StreamingMetric]:
        return [*self.frame_metrics, *self.probe_metrics]

    def reset(self) -> None:
        for metric in self.metrics:
            metric.reset()
        self.frames_seen = 0

    def state_dict(self) -> dict[str, Any]:
        """Every metric's state, by metric name, and the frame count (for run checkpoints)."""
        return {"frames_seen": self.frames_seen,
                "metrics": [(metric.name, metric.state_dict()) for metric in self.metrics]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [name for name, _ in state["metrics"]]
        if names != [metric.name for metric in self.metrics]:
            raise ValueError(f"metric state holds {names}, this suite has {[m.name for m in self.metrics]}")
        for metric, (_, metric_state) in zip(self.metrics, state["metrics"]):
            metric.load_state_dict(metric_state)
        self.frames_seen = int(state["frames_seen"])

    def update_frames(self, frames: np.ndarray) -> None:
        for metric in self.frame_metrics:
            metric.update(frames)
        self.frames_seen += len(frames)

    def update_probe(self, probe: AttentionProbe) -> None:
        for metric in self.probe_metrics:
            metric.update(probe)

    def compute(self) -> Result:
        """Flat union of every metric's results, plus the cross-metric statistics of lolbench.stats that the
        metrics' results and curves allow (head homogeneity vs sink-collapse dips)."""
        merged: Result = {}
        for metric in self.metrics:
            _merge(merged, metric.compute(), metric.name)
        _merge(merged, head_dip_results(merged, self.curves(), self.chunk_frames), "co-occurrence")
        return merged

    def curves(self) -> dict[str, np.ndarray]:
        merged: dict[str, np.ndarray] = {}
        for metric in self.metrics:
            _merge(merged, metric.curves(), metric.name)
        return merged

    def min_frames(self) -> int:
        """Frames a video needs for every metric to say something."""
        return max((metric.min_frames() for metric in self.metrics), default=1)

    def events(self) -> list[dict[str, Any]]:
        """Every metric's events, in frame order."""
        out = [event for metric in self.metrics for event in metric.events()]
        return sorted(out, key=lambda e: (e["frame"], e["metric"]))


def _merge(into: dict, new: Mapping, source: str) -> None:
    clash = sorted(set(into) & set(new))
    if clash:
        raise RuntimeError(f"result keys {clash} from {source} are already set by another metric")
    into.update(new)


def backbone_names(results: Mapping[str, Any]) -> list[str]:
    """Every backbone, distance or flow name that appears in brackets in the result keys."""
    return sorted({m.group(1) for key in results for m in [re.search(r"\[([^\]]+)\]$", key)] if m})


def _check_keys(group: str, section: Mapping[str, Any], fixed: Sequence[str] = ("fps",)) -> None:
    """Unknown or reserved keys of a group are errors that list the allowed keys."""
    params = inspect.signature(GROUPS[group].__init__).parameters
    allowed = [p for p in params if p != "self" and p not in fixed]
    for key in section:
        if key not in allowed:
            raise ValueError(f"unknown key metrics.{group}.{key}; allowed: {['enabled', *allowed]}")


def _default(group: str, key: str) -> Any:
    return inspect.signature(GROUPS[group].__init__).parameters[key].default


def _quality_with_flow(quality: dict[str, Any], dynamic: Mapping[str, Any]) -> dict[str, Any]:
    """VBenchQuality computes dynamic degree itself: hand it the dynamic group's flow so its keys appear once."""
    _check_keys("dynamic", dynamic)
    clip = (dynamic.get("clip_seconds", _default("dynamic", "clip_seconds")),
            quality.get("clip_seconds", _default("quality", "clip_seconds")))
    if clip[0] != clip[1]:
        raise ValueError(f"metrics.dynamic.clip_seconds={clip[0]} must equal metrics.quality.clip_seconds={clip[1]}"
                         " when both are enabled (quality computes the dynamic degree)")
    if "flow" in quality:
        raise ValueError("set the flow backend as metrics.dynamic.flow, not metrics.quality.flow")
    quality = {**quality, "flow": dynamic.get("flow", _default("dynamic", "flow"))}
    weights = dynamic.get("flow_weights")
    if weights is not None:
        backbones = dict(quality.get("backbones") or {})
        if backbones.get("raft") not in (None, weights):
            raise ValueError(f"metrics.quality.backbones.raft={backbones['raft']!r} disagrees with "
                             f"metrics.dynamic.flow_weights={weights!r}; set only the latter")
        quality["backbones"] = {**backbones, "raft": weights}
    return quality


def build_suite(metrics_cfg: DictConfig | Mapping[str, Any], fps: float, chunk_frames: int) -> MetricSuite:
    """Build the suite from the ``metrics`` config group (see conf/metrics/default.yaml)."""
    cfg = OmegaConf.to_container(metrics_cfg, resolve=True) if isinstance(metrics_cfg, DictConfig) else metrics_cfg
    unknown = sorted(set(cfg) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown metrics group(s) {unknown}; allowed: {list(GROUPS)}")
    sections = {group: dict(cfg[group] or {}) for group in GROUPS if group in cfg}
    sections = {group: s for group, s in sections.items() if s.pop("enabled", True)}
    if "quality" in sections and "dynamic" in sections:
        sections["quality"] = _quality_with_flow(sections["quality"], sections.pop("dynamic"))
    frame_metrics: list[FrameMetric] = []
    probe_metrics: list[ProbeMetric] = []
    for group, section in sections.items():
        _check_keys(group, section)
        params = inspect.signature(GROUPS[group].__init__).parameters
        metric = GROUPS[group](**section, **({"fps": fps} if "fps" in params else {}))
        (probe_metrics if isinstance(metric, ProbeMetric) else frame_metrics).append(metric)
    return MetricSuite(frame_metrics, probe_metrics, chunk_frames)
