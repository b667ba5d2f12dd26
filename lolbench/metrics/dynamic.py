"""Dynamic degree: the share of VBench-Long clips that move, by VBench's optical-flow rule.

VBench's rule for one clip (``vbench/dynamic_degree.py``, current version):

1. keep every ``max(1, round(fps / 8))``-th frame (~8 fps);
2. for each consecutive pair of kept frames, compute optical flow (RAFT there) and take the mean of the
   largest ``int(h * w * 0.05)`` flow magnitudes of the field (RAFT's field is on the padded grid);
3. the threshold is ``6 * min(H, W) / 256`` pixels, H, W the frame size (no frame-rate factor: one existed
   only briefly in July 2024);
4. the clip is dynamic once ``round(4 * N / 16)`` pairs exceed it, N the number of *kept frames* (4 of 15
   pairs for a 2 s clip at 16 fps). For N = 2 that is 0 pairs, so VBench calls any clip with a pair dynamic;
   lolbench does the same. A clip with a single kept frame has no decision (VBench would call it static).

The score of a long video is the fraction of dynamic clips (VBench-Long). ``flow_top5[<flow>]`` keeps the
per-pair top-5% flow magnitude on the global ~8 fps grid as a continuous motion curve. Flow fields come from a
``PairFlows`` cache that the caller may share (VBenchQuality does), so each pair is computed once.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from lolbench.metrics.base import FrameMetric, Result, check_frames
from lolbench.metrics.clips import ClipWindow, clip_length, clip_spans
from lolbench.metrics.flow import FlowEstimator, PairFlows, make_flow, top_flow_magnitude


def frame_stride(fps: float) -> int:
    """Frames between the ~8 fps samples VBench takes."""
    return max(1, round(fps / 8))


def motion_threshold(height: int, width: int) -> float:
    """VBench's per-pair flow threshold in pixels for frames of ``height x width``."""
    return 6.0 * min(height, width) / 256.0


def required_pairs(n_sampled: int) -> int:
    """Pairs that must exceed the threshold in a clip of ``n_sampled`` kept frames (Python rounding)."""
    return round(4 * n_sampled / 16)


def pair_scores(frames: np.ndarray, first: int, stride: int, flows: PairFlows) -> np.ndarray:
    """Top-5% flow magnitude of each consecutive kept pair of ``frames`` (which start at absolute frame
    ``first``; every ``stride``-th is kept): [N kept] -> [N - 1]."""
    kept = range(0, len(frames), stride)
    return np.array([top_flow_magnitude(flows.field(first + a, first + b, frames[a], frames[b]))
                     for a, b in zip(kept[:-1], kept[1:])], dtype=np.float64)


def clip_is_dynamic(scores: np.ndarray | list[float], n_sampled: int, threshold: float) -> bool | None:
    """VBench's decision for one clip, or None when it has fewer than two kept frames."""
    if n_sampled < 2:
        return None
    return int(np.sum(np.asarray(scores) > threshold)) >= required_pairs(n_sampled)


def _summarize(tag: str, flags: list[bool | None], grid: np.ndarray, threshold: float | None,
               stride: int) -> tuple[Result, dict[str, np.ndarray]]:
    """Result keys and curves from per-clip decisions and the global per-pair scores."""
    decided = [flag for flag in flags if flag is not None]
    curves = {
        f"flow_top5[{tag}]": grid.astype(np.float32),
        f"flow_top5_frame[{tag}]": stride * np.arange(1, len(grid) + 1, dtype=np.int64),
        f"dynamic_clip[{tag}]": np.array(decided, dtype=np.float32),
    }
    if not decided:
        reason = f"unavailable: needs at least {stride + 1} frames (two ~8 fps samples)"
        return {f"dynamic_degree[{tag}]": reason, f"dynamic_degree_clips[{tag}]": 0,
                f"dynamic_flow_ratio[{tag}]": reason}, curves
    result: Result = {
        f"dynamic_degree[{tag}]": float(np.mean(decided)),
        f"dynamic_degree_clips[{tag}]": len(decided),
        f"dynamic_flow_ratio[{tag}]": float(np.mean(grid) / threshold),
    }
    return result, curves


