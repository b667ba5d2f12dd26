"""Optical flow between two RGB frames, behind one small interface.

An estimator returns a *field*: the flow on the grid it ran on, in input pixels. VBench's magnitude rules
(dynamic degree's top 5 %, the static filter's top 2 %) read that field directly, because VBench reads RAFT's
output on the padded grid; ``to_input_grid`` brings a field back onto the input frame for warping.

- ``dis`` (default, offline stand-in): OpenCV's DIS flow (Kroeger et al. 2016) on grey frames scaled so the
  short side is ``work_side`` (256) px: VBench's thresholds are ``k * min(H, W) / 256``, so motion relative to
  the frame size is what they judge, and at 256 px DIS costs ~1/4 of an 832x480 pass. Frames with a short
  side under ``min_side`` (128) are upsampled instead (DIS gets a single pyramid level on tiny frames and
  misses motion larger than a patch fraction). Even so, flow on 32-px frames is reliable only up to ~3-4 px.
- ``farneback``: OpenCV's polynomial-expansion flow at the input resolution.
- ``raft``: torchvision's RAFT (large or small, recognized from the keys) from a local torchvision state dict.
- ``raft-things``: the RAFT VBench uses, from its ``raft-things.pth`` (original layout) through VBench's own
  RAFT code (lolbench.metrics.vbench_code); built by lolbench.metrics.vbench_cache.

Both RAFTs see frames padded like VBench pads them (replicate, to multiples of 8, split evenly), 20 updates.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

FLOW_BACKENDS = ("dis", "farneback", "raft")


def _check_frames(prev: np.ndarray, nxt: np.ndarray) -> None:
    for label, frame in (("prev", prev), ("nxt", nxt)):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{label} must be a uint8 [H, W, 3] array, got "
                             f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
    if prev.shape != nxt.shape:
        raise ValueError(f"frames differ in shape: prev {prev.shape}, nxt {nxt.shape}")


class FlowEstimator(ABC):
    """Dense flow from ``prev`` to ``nxt`` (uint8 [H, W, 3] each) as (dx, dy) in input pixels.

    ``flow[y, x]`` is the displacement of the content at ``prev[y, x]``: it shows up at ``nxt[y + dy, x + dx]``.
    """

    name: str

    def field(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """float32 [h, w, 2] on the estimator's own grid (see the module docstring), in input pixels."""
        _check_frames(prev, nxt)
        return np.ascontiguousarray(self._field(prev, nxt), dtype=np.float32)

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """float32 [H, W, 2] on the input grid."""
        return self.to_input_grid(self.field(prev, nxt), *prev.shape[:2])

    def to_input_grid(self, field: np.ndarray, height: int, width: int) -> np.ndarray:
        """A field of this estimator brought onto the ``height x width`` input grid (default: resampled)."""
        return resize_field(field, height, width)

    @abstractmethod
    def _field(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Backend-specific field for validated frames of equal shape."""


def resize_field(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resample a field whose vectors are already in input pixels onto ``height x width`` (area when
    shrinking, bilinear when growing); the vectors themselves are unchanged."""
    if field.shape[:2] == (height, width):
        return field
    shrinking = field.shape[0] >= height and field.shape[1] >= width
    return cv2.resize(field, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bring a flow field in pixels of its own grid to ``height x width``, in pixels of the new grid."""
    src_h, src_w = flow.shape[:2]
    out = resize_field(flow, height, width).copy()
    out[..., 0] *= width / src_w
    out[..., 1] *= height / src_h
    return out


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def working_scale(height: int, width: int, min_side: int, work_side: int) -> float:
    """Scale DIS runs at: integer upsampling below ``min_side``, down to ``work_side`` above it."""
    short = min(height, width)
    if short < min_side:
        return float(math.ceil(min_side / short))
    return min(1.0, work_side / short)


class DISFlow(FlowEstimator):
    """OpenCV DIS flow at a working scale (see ``working_scale``); the field lives on the working grid.

    Frames up to ``work_side`` use DIS's "medium" preset; larger frames, downscaled to ``work_side``, use
    "fast" (5x cheaper there, with the same top-5 % magnitude to a few percent on 832x480 pans)."""

    name = "dis"

    def __init__(self, min_side: int = 128, work_side: int = 256) -> None:
        self.min_side, self.work_side = min_side, work_side
        self._medium = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._fast = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)

    def _field(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        h, w = prev.shape[:2]
        scale = working_scale(h, w, self.min_side, self.work_side)
        a, b = _gray(prev), _gray(nxt)
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
            a, b = cv2.resize(a, size, interpolation=interpolation), cv2.resize(b, size, interpolation=interpolation)
        flow = (self._fast if scale < 1 else self._medium).calc(a, b, None)
        if scale > 1:  # upsampled: back to the input grid by block means (exact for integer factors)
            return resize_flow(flow, h, w)
        flow[..., 0] *= w / a.shape[1]
        flow[..., 1] *= h / a.shape[0]
        return flow


class FarnebackFlow(FlowEstimator):
    """OpenCV Farneback flow at the input resolution (OpenCV's sample parameters)."""

    name = "farneback"

    def __init__(self, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15, iterations: int = 3,
                 poly_n: int = 5, poly_sigma: float = 1.2) -> None:
        self._params = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    def _field(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(_gray(prev), _gray(nxt), None, *self._params)


def raft_padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) replicate padding to multiples of 8, split evenly (VBench's RAFT padder)."""
    pad_h, pad_w = -height % 8, -width % 8
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


class _PaddedRAFT(FlowEstimator):
    """A RAFT model run on padded float [0, 255] frames; the field is RAFT's output on the padded grid.

    Frames whose short side is under ``min_side`` are first upsampled by an integer factor (torchvision's
    RAFT cannot run on feature maps under 16 px); the field is then divided by that factor.
    """

    iters = 20
    min_side = 0

    def __init__(self, model, device: str) -> None:
        self._model, self.device = model, device

    def _run(self, a, b):
        """Flow [1, 2, H', W'] for padded float [1, 3, H', W'] frames in 0..255."""
        raise NotImplementedError

    def _upsampling(self, height: int, width: int) -> int:
        return max(1, math.ceil(self.min_side / min(height, width)))

    def _field(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        h, w = prev.shape[:2]
        factor = self._upsampling(h, w)
        pad = raft_padding(h * factor, w * factor)

        def prepare(frame: np.ndarray) -> torch.Tensor:
            if factor > 1:
                frame = cv2.resize(frame, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
            x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().to(self.device)  # [1, 3, H, W]
            return F.pad(x, pad, mode="replicate")

        with torch.inference_mode():
            flow = self._run(prepare(prev), prepare(nxt))
        return flow[0].permute(1, 2, 0).cpu().numpy() / factor

    def to_input_grid(self, field: np.ndarray, height: int, width: int) -> np.ndarray:
        factor = self._upsampling(height, width)
        left, _, top, _ = raft_padding(height * factor, width * factor)
        return resize_field(field[top:top + height * factor, left:left + width * factor], height, width)


class TorchvisionRAFT(_PaddedRAFT):
    """torchvision RAFT (large or small, recognized from the state dict) loaded from a local path."""

    min_side = 128

    def __init__(self, weights: str, device: str | None = None) -> None:
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"RAFT weights not found: flow_weights={weights!r}")
        import torch

        from lolbench._compat import ensure_torchvision

        ensure_torchvision()
        from torchvision.models.optical_flow import raft_large, raft_small

        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"flow_weights={weights!r} holds a {type(state).__name__}, not a state dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        errors = []
        for variant, build in (("raft-large", raft_large), ("raft-small", raft_small)):
            model = build(weights=None, progress=False)
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                errors.append(f"{variant}: {str(err).splitlines()[0]}")
                continue
            self.name = variant
            break
        else:
            raise ValueError(f"flow_weights={weights!r} is not a torchvision raft_large/raft_small state dict "
                             f"({'; '.join(errors)})")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        super().__init__(model.eval().to(device), device)

    def _run(self, a, b):
        return self._model(a / 127.5 - 1.0, b / 127.5 - 1.0, num_flow_updates=self.iters)[-1]


class VBenchRAFT(_PaddedRAFT):
    """VBench's RAFT (``raft-things.pth``, original layout) through VBench's own RAFT code."""

    def __init__(self, weights: Path, device: str | None = None) -> None:
        import torch

        from lolbench.metrics.vbench_code import load_raft_things

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        super().__init__(load_raft_things(Path(weights), device), device)
        self.name = Path(weights).stem  # "raft-things"

    def _run(self, a, b):
        return self._model(a, b, iters=self.iters, test_mode=True)[1]


def make_flow(backend: str = "dis", weights: str | None = None) -> FlowEstimator:
    """Build a flow estimator by name; ``raft`` needs ``weights`` (a local path), the OpenCV ones take none."""
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; allowed: {', '.join(FLOW_BACKENDS)}")
    if backend == "raft":
        if weights is None:
            raise ValueError("flow backend 'raft' needs flow_weights: a local path to a torchvision RAFT "
                             "state dict (nothing is downloaded; VBench's raft-things.pth is found through "
                             "metrics.vbench_cache instead)")
        return TorchvisionRAFT(weights)
    if weights is not None:
        raise ValueError(f"flow backend {backend!r} takes no weights, got flow_weights={weights!r}")
    return DISFlow() if backend == "dis" else FarnebackFlow()


def estimate_flow(prev: np.ndarray, nxt: np.ndarray, backend: str = "dis") -> np.ndarray:
    """One-off flow between two frames with a weight-free backend: [H, W, 2] float32 (dx, dy) in pixels."""
    return make_flow(backend)(prev, nxt)


def top_flow_magnitude(flow: np.ndarray, fraction: float = 0.05) -> float:
    """Mean of the largest ``int(H * W * fraction)`` flow magnitudes (VBench: 5 % for dynamic degree, 2 % for
    the static filter). At least one magnitude is used, so tiny fields give their maximum instead of NaN."""
    magnitude = np.hypot(flow[..., 0], flow[..., 1]).ravel()
    count = max(1, int(magnitude.size * fraction))
    return float(np.partition(magnitude, magnitude.size - count)[-count:].mean())


class PairFlows:
    """Flow fields of frame pairs, keyed by absolute frame indices, each computed once.

    Dynamic degree, the static filter and the flow-warping interpolator of motion smoothness ask for
    overlapping sets of pairs; this cache is what makes "one optical flow per frame pair" true. The owner
    calls ``forget_before`` once pairs can no longer be asked for, so memory stays bounded.
    """

    def __init__(self, estimator: FlowEstimator) -> None:
        self.estimator = estimator
        self._fields: dict[tuple[int, int], np.ndarray] = {}
        self.computed = 0  # fields computed so far (a benchmark reads it)

    def field(self, i: int, j: int, frame_i: np.ndarray, frame_j: np.ndarray) -> np.ndarray:
        """Field from frame ``i`` to frame ``j`` (the arrays are those frames)."""
        key = (i, j)
        if key not in self._fields:
            self._fields[key] = self.estimator.field(frame_i, frame_j)
            self.computed += 1
        return self._fields[key]

    def forget_before(self, frame: int) -> None:
        """Drop pairs whose frames both come before ``frame``."""
        self._fields = {k: v for k, v in self._fields.items() if max(k) >= frame}

    def reset(self) -> None:
        self._fields.clear()
        self.computed = 0
