"""Dynamic degree: the share of VBench-Long clips that move, by VBench's optical-flow rule.

VBench's rule for one clip (``vbench/dynamic_degree.py``):

1. keep every ``max(1, round(fps / 8))``-th frame (~8 fps);
2. for each consecutive pair of kept frames, compute optical flow (RAFT there) and take the mean of the
   largest ``int(H * W * 0.05)`` flow magnitudes;
3. the threshold is ``6 * min(H, W) / 256`` pixels, times ``max(1, 8 / fps)`` (VBench's correction for videos
   under 8 fps, whose kept pairs are further apart in time); H, W are the frame size;
4. the clip is dynamic if at least ``round(4 * N / 16)`` pairs exceed it, N the number of *kept frames*
   (so 4 of 15 pairs for a 2 s clip at 16 fps).

One deliberate deviation: for N = 2 VBench needs ``round(0.5) = 0`` pairs, which calls every such clip
dynamic whatever it shows; lolbench requires at least one pair above the threshold.

Upsampling and the threshold: lolbench's flow backends return flow on the input frame grid in input pixels
(see lolbench.metrics.flow), so the threshold uses the input H, W. A backend that ran on an ``s``-times
upsampled frame would see ``s``-times larger vectors against an ``s``-times larger threshold; the ratio,
and hence the decision, is the same.

The score of a long video is the fraction of dynamic clips (VBench-Long). ``flow_top5[<flow>]`` keeps the
per-pair top-5% flow magnitude on the global ~8 fps grid as a continuous motion curve; full clips that
start on that grid reuse its pairs, so flow is computed once per pair.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from lolbench.metrics.base import FrameMetric, Result, check_frames
from lolbench.metrics.clips import ClipWindow, clip_length, clip_spans
from lolbench.metrics.flow import FlowEstimator, make_flow, top_flow_magnitude


def frame_stride(fps: float) -> int:
    """Frames between the ~8 fps samples VBench takes."""
    return max(1, round(fps / 8))


def motion_threshold(height: int, width: int, fps: float) -> float:
    """VBench's per-pair flow threshold in pixels for frames of ``height x width``."""
    return 6.0 * min(height, width) / 256.0 * max(1.0, 8.0 / fps)


def required_pairs(n_sampled: int) -> int:
    """Pairs that must exceed the threshold in a clip of ``n_sampled`` kept frames (at least one)."""
    return max(1, round(4 * n_sampled / 16))


def pair_scores(sampled: np.ndarray, flow: FlowEstimator) -> np.ndarray:
    """Top-5% flow magnitude of each consecutive pair of already-subsampled frames: [N] -> [N - 1]."""
    return np.array([top_flow_magnitude(flow(a, b)) for a, b in zip(sampled[:-1], sampled[1:])], dtype=np.float64)


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


def _estimator(flow: str | FlowEstimator, flow_weights: str | None) -> FlowEstimator:
    return flow if isinstance(flow, FlowEstimator) else make_flow(flow, flow_weights)


class DynamicDegree(FrameMetric):
    """Streaming VBench dynamic degree over VBench-Long clips.

    ``flow`` is a backend name or an already built ``FlowEstimator`` (so a caller can share one RAFT model).
    Holds the last clip of frames (``window``, which VBenchQuality reads to avoid a second buffer), one
    sampled frame, and per-pair / per-clip scalars.
    """

    name: ClassVar[str] = "dynamic_degree"
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool | None] = True

    def __init__(self, fps: float, flow: str | FlowEstimator = "dis", flow_weights: str | None = None,
                 clip_seconds: float = 2.0) -> None:
        self.fps = fps
        self.stride = frame_stride(fps)
        self.window = ClipWindow(clip_length(fps, clip_seconds))
        self.flow = _estimator(flow, flow_weights)
        self.reset()

    @property
    def tag(self) -> str:
        """The flow backend's name, used in result keys."""
        return self.flow.name

    def reset(self) -> None:
        self.window.reset()
        self._threshold: float | None = None
        self._prev_sampled: np.ndarray | None = None
        self._grid: list[float] = []  # top-5% flow of sampled pairs (j*stride, (j+1)*stride)
        self._flags: list[bool | None] = []  # one per full clip

    def update(self, frames: np.ndarray) -> None:
        for frame in check_frames(frames):
            t = self.window.n_frames
            if self._threshold is None:
                self._threshold = motion_threshold(frame.shape[0], frame.shape[1], self.fps)
            clip_done = self.window.push(frame)
            if t % self.stride == 0:
                if self._prev_sampled is not None:
                    self._grid.append(top_flow_magnitude(self.flow(self._prev_sampled, frame)))
                self._prev_sampled = frame.copy()
            if clip_done:
                self._flags.append(self._clip_flag(t + 1 - self.window.clip_len, t + 1))

    def _clip_flag(self, start: int, stop: int) -> bool | None:
        """Decision for the clip [start, stop), which the window holds; reuses grid pairs when it is on the grid."""
        n_sampled = len(range(start, stop, self.stride))
        if start % self.stride == 0:
            first = start // self.stride
            scores = self._grid[first: first + n_sampled - 1]
        else:
            scores = pair_scores(self.window.frames()[:: self.stride], self.flow)
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


def dynamic_degree(frames: np.ndarray, fps: float, flow: str | FlowEstimator = "dis",
                   flow_weights: str | None = None,
                   clip_seconds: float = 2.0) -> tuple[Result, dict[str, np.ndarray]]:
    """Functional twin of DynamicDegree on a whole video: (result, curves), every clip's flow computed afresh."""
    frames = check_frames(frames)
    estimator = _estimator(flow, flow_weights)
    stride = frame_stride(fps)
    threshold = motion_threshold(frames.shape[1], frames.shape[2], fps) if len(frames) else None
    flags = [clip_is_dynamic(pair_scores(frames[a:b:stride], estimator), len(range(a, b, stride)), threshold)
             for a, b in clip_spans(len(frames), clip_length(fps, clip_seconds))]
    return _summarize(estimator.name, flags, pair_scores(frames[::stride], estimator), threshold, stride)
