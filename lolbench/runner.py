"""Generate one long video in streaming fashion, measure it as it is made, and write the results.

Frames go straight from the generator to the video segments and the streaming metrics; nothing holds the whole
video. Every ``checkpoint_every`` chunks (and on SIGTERM / SIGINT) the video segment is finished and the whole
streaming state is checkpointed (lolbench.checkpoint), so a run killed in any way loses at most the chunks since
the last checkpoint, and ``resume=true`` continues it with the same frames. A non-finite model output stops the
run with an error naming chunk and frame, after writing the results of everything before it.
"""

from __future__ import annotations

import logging
import resource
import shutil
import signal
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from lolbench import checkpoint
from lolbench.atomic import atomic_write, write_json
from lolbench.generator import Chunk, NonFiniteOutputError, VideoGenerator
from lolbench.metrics.suite import MetricSuite, build_suite
from lolbench.models.build import build_generator
from lolbench.probes import AttentionProbe, FrameKind
from lolbench.provenance import environment
from lolbench.results import VIDEO_FILE, write_probes, write_series
from lolbench.schema import check_ranges
from lolbench.timing import clock, peak_gpu_memory_bytes
from lolbench.tracking import RunLogger, build_logger
from lolbench.video_io import SegmentedVideo

log = logging.getLogger(__name__)

SEGMENTS_DIR = "video"  # numbered mp4 segments + playlists; video.mp4 is their join
DISK_MARGIN = 64 * 2**20  # room kept free beyond the checkpoints, for the video and results files


class RunDirError(OSError):
    """The run directory cannot hold the run (not writable, or no room for its checkpoints)."""


def check_run_config(cfg: DictConfig) -> None:
    """Every key's type and range (lolbench/schema.py), before anything is built; the builders check the rules
    that relate several keys."""
    check_ranges(cfg)


@dataclass
class GenerationLog:
    """Per-chunk figures of the generation itself: timing, DySink gate statistics, attention on sinks, and a
    CRC-32 of the chunk's frames (so two runs can be compared frame for frame without keeping the frames)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def update(self, chunk: Chunk, frames: np.ndarray, seconds: float, metric_seconds: float) -> dict[str, Any]:
        """``seconds``: the generator's call (its own split, e.g. ``seconds_transformer`` / ``seconds_vae``,
        comes in ``chunk.stats``); ``metric_seconds``: writing the video and updating the metrics."""
        row: dict[str, Any] = {"chunk": len(self.rows), "first_frame": chunk.first_frame, "seconds": seconds,
                               "seconds_metrics": metric_seconds,
                               "frames_crc32": zlib.crc32(np.ascontiguousarray(frames).tobytes()), **chunk.stats}
        if chunk.probe is not None:
            sink = chunk.probe.mass_of(FrameKind.SINK, FrameKind.RETRIEVED)  # [L, H]
            row["sink_mass_mean"] = float(sink.mean())
            row["sink_mass_max_head"] = float(sink.max())
        self.rows.append(row)
        return row

    def summary(self) -> dict[str, float]:
        frame = pd.DataFrame(self.rows)
        out: dict[str, float] = {"seconds_per_chunk": float(frame["seconds"].mean())} if len(frame) else {}
        peak = peak_gpu_memory_bytes()
        if peak is not None:
            out["peak_gpu_memory_bytes"] = peak
        for column in frame.columns.drop(["chunk", "first_frame", "seconds", "frames_crc32"], errors="ignore"):
            values = pd.to_numeric(frame[column], errors="coerce").dropna()
            if len(values):
                out[f"{column}_mean"] = float(values.mean())
        return out


@dataclass
class Stream:
    """What the run has produced so far besides generator and metric state: all of it goes into checkpoints."""

    frames: int = 0
    crc32: int = 0  # CRC-32 of all raw frames so far, chained chunk by chunk
    gen_log: GenerationLog = field(default_factory=GenerationLog)
    probes: list[AttentionProbe] = field(default_factory=list)  # small: L x H x S floats per probed chunk
    wall_seconds: float = 0.0  # over all processes that worked on the run
    checkpoint_seconds: float = 0.0
    resumes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return len(self.gen_log.rows)


class StopSignals:
    """SIGTERM and SIGINT ask the run to stop at the next chunk boundary (checkpoint, results, exit) instead of
    killing it mid-chunk; a second SIGINT interrupts at once. Only installed in the main thread."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        log.warning("%s received: stopping after this chunk (checkpoint + results)", self.received)

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread (e.g. a launcher's worker): leave signals alone
            pass
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)


