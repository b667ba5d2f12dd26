"""Saving and loading tiny-model checkpoints, with a content hash that every result records."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from lolbench.models.tiny import TinyConfig, TinyVideoNet

FORMAT = "lolbench-tiny-v1"
BUILTIN = "builtin"  # model.checkpoint value that names the checkpoint shipped with lolbench
BUILTIN_PATH = Path(__file__).resolve().parent.parent / "checkpoints" / "tiny.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not a lolbench tiny-model checkpoint."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, net: TinyVideoNet, meta: dict[str, Any]) -> str:
    """Write weights, architecture and ``meta`` atomically; returns the file's sha256.

    Weights are stored in float16 (loaded back as float32): it halves the file that ships in the repository,
    and the tiny model's weights are far inside float16's range.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": dataclasses.asdict(net.cfg),
        "state_dict": {k: v.detach().cpu().half() for k, v in net.state_dict().items()},
        "meta": meta,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return file_sha256(path)


def resolve_checkpoint(value: str | Path) -> Path:
    """``builtin`` -> the shipped checkpoint; anything else is a path."""
    return BUILTIN_PATH if str(value) == BUILTIN else Path(value)


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[TinyVideoNet, dict[str, Any], str]:
    """Return (network in float32, meta, sha256). Errors name the path and what is wrong with it."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"model.checkpoint: no file at {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"model.checkpoint: {path} is not a readable torch checkpoint ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"model.checkpoint: {path} is not a lolbench tiny-model checkpoint ({FORMAT})")
    try:
        net = TinyVideoNet(TinyConfig(**payload["config"]))
        net.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except (TypeError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"model.checkpoint: {path} does not match the tiny model ({e})") from e
    return net.to(device), payload.get("meta", {}), file_sha256(path)
