"""Model-free phase analysis of temporal RoPE: the coherence kernel C(Δ) and its local maxima.

At a query-key frame distance Δ, temporal pair i of a head contributes the phase ``ω_i Δ``. The kernel
``C(Δ) = |(1/K) Σ_i exp(j ω_i Δ)|`` is 1 when every pair is back in phase (the key "looks as near" as a key
at distance 0) and small when the phases spread. LoL explains sink-collapse by its local maxima: when all heads
share the same frequencies, all of them see the sink as near at the same Δ. The kernel covers phases only;
YaRN's logit temperature does not change it.

A model need not use every temporal pair: trained on short clips, it only learns to use pairs that rotate
through a useful range within its training length. ``usage_weighted_kernel`` weights each pair by how much a
model's queries and keys use it (``lolbench.generator.FrequencyUsage``), which is what that model's attention
actually sees.

Run ``python -m lolbench.phase --preset tiny --sigma 0.8`` to print the top maxima with and without jitter and
write the kernel and its maxima as CSV files; add ``--checkpoint PATH`` to also measure the model's pair usage
on procedural-world clips and print the usage-weighted kernel's maxima beside them. ``--model wan`` (plus the
run's Hydra overrides, e.g. ``model.wan_dir=... model.checkpoint=...``) measures a Wan model's usage on the first
chunks it generates for ``--prompt`` and gives every maximum in latent and pixel frames as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from scipy.signal import find_peaks
from torch import Tensor

from lolbench.atomic import atomic_write
from lolbench.config import CONF_DIR, compose_run_config
from lolbench.generator import FrequencyUsage
from lolbench.models.build import build_generator
from lolbench.models.checkpoint import CheckpointError, load_checkpoint
from lolbench.models.tiny import TinyConfig
from lolbench.rope import METHODS, JitterSpec, RopeSpec, RopeTables, build_tables, rope_spec_from_config
from lolbench.rope.config import MODEL_KEYS
from lolbench.world import SCENES, sample_clips

_TINY_MODEL_CONFIG = CONF_DIR / "model" / "tiny.yaml"
WAN_FPS = 16.0  # Wan2.1's pixel frame rate
# RopeSpec fields of each preset; `tiny` is the built-in model, re-read from conf/model/tiny.yaml when present.
PRESETS: dict[str, dict[str, object]] = {
    "tiny": {"head_dim": 32, "num_heads": 6, "theta": 10000.0, "time_dim": None, "train_frames": 21},
    "wan2.1-1.3b": {"head_dim": 128, "num_heads": 12, "theta": 10000.0, "time_dim": None, "train_frames": 21},
}


def _as_array(values: Tensor | np.ndarray, name: str) -> np.ndarray:
    array = values.detach().cpu().double().numpy() if isinstance(values, Tensor) else np.asarray(values, np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def frame_frequencies(tables: RopeTables) -> Tensor:
    """[H, Kt] angular frequency per *frame* of distance: the temporal table times the position scale (PI)."""
    return tables.time * tables.time_scale


def coherence_kernel(
    freqs: Tensor | np.ndarray, deltas: np.ndarray, weights: Tensor | np.ndarray | None = None
) -> np.ndarray:
    """Per-head coherence ``C_h(Δ) = |Σ_i w_i exp(j ω_{h,i} Δ)| / Σ_i w_i`` (uniform ``w`` -> the 1/K form).

    freqs: [H, K] or [K] angular frequencies per frame. deltas: [N] frame distances. weights: same shape as
    freqs, non-negative, e.g. how much a model uses each frequency pair. Returns [H, N], or [N] for 1-D freqs.
    Accumulates one pair at a time so memory stays [H, N] for any number of deltas.
    """
    omega = _as_array(freqs, "freqs")
    if omega.ndim not in (1, 2) or omega.shape[-1] == 0:
        raise ValueError(f"freqs must be [H, K] or [K] with K >= 1, got shape {omega.shape}")
    delta = _as_array(deltas, "deltas")
    if delta.ndim != 1:
        raise ValueError(f"deltas must be 1-D, got shape {delta.shape}")
    if weights is None:
        w = np.ones_like(omega)
    else:
        w = _as_array(weights, "weights")
        if w.shape != omega.shape:
            raise ValueError(f"weights shape {w.shape} must equal freqs shape {omega.shape}")
        if np.any(w < 0) or np.any(w.sum(axis=-1) == 0):
            raise ValueError("weights must be non-negative with a positive sum for every head")
    omega2, w2 = np.atleast_2d(omega), np.atleast_2d(w)  # [H, K]
    w2 = w2 / w2.sum(axis=1, keepdims=True)
    real = np.zeros((omega2.shape[0], len(delta)))  # [H, N]
    imag = np.zeros_like(real)
    for i in range(omega2.shape[1]):
        phase = omega2[:, i, None] * delta[None, :]  # [H, N]
        real += w2[:, i, None] * np.cos(phase)
        imag += w2[:, i, None] * np.sin(phase)
    kernel = np.hypot(real, imag)
    return kernel[0] if omega.ndim == 1 else kernel


def head_averaged_kernel(
    freqs: Tensor | np.ndarray, deltas: np.ndarray, weights: Tensor | np.ndarray | None = None
) -> np.ndarray:
    """[N] mean over heads of the per-head kernel.

    Mean of magnitudes, not magnitude of the mean phasor: each head normalizes its own attention, so what
    matters for homogenization is how many heads see a key as near at once, not whether their phases agree
    with each other. With identical heads the two are the same.
    """
    return np.atleast_2d(coherence_kernel(freqs, deltas, weights)).mean(axis=0)


def usage_weighted_kernel(
    freqs: Tensor | np.ndarray, usage: Tensor | np.ndarray, deltas: np.ndarray
) -> np.ndarray:
    """Per layer and head ``U_{l,h}(Δ) = Σ_i w_{l,h,i} cos(ω_{h,i} Δ) / Σ_i w_{l,h,i}``, ``w = usage``: [L, H, N].

    freqs: [H, K] angular frequencies per frame; usage: [L, H, K] non-negative, e.g. ``E|q_i| E|k_i|`` from
    ``FrequencyUsage.temporal_pair_usage``; deltas: [N] frame distances.

    Why a weighted cosine rather than C's magnitude: for a key whose pair-i 2-vectors point like the query's
    (a key that matches the query's content), the RoPE part of the attention logit at distance Δ is
    ``Σ_i |q_i| |k_i| cos(ω_i Δ)``, and U is its mean-magnitude version divided by its value at Δ = 0. U is 1
    exactly where every used pair is back in phase (the key looks as near as at distance 0, LoL's condition)
    and lies in [-1, 1]. With a single used pair U = cos(ω Δ), which peaks once per period, while the
    magnitude |Σ w_i exp(j ω_i Δ)| / Σ w_i of a single pair is 1 at every Δ and predicts nothing.
    """
    omega = np.atleast_2d(_as_array(freqs, "freqs"))
    weights = _as_array(usage, "usage")
    delta = _as_array(deltas, "deltas")
    if weights.ndim != 3 or weights.shape[1:] != omega.shape:
        raise ValueError(f"usage must be [L, H, K] with [H, K] = freqs shape {omega.shape}, got {weights.shape}")
    if delta.ndim != 1:
        raise ValueError(f"deltas must be 1-D, got shape {delta.shape}")
    if np.any(weights < 0):
        raise ValueError("usage must be non-negative")
    totals = weights.sum(axis=2)  # [L, H]
    if np.any(totals <= 0):
        layer, head = np.argwhere(totals <= 0)[0]
        raise ValueError(f"usage of layer {layer}, head {head} is 0 on every temporal pair; the kernel is undefined")
    weights = weights / totals[..., None]
    kernel = np.zeros((*totals.shape, len(delta)))  # [L, H, N]
    for i in range(omega.shape[1]):  # one pair at a time: memory stays [L, H, N]
        kernel += weights[:, :, i, None] * np.cos(omega[None, :, i, None] * delta[None, None, :])
    return kernel


def reference_usage(generator: FrequencyUsage, prompt: str, clips: int, frames: int, size: int, seed: int = 0
                    ) -> np.ndarray:
    """A model's temporal pair usage [L, H, K] on ``clips`` procedural-world clips of scene ``prompt``, each
    ``frames`` frames of ``size`` pixels from a random world seed and start frame drawn from ``seed``."""
    if not isinstance(generator, FrequencyUsage):
        raise TypeError(f"{type(generator).__name__} does not measure frequency usage (no temporal_pair_usage)")
    if prompt not in SCENES:
        raise ValueError(f"prompt={prompt!r}: reference clips come from the procedural world; allowed: "
                         f"{list(SCENES)}")
    if clips < 1:
        raise ValueError(f"clips must be >= 1, got {clips}")
    videos, _ = sample_clips([prompt], clips, frames, size, np.random.default_rng(seed))
    usage = np.asarray(generator.temporal_pair_usage(videos, prompt), dtype=np.float64)
    if usage.ndim != 3 or not np.all(np.isfinite(usage)) or np.any(usage < 0):
        raise ValueError(f"temporal_pair_usage must return finite non-negative [L, H, K], got shape {usage.shape}")
    return usage


def local_maxima(
    values: np.ndarray, deltas: np.ndarray, min_prominence: float = 0.01
) -> list[tuple[float, float, float]]:
    """Interior local maxima of ``values`` over ``deltas`` as (delta, value, prominence), most prominent first.

    Endpoints are never maxima (Δ = 0 is trivially coherent). Prominence is scipy's: the height above the
    higher of the two lowest points separating the peak from higher ground.
    """
    values, deltas = np.asarray(values, np.float64), np.asarray(deltas, np.float64)
    if values.ndim != 1 or values.shape != deltas.shape:
        raise ValueError(f"values and deltas must be 1-D of equal length, got {values.shape} and {deltas.shape}")
    peaks, props = find_peaks(values, prominence=min_prominence)
    order = np.argsort(-props["prominences"], kind="stable")
    return [(float(deltas[p]), float(values[p]), float(props["prominences"][j]))
            for j, p in zip(order, peaks[order])]


def preset_fields(preset: str) -> dict[str, object]:
    """RopeSpec fields of a preset; ``tiny`` takes its values from conf/model/tiny.yaml when that file exists."""
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not one of {tuple(PRESETS)}")
    fields = dict(PRESETS[preset])
    if preset == "tiny" and _TINY_MODEL_CONFIG.exists():
        model = OmegaConf.load(_TINY_MODEL_CONFIG)
        fields.update({field: model[key] for key, field in MODEL_KEYS.items() if key in model})
    return fields


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lolbench.phase", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=tuple(PRESETS), help="architecture to analyse (default tiny)")
    p.add_argument("--head-dim", type=int)
    p.add_argument("--heads", type=int, dest="num_heads")
    p.add_argument("--theta", type=float)
    p.add_argument("--time-dim", type=int)
    p.add_argument("--method", choices=METHODS)
    p.add_argument("--train-frames", type=int)
    p.add_argument("--target-frames", type=int)
    p.add_argument("--sigma", type=float, default=0.0, help="LoL jitter strength (0 = none)")
    p.add_argument("--head-fraction", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-delta", type=int, default=1000, help="largest frame distance analysed")
    p.add_argument("--top", type=int, default=10, help="maxima printed per kernel")
    p.add_argument("--min-prominence", type=float, default=0.01)
    p.add_argument("--out", type=Path, help="kernel CSV (default results/phase/<preset or checkpoint>_<method>_"
                                            "s<sigma>.csv); maxima go to <stem>_maxima.csv beside it")
    usage = p.add_argument_group("usage-weighted kernel of a trained tiny model")
    usage.add_argument("--checkpoint", type=Path, help="tiny-model checkpoint: its architecture replaces the "
                                                       "preset and its pair usage weights a second kernel")
    usage.add_argument("--clips", type=int, default=8, help="reference clips the usage is measured on")
    usage.add_argument("--prompt", help="scene of the reference clips and the model's prompt (default "
                                        f"{next(iter(SCENES))}); free text with --model wan")
    wan = p.add_argument_group("usage-weighted kernel of a Wan model (its own generated chunks)")
    wan.add_argument("--model", help="a conf/model option of name wan (wan, wan_tiny): measure that model, "
                                     "configured by the OVERRIDES")
    wan.add_argument("--chunks", type=int, default=4, help="reference chunks the Wan model generates")
    wan.add_argument("overrides", nargs="*", metavar="OVERRIDES",
                     help="Hydra overrides of the run config for --model, e.g. model.wan_dir=... model.checkpoint=...")
    return p


def usage_frame(usage: np.ndarray, freqs: np.ndarray) -> pd.DataFrame:
    """Long table of usage [L, H, K] with each pair's frequency [H, K], period and share of its layer-head total."""
    layers, heads, pairs = usage.shape
    layer, head, pair = np.meshgrid(np.arange(layers), np.arange(heads), np.arange(pairs), indexing="ij")
    omega = np.broadcast_to(freqs, usage.shape)
    with np.errstate(divide="ignore"):
        period = np.where(omega > 0, 2 * math.pi / omega, np.inf)
    share = usage / usage.sum(axis=2, keepdims=True)
    return pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "pair": pair.ravel(),
                         "omega": omega.ravel(), "period": period.ravel(), "usage": usage.ravel(),
                         "share": share.ravel()})


