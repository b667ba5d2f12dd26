"""3D rotary position embedding with per-head frequency tables, LoL jitter and context-extension methods.

``RopeSpec`` + ``JitterSpec`` -> ``build_tables`` -> ``RopeTables`` (float64, [H, K] per axis) -> ``Rotary``
rotates queries and keys. ``lolbench.phase`` analyses the same tables without a model.
"""

from lolbench.rope.config import (
    POSITION_MODES,
    jitter_spec_from_config,
    position_mode,
    rope_spec_from_config,
)
from lolbench.rope.extensions import EXTENSIONS
from lolbench.rope.frequencies import axis_frequencies, wan_time_dim
from lolbench.rope.jitter import jitter_factors, jittered_head_count, jittered_heads
from lolbench.rope.rotary import Rotary
from lolbench.rope.spec import METHODS, JitterSpec, RopeSpec
from lolbench.rope.tables import RopeTables, build_tables

__all__ = [
    "EXTENSIONS",
    "METHODS",
    "POSITION_MODES",
    "JitterSpec",
    "RopeSpec",
    "RopeTables",
    "Rotary",
    "axis_frequencies",
    "build_tables",
    "jitter_factors",
    "jitter_spec_from_config",
    "jittered_head_count",
    "jittered_heads",
    "position_mode",
    "rope_spec_from_config",
    "wan_time_dim",
]
