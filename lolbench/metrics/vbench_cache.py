"""Where VBench's users keep its weights, and which file each quality dimension looks for there.

``metrics.quality.vbench_cache`` (default ``$VBENCH_CACHE_DIR``, else ``~/.cache/vbench``, VBench's own rule)
is searched by VBench's file names; two files are also looked for where some VBench docs put them
(``~/.cache/aesthetic_model/...``, ``~/.cache/amt_model/...``). A file that is missing leaves its dimension
to an offline stand-in (or "unavailable"), and one log line says which file was looked for where; a file
that is there but cannot be loaded as what VBench ships is an error naming the file, reported as that
dimension's value while the other dimensions are still computed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheFile:
    """One weight file of VBench's cache: its path under the cache, an older location, what it is for."""

    relative: str
    legacy: str | None  # relative to ~/.cache, where some VBench docs put it
    what: str


FILES: dict[str, CacheFile] = {
    "dino": CacheFile("dino_model/dino_vitbase16_pretrain.pth", None, "DINO ViT-B/16 for subject consistency"),
    "clip": CacheFile("clip_model/ViT-B-32.pt", None, "CLIP ViT-B/32 for background consistency"),
    "aesthetic_clip": CacheFile("clip_model/ViT-L-14.pt", None, "CLIP ViT-L/14 for aesthetic quality"),
    "aesthetic_head": CacheFile("aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth",
                                "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth",
                                "the LAION aesthetic head for aesthetic quality"),
    "musiq": CacheFile("pyiqa_model/musiq_spaq_ckpt-358bb6af.pth", None, "MUSIQ (SPAQ) for imaging quality"),
    "raft": CacheFile("raft_model/models/raft-things.pth", None,
                      "RAFT for dynamic degree and the temporal-flickering static filter"),
    "amt": CacheFile("amt_model/amt-s.pth", "amt_model/amt-s.pth", "AMT-S for motion smoothness"),
}


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The VBench cache folder: ``configured``, else ``$VBENCH_CACHE_DIR``, else ``~/.cache/vbench``."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("VBENCH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "vbench"


def candidates(role: str, root: Path) -> list[Path]:
    """Every path where the file for ``role`` is looked for, in order."""
    if role not in FILES:
        raise ValueError(f"unknown VBench cache role {role!r}; known: {', '.join(FILES)}")
    spec = FILES[role]
    paths = [root / spec.relative]
    if spec.legacy is not None:
        paths.append(Path.home() / ".cache" / spec.legacy)
    return paths


def locate(role: str, root: Path, instead: str) -> Path | None:
    """The first existing file for ``role``, or None after logging one line that says which file was looked
    for where and what happens ``instead``."""
    paths = candidates(role, root)
    for path in paths:
        if path.is_file():
            return path
    log.warning("VBench cache: %s not found (looked for %s); %s", FILES[role].what, " and ".join(map(str, paths)),
                instead)
    return None


def resolve_flow(backend: str, weights: str | None, root: Path):
    """The flow estimator for ``backend``: ``auto`` is VBench's RAFT from the cache when it is there and
    VBench's RAFT code imports, else DIS; other names go to ``make_flow``. Returns (estimator, error):
    ``error`` names the cached RAFT file when it exists but cannot be loaded (DIS is used instead)."""
    from lolbench.metrics.flow import DISFlow, VBenchRAFT, make_flow
    from lolbench.metrics.vbench_code import unavailable_reason

    if backend != "auto":
        return make_flow(backend, weights), None
    if weights is not None:
        raise ValueError(f"flow 'auto' reads RAFT from the VBench cache and takes no flow_weights, got {weights!r}; "
                         "set flow: raft for a torchvision RAFT state dict")
    path = locate("raft", root, "dynamic degree uses the DIS stand-in and temporal flickering no static filter")
    if path is None:
        return DISFlow(), None
    reason = unavailable_reason()
    if reason is not None:
        log.warning("VBench cache: found %s but cannot load it: %s; using DIS", path, reason)
        return DISFlow(), None
    try:
        return VBenchRAFT(path), None
    except ValueError as err:
        log.error("VBench cache: %s", err)
        return DISFlow(), f"unavailable: {err}"
