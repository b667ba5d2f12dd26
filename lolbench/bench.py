"""Benchmarks, reported as ratios measured within one run so that machine load mostly cancels (never asserted
by tests).

  python -m lolbench.bench all          # every figure below -> results/bench/<date>-<machine>.{json,md}
  python -m lolbench.bench generation   # frames/s at the start and after --late-frame frames, static and dysink
  python -m lolbench.bench generation model=wan_tiny   # model=wan: ms/chunk at the start and after 1,000 chunks
  python -m lolbench.bench metrics      # metric cost per frame relative to the tiny model's generation cost
  python -m lolbench.bench eval [VIDEO] # frames/s of `python -m lolbench.eval` and its ratio to the video's fps

``all`` measures: generation frames/s (static, dysink) and the late/early time per frame; the peak-RSS ratio
of a long to a short run with default metrics (separate processes of run.py); the metric overhead; the
dysink/static cost ratio; the checkpoint overhead (fraction of wall time at the default interval); and the
physical limit: FLOPs per frame of the model (counted by torch.utils.flop_counter from the shapes of the
matmuls, convolutions and attention of one steady-state chunk; elementwise work not counted) divided by this
machine's measured float32 matmul rate, with the implementation's frames/s as a fraction of it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lolbench.atomic import atomic_write, write_json
from lolbench.config import compose_run_config
from lolbench.generator import VideoGenerator
from lolbench.metrics.suite import build_suite
from lolbench.models.build import build_generator
from lolbench.runner import run

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "results" / "bench"


def frames_per_second(generator: VideoGenerator, frames: int) -> tuple[float, int]:
    """Generate at least ``frames`` frames; returns (frames/s, frames generated)."""
    start, done = time.perf_counter(), 0
    while done < frames:
        done += len(generator.next_chunk().frames)
    return done / (time.perf_counter() - start), done


def generation_rates(sink: str, overrides: list[str], late_frame: int, window: int) -> dict[str, float]:
    """frames/s over ``window`` frames at the start (after a 30-frame warm-up) and from ``late_frame`` on."""
    cfg = compose_run_config([f"sink={sink}", *overrides])
    generator, info = build_generator(cfg)
    generator.reset(cfg.prompt, cfg.seed)
    _, warmup = frames_per_second(generator, 30)
    early, timed = frames_per_second(generator, window)
    frames_per_second(generator, late_frame - warmup - timed)
    late, _ = frames_per_second(generator, window)
    return {"fps_early": early, "fps_late": late, "late_over_early_time_per_frame": early / late,
            "cache_mb": info["cache_bytes"] / 2**20}


def bench_generation(overrides: list[str], late_frame: int, window: int) -> dict[str, dict[str, float]]:
    print(f"{'sink':8s} {'fps@start':>10s} {f'fps@{late_frame}':>12s} {'late/early':>10s} {'cache MB':>9s}")
    out = {}
    for sink in ("static", "dysink"):
        r = out[sink] = generation_rates(sink, overrides, late_frame, window)
        print(f"{sink:8s} {r['fps_early']:10.1f} {r['fps_late']:12.1f} {r['late_over_early_time_per_frame']:10.3f} "
              f"{r['cache_mb']:9.2f}")
    return out


def bench_wan_generation(overrides: list[str], late_chunk: int, window: int) -> None:
    """model=wan (latents, random text embeddings): cost per chunk at the start and after ``late_chunk`` chunks.

    Two generators of the same config, one fresh and one advanced by ``late_chunk`` chunks, are timed in
    alternating rounds of a few chunks, so that a machine whose load changes during the run slows both alike.
    """
    print(f"{'sink':8s} {'ms/chunk@start':>14s} {f'ms/chunk@{late_chunk}':>16s} {'late/start':>10s} {'cache MB':>9s}")
    for sink in (["sink=static"], ["sink=dysink", "sink.embedder=latent"]):
        cfg = compose_run_config([*sink, *overrides])
        early, late = (build_generator(cfg) for _ in range(2))
        text = torch.randn(1, cfg.model.text_len, cfg.model.text_dim, generator=torch.Generator().manual_seed(0))
        for generator, _ in (early, late):
            generator.reset_embeds(text, cfg.seed)
        for _ in range(late_chunk):
            late[0].next_latents()
        early[0].next_latents()  # warm-up

        def seconds(generator, chunks: int) -> float:
            start = time.perf_counter()
            for _ in range(chunks):
                generator.next_latents()
            if generator.model.device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

        rounds, per_round = max(1, window // 5), 5
        t_early = t_late = 0.0
        for _ in range(rounds):
            t_early += seconds(early[0], per_round)
            t_late += seconds(late[0], per_round)
        ms_early, ms_late = (1e3 * t / (rounds * per_round) for t in (t_early, t_late))
        print(f"{sink[0][5:]:8s} {ms_early:14.2f} {ms_late:16.2f} {ms_late / ms_early:10.3f} "
              f"{early[1]['cache_bytes'] / 2**20:9.2f}")


def metric_overhead(overrides: list[str], frames: int) -> dict[str, float]:
    """Default metric suite's seconds per frame over the generator's, on the same frames."""
    cfg = compose_run_config(overrides)
    generator, _ = build_generator(cfg)
    generator.reset(cfg.prompt, cfg.seed)
    start, chunks = time.perf_counter(), []
    while sum(len(c) for c in chunks) < frames:
        chunks.append(generator.next_chunk().frames)
    gen_seconds = time.perf_counter() - start
    suite = build_suite(cfg.metrics, fps=generator.fps, chunk_frames=generator.chunk_frames)
    start = time.perf_counter()
    for chunk in chunks:
        suite.update_frames(chunk)
    suite.compute()
    metric_seconds = time.perf_counter() - start
    n = sum(len(c) for c in chunks)
    out = {"frames": n, "generation_ms_per_frame": 1e3 * gen_seconds / n,
           "metrics_ms_per_frame": 1e3 * metric_seconds / n, "metrics_over_generation": metric_seconds / gen_seconds}
    print(f"frames {n}: generation {out['generation_ms_per_frame']:.2f} ms/frame, metrics "
          f"{out['metrics_ms_per_frame']:.2f} ms/frame, metrics/generation = {out['metrics_over_generation']:.3f}")
    return out


def peak_rss_mb(frames: int, overrides: list[str]) -> float:
    """Peak RSS of a whole ``python run.py`` process (default metrics) that makes ``frames`` frames."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "run.py", f"num_frames={frames}", *overrides, f"hydra.run.dir={tmp}"],
                       cwd=ROOT, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        return float(json.loads((Path(tmp) / "summary.json").read_text())["peak_rss_mb"])


