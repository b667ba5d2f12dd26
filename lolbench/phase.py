"""Model-free phase analysis of temporal RoPE: the coherence kernel C(Δ) and its local maxima.

At a query-key frame distance Δ, temporal pair i of a head contributes the phase ``ω_i Δ``. The kernel
``C(Δ) = |(1/K) Σ_i exp(j ω_i Δ)|`` is 1 when every pair is back in phase (the key "looks as near" as a key
at distance 0) and small when the phases spread. LoL explains sink-collapse by its local maxima: when all heads
share the same frequencies, all of them see the sink as near at the same Δ. The kernel covers phases only;
YaRN's logit temperature does not change it.

Run ``python -m lolbench.phase --preset tiny --sigma 0.8`` to print the top maxima with and without jitter and
write the kernel and its maxima as CSV files.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy.signal import find_peaks
from torch import Tensor

from lolbench.atomic import atomic_write
from lolbench.config import CONF_DIR
from lolbench.rope import METHODS, JitterSpec, RopeSpec, RopeTables, build_tables
from lolbench.rope.config import MODEL_KEYS

_TINY_MODEL_CONFIG = CONF_DIR / "model" / "tiny.yaml"
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
    p.add_argument("--preset", choices=tuple(PRESETS), default="tiny")
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
    p.add_argument("--out", type=Path, help="kernel CSV (default results/phase/<preset>_<method>_s<sigma>.csv); "
                                            "maxima go to <stem>_maxima.csv beside it")
    return p


def _format_maxima(title: str, maxima: list[tuple[float, float, float]], top: int) -> str:
    lines = [title, f"  {'rank':>4} {'delta':>8} {'C(delta)':>9} {'prominence':>10}"]
    lines += [f"  {r:>4} {d:>8g} {v:>9.4f} {p:>10.4f}" for r, (d, v, p) in enumerate(maxima[:top], start=1)]
    return "\n".join(lines if maxima else [title, "  no local maxima above the prominence threshold"])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_delta < 2:
        parser.error(f"--max-delta must be >= 2, got {args.max_delta}")
    fields = preset_fields(args.preset)
    overrides = {"head_dim": args.head_dim, "num_heads": args.num_heads, "theta": args.theta,
                 "time_dim": args.time_dim, "method": args.method, "train_frames": args.train_frames,
                 "target_frames": args.target_frames}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        spec = RopeSpec(**fields)
        jitter = JitterSpec(sigma=args.sigma, head_fraction=args.head_fraction, seed=args.seed)
    except ValueError as err:
        parser.error(str(err))

    deltas = np.arange(args.max_delta + 1, dtype=np.float64)  # [N]
    unjittered = frame_frequencies(build_tables(spec))  # [H, Kt]
    per_head = coherence_kernel(frame_frequencies(build_tables(spec, jitter)), deltas)  # [H, N]
    kernels = {"kernel": per_head.mean(axis=0), "kernel_no_jitter": head_averaged_kernel(unjittered, deltas)}
    columns = {"delta": deltas.astype(np.int64), **kernels}
    columns.update({f"head{h}": per_head[h] for h in range(spec.num_heads)})

    out = args.out or Path("results/phase") / f"{args.preset}_{spec.method}_s{args.sigma:g}.csv"
    maxima_path = out.with_name(f"{out.stem}_maxima.csv")
    maxima = {name: local_maxima(values, deltas, args.min_prominence) for name, values in kernels.items()}
    rows = [{"kernel": name, "rank": r, "delta": int(d), "value": v, "prominence": p}
            for name, found in maxima.items() for r, (d, v, p) in enumerate(found, start=1)]
    kernel_table = pd.DataFrame(columns)
    maxima_table = pd.DataFrame(rows, columns=["kernel", "rank", "delta", "value", "prominence"])
    atomic_write(out, lambda tmp: kernel_table.to_csv(tmp, index=False))  # readers never see half a file
    atomic_write(maxima_path, lambda tmp: maxima_table.to_csv(tmp, index=False))

    periods = 2.0 * math.pi / unjittered[0]
    print(f"{args.preset}: {spec}\n{jitter}")
    print("temporal periods 2π/ω (frames, unjittered): " + ", ".join(f"{t:.4g}" for t in periods.tolist()))
    print(_format_maxima("head-averaged C(Δ), no jitter:", maxima["kernel_no_jitter"], args.top))
    if jitter.sigma > 0:
        print(_format_maxima(f"head-averaged C(Δ), jitter σ={jitter.sigma}:", maxima["kernel"], args.top))
    print(f"wrote {out} and {maxima_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
