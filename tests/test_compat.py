"""Packages built on torchvision import on this CPU torch once lolbench's shim has run (design.md §3)."""

from __future__ import annotations

import subprocess
import sys


def test_torchvision_lpips_open_clip_and_timm_import_in_a_fresh_interpreter():
    code = (
        "from lolbench._compat import ensure_torchvision; ensure_torchvision()\n"
        "import torchvision, lpips, open_clip, timm\n"
        "from torchvision.models.optical_flow import raft_small\n"
        "print(type(raft_small(weights=None)).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "RAFT"
