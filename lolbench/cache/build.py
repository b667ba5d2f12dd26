"""Build a sink policy from the Hydra ``sink`` group (conf/sink/*.yaml).

Each group file names its policy and holds exactly that policy's constructor arguments; a missing or unknown
key is an error rather than silently defaulted or ignored, so a typo on the command line cannot go unnoticed.
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
    name = sink_cfg.get("name")
    if name not in POLICIES:
        raise ValueError(f"sink.name={name!r} is not one of {list(POLICIES)}")
    cls = POLICIES[name]
    keys = config_keys(cls)
    unknown = sorted(set(sink_cfg) - {"name"} - set(keys))
    missing = [key for key in keys if key not in sink_cfg]
    if unknown or missing:
        raise ValueError(f"sink={name} takes exactly the keys {keys}; unknown: {unknown}, missing: {missing}")
    kwargs = {key: sink_cfg[key] for key in keys}
    if "chunk_frames" in inspect.signature(cls).parameters:
        kwargs["chunk_frames"] = chunk_frames
    policy = cls(**kwargs)
    policy.check(chunk_frames)
    return policy
