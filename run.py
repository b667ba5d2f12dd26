"""Generate one long video and measure it: `python run.py sink=dysink jitter.sigma=0.1` (see README)."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lolbench.config import register_configs
from lolbench.runner import run

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    summary = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    print(f"{summary['frames']} frames at {summary['generation_fps']:.0f} frames/s -> "
          f"{HydraConfig.get().runtime.output_dir}")
    drop = summary["metrics"].get("sink_collapse_drop[rms]")
    return float(drop) if isinstance(drop, (int, float)) else float("nan")


if __name__ == "__main__":
    main()