def _flows(flow: str | FlowEstimator | PairFlows, flow_weights: str | None) -> PairFlows:
    """A flow cache from a cache, an estimator, or a backend name (``auto``: the VBench cache's RAFT, else DIS)."""
    if isinstance(flow, PairFlows):
        return flow
    if isinstance(flow, FlowEstimator):
        return PairFlows(flow)
    if flow == "auto":
        from lolbench.metrics.vbench_cache import cache_dir, resolve_flow

        return PairFlows(resolve_flow(flow, flow_weights, cache_dir())[0])
    return PairFlows(make_flow(flow, flow_weights))


class DynamicDegree(FrameMetric):
    """Streaming VBench dynamic degree over VBench-Long clips.

    ``flow`` is a backend name, a built ``FlowEstimator``, or a ``PairFlows`` cache shared with other metrics.
    Holds the last clip of frames (``window``, which VBenchQuality reads to avoid a second buffer), one
    sampled frame, the flow fields of the last clip's pairs, and per-pair / per-clip scalars.
    """

    name: ClassVar[str] = "dynamic_degree"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool | None] = True

    def __init__(self, fps: float, flow: str | FlowEstimator | PairFlows = "dis", flow_weights: str | None = None,
                 clip_seconds: float = 2.0) -> None:
        self.fps = fps
        self.stride = frame_stride(fps)
        self.window = ClipWindow(clip_length(fps, clip_seconds))
        self.flows = _flows(flow, flow_weights)
        self.reset()

    @property
    def tag(self) -> str:
        """The flow backend's name, used in result keys."""
        return self.flows.estimator.name

    def reset(self) -> None:
        self.window.reset()
        self.flows.reset()
        self._threshold: float | None = None
        self._prev_sampled: np.ndarray | None = None
        self._grid: list[float] = []  # top-5% flow of sampled pairs (j*stride, (j+1)*stride)
        self._flags: list[bool | None] = []  # one per full clip

    def update(self, frames: np.ndarray) -> None:
        for frame in check_frames(frames):
            t = self.window.n_frames
            if self._threshold is None:
                self._threshold = motion_threshold(frame.shape[0], frame.shape[1])
            clip_done = self.window.push(frame)
            if t % self.stride == 0:
                if self._prev_sampled is not None:
                    field = self.flows.field(t - self.stride, t, self._prev_sampled, frame)
                    self._grid.append(top_flow_magnitude(field))
                self._prev_sampled = frame.copy()
            if clip_done:
                self._flags.append(self._clip_flag(t + 1 - self.window.clip_len, t + 1))
                self.forget_flows()

    def forget_flows(self) -> None:
        """Drop flow fields no later clip can ask for (the pending last clip may reach one clip back)."""
        self.flows.forget_before(self.window.n_frames - self.window.clip_len - self.stride)

    def _clip_flag(self, start: int, stop: int) -> bool | None:
        """Decision for the clip [start, stop), which the window holds; reuses grid pairs when it is on the grid."""
        n_sampled = len(range(start, stop, self.stride))
        if start % self.stride == 0:
            first = start // self.stride
            scores = self._grid[first: first + n_sampled - 1]
        else:
            scores = pair_scores(self.window.frames(), start, self.stride, self.flows)
        return clip_is_dynamic(scores, n_sampled, self._threshold)

    def compute(self) -> Result:
        return self.summary()[0]

    def curves(self) -> dict[str, np.ndarray]:
        return self.summary()[1]

    def summary(self) -> tuple[Result, dict[str, np.ndarray]]:
        """``compute()`` and ``curves()`` in one pass (the pending clip's flow is computed once)."""
        flags = list(self._flags)
        pending = self.window.pending_span()
        if pending is not None:
            flags.append(self._clip_flag(*pending))
        return _summarize(self.tag, flags, np.array(self._grid), self._threshold, self.stride)


def dynamic_degree(frames: np.ndarray, fps: float, flow: str | FlowEstimator | PairFlows = "dis",
                   flow_weights: str | None = None,
                   clip_seconds: float = 2.0) -> tuple[Result, dict[str, np.ndarray]]:
    """Functional twin of DynamicDegree on a whole video: (result, curves)."""
    frames = check_frames(frames)
    flows = _flows(flow, flow_weights)
    stride = frame_stride(fps)
    threshold = motion_threshold(frames.shape[1], frames.shape[2]) if len(frames) else None
    flags = [clip_is_dynamic(pair_scores(frames[a:b], a, stride, flows), len(range(a, b, stride)), threshold)
             for a, b in clip_spans(len(frames), clip_length(fps, clip_seconds))]
    return _summarize(flows.estimator.name, flags, pair_scores(frames, 0, stride, flows), threshold, stride)
