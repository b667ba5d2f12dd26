"""Make torchvision importable on CPU-only torch.

The torchvision build that matches torch 2.13 ships compiled ops for CUDA only; on a CPU torch its
``_C.so`` fails to load and importing torchvision (and lpips, open_clip, timm, which import it) dies with
"operator torchvision::nms does not exist". Declaring the two operator schemas that torchvision's
Python code registers fakes for lets the pure-Python parts (models, transforms, RAFT) work. Compiled ops
(nms, roi_align, image decoding) stay unavailable, and lolbench never uses them.
"""

from __future__ import annotations

import importlib.util
import os

_done = False
_LIBRARIES: list = []  # keeps the schema definitions alive


def ensure_torchvision() -> None:
    """Call before the first import of torchvision or of a package that imports it."""
    global _done
    if _done:
        return
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.origin is not None:
        try:
            torch.ops.load_library(os.path.join(os.path.dirname(spec.origin), "_C.so"))
        except (OSError, RuntimeError):
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _LIBRARIES.append(lib)
    _done = True

