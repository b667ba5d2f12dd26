"""Wall-clock timing of generation stages that stays honest on a GPU, and the run's peak GPU memory.

CUDA kernels run asynchronously: without a synchronization the clock stops when work is queued, not done, and
the time lands in whichever later stage happens to wait. Every stage boundary therefore synchronizes when CUDA
is in use (a no-op on CPU).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

import torch


def _cuda_in_use() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def clock() -> float:
    """``time.perf_counter()`` after the GPU's queued work has finished."""
    if _cuda_in_use():
        torch.cuda.synchronize()
    return time.perf_counter()


@contextmanager
def timed(stats: MutableMapping[str, float], key: str) -> Iterator[None]:
    """Add the seconds spent in the block to ``stats[key]`` (so a stage run several times per chunk sums)."""
    start = clock()
    try:
        yield
    finally:
        stats[key] = stats.get(key, 0.0) + clock() - start


def peak_gpu_memory_bytes() -> int | None:
    """``torch.cuda.max_memory_allocated()`` of this process, or None when CUDA was never used."""
    return int(torch.cuda.max_memory_allocated()) if _cuda_in_use() else None
