"""Build a sink policy from the Hydra ``sink`` group (conf/sink/*.yaml).

Each group file names its policy and holds exactly that policy's constructor arguments. Which keys exist, their
types and ranges are the group's structured config (lolbench/schema.py), checked when the config is composed;
the policy checks what relates its keys to each other and to the model's chunk size.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lolbench.cache.dysink import DySinkPolicy
from lolbench.cache.policies import DeepSinkPolicy, SinkPolicy, StaticSinkPolicy, WindowPolicy

POLICIES: dict[str, type[SinkPolicy]] = {
    cls.name: cls for cls in (WindowPolicy, StaticSinkPolicy, DeepSinkPolicy, DySinkPolicy)
}


def config_keys(cls: type[SinkPolicy]) -> list[str]:
    """The ``sink`` config keys of a policy: its constructor arguments except the model's chunk size."""
    return [p for p in inspect.signature(cls).parameters if p != "chunk_frames"]


def build_policy(sink_cfg: Mapping[str, Any], chunk_frames: int) -> SinkPolicy:
    """The policy described by ``sink_cfg`` (``name`` plus that policy's keys), checked against the chunk size."""
    cls = POLICIES[sink_cfg["name"]]
    kwargs = {key: sink_cfg[key] for key in config_keys(cls)}
    if "chunk_frames" in inspect.signature(cls).parameters:
        kwargs["chunk_frames"] = chunk_frames
    policy = cls(**kwargs)
    policy.check(chunk_frames)
    return policy
