"""Build RopeSpec / JitterSpec from the Hydra groups ``model``, ``rope`` and ``jitter``.

Each ``rope`` group file names its method and holds only that method's parameters. Which keys exist, their
types and ranges are the groups' structured configs (lolbench/schema.py), checked when the config is composed;
RopeSpec and JitterSpec check what relates keys to each other and to the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lolbench.rope.spec import JitterSpec, RopeSpec

POSITION_MODES = ("absolute", "rolling")

# rope config key -> RopeSpec field, per method (besides `name` and `positions`)
_METHOD_KEYS: dict[str, dict[str, str]] = {
    "none": {},
    "pi": {"target_frames": "target_frames"},
    "ntk": {"target_frames": "target_frames"},
    "yarn": {"target_frames": "target_frames", "alpha": "yarn_alpha", "beta": "yarn_beta"},
    "riflex": {"target_frames": "target_frames", "k": "riflex_k"},
}
MODEL_KEYS = {  # model config key -> RopeSpec field
    "head_dim": "head_dim",
    "num_heads": "num_heads",
    "rope_theta": "theta",
    "rope_time_dim": "time_dim",
    "train_frames": "train_frames",
}


def position_mode(rope_cfg: Mapping[str, Any]) -> str:
    """The KV cache's position mode, ``rope.positions``: absolute frame indices or a re-indexed window."""
    return rope_cfg.get("positions", "absolute")


def rope_spec_from_config(model_cfg: Mapping[str, Any], rope_cfg: Mapping[str, Any]) -> RopeSpec:
    """RopeSpec from the ``model`` group (head_dim, num_heads, rope_theta, rope_time_dim, train_frames) and
    the ``rope`` group (name, positions, and the method's parameters)."""
    if "name" not in rope_cfg:
        raise ValueError(f"rope config has no key 'name' (one of {sorted(_METHOD_KEYS)}), got keys {sorted(rope_cfg)}")
    allowed = _METHOD_KEYS[rope_cfg["name"]]
    fields = {field: model_cfg[key] for key, field in MODEL_KEYS.items()}
    fields.update({field: rope_cfg[key] for key, field in allowed.items() if key in rope_cfg})
    return RopeSpec(method=rope_cfg["name"], **fields)


def jitter_spec_from_config(jitter_cfg: Mapping[str, Any]) -> JitterSpec:
    """JitterSpec from the ``jitter`` group (name, sigma, head_fraction, seed)."""
    return JitterSpec(sigma=float(jitter_cfg.get("sigma", 0.0)),
                      head_fraction=float(jitter_cfg.get("head_fraction", 1.0)), seed=int(jitter_cfg.get("seed", 0)))
