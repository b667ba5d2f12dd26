"""Hydra app that evaluates one shard of a batch of videos (``conf/eval.yaml``), so that a batch can be spread
over any Hydra launcher: joblib locally (``python -m lolbench.eval --jobs N`` does that), submitit_slurm on a
cluster. Each video leaves its run record (lolbench.eval); records that exist are skipped."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from lolbench.eval import EvalSettings, list_videos, metrics_config, run_batch


@hydra.main(config_path="../conf", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    metrics = metrics_config(cfg.metrics, cfg.sink_frames, cfg.sink_latent_frames)
    settings = EvalSettings(metrics, cfg.fps, cfg.chunk, cfg.seed)
    outcome = run_batch(list_videos(cfg.videos), Path(cfg.out), settings, cfg.shard, cfg.shards)
    print(f"shard {cfg.shard}/{cfg.shards}: {len(outcome.done)} evaluated, {len(outcome.skipped)} skipped, "
          f"{len(outcome.failed)} failed")


if __name__ == "__main__":
    main()
