"""Build RopeSpec / JitterSpec from the Hydra groups ``model``, ``rope`` and ``jitter``.

Each ``rope`` group file names its method and holds only that method's parameters; a key the method does not
use is an error rather than silently ignored, so a typo on the command line cannot go unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lolbench.rope.spec import METHODS, JitterSpec, RopeSpec

POSITION_MODES = ("absolute", "rolling")
JITTERS = ("none", "lol")

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


def _require(cfg: Mapping[str, Any], key: str, group: str) -> Any:
    if key not in cfg:
        raise ValueError(f"{group} config has no key {key!r} (keys: {sorted(cfg)})")
    return cfg[key]


def position_mode(rope_cfg: Mapping[str, Any]) -> str:
    """The KV cache's position mode, ``rope.positions``: absolute frame indices or a re-indexed window."""
    mode = rope_cfg["positions"] if "positions" in rope_cfg else "absolute"
    if mode not in POSITION_MODES:
        raise ValueError(f"rope.positions={mode!r} is not one of {POSITION_MODES}")
    return mode


def rope_spec_from_config(model_cfg: Mapping[str, Any], rope_cfg: Mapping[str, Any]) -> RopeSpec:
    """RopeSpec from the ``model`` group (head_dim, num_heads, rope_theta, rope_time_dim, train_frames) and
    the ``rope`` group (name, positions, and the method's parameters)."""
    name = _require(rope_cfg, "name", "rope")
    if name not in _METHOD_KEYS:
        raise ValueError(f"rope.name={name!r} is not one of {METHODS}")
    position_mode(rope_cfg)
    allowed = _METHOD_KEYS[name]
    unknown = sorted(set(rope_cfg) - {"name", "positions"} - set(allowed))
    if unknown:
        raise ValueError(f"rope={name} does not take keys {unknown}; it takes {sorted(allowed)}")
    fields = {field: _require(model_cfg, key, "model") for key, field in MODEL_KEYS.items()}
    fields.update({field: rope_cfg[key] for key, field in allowed.items() if key in rope_cfg})
    return RopeSpec(method=name, **fields)


def jitter_spec_from_config(jitter_cfg: Mapping[str, Any]) -> JitterSpec:
    """JitterSpec from the ``jitter`` group (name, sigma, head_fraction, seed). ``none`` must have sigma 0."""
    name = _require(jitter_cfg, "name", "jitter")
    if name not in JITTERS:
        raise ValueError(f"jitter.name={name!r} is not one of {JITTERS}")
    sigma = float(jitter_cfg.get("sigma", 0.0))
    if name == "none" and sigma != 0.0:
        raise ValueError(f"jitter=none cannot have sigma={sigma}; use jitter=lol jitter.sigma={sigma}")
    return JitterSpec(sigma=sigma, head_fraction=float(jitter_cfg.get("head_fraction", 1.0)),
                      seed=int(jitter_cfg.get("seed", 0)))
