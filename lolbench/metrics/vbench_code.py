"""VBench's own model code (RAFT, AMT), used when the optional ``vbench`` wheel is importable.

VBench ships RAFT's ``raft-things.pth`` and AMT-S's ``amt-s.pth`` for architectures that only its vendored
code (``vbench/third_party``) defines. Rather than re-implement them, lolbench imports that code when the
user has installed it (``pip install --no-deps vbench==0.1.5 decord==0.6.0 easydict==1.13 imageio==2.38.1``:
vbench's own pins, numpy<2 and an old transformers, clash with lolbench's, so it cannot be a normal
dependency). Nothing here runs at import time.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install --no-deps vbench==0.1.5 decord==0.6.0 easydict==1.13 imageio==2.38.1"


def unavailable_reason() -> str | None:
    """None when VBench's model code imports, else why not (with the install line)."""
    from lolbench._compat import ensure_torchvision

    ensure_torchvision()
    try:
        importlib.import_module("vbench.third_party.RAFT.core.raft")
        importlib.import_module("vbench.third_party.amt.utils.utils")
    except ImportError as err:
        return f"VBench's model code is not importable ({err}); {INSTALL_HINT}"
    return None


def _require() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise ImportError(reason)


def _state_dict(path: Path, what: str) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"{path}: cannot be read as a {what} checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, expected a {what} state dict")
    return state


def load_raft_things(path: Path, device: str):
    """RAFT (the full model VBench uses) from a ``raft-things.pth`` in the original layout, in eval mode."""
    _require()
    from vbench.third_party.RAFT.core.raft import RAFT

    args = argparse.Namespace(small=False, mixed_precision=False, alternate_corr=False)
    model = RAFT(args)
    state = {k.removeprefix("module."): v for k, v in _state_dict(path, "RAFT").items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: not a RAFT (raft-things) state dict: {str(err).splitlines()[0]}") from err
    return model.eval().to(device)


def raft_padder(shape: tuple[int, ...]):
    """VBench's RAFT padder (replicate, split evenly) for frames of ``shape`` [..., H, W]."""
    from vbench.third_party.RAFT.core.utils_core.utils import InputPadder

    return InputPadder(shape)


def amt_config_path() -> Path:
    """The AMT-S network config that ships inside the vbench wheel."""
    import vbench

    return Path(vbench.__file__).parent / "third_party" / "amt" / "cfgs" / "AMT-S.yaml"


def load_amt_s(path: Path, device: str):
    """AMT-S from VBench's ``amt-s.pth`` (``{"state_dict": ...}``), built by VBench's AMT code, in eval mode."""
    _require()
    from omegaconf import OmegaConf
    from vbench.third_party.amt.utils.build_utils import build_from_cfg

    model = build_from_cfg(OmegaConf.load(amt_config_path()).network)
    checkpoint = _state_dict(path, "AMT-S")
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path}: expected an AMT-S checkpoint {{'state_dict': ...}}, found keys "
                         f"{sorted(checkpoint)[:5]}")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: not an AMT-S state dict: {str(err).splitlines()[0]}") from err
    return model.eval().to(device)
