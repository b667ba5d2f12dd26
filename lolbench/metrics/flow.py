"""Optical flow between two RGB frames, behind one small interface.

Three backends:

- ``dis`` (default): OpenCV's DIS flow (Kroeger et al. 2016), ~1 ms per 256x256 pair on one core.
  DIS matches 8-px patches on an image pyramid whose coarsest level it picks from the image size; on
  frames under ~128 px it gets a single level and misses motion larger than a patch fraction. Frames whose
  short side is below ``min_side`` (128) are therefore upsampled by an integer factor ``s`` before DIS runs,
  and the flow is brought back to the input grid by averaging each ``s x s`` block and dividing by ``s``.
  The flow is always returned on the input grid, in input pixels.
- ``farneback``: OpenCV's polynomial-expansion flow, run at the input resolution (its fixed 15-px window
  smooths away fine texture once frames are upsampled, so it is not).
- ``raft``: torchvision's RAFT (the model VBench uses for dynamic degree), weights read only from a local
  path (a torchvision-format state dict of ``raft_large`` or ``raft_small``; the variant is recognized from
  the keys). RAFT needs sides that are multiples of 8 and at least ~128 px, so frames are resized to that
  and the flow is resized back and rescaled per axis.

Even with upsampling, flow on 32-px frames is reliable only up to ~3-4 px of motion per pair: larger
displacements exceed what the coarsest pyramid level can match and are underestimated.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod

import cv2
import numpy as np

FLOW_BACKENDS = ("dis", "farneback", "raft")


class FlowEstimator(ABC):
    """Dense flow from ``prev`` to ``nxt``: uint8 [H, W, 3] x 2 -> float32 [H, W, 2] as (dx, dy) in pixels.

    ``flow[y, x]`` is the displacement of the content at ``prev[y, x]``: it shows up at
    ``nxt[y + dy, x + dx]``.
    """

    name: str

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        for label, frame in (("prev", prev), ("nxt", nxt)):
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
                    or frame.shape[2] != 3:
                raise ValueError(f"{label} must be a uint8 [H, W, 3] array, got "
                                 f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
        if prev.shape != nxt.shape:
            raise ValueError(f"frames differ in shape: prev {prev.shape}, nxt {nxt.shape}")
        flow = self._flow(prev, nxt)
        return np.ascontiguousarray(flow, dtype=np.float32)

    @abstractmethod
    def _flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Backend-specific flow for validated frames of equal shape."""


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bring a flow field computed on another grid to ``height x width``, in pixels of the new grid.

    Vectors are rescaled per axis (dx by the width ratio, dy by the height ratio). Downscaling averages
    (exact block means for integer factors), upscaling interpolates bilinearly.
    """
    src_h, src_w = flow.shape[:2]
    if (src_h, src_w) == (height, width):
        return flow
    shrinking = src_h >= height and src_w >= width
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    out[..., 0] *= width / src_w
    out[..., 1] *= height / src_h
    return out


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class DISFlow(FlowEstimator):
    """OpenCV DIS flow; frames with a short side under ``min_side`` are upsampled by an integer factor."""

    name = "dis"

    def __init__(self, min_side: int = 128, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        self.min_side = min_side
        self._dis = cv2.DISOpticalFlow_create(preset)

    def _flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        h, w = prev.shape[:2]
        factor = max(1, math.ceil(self.min_side / min(h, w)))
        a, b = _gray(prev), _gray(nxt)
        if factor > 1:
            a = cv2.resize(a, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
            b = cv2.resize(b, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
        return resize_flow(self._dis.calc(a, b, None), h, w)


class FarnebackFlow(FlowEstimator):
    """OpenCV Farneback flow at the input resolution (OpenCV's sample parameters)."""

    name = "farneback"

    def __init__(self, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15, iterations: int = 3,
                 poly_n: int = 5, poly_sigma: float = 1.2) -> None:
        self._params = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    def _flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(_gray(prev), _gray(nxt), None, *self._params)


def _raft_size(height: int, width: int, min_side: int) -> tuple[int, int]:
    """Smallest size with the input's aspect ratio, short side >= min_side and both sides multiples of 8."""
    scale = max(1.0, min_side / min(height, width))
    return 8 * math.ceil(height * scale / 8), 8 * math.ceil(width * scale / 8)


class RAFTFlow(FlowEstimator):
    """torchvision RAFT (large or small, recognized from the state dict) loaded from a local path."""

    def __init__(self, weights: str, iters: int = 20, min_side: int = 128, device: str | None = None) -> None:
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
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model = model.eval().to(self.device)
        self.iters = iters
        self.min_side = min_side

    def _flow(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        import torch

        h, w = prev.shape[:2]
        size_h, size_w = _raft_size(h, w, self.min_side)

        def prepare(frame: np.ndarray) -> torch.Tensor:
            frame = cv2.resize(frame, (size_w, size_h), interpolation=cv2.INTER_LINEAR)
            x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()  # [1, 3, H', W']
            return (x / 127.5 - 1.0).to(self.device)  # RAFT expects [-1, 1]

        with torch.inference_mode():
            flows = self._model(prepare(prev), prepare(nxt), num_flow_updates=self.iters)
        flow = flows[-1][0].permute(1, 2, 0).cpu().numpy()  # [H', W', 2]
        return resize_flow(flow, h, w)


def make_flow(backend: str = "dis", weights: str | None = None) -> FlowEstimator:
    """Build a flow estimator by name; ``raft`` needs ``weights`` (a local path), the OpenCV ones take none."""
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; allowed: {', '.join(FLOW_BACKENDS)}")
    if backend == "raft":
        if weights is None:
            raise ValueError("flow backend 'raft' needs flow_weights: a local path to a torchvision RAFT "
                             "state dict (nothing is downloaded)")
        return RAFTFlow(weights)
    if weights is not None:
        raise ValueError(f"flow backend {backend!r} takes no weights, got flow_weights={weights!r}")
    return DISFlow() if backend == "dis" else FarnebackFlow()


def estimate_flow(prev: np.ndarray, nxt: np.ndarray, backend: str = "dis") -> np.ndarray:
    """One-off flow between two frames with a weight-free backend: [H, W, 2] float32 (dx, dy) in pixels."""
    return make_flow(backend)(prev, nxt)


def top_flow_magnitude(flow: np.ndarray, fraction: float = 0.05) -> float:
    """Mean of the largest ``fraction`` of flow magnitudes (VBench: top 5%, ``int(H*W*0.05)`` of them).

    At least one magnitude is used, so frames under 20 pixels give their maximum instead of VBench's NaN.
    """
    magnitude = np.hypot(flow[..., 0], flow[..., 1]).ravel()
    count = max(1, int(magnitude.size * fraction))
    return float(np.partition(magnitude, magnitude.size - count)[-count:].mean())
