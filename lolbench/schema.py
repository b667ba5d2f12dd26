"""Typed, documented structured configs (Hydra ConfigStore dataclasses) for every config group of run.py.

Each option file of a group (``conf/sink/static.yaml``, ...) starts from its dataclass here
(``defaults: [/schema/<group>/<option>@_here_, _self_]``), so composing a config already rejects unknown keys
and values of the wrong type, naming the key. The values themselves stay in the yaml files (one place); a
dataclass holds each key's type, its allowed range (``field`` metadata) and what it means (``help``).
:func:`check_ranges` then checks every range before the first frame, with the key and its range in the message.
Rules that relate several keys or need the model (e.g. a window of at least one chunk) stay with the code that
knows them (the sink policies, RopeSpec).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from lolbench.rope.config import POSITION_MODES


def key(help: str, default: Any = MISSING, **rule: Any) -> Any:
    """A config key: its documentation and its allowed range (``ge gt le lt`` bounds, ``choices``)."""
    return field(default=default, metadata={"help": help, **rule})


_BOUNDS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
           "le": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}


def describe(rule: dict[str, Any]) -> str:
    """The allowed range of a key in words, e.g. ``>= 0 and <= 1`` or ``one of ['a', 'b']``."""
    parts = [f"{_BOUNDS[k][0]} {v}" for k, v in rule.items() if k in _BOUNDS]
    if "choices" in rule:
        parts.append(f"one of {list(rule['choices'])}")
    return " and ".join(parts)


def check_value(name: str, value: Any, rule: dict[str, Any]) -> None:
    """Raise ValueError naming ``name`` and its range unless ``value`` is in it (None passes: optional keys)."""
    if value is None:
        return
    ok = value in rule["choices"] if "choices" in rule else True
    for bound, (_, test) in _BOUNDS.items():
        if bound in rule:
            ok = ok and not (isinstance(value, float) and math.isnan(value)) and test(value, rule[bound])
    if not ok:
        raise ValueError(f"{name}={value!r} is out of range: must be {describe(rule)}")


def check_ranges(cfg: DictConfig, prefix: str = "") -> None:
    """Check every key that comes from a schema dataclass against its range, recursively through the nodes that
    have a schema (resolving only the values checked, so e.g. Hydra's own ``hydra`` node is left alone)."""
    schema = OmegaConf.get_type(cfg)
    rules = {f.name: f.metadata for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    for name in cfg:
        node = cfg._get_node(name)
        if isinstance(node, DictConfig) and getattr(OmegaConf.get_type(node), "__module__", None) == __name__:
            check_ranges(cfg[name], f"{prefix}{name}.")
        elif name in rules and not isinstance(node, (DictConfig, ListConfig)):
            check_value(f"{prefix}{name}", cfg[name], {k: v for k, v in rules[name].items() if k != "help"})


# ---------------------------------------------------------------------------------------------- top level


@dataclass
class RunSchema:
    model: Any = MISSING
    sink: Any = MISSING
    jitter: Any = MISSING
    rope: Any = MISSING
    metrics: Any = MISSING
    logger: Any = MISSING
    num_frames: int = key("frames to generate", ge=1)
    seed: int = key("seed of the rollout's noise (and of the jitter draw by default)")
    prompt: str = key("a scene of the procedural world (lolbench.world.SCENES) or the model's prompt")
    prompts_file: Optional[str] = key("one prompt a line; `+sweep=prompts prompts_file=FILE` runs one job per line")
    probe_every: int = key("attention probe every k-th chunk, 0 = never", ge=0)
    video_scale: int = key("nearest-neighbour upscale of the mp4 for viewing (metrics see raw frames)", ge=1)
    checkpoint_every: int = key("chunks between checkpoints of the whole streaming state", ge=1)
    threads: Optional[int] = key("torch CPU threads, null = torch's default", ge=1)
    resume: Any = key("continue from the run dir's checkpoint: false, true, or auto (if there is one)",
                      choices=(False, True, "auto"))


# ---------------------------------------------------------------------------------------------- sink


@dataclass
class WindowSink:
    name: str = key("no sink, only the last frames (Self-Forcing++)", choices=("window",))
    window_frames: int = key("local window, in frames", ge=1)


@dataclass
class StaticSink:
    name: str = key("the first frames stay forever (StreamingLLM, LongLive 3 + 9)", choices=("static",))
    sink_frames: int = key("sink frames kept forever", ge=0)
    window_frames: int = key("local window, in frames", ge=1)


@dataclass
class DeepSink:
    name: str = key("Deep Forcing's large sink", choices=("deep",))
    sink_fraction: float = key("share of context_frames given to the sink (rounded to chunks)", ge=0.0, le=1.0)
    context_frames: int = key("sink + local window, in frames", ge=1)


@dataclass
class DySinkSchema:
    name: str = key("memory bank + retrieval + anomaly gate (DySink)", choices=("dysink",))
    sink_frames: int = key("static sink kept besides the retrieved chunks", ge=0)
    window_frames: int = key("local window, in frames (whole chunks)", ge=1)
    top_k: int = key("chunks retrieved before each chunk", ge=1)
    bank_size: int = key("stored chunks; when full the most redundant is evicted", ge=1)
    dedup_threshold: float = key("a chunk is stored only if its max cosine to the bank is at most this",
                                 ge=-1.0, le=1.0)
    gate: bool = key("drop a retrieved entry in a layer/step when most heads prefer it to the window")
    gate_tau: float = key("fraction of heads above which the gate drops an entry", ge=0.0, le=1.0)
    embedder: str = key("chunk embedder (lolbench.cache.embed; latent: Wan latents)", choices=("pixel", "latent"))


# ---------------------------------------------------------------------------------------------- rope, jitter



@dataclass
class PlainRope:
    name: str = key("plain 3D RoPE", choices=("none",))
    positions: str = key("absolute: keys rotated at their frame index; rolling: cache re-indexed to 0..W-1",
                         choices=POSITION_MODES)


@dataclass
class ExtendedRope:
    name: str = key("temporal RoPE extension method", choices=("pi", "ntk"))
    positions: str = key("absolute or rolling positions", choices=POSITION_MODES)
    target_frames: int = key("length L' the method extends the trained positions to", ge=1)


@dataclass
class YarnRope(ExtendedRope):
    name: str = key("YaRN", choices=("yarn",))
    alpha: float = key("ramp start, in rotations over train_frames", ge=0.0)
    beta: float = key("ramp end, in rotations over train_frames (> alpha)", gt=0.0)


@dataclass
class RiflexRope(ExtendedRope):
    name: str = key("RIFLEx", choices=("riflex",))
    k: Optional[int] = key("1-based temporal component lowered; null = closest period to train_frames", ge=1)


@dataclass
class LolJitter:
    name: str = key("LoL multi-head RoPE jitter: per-head base θ0 (1 + σ ε_h)", choices=("lol",))
    sigma: float = key("jitter strength σ (0 = off)", ge=0.0, lt=1.0)
    head_fraction: float = key("fraction of heads jittered", ge=0.0, le=1.0)
    seed: int = key("seed of the per-head draw ε_h")


@dataclass
class NoJitter(LolJitter):
    name: str = key("no jitter", choices=("none",))
    sigma: float = key("must stay 0", ge=0.0, le=0.0)


# ---------------------------------------------------------------------------------------------- logger


@dataclass
class LocalLogger:
    name: str = key("the run directory's files are the whole record", choices=("local", "none"))


@dataclass
class WandbLoggerSchema:
    name: str = key("Weights & Biases", choices=("wandb",))
    mode: str = key("offline writes into the run dir; online needs `wandb login`", choices=("offline", "online"))
    project: str = key("W&B project")
    entity: Optional[str] = key("W&B team or user; null = your default entity")
    dir: Optional[str] = key("where W&B writes its files; null = the run directory")
    tags: list[str] = field(default_factory=list, metadata={"help": "W&B tags"})


# ---------------------------------------------------------------------------------------------- model


@dataclass
class TinyModel:
    name: str = key("the built-in tiny AR video transformer (lolbench/models/tiny.py)", choices=("tiny",))
    checkpoint: Optional[str] = key("builtin (the shipped checkpoint), a path, or null for random weights")
    device: str = key("torch device, e.g. cpu or cuda")
    denoise_steps: int = key("Euler steps of the flow-matching sampler per chunk", ge=1)
    time_shift: float = key("timestep shift of the sampler (1 = uniform steps)", gt=0.0)
    image_size: int = key("frame side in pixels (must match the checkpoint, as every key below)", ge=1)
    patch_stride: int = key("pixels between neighbouring tokens", ge=1)
    patch_kernel: int = key("patch embedding kernel (> stride: overlapping tokens)", ge=1)
    num_heads: int = key("attention heads", ge=1)
    head_dim: int = key("dims per head", ge=2)
    num_layers: int = key("transformer blocks", ge=1)
    mlp_ratio: int = key("MLP width / model width", ge=1)
    head_channels: int = key("channels of the convolutional pixel head", ge=1)
    num_scenes: int = key("scene (prompt) embeddings", ge=1)
    chunk_frames: int = key("frames per autoregressive step", ge=1)
    train_frames: int = key("clip length seen in training (RoPE positions 0..train_frames-1)", ge=1)
    rope_theta: float = key("RoPE base θ0", gt=0.0)
    rope_time_dim: Optional[int] = key("head dims given to time; null = Wan's split", ge=2)


@dataclass
class WorldModel:
    name: str = key("the procedural world itself, a reference with no model", choices=("world",))
    size: int = key("frame side in pixels", ge=1)
    chunk_frames: int = key("frames per chunk", ge=1)


SCHEMAS: dict[str, dict[str, type]] = {
    "sink": {"window": WindowSink, "static": StaticSink, "deep": DeepSink, "dysink": DySinkSchema},
    "rope": {"none": PlainRope, "pi": ExtendedRope, "ntk": ExtendedRope, "yarn": YarnRope, "riflex": RiflexRope},
    "jitter": {"lol": LolJitter, "none": NoJitter},
    "logger": {"local": LocalLogger, "none": LocalLogger, "wandb": WandbLoggerSchema},
    "model": {"tiny": TinyModel, "world": WorldModel},
}

