"""Run checkpoints: the whole streaming state of a run in one file, written atomically and verified on load.

A checkpoint is ``<run dir>/checkpoints/chunk_<n>.ckpt``: a header line, the sha256 of the body, and the body
(a pickle of a nested dict: generator state, metric states, per-chunk log, frame index, ...). The checksum
turns a truncated or damaged file into a clear :class:`CheckpointCorrupt` instead of a confusing unpickling
error, and :func:`load_latest` then falls back to the previous file; the last ``KEEP`` checkpoints are kept.
Pickle runs code from the file, so load only checkpoints your own runs wrote (like any torch checkpoint).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lolbench.atomic import atomic_path

log = logging.getLogger(__name__)

MAGIC = b"lolbench-run-checkpoint-v1\n"
FOLDER = "checkpoints"
KEEP = 2  # the newest and the one before it, the fallback when the newest is damaged
_NAME = re.compile(r"^chunk_(\d{9})\.ckpt$")
IGNORED_KEYS = ("num_frames", "resume")  # a resumed run may ask for more (or fewer) frames


class CheckpointCorrupt(ValueError):
    """A checkpoint file that is truncated, damaged or not a lolbench run checkpoint."""


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """The run's checkpoints, newest first."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.match(p.name)), reverse=True)


def encode(state: Mapping[str, Any]) -> bytes:
    body = pickle.dumps(dict(state), protocol=5)
    return MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def decode(data: bytes, where: str) -> dict[str, Any]:
    header = len(MAGIC) + 65
    if not data.startswith(MAGIC) or len(data) < header:
        raise CheckpointCorrupt(f"{where}: not a lolbench run checkpoint (or truncated in its header)")
    digest, body = data[len(MAGIC): header - 1].decode(errors="replace"), data[header:]
    if hashlib.sha256(body).hexdigest() != digest:
        raise CheckpointCorrupt(f"{where}: checksum mismatch ({len(body)} bytes of body): truncated or damaged")
    return pickle.loads(body)


def save(run_dir: Path, chunk: int, state: Mapping[str, Any]) -> Path:
    """Write ``state`` as the checkpoint after chunk ``chunk`` (atomically) and drop all but the newest ``KEEP``."""
    path = Path(run_dir) / FOLDER / f"chunk_{chunk:09d}.ckpt"
    data = encode(state)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
    for old in checkpoint_paths(run_dir)[KEEP:]:
        old.unlink()
    return path


def load_latest(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint; a damaged one is reported (logged) and the one before it is used."""
    paths = checkpoint_paths(run_dir)
    if not paths:
        raise FileNotFoundError(f"resume: no checkpoint in {Path(run_dir) / FOLDER}")
    errors = []
    for path in paths:
        try:
            return decode(path.read_bytes(), str(path)), path
        except CheckpointCorrupt as err:
            log.error("%s; trying the previous checkpoint", err)
            errors.append(str(err))
    raise CheckpointCorrupt("resume: every checkpoint is damaged: " + "; ".join(errors))


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as {dotted.key: leaf}."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two resolved configs, except ``IGNORED_KEYS``."""
    a, b = flatten(saved), flatten(current)
    return sorted(key for key in set(a) | set(b) if key not in IGNORED_KEYS and a.get(key, "<absent>") !=
                  b.get(key, "<absent>"))


def state_nbytes(tree: Any) -> int:
    """Bytes held by a state: array and tensor payloads, 8 per scalar (a size measure, not the file size)."""
    if isinstance(tree, Mapping):
        return sum(state_nbytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(state_nbytes(v) for v in tree)
    if isinstance(tree, np.ndarray):
        return int(tree.nbytes)
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if hasattr(tree, "__dict__"):
        return state_nbytes(vars(tree))
    return 8
