"""What every result records about where it came from."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import lolbench


def git_revision(repo: Path | None = None) -> str:
    """Commit of the lolbench checkout (with ``-dirty`` when it has uncommitted changes), or ``unknown``."""
    cwd = repo or Path(lolbench.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    return {
        "lolbench": lolbench.__version__,
        "git_revision": git_revision(),
        "torch": str(torch.__version__),  # TorchVersion would not load with weights_only=True
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
