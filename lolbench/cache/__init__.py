"""The streaming KV cache with its sink policies (window, static, deep, DySink) and attention probes."""

from lolbench.cache.build import POLICIES, build_policy, config_keys
from lolbench.cache.dysink import DySinkMemory, DySinkPolicy, MemoryBank, gate_consensus
from lolbench.cache.embed import (
    EMBEDDERS,
    ChunkEmbedder,
    LatentEmbedder,
    LayoutEmbedder,
    PixelEmbedder,
    build_embedder,
)
from lolbench.cache.kv import ChunkStats, StreamingKVCache
from lolbench.cache.memory import ChunkMemory
from lolbench.cache.policies import DeepSinkPolicy, Selection, SinkPolicy, StaticSinkPolicy, WindowPolicy

__all__ = [
    "EMBEDDERS",
    "POLICIES",
    "ChunkEmbedder",
    "ChunkMemory",
    "ChunkStats",
    "DeepSinkPolicy",
    "DySinkMemory",
    "DySinkPolicy",
    "LatentEmbedder",
    "LayoutEmbedder",
    "MemoryBank",
    "PixelEmbedder",
    "Selection",
    "SinkPolicy",
    "StaticSinkPolicy",
    "StreamingKVCache",
    "WindowPolicy",
    "build_embedder",
    "build_policy",
    "config_keys",
    "gate_consensus",
]
