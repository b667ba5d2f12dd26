"""Benchmarks, reported as ratios measured within one run (never asserted by tests).

  python -m lolbench.bench generation   # frames/s at the start and after 10,000 frames, static and dysink
  python -m lolbench.bench generation model=wan_tiny   # model=wan: ms/chunk at the start and after 1,000 chunks
  python -m lolbench.bench metrics      # metric cost per frame relative to the tiny model's generation cost
  python -m lolbench.bench eval [VIDEO] # frames/s of `python -m lolbench.eval` and its ratio to the video's fps
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from lolbench.config import compose_run_config
from lolbench.metrics.suite import build_suite
from lolbench.models.build import build_generator


def frames_per_second(generator, frames: int) -> tuple[float, int]:
    """Generate at least ``frames`` frames; returns (frames/s, frames generated)."""
    start, done = time.perf_counter(), 0
    while done < frames:
        done += len(generator.next_chunk().frames)
    return done / (time.perf_counter() - start), done


def bench_generation(overrides: list[str], late_frame: int, window: int) -> None:
    print(f"{'sink':8s} {'fps@start':>10s} {f'fps@{late_frame}':>12s} {'start/late':>10s} {'cache MB':>9s}")
    for sink in ("static", "dysink"):
        cfg = compose_run_config([f"sink={sink}", *overrides])
        generator, info = build_generator(cfg)
        generator.reset(cfg.prompt, cfg.seed)
        _, warmup = frames_per_second(generator, 30)
        early, timed = frames_per_second(generator, window)
        frames_per_second(generator, late_frame - warmup - timed)
        late, _ = frames_per_second(generator, window)
        print(f"{sink:8s} {early:10.1f} {late:12.1f} {early / late:10.3f} {info['cache_bytes'] / 2**20:9.2f}")


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


def bench_metrics(overrides: list[str], frames: int) -> None:
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
    print(f"frames {n}: generation {1e3 * gen_seconds / n:.2f} ms/frame, metrics {1e3 * metric_seconds / n:.2f} "
          f"ms/frame, metrics/generation = {metric_seconds / gen_seconds:.3f} (target <= 0.25)")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["eval"]:
        from lolbench.bench_eval import main as bench_eval

        return bench_eval(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lolbench.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["generation", "metrics"])
    parser.add_argument("overrides", nargs="*", help="run.py overrides, e.g. model.checkpoint=PATH")
    parser.add_argument("--late-frame", type=int, default=10_000)
    parser.add_argument("--late-chunk", type=int, default=1_000, help="model=wan: chunk timed late")
    parser.add_argument("--window", type=int, default=300, help="frames (model=wan: chunks) timed at each point")
    parser.add_argument("--frames", type=int, default=480, help="frames for the metrics benchmark")
    args = parser.parse_args(argv)
    if args.which == "generation" and compose_run_config(args.overrides).model.name == "wan":
        bench_wan_generation(args.overrides, args.late_chunk, args.window)
    elif args.which == "generation":
        bench_generation(args.overrides, args.late_frame, args.window)
    else:
        bench_metrics(args.overrides, args.frames)


if __name__ == "__main__":
    main()
