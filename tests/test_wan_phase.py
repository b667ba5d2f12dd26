"""`python -m lolbench.phase --model wan`: pair usage from a Wan model's own chunks, maxima in latent and pixel
frames, on a tiny random model whose attention can only use one temporal RoPE pair."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lolbench import phase
from lolbench.config import compose_run_config
from lolbench.models.wan import WanArch, build_transformer
from lolbench.models.wan_pipeline import build_wan_latents
from lolbench.models.wan_usage import own_chunk_usage
from tests.wan_fixtures import tiny_wan_overrides, write_text_and_vae
from tests.wan_helpers import one_thread  # noqa: F401  (autouse: tiny models on one thread)

PERIOD = 16.0  # latent frames
KEEP = 1  # of the 2 temporal pairs of a 12-dim head (Wan's split: 4 temporal dims)
THETA = (PERIOD / (2 * math.pi)) ** 2  # ω_1 = θ^(-2/4) = 2π / PERIOD



@pytest.fixture(scope="module")
def one_pair_wan(tmp_path_factory) -> list[str]:
    """Overrides of a tiny Wan whose self-attention queries and keys are zero outside temporal pair KEEP."""
    root = tmp_path_factory.mktemp("wan")
    write_text_and_vae(root, "diffusers")
    overrides = [*tiny_wan_overrides(root), f"model.rope_theta={THETA}"]
    arch = WanArch.from_config(compose_run_config(overrides).model)
    torch.manual_seed(0)
    transformer = build_transformer(arch)
    dims = torch.arange(arch.num_heads * arch.head_dim) % arch.head_dim  # dim within its head
    drop = dims // 2 != KEEP
    with torch.no_grad():
        for block in transformer.blocks:
            for proj in (block.attn1.to_q, block.attn1.to_k):
                proj.weight[drop] = 0.0
                proj.bias[drop] = 0.0
    transformer.save_pretrained(root / "transformer")
    return overrides


def test_usage_is_on_the_kept_pair_only(one_pair_wan):
    generator = build_wan_latents(compose_run_config(one_pair_wan))
    usage = own_chunk_usage(generator, "waves at sunset", chunks=2)
    assert usage.shape == (2, 2, 2)  # layers, heads, temporal pairs
    assert np.all(usage[:, :, KEEP] > 0) and np.all(usage[:, :, 1 - KEEP] == 0)


def test_cli_prints_usage_maxima_in_latent_and_pixel_frames(one_pair_wan, tmp_path, capsys):
    out = tmp_path / "k.csv"
    assert phase.main(["--model", "wan_tiny", "--chunks", "2", "--prompt", "waves at sunset", "--max-delta", "100",
                       "--out", str(out), *one_pair_wan[1:]]) == 0
    maxima = pd.read_csv(out.with_name("k_maxima.csv"))
    usage_maxima = maxima[maxima.kernel == "kernel_usage"].delta
    assert sorted(usage_maxima) == [16, 32, 48, 64, 80, 96]  # U = cos(2πΔ/16): once per period
    text = capsys.readouterr().out
    assert "usage-weighted kernel U(Δ)" in text and "Δ in latent frames" in text
    assert "61-64" in text and "4.00" in text  # latent frame 16 = pixel frames 61..64, 4 s at 16 fps
    usage = pd.read_csv(out.with_name("k_usage.csv"))
    assert np.allclose(usage[usage.pair == KEEP].share, 1.0)


def test_cli_rejects_a_tiny_model_and_overrides_without_model(tmp_path):
    with pytest.raises(SystemExit):
        phase.main(["--model", "tiny", "--out", str(tmp_path / "k.csv")])
    with pytest.raises(SystemExit):
        phase.main(["model.wan_dir=/x", "--out", str(tmp_path / "k.csv")])