# argparse dest -> flag of the architecture options, which a checkpoint fixes
ARCHITECTURE_OPTIONS = {"head_dim": "--head-dim", "num_heads": "--heads", "theta": "--theta",
                        "time_dim": "--time-dim", "train_frames": "--train-frames"}


def checkpoint_run_config(checkpoint: Path, method: str | None, target_frames: int | None, jitter: JitterSpec
                          ) -> DictConfig:
    """The run config of the tiny model stored in ``checkpoint``: its own architecture, the given RoPE method
    and jitter (so the model is measured with the RoPE tables the kernels are computed from)."""
    net, _, _ = load_checkpoint(checkpoint)
    overrides = [f"model.checkpoint={checkpoint}", f"jitter.sigma={jitter.sigma}",
                 f"jitter.head_fraction={jitter.head_fraction}", f"jitter.seed={jitter.seed}"]
    for field in dataclasses.fields(TinyConfig):
        value = getattr(net.cfg, field.name)
        overrides.append(f"model.{field.name}={'null' if value is None else value}")
    return compose_run_config(overrides + _rope_overrides(method, target_frames))


def wan_run_config(model: str, overrides: list[str], method: str | None, target_frames: int | None,
                   jitter: JitterSpec) -> DictConfig:
    """The run config of ``model=MODEL OVERRIDES...`` with the analysis' RoPE method and jitter."""
    cfg = compose_run_config([f"model={model}", *_rope_overrides(method, target_frames), *overrides,
                              f"jitter.sigma={jitter.sigma}", f"jitter.head_fraction={jitter.head_fraction}",
                              f"jitter.seed={jitter.seed}"])
    if cfg.model.name != "wan":
        raise ValueError(f"--model {model} is model.name={cfg.model.name}; --model takes a Wan option (tiny models "
                         "use --checkpoint)")
    return cfg


