"""``python -m lolbench.bench eval [VIDEO] [--seconds S]``: speed of the whole eval command, as frames/s and as
a ratio to the video's own frame rate (>= 1 is faster than real time), measured in one run.

Without VIDEO it first writes a synthetic 832x480, 16 fps video (a textured pan with drifting blobs, the
size of the videos LoL evaluates) of ``--seconds`` seconds; writing it is not timed. The timed part is
``python -m lolbench.eval VIDEO --out TMP`` in a fresh process: start-up, decoding, every default metric and
the record.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from lolbench.video_io import VideoWriter, open_video


def synthetic_video(path: Path, seconds: float, fps: float = 16.0, height: int = 480, width: int = 832) -> Path:
    """A camera panning 3 px/frame over smooth texture, with blobs drifting the other way."""
    frames = round(seconds * fps)
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.random((height, width + 3 * frames + 1, 3)).astype(np.float32), (0, 0), 4)
    texture = (255 * (texture - texture.min()) / (texture.max() - texture.min())).astype(np.uint8)
    with VideoWriter(path, fps=fps, crf=18) as writer:
        for t in range(frames):
            frame = np.ascontiguousarray(texture[:, 3 * t: 3 * t + width])
            for k in range(4):
                cv2.circle(frame, ((200 * k + 900 - 5 * t) % width, 120 + 80 * k), 40, (255, 64 * k, 0), -1)
            writer.write(frame[None])
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lolbench.bench eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path, help="video to evaluate (default: a synthetic one)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic video")
    parser.add_argument("eval_args", nargs=argparse.REMAINDER, help="more arguments for lolbench.eval")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lolbench_bench_eval_") as tmp:
        video = args.video or synthetic_video(Path(tmp) / "synthetic.mp4", args.seconds)
        source = open_video(video)
        out = Path(tmp) / "out"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lolbench.eval", str(video), "--out", str(out), *args.eval_args],
                       check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        (record,) = out.glob("*/summary.json")
        summary = json.loads(record.read_text())
    frames, fps = summary["frames"], summary["config"]["fps"]
    height, width = next(source.chunks(1)).shape[1:3]
    print(f"{video.name}: {frames} frames, {width}x{height} at {fps:g} fps")
    print(f"whole command  {wall:7.1f} s  {frames / wall:7.1f} frames/s  {frames / wall / fps:5.2f}x real time")
    print(f"in process     {summary['wall_seconds']:7.1f} s  {summary['eval_fps']:7.1f} frames/s  "
          f"{summary['eval_fps'] / fps:5.2f}x real time (decoding, metrics, record)")
