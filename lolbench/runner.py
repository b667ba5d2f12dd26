"""Generate one long video in streaming fashion, measure it as it is made, and write the results.

Frames go straight from the generator to the mp4 writer and the streaming metrics; nothing holds the whole
video. An interrupted run (Ctrl-C) still closes the video and writes the summary of what it finished.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lolbench.atomic import atomic_write, write_json
from lolbench.generator import Chunk, VideoGenerator
from lolbench.metrics.suite import MetricSuite, build_suite
from lolbench.models.build import build_generator
from lolbench.probes import AttentionProbe, FrameKind
from lolbench.provenance import environment
from lolbench.results import write_probes, write_series
from lolbench.timing import clock, peak_gpu_memory_bytes
from lolbench.tracking import RunLogger, build_logger
from lolbench.video_io import VideoWriter

log = logging.getLogger(__name__)


def check_run_config(cfg: DictConfig) -> None:
    """Run-level keys; the group builders check their own."""
    if cfg.num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {cfg.num_frames}")
    if cfg.probe_every < 0:
        raise ValueError(f"probe_every must be >= 0 (0 = never), got {cfg.probe_every}")
    if cfg.video_scale < 1:
        raise ValueError(f"video_scale must be >= 1, got {cfg.video_scale}")


@dataclass
class GenerationLog:
    """Per-chunk figures of the generation itself: timing, DySink gate statistics, attention on sinks."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def update(self, chunk: Chunk, seconds: float, metric_seconds: float) -> None:
        """``seconds``: the generator's call (its own split, e.g. ``seconds_transformer`` / ``seconds_vae``,
        comes in ``chunk.stats``); ``metric_seconds``: writing the video and updating the metrics."""
        row: dict[str, Any] = {"chunk": len(self.rows), "first_frame": chunk.first_frame,
                               "seconds": seconds, "seconds_metrics": metric_seconds, **chunk.stats}
        if chunk.probe is not None:
            sink = chunk.probe.mass_of(FrameKind.SINK, FrameKind.RETRIEVED)  # [L, H]
            row["sink_mass_mean"] = float(sink.mean())
            row["sink_mass_max_head"] = float(sink.max())
        self.rows.append(row)

    def summary(self) -> dict[str, float]:
        frame = pd.DataFrame(self.rows)
        out: dict[str, float] = {"seconds_per_chunk": float(frame["seconds"].mean())} if len(frame) else {}
        peak = peak_gpu_memory_bytes()
        if peak is not None:
            out["peak_gpu_memory_bytes"] = peak
        for column in frame.columns.drop(["chunk", "first_frame", "seconds"], errors="ignore"):
            values = pd.to_numeric(frame[column], errors="coerce").dropna()
            if len(values):
                out[f"{column}_mean"] = float(values.mean())
        return out


def generate(
    generator: VideoGenerator, suite: MetricSuite, writer: VideoWriter, num_frames: int, probe_every: int,
    gen_log: GenerationLog, probes: list[AttentionProbe], logger: RunLogger, progress: bool = True,
) -> bool:
    """Stream ``num_frames`` frames through the writer and the metrics. Returns False if interrupted."""
    done = 0
    chunk_index = 0
    # disable=None: no bar when stderr is not a terminal (sweep logs), one when it is
    with tqdm(total=num_frames, unit="frame", disable=None if progress else True, dynamic_ncols=True) as bar:
        try:
            while done < num_frames:
                probe = probe_every > 0 and chunk_index % probe_every == 0
                start = clock()
                chunk = generator.next_chunk(probe=probe)
                generated = clock()
                frames = chunk.frames[: num_frames - done]
                writer.write(frames)
                suite.update_frames(frames)
                if chunk.probe is not None:
                    suite.update_probe(chunk.probe)
                    probes.append(chunk.probe)
                gen_log.update(chunk, generated - start, clock() - generated)
                row = gen_log.rows[-1]
                logger.log_chunk(row["chunk"], {k: v for k, v in row.items() if k != "chunk"})
                done += len(frames)
                chunk_index += 1
                bar.update(len(frames))
        except KeyboardInterrupt:
            log.warning("interrupted after %d of %d frames; writing what was finished", done, num_frames)
            return False
    return True


def write_curves(out_dir: Path, suite: MetricSuite, gen_log: GenerationLog) -> list[str]:
    """Per-frame curves to curves.parquet, per-chunk generation figures to chunks.parquet, and the metrics'
    other series (e.g. head homogeneity of probed chunks) to series.parquet; returns the file names."""
    curves = {name: np.asarray(values) for name, values in suite.curves().items()}
    frame_len = max((len(v) for v in curves.values()), default=0)
    per_frame = {name: v for name, v in curves.items() if len(v) == frame_len}
    other = {name: v for name, v in curves.items() if len(v) != frame_len}
    written = []
    if per_frame:
        table = pd.DataFrame(per_frame)
        table.insert(0, "frame", np.arange(frame_len))
        atomic_write(out_dir / "curves.parquet", lambda p: table.to_parquet(p, index=False))
        written.append("curves.parquet")
    if other:
        write_series(out_dir / "series.parquet", other)
        written.append("series.parquet")
    chunks = pd.DataFrame(gen_log.rows)
    atomic_write(out_dir / "chunks.parquet", lambda p: chunks.to_parquet(p, index=False))
    written.append("chunks.parquet")
    return written


def run(cfg: DictConfig, out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Generate ``cfg.num_frames`` frames, measure them, write video.mp4 + summary.json + curves into ``out_dir``."""
    check_run_config(cfg)
    generator, model_info = build_generator(cfg)
    generator.reset(cfg.prompt, cfg.seed)
    suite = build_suite(cfg.metrics, fps=generator.fps, chunk_frames=generator.chunk_frames)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = build_logger(cfg.logger, out_dir, cfg)
    gen_log = GenerationLog()
    probes: list[AttentionProbe] = []  # small: L x H x S floats per probed chunk, kept for figures
    log.info("model %s, writing to %s", model_info["backbone"], out_dir)
    start = time.perf_counter()
    with VideoWriter(out_dir / "video.mp4", fps=generator.fps, scale=cfg.video_scale) as writer:
        completed = generate(generator, suite, writer, cfg.num_frames, cfg.probe_every, gen_log, probes,
                             logger, progress)
        frames_done = writer.frames_written
    wall = time.perf_counter() - start
    summary = {
        "completed": completed,
        "frames": frames_done,
        "frames_requested": cfg.num_frames,
        "wall_seconds": wall,
        "generation_fps": frames_done / max(sum(r["seconds"] for r in gen_log.rows), 1e-9),
        "seed": cfg.seed,
        "prompt": cfg.prompt,
        "model": model_info,
        "environment": environment(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "generation": gen_log.summary(),
        "metrics": suite.compute() if frames_done else {},
        "events": suite.events() if frames_done else [],
    }
    summary["files"] = ["video.mp4", *write_curves(out_dir, suite, gen_log), "summary.json"]
    if probes:
        write_probes(out_dir / "probes.npz", probes)
        summary["files"].append("probes.npz")
    write_json(out_dir / "summary.json", summary)
    logger.finish(summary, out_dir)
    return summary
