"""Render a scene to mp4 to look at it, and report the render rate.

    python -m lolbench.world meadow --frames 480 --out meadow.mp4
"""

from __future__ import annotations

import argparse
import time

from lolbench.video_io import VideoWriter
from lolbench.world import SCENES, ProceduralWorld


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lolbench.world", description=__doc__.splitlines()[0])
    parser.add_argument("scene", choices=sorted(SCENES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=480)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscale of the mp4")
    parser.add_argument("--out", default=None, help="mp4 path (default: <scene>.mp4)")
    args = parser.parse_args(argv)

    world = ProceduralWorld(args.scene, args.seed, args.size)
    out = args.out or f"{args.scene}.mp4"
    render_s = 0.0
    with VideoWriter(out, fps=world.fps, scale=args.scale) as writer:
        for begin in range(args.start, args.start + args.frames, 256):
            count = min(256, args.start + args.frames - begin)
            tic = time.perf_counter()
            frames = world.frames(begin, count)
            render_s += time.perf_counter() - tic
            writer.write(frames)
    print(f"wrote {writer.frames_written} frames to {out}; rendering alone: "
          f"{writer.frames_written / max(render_s, 1e-9):.0f} frames/s at {args.size}x{args.size}")


if __name__ == "__main__":
    main()