def checkpoint_overhead(overrides: list[str], frames: int) -> dict[str, float]:
    """Fraction of a run's wall time spent finishing video segments and writing checkpoints, default interval."""
    with tempfile.TemporaryDirectory() as tmp:
        summary = run(compose_run_config([f"num_frames={frames}", *overrides]), Path(tmp), progress=False)
    return {"frames": frames, "checkpoint_every": summary["config"]["checkpoint_every"],
            "checkpoints": frames // (3 * summary["config"]["checkpoint_every"]) + 1,
            "checkpoint_seconds": summary["checkpoint_seconds"], "wall_seconds": summary["wall_seconds"],
            "fraction": summary["checkpoint_seconds"] / summary["wall_seconds"]}


def flops_per_frame(overrides: list[str]) -> float:
    """FLOPs of one steady-state (context full, unprobed) chunk of the tiny model, per frame."""
    cfg = compose_run_config(overrides)
    generator, _ = build_generator(cfg)
    generator.reset(cfg.prompt, cfg.seed)
    frames_per_second(generator, 60)
    counter = FlopCounterMode(display=False)
    with counter:
        chunk = generator.next_chunk()
    return counter.get_total_flops() / len(chunk.frames)


def matmul_rate(size: int = 1024, seconds: float = 2.0) -> float:
    """Measured float32 matmul FLOP/s on this machine with torch's current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start)


def bench_all(overrides: list[str], late_frame: int, window: int, metric_frames: int, rss_frames: tuple[int, int],
              checkpoint_frames: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.time()
    generation = bench_generation(overrides, late_frame, window)
    metrics = metric_overhead(overrides, metric_frames)
    rss = {frames: peak_rss_mb(frames, overrides) for frames in rss_frames}
    ckpt = checkpoint_overhead(overrides, checkpoint_frames)
    flops = flops_per_frame(overrides)
    rate = matmul_rate()
    limit_fps = rate / flops
    return {
        "date": datetime.date.today().isoformat(),
        "machine": {"host": socket.gethostname(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "load_average_start": load_before,
                    "load_average_end": os.getloadavg(), "seconds": time.time() - started},
        "overrides": overrides,
        "generation": generation,
        "dysink_over_static_time_per_frame": generation["static"]["fps_early"] / generation["dysink"]["fps_early"],
        "metrics": metrics,
        "peak_rss_mb": {str(k): v for k, v in rss.items()},
        "peak_rss_ratio": rss[rss_frames[1]] / rss[rss_frames[0]],
        "checkpoint": ckpt,
        "physical_limit": {"flops_per_frame": flops, "matmul_flops_per_s": rate, "limit_fps": limit_fps,
                           "fraction_of_limit": generation["static"]["fps_early"] / limit_fps,
                           "counted_by": "torch.utils.flop_counter on one steady-state static-sink chunk "
                                         "(matmul, conv, attention FLOPs from shapes; elementwise not counted)"},
    }


def markdown(r: dict[str, Any], rss_frames: tuple[int, int], late_frame: int) -> str:
    g, m, c, p = r["generation"], r["metrics"], r["checkpoint"], r["physical_limit"]
    machine = r["machine"]
    rows = [
        ("generation frames/s, static (start)", f"{g['static']['fps_early']:.1f}"),
        ("generation frames/s, dysink (start)", f"{g['dysink']['fps_early']:.1f}"),
        (f"late/early time per frame at frame {late_frame:,}, static", f"{g['static']['late_over_early_time_per_frame']:.3f}"),
        (f"late/early time per frame at frame {late_frame:,}, dysink", f"{g['dysink']['late_over_early_time_per_frame']:.3f}"),
        (f"peak RSS {rss_frames[1]:,} / {rss_frames[0]:,} frames (default metrics)",
         f"{r['peak_rss_ratio']:.3f} ({r['peak_rss_mb'][str(rss_frames[1])]:.0f} / "
         f"{r['peak_rss_mb'][str(rss_frames[0])]:.0f} MB)"),
        ("metric overhead (metric time / generation time)", f"{m['metrics_over_generation']:.3f}"),
        ("dysink / static time per frame", f"{r['dysink_over_static_time_per_frame']:.3f}"),
        (f"checkpoint overhead (every {c['checkpoint_every']} chunks, {c['frames']} frames)", f"{100 * c['fraction']:.2f} %"),
        ("FLOPs per frame (tiny model, static sink)", f"{p['flops_per_frame'] / 1e6:.1f} MFLOP"),
        ("measured float32 matmul rate", f"{p['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s"),
        ("physical limit (rate / FLOPs per frame)", f"{p['limit_fps']:.0f} frames/s"),
        ("implementation's fraction of the limit", f"{100 * p['fraction_of_limit']:.1f} %"),
    ]
    lines = [f"# lolbench benchmarks, {r['date']}, {machine['host']}", "",
             f"{machine['cpus']} CPUs, {machine['torch_threads']} torch threads; load average "
             f"{machine['load_average_start'][0]:.1f} at the start, {machine['load_average_end'][0]:.1f} at the end "
             "(a shared machine: absolute rates vary, ratios are measured within one run).", "",
             "| figure | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], "",
             f"FLOPs: {p['counted_by']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:
        from lolbench.bench_eval import main as bench_eval

        return bench_eval(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lolbench.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["all", "generation", "metrics"])
    parser.add_argument("overrides", nargs="*", help="run.py overrides, e.g. model.checkpoint=PATH")
    parser.add_argument("--late-frame", type=int, default=50_000)
    parser.add_argument("--late-chunk", type=int, default=1_000, help="model=wan: chunk timed late")
    parser.add_argument("--window", type=int, default=300, help="frames (model=wan: chunks) timed at each point")
    parser.add_argument("--frames", type=int, default=480, help="frames for the metrics benchmark")
    parser.add_argument("--rss-frames", type=int, nargs=2, default=(2_000, 57_600),
                        help="short and long run whose peak RSS is compared")
    parser.add_argument("--checkpoint-frames", type=int, default=1_200,
                        help="frames of the run whose checkpoint overhead is measured")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    threads = compose_run_config(args.overrides).threads
    if threads is not None:  # as run.py does, so in-process and subprocess figures use the same threads
        torch.set_num_threads(threads)
    if args.which == "generation" and compose_run_config(args.overrides).model.name == "wan":
        bench_wan_generation(args.overrides, args.late_chunk, args.window)
    elif args.which == "generation":
        bench_generation(args.overrides, args.late_frame, args.window)
    elif args.which == "metrics":
        metric_overhead(args.overrides, args.frames)
    else:
        result = bench_all(args.overrides, args.late_frame, args.window, args.frames, tuple(args.rss_frames),
                           args.checkpoint_frames)
        result["command"] = "python -m lolbench.bench " + " ".join(argv if argv is not None else sys.argv[1:])
        name = f"{result['date']}-{result['machine']['host']}"
        write_json(args.out / f"{name}.json", result)
        text = markdown(result, tuple(args.rss_frames), args.late_frame)
        atomic_write(args.out / f"{name}.md", lambda p: p.write_text(text))
        print(text)


if __name__ == "__main__":
    main()