def _rope_overrides(method: str | None, target_frames: int | None) -> list[str]:
    if method in (None, "none"):
        return []
    return [f"rope={method}", f"rope.target_frames={'null' if target_frames is None else target_frames}"]


def _format_maxima(title: str, maxima: list[tuple[float, float, float]], top: int, symbol: str = "C",
                   pixels: bool = False) -> str:
    """The maxima as a table; with ``pixels`` (Wan's VAE) Δ is in latent frames and the query's pixel frames
    and time (16 fps) are added: latent frame 0 is pixel frame 0, latent frame n >= 1 pixel frames 4n-3..4n."""
    header = f"  {'rank':>4} {'delta':>8} {symbol + '(delta)':>9} {'prominence':>10}"
    lines = [title, header + (f" {'pixel frames':>13} {'seconds':>8}" if pixels else "")]
    for r, (d, v, p) in enumerate(maxima[:top], start=1):
        row = f"  {r:>4} {d:>8g} {v:>9.4f} {p:>10.4f}"
        if pixels:
            first, last = max(4 * int(d) - 3, 0), 4 * int(d)
            row += f" {f'{first}-{last}':>13} {last / WAN_FPS:>8.2f}"
        lines.append(row)
    return "\n".join(lines if maxima else [title, "  no local maxima above the prominence threshold"])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_delta < 2:
        parser.error(f"--max-delta must be >= 2, got {args.max_delta}")
    if args.checkpoint is not None and args.clips < 1:
        parser.error(f"--clips must be >= 1, got {args.clips}")
    given = [flag for dest, flag in ARCHITECTURE_OPTIONS.items() if getattr(args, dest) is not None]
    given += ["--preset"] if args.preset is not None else []
    if args.checkpoint is not None and given:
        parser.error(f"{', '.join(given)} cannot be combined with --checkpoint, which fixes the architecture")
    if args.model is not None and (given or args.checkpoint is not None):
        parser.error(f"{', '.join(given + (['--checkpoint'] if args.checkpoint else []))} cannot be combined with "
                     "--model, whose config fixes the architecture")
    if args.overrides and args.model is None:
        parser.error(f"overrides {args.overrides} need --model")
    if args.model is not None and args.chunks < 1:
        parser.error(f"--chunks must be >= 1, got {args.chunks}")
    prompt = args.prompt or next(iter(SCENES))
    usage = None
    try:
        jitter = JitterSpec(sigma=args.sigma, head_fraction=args.head_fraction, seed=args.seed)
        if args.model is not None:
            cfg = wan_run_config(args.model, args.overrides, args.method, args.target_frames, jitter)
            spec = rope_spec_from_config(cfg.model, cfg.rope)
            from lolbench.models.wan_pipeline import build_wan_latents  # imports diffusers: only when asked
            from lolbench.models.wan_usage import own_chunk_usage

            usage = own_chunk_usage(build_wan_latents(cfg), prompt, args.chunks, args.seed)  # [L, H, K]
        elif args.checkpoint is None:
            fields = preset_fields(args.preset or "tiny")
            overrides = {"head_dim": args.head_dim, "num_heads": args.num_heads, "theta": args.theta,
                         "time_dim": args.time_dim, "method": args.method, "train_frames": args.train_frames,
                         "target_frames": args.target_frames}
            fields.update({k: v for k, v in overrides.items() if v is not None})
            spec = RopeSpec(**fields)
        else:
            cfg = checkpoint_run_config(args.checkpoint, args.method, args.target_frames, jitter)
            spec = rope_spec_from_config(cfg.model, cfg.rope)
            generator, _ = build_generator(cfg)
            usage = reference_usage(generator, prompt, args.clips, cfg.model.train_frames,
                                    cfg.model.image_size, args.seed)  # [L, H, K]
    except (ValueError, OSError, CheckpointError) as err:
        parser.error(str(err))

    deltas = np.arange(args.max_delta + 1, dtype=np.float64)  # [N]
    unjittered = frame_frequencies(build_tables(spec))  # [H, Kt]
    jittered = frame_frequencies(build_tables(spec, jitter))  # [H, Kt]
    per_head = coherence_kernel(jittered, deltas)  # [H, N]
    kernels = {"kernel": per_head.mean(axis=0), "kernel_no_jitter": head_averaged_kernel(unjittered, deltas)}
    columns = {"delta": deltas.astype(np.int64), **kernels}
    columns.update({f"head{h}": per_head[h] for h in range(spec.num_heads)})
    if usage is not None:
        per_layer = usage_weighted_kernel(jittered, usage, deltas).mean(axis=1)  # [L, N]
        kernels["kernel_usage"] = per_layer.mean(axis=0)
        columns["kernel_usage"] = kernels["kernel_usage"]
        columns.update({f"kernel_usage_layer{layer}": values for layer, values in enumerate(per_layer)})

    source = args.model if args.model is not None else \
        args.checkpoint.stem if args.checkpoint is not None else args.preset or "tiny"
    out = args.out or Path("results/phase") / f"{source}_{spec.method}_s{args.sigma:g}.csv"
    maxima_path = out.with_name(f"{out.stem}_maxima.csv")
    maxima = {name: local_maxima(values, deltas, args.min_prominence) for name, values in kernels.items()}
    rows = [{"kernel": name, "rank": r, "delta": int(d), "value": v, "prominence": p}
            for name, found in maxima.items() for r, (d, v, p) in enumerate(found, start=1)]
    kernel_table = pd.DataFrame(columns)
    maxima_table = pd.DataFrame(rows, columns=["kernel", "rank", "delta", "value", "prominence"])
    atomic_write(out, lambda tmp: kernel_table.to_csv(tmp, index=False))  # readers never see half a file
    atomic_write(maxima_path, lambda tmp: maxima_table.to_csv(tmp, index=False))

    periods = 2.0 * math.pi / unjittered[0]
    pixels = args.model is not None  # Wan: Δ in latent frames, also given in pixel frames
    unit = "latent frames" if pixels else "frames"
    print(f"{args.checkpoint or source}: {spec}\n{jitter}")
    print(f"temporal periods 2π/ω ({unit}, unjittered): " + ", ".join(f"{t:.4g}" for t in periods.tolist()))
    print(_format_maxima(f"head-averaged C(Δ), no jitter (Δ in {unit}):", maxima["kernel_no_jitter"], args.top,
                         pixels=pixels))
    if jitter.sigma > 0:
        print(_format_maxima(f"head-averaged C(Δ), jitter σ={jitter.sigma}:", maxima["kernel"], args.top,
                             pixels=pixels))
    if usage is not None:
        usage_path = out.with_name(f"{out.stem}_usage.csv")
        usage_table = usage_frame(usage, jittered.numpy())
        atomic_write(usage_path, lambda tmp: usage_table.to_csv(tmp, index=False))
        shares = usage_table.groupby("pair")[["period", "share"]].mean()
        reference = f"its first {args.chunks} chunks for {prompt!r}" if pixels else f"{args.clips} {prompt} clips"
        print(f"temporal pair usage of {args.checkpoint or source} on {reference} "
              "(share of E|q_i||k_i|, mean over layers and heads): "
              + ", ".join(f"2π/ω={row.period:.4g}: {row.share:.3f}" for row in shares.itertuples()))
        print(_format_maxima(f"usage-weighted kernel U(Δ), mean over layers and heads (Δ in {unit}):",
                             maxima["kernel_usage"], args.top, symbol="U", pixels=pixels))
        print(f"wrote {usage_path}")
    print(f"wrote {out} and {maxima_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
