"""Phase analysis: coherence kernel known answers, weighted kernel, maxima, and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from lolbench import phase
from lolbench.models.checkpoint import save_checkpoint
from lolbench.models.tiny import TinyConfig, TinyVideoNet
from lolbench.phase import (
    coherence_kernel, frame_frequencies, head_averaged_kernel, local_maxima, usage_weighted_kernel,
)
from lolbench.rope import RopeSpec, build_tables

DELTAS = np.arange(0, 201, dtype=np.float64)
ONE_FREQ = np.array([2 * math.pi / 29, 0.0])  # one rotating pair beside a still one: C = |cos(πΔ/29)|


def test_one_frequency_kernel_peaks_at_its_period():
    kernel = coherence_kernel(ONE_FREQ, DELTAS)
    np.testing.assert_allclose(kernel, np.abs(np.cos(math.pi * DELTAS / 29)), atol=1e-12)
    maxima = local_maxima(kernel, DELTAS)
    assert sorted(d for d, _, _ in maxima) == [29, 58, 87, 116, 145, 174]
    assert all(v == pytest.approx(1.0, abs=1e-12) and p > 0.9 for _, v, p in maxima)


def test_kernel_shapes_and_zero_distance():
    freqs = frame_frequencies(build_tables(RopeSpec(head_dim=32, num_heads=6)))  # [6, 6]
    per_head = coherence_kernel(freqs, DELTAS)
    assert per_head.shape == (6, 201)
    np.testing.assert_allclose(per_head[:, 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(head_averaged_kernel(freqs, DELTAS), per_head[0], atol=1e-12)  # identical heads
    assert coherence_kernel(freqs[0], DELTAS).shape == (201,)


def test_weighted_kernel():
    freqs = frame_frequencies(build_tables(RopeSpec(head_dim=32, num_heads=6)))[0].numpy()  # ω = 10000^(-i/6)
    uniform = coherence_kernel(freqs, DELTAS)
    np.testing.assert_allclose(coherence_kernel(freqs, DELTAS, np.full(6, 3.0)), uniform, atol=1e-12)
    # weight only the 29.2-frame pair and the slowest (nearly still) pair: maxima at multiples of 2π/ω_1
    weights = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    weighted = coherence_kernel(freqs, DELTAS, weights)
    np.testing.assert_allclose(weighted, coherence_kernel(freqs[[1, 5]], DELTAS), atol=1e-12)
    period = 2 * math.pi / freqs[1]
    top = sorted(d for d, _, _ in local_maxima(weighted, DELTAS, min_prominence=0.5))
    assert len(top) == 6 and all(abs(d - k * period) < 1 for k, d in enumerate(top, start=1))
    with pytest.raises(ValueError, match="weights shape"):
        coherence_kernel(freqs, DELTAS, np.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        coherence_kernel(freqs, DELTAS, -np.ones(6))


def test_pi_stretches_the_kernel():
    spec = RopeSpec(head_dim=32, num_heads=1, method="pi", train_frames=21, target_frames=84)
    stretched = head_averaged_kernel(frame_frequencies(build_tables(spec)), np.arange(0, 801, 4.0))
    plain = head_averaged_kernel(frame_frequencies(build_tables(RopeSpec(head_dim=32, num_heads=1))), np.arange(201.0))
    np.testing.assert_allclose(stretched, plain, atol=1e-12)


def test_local_maxima_ranked_by_prominence_without_endpoints():
    values = np.array([5.0, 0.5, 1.0, 0.8, 2.0, 1.5, 1.8, 0.0, 4.0])
    maxima = local_maxima(values, np.arange(9.0), min_prominence=0.1)
    assert [d for d, _, _ in maxima] == [4.0, 6.0, 2.0]
    assert [p for _, _, p in maxima] == pytest.approx([1.5, 0.3, 0.2])
    assert [d for d, _, _ in local_maxima(values, np.arange(9.0), min_prominence=0.25)] == [4.0, 6.0]


@pytest.mark.parametrize(("preset", "heads"), [("tiny", 6), ("wan2.1-1.3b", 12)])
def test_cli_writes_kernel_and_maxima(tmp_path, capsys, preset, heads):
    out = tmp_path / "sub" / "kernel.csv"
    assert phase.main(["--preset", preset, "--sigma", "0.8", "--max-delta", "150", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["delta", "kernel", "kernel_no_jitter"] + [f"head{h}" for h in range(heads)]
    assert table["delta"].tolist() == list(range(151))
    head_columns = table[[f"head{h}" for h in range(heads)]].to_numpy()
    np.testing.assert_allclose(table["kernel"], head_columns.mean(axis=1), atol=1e-12)
    assert not np.allclose(table["kernel"], table["kernel_no_jitter"])
    maxima = pd.read_csv(tmp_path / "sub" / "kernel_maxima.csv")
    assert list(maxima.columns) == ["kernel", "rank", "delta", "value", "prominence"]
    assert set(maxima["kernel"]) == {"kernel", "kernel_no_jitter"}
    for _, group in maxima.groupby("kernel"):
        assert group["prominence"].is_monotonic_decreasing
    printed = capsys.readouterr().out
    assert "no jitter" in printed and "jitter σ=0.8" in printed
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_cli_without_jitter_and_with_a_method(tmp_path):
    out = tmp_path / "k.csv"
    phase.main(["--preset", "tiny", "--method", "ntk", "--target-frames", "84", "--max-delta", "50",
                "--out", str(out)])
    table = pd.read_csv(out)
    np.testing.assert_array_equal(table["kernel"], table["kernel_no_jitter"])
    with pytest.raises(SystemExit):
        phase.main(["--preset", "tiny", "--method", "pi", "--out", str(out)])  # pi needs --target-frames


def test_tiny_preset_reads_model_config():
    fields = phase.preset_fields("tiny")
    config = phase._TINY_MODEL_CONFIG
    if config.exists():
        model = OmegaConf.load(config)
        assert (fields["head_dim"], fields["num_heads"], fields["theta"], fields["time_dim"]) == (
            model.head_dim, model.num_heads, model.rope_theta, model.rope_time_dim)
    RopeSpec(**fields)
    with pytest.raises(ValueError, match="preset='gpt' is not one of"):
        phase.preset_fields("gpt")


def test_usage_weighted_kernel_known_answers():
    freqs = frame_frequencies(build_tables(RopeSpec(head_dim=32, num_heads=6)))  # [6, 6]
    one_pair = np.zeros((2, 6, 6))
    one_pair[:, :, 1] = 5.0
    kernel = usage_weighted_kernel(freqs, one_pair, DELTAS)
    assert kernel.shape == (2, 6, 201)
    np.testing.assert_allclose(kernel, np.broadcast_to(np.cos(freqs[0, 1].item() * DELTAS), kernel.shape),
                               atol=1e-12)
    uniform = usage_weighted_kernel(freqs, np.ones((1, 6, 6)), DELTAS)[0]  # mean cosine over the pairs
    np.testing.assert_allclose(uniform, np.cos(freqs.numpy()[:, :, None] * DELTAS).mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(uniform[:, 0], 1.0, atol=1e-12)
    assert np.all(np.abs(uniform) <= 1.0 + 1e-12)
    with pytest.raises(ValueError, match=r"usage must be \[L, H, K\]"):
        usage_weighted_kernel(freqs, np.ones((6, 6)), DELTAS)
    with pytest.raises(ValueError, match="non-negative"):
        usage_weighted_kernel(freqs, -np.ones((1, 6, 6)), DELTAS)
    zero_head = np.ones((2, 6, 6))
    zero_head[1, 4] = 0.0
    with pytest.raises(ValueError, match="layer 1, head 4 is 0 on every temporal pair"):
        usage_weighted_kernel(freqs, zero_head, DELTAS)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "random.pt"
    save_checkpoint(path, TinyVideoNet(TinyConfig()), {"note": "random weights for tests"})
    return path


def test_cli_with_checkpoint_adds_the_usage_weighted_kernel(tmp_path, capsys, random_checkpoint):
    out = tmp_path / "k.csv"
    args = ["--sigma", "0.8", "--max-delta", "120", "--out", str(out)]
    assert phase.main([*args, "--checkpoint", str(random_checkpoint), "--clips", "1", "--prompt", "ocean"]) == 0
    table = pd.read_csv(out)
    layers = [f"kernel_usage_layer{layer}" for layer in range(TinyConfig().num_layers)]
    assert list(table.columns) == (["delta", "kernel", "kernel_no_jitter"] + [f"head{h}" for h in range(6)]
                                   + ["kernel_usage"] + layers)
    np.testing.assert_allclose(table["kernel_usage"], table[layers].mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(table.loc[0, ["kernel_usage", *layers]].to_numpy(float), 1.0, atol=1e-12)
    # the uniform kernels are those of the same architecture analysed without a model
    phase.main([*args[:-1], str(tmp_path / "preset.csv"), "--preset", "tiny"])
    preset = pd.read_csv(tmp_path / "preset.csv")
    np.testing.assert_allclose(table["kernel"], preset["kernel"], atol=1e-12)
    maxima = pd.read_csv(tmp_path / "k_maxima.csv")
    assert set(maxima["kernel"]) == {"kernel", "kernel_no_jitter", "kernel_usage"}
    usage = pd.read_csv(tmp_path / "k_usage.csv")
    assert len(usage) == 4 * 6 * 6 and (usage["usage"] >= 0).all()
    np.testing.assert_allclose(usage.groupby(["layer", "head"])["share"].sum(), 1.0, atol=1e-9)
    printed = capsys.readouterr().out
    assert "usage-weighted kernel U(Δ)" in printed and "U(delta)" in printed


def test_cli_checkpoint_fixes_the_architecture(tmp_path, random_checkpoint):
    for extra in (["--head-dim", "16"], ["--preset", "tiny"]):
        with pytest.raises(SystemExit):
            phase.main(["--checkpoint", str(random_checkpoint), *extra, "--out", str(tmp_path / "k.csv")])
    with pytest.raises(SystemExit):
        phase.main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "k.csv")])