def _run_state(generator: VideoGenerator, suite: MetricSuite, stream: Stream, config: dict[str, Any],
               logger: RunLogger) -> dict[str, Any]:
    return {"config": config, "generator": generator.state_dict(), "metrics": suite.state_dict(),
            "stream": stream, "logger": logger.state_dict(), "torch_threads": torch.get_num_threads()}


def resumable(generator: VideoGenerator) -> bool:
    """Whether the generator implements the resume protocol (``state_dict``; lolbench.generator)."""
    return callable(getattr(generator, "state_dict", None))


def save_checkpoint(out_dir: Path, video: SegmentedVideo, generator: VideoGenerator, suite: MetricSuite,
                    stream: Stream, config: dict[str, Any], logger: RunLogger) -> None:
    """Finish the video segment, then write the checkpoint that points past it (in that order, so a kill in
    between leaves a segment that the resumed run deletes, never a checkpoint without its frames). A generator
    without the resume protocol gets the video segments only."""
    start = time.perf_counter()
    video.cut()
    if resumable(generator):
        checkpoint.save(out_dir, stream.chunks, _run_state(generator, suite, stream, config, logger))
    stream.checkpoint_seconds += time.perf_counter() - start


def check_run_dir(out_dir: Path, state_bytes: int) -> None:
    """Fail before the first frame when ``out_dir`` cannot be written or lacks room for the checkpoints."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".lolbench-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"run directory {out_dir} is not writable: {err}") from err
    need = (checkpoint.KEEP + 1) * state_bytes + DISK_MARGIN
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise RunDirError(f"run directory {out_dir} has {free / 2**20:.0f} MiB free; the checkpoints "
                          f"({state_bytes / 2**20:.1f} MiB each, {checkpoint.KEEP + 1} at a time) and results need "
                          f"{need / 2**20:.0f} MiB")


def restore(out_dir: Path, config: dict[str, Any], generator: VideoGenerator, suite: MetricSuite,
            video: SegmentedVideo) -> tuple[Stream, dict[str, Any]]:
    """Load the newest good checkpoint into the generator and metrics; refuse it if the config differs."""
    state, path = checkpoint.load_latest(out_dir)
    differing = checkpoint.config_differences(state["config"], config)
    if differing:
        saved, now = checkpoint.flatten(state["config"]), checkpoint.flatten(config)
        details = ", ".join(f"{k}: {saved.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}" for k in differing)
        raise ValueError(f"resume: the config differs from the checkpoint's {path.name} in {details} "
                         "(only num_frames may change)")
    if state["torch_threads"] != torch.get_num_threads():
        log.warning("resume: the checkpoint was written with %d torch threads, this process has %d; frames "
                    "stay valid but are not bitwise equal to an uninterrupted run (set threads=%d)",
                    state["torch_threads"], torch.get_num_threads(), state["torch_threads"])
    generator.load_state_dict(state["generator"])
    suite.load_state_dict(state["metrics"])
    stream: Stream = state["stream"]
    video.truncate(stream.frames)
    stream.resumes.append({"frame": stream.frames, "chunk": stream.chunks, "checkpoint": path.name})
    log.info("resumed from %s at frame %d", path, stream.frames)
    return stream, state["logger"]


def generate(generator: VideoGenerator, suite: MetricSuite, video: SegmentedVideo, stream: Stream,
             cfg: DictConfig, logger: RunLogger, stop: StopSignals, save: Any, progress: bool) -> str | None:
    """Stream frames until ``cfg.num_frames``; returns why it stopped early (None when complete)."""
    with tqdm(total=cfg.num_frames, initial=stream.frames, unit="frame", disable=None if progress else True,
              dynamic_ncols=True) as bar:
        while stream.frames < cfg.num_frames:
            probe = cfg.probe_every > 0 and stream.chunks % cfg.probe_every == 0
            start = clock()
            chunk = generator.next_chunk(probe=probe)
            generated = clock()
            frames = chunk.frames[: cfg.num_frames - stream.frames]
            video.write(frames)
            suite.update_frames(frames)
            if chunk.probe is not None:
                suite.update_probe(chunk.probe)
                stream.probes.append(chunk.probe)
            row = stream.gen_log.update(chunk, frames, generated - start, clock() - generated)
            logger.log_chunk(row["chunk"], {k: v for k, v in row.items() if k not in ("chunk", "frames_crc32")})
            stream.frames += len(frames)
            stream.crc32 = zlib.crc32(np.ascontiguousarray(frames).tobytes(), stream.crc32)
            bar.update(len(frames))
            if stop.received:
                save()
                return f"{stop.received} at frame {stream.frames}"
            if stream.chunks % cfg.checkpoint_every == 0 and stream.frames < cfg.num_frames:
                save()
    save()
    return None


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
    """Generate ``cfg.num_frames`` frames, measure them, write video.mp4 + summary.json + curves into ``out_dir``.

    With ``cfg.resume`` true (or ``auto`` and a checkpoint present) the run continues from the newest good
    checkpoint in ``out_dir``. Raises ``NonFiniteOutputError`` after writing the results of the frames before it;
    a SIGTERM or SIGINT received while generating is raised again once the checkpoint and results are written.
    """
    check_run_config(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    generator, model_info = build_generator(cfg)
    generator.reset(cfg.prompt, cfg.seed)
    suite = build_suite(cfg.metrics, fps=generator.fps, chunk_frames=generator.chunk_frames)
    config = OmegaConf.to_container(cfg, resolve=True)
    resuming = cfg.resume is True or (cfg.resume == "auto" and bool(checkpoint.checkpoint_paths(out_dir)))
    video = SegmentedVideo(out_dir / SEGMENTS_DIR, fps=generator.fps, scale=cfg.video_scale)
    stream, logger_state = Stream(), None
    if not resumable(generator):
        log.warning("model %s has no state_dict(): the run is not checkpointed and cannot be resumed",
                    model_info["backbone"])
    if resuming:
        stream, logger_state = restore(out_dir, config, generator, suite, video)
    else:
        check_run_dir(out_dir, len(checkpoint.encode(
            {"generator": generator.state_dict() if resumable(generator) else {}, "metrics": suite.state_dict()})))
        video.truncate(0)
        for old in checkpoint.checkpoint_paths(out_dir):  # a fresh run in a used directory starts over
            log.warning("resume=false: deleting the checkpoint %s of an earlier run in %s", old.name, out_dir)
            old.unlink()
    logger = build_logger(cfg.logger, out_dir, cfg, logger_state)
    log.info("model %s, writing to %s%s", model_info["backbone"], out_dir,
             f" (resumed at frame {stream.frames})" if resuming else "")

    wall_before, start = stream.wall_seconds, time.perf_counter()

    def save() -> None:
        stream.wall_seconds = wall_before + time.perf_counter() - start
        save_checkpoint(out_dir, video, generator, suite, stream, config, logger)

    failure: NonFiniteOutputError | None = None
    with StopSignals().installed() as stop, video:
        try:
            stopped = generate(generator, suite, video, stream, cfg, logger, stop, save, progress)
        except NonFiniteOutputError as err:
            failure, stopped = err, f"nan at frame {err.frame}"
            log.error("%s; keeping the %d frames before it", err, stream.frames)
        except KeyboardInterrupt:
            stopped = f"interrupted at frame {stream.frames}"
            log.warning("interrupted after %d of %d frames; writing what was finished", stream.frames,
                        cfg.num_frames)
    stream.wall_seconds = wall_before + time.perf_counter() - start
    video.join(out_dir / VIDEO_FILE)
    summary = summarize(cfg, config, model_info, suite, stream, stopped)
    summary["files"] = [VIDEO_FILE, *write_curves(out_dir, suite, stream.gen_log), "summary.json"]
    if stream.probes:
        write_probes(out_dir / "probes.npz", stream.probes)
        summary["files"].append("probes.npz")
    write_json(out_dir / "summary.json", summary)
    logger.finish(summary, out_dir)
    if failure is not None:
        raise failure
    if stop.received:  # results are safe: now let the signal do what it was sent for (exit, KeyboardInterrupt)
        signal.raise_signal(signal.Signals[stop.received])
    return summary


def summarize(cfg: DictConfig, config: dict[str, Any], model_info: dict[str, Any], suite: MetricSuite,
              stream: Stream, stopped: str | None) -> dict[str, Any]:
    seconds = sum(r["seconds"] for r in stream.gen_log.rows)
    return {
        "completed": stopped is None,
        "stopped": stopped,
        "frames": stream.frames,
        "frames_requested": cfg.num_frames,
        "frames_crc32": stream.crc32,
        "wall_seconds": stream.wall_seconds,
        "checkpoint_seconds": stream.checkpoint_seconds,
        "resumes": stream.resumes,
        "generation_fps": stream.frames / max(seconds, 1e-9),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # this process (Linux: KiB)
        "seed": cfg.seed,
        "prompt": cfg.prompt,
        "model": model_info,
        "environment": environment(),
        "config": config,
        "generation": stream.gen_log.summary(),
        "metrics": suite.compute() if stream.frames else {},
        "events": suite.events() if stream.frames else [],
    }
