"""The tiny-config equalities of model=wan's tests, checked on a GPU against the CPU in float32 and bfloat16.

Called by experiments/wan_gpu_check.sh; prints one line per check and writes them to OUT/gpu_checks.json.
Float32 on the GPU should match the CPU to rounding (TF32 is switched off); bfloat16 is reported, not judged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lolbench.atomic import write_json  # noqa: E402
from lolbench.config import compose_run_config  # noqa: E402
from lolbench.models.wan_pipeline import build_wan_latents  # noqa: E402
from lolbench.models.wan_text import load_text_encoder  # noqa: E402
from lolbench.models.wan_vae import StreamingWanDecoder  # noqa: E402
from tests.wan_fixtures import tiny_vae, write_tiny_wan  # noqa: E402

PROMPT = "a wingsuit flyer racing through a mountain valley"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max())


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the largest magnitude of the reference ``b``."""
    return max_diff(a, b) / max(float(b.float().abs().max()), 1e-12)


def vae_checks(device: str) -> dict[str, float]:
    """Streaming decode on ``device`` vs diffusers' one-shot decode on ``device`` and on the CPU."""
    vae = tiny_vae()
    latents = torch.randn(1, 16, 7, 8, 8, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    cpu = vae.decode(latents * std + mean).sample.transpose(1, 2)
    vae = vae.to(device)
    one_shot = vae.decode((latents * std + mean).to(device)).sample.transpose(1, 2)
    decoder = StreamingWanDecoder(vae)
    streamed = torch.cat([decoder.decode(part.to(device)) for part in latents.split([3, 3, 1], dim=2)], dim=1)
    return {"vae_stream_vs_one_shot_max_abs": max_diff(streamed, one_shot),
            "vae_device_vs_cpu_max_abs": max_diff(one_shot, cpu)}


def text_checks(root: Path, device: str) -> dict[str, float]:
    cpu = load_text_encoder(root, max_length=16).encode(PROMPT)
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        encoded = load_text_encoder(root, max_length=16, device=device, dtype=dtype).encode(PROMPT)
        out[f"text_{name}_vs_cpu_relative"] = relative(encoded, cpu)
    return out


def transformer_checks(overrides: list[str], device: str, chunks: int = 3) -> dict[str, float]:
    """Latents of the first chunks for one prompt and seed: ``device`` float32 / bfloat16 vs the CPU."""
    def latents(extra: list[str]) -> torch.Tensor:
        generator = build_wan_latents(compose_run_config([*overrides, *extra]))
        generator.reset(PROMPT, 0)
        return torch.cat([generator.next_latents().latents for _ in range(chunks)], dim=1)

    cpu = latents(["model.device=cpu"])
    return {f"transformer_{dtype}_vs_cpu_relative": relative(latents([f"model.device={device}",
                                                                       f"model.dtype={dtype}"]), cpu)
            for dtype in ("float32", "bfloat16")}


@torch.no_grad()
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    root = args.out / "tiny_wan_checks"
    overrides = write_tiny_wan(root, "original")
    results = {"device": args.device, **vae_checks(args.device), **text_checks(root, args.device),
               **transformer_checks(overrides, args.device)}
    for key, value in results.items():
        print(f"{key:45s} {value}")
    write_json(args.out / "gpu_checks.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
