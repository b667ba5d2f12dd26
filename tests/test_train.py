"""lolbench.train: a few steps on a tiny config learn, its sampling follows the documented distributions, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from lolbench import train as training
from lolbench.config import compose_run_config
from lolbench.models.build import architecture_from_config
from lolbench.models.checkpoint import load_checkpoint
from lolbench.models.sampler import to_model_space
from lolbench.models.tiny import ClipAttention, TinyVideoNet
from lolbench.rope import Rotary, RopeSpec, build_tables
from lolbench.world import SCENES

TINY = ["model.num_layers=1", "model.num_heads=2", "model.head_dim=16", "model.head_channels=8",
        "model.train_frames=6", "clip_frames=6", "batch=4", "warmup=1", "lr=3e-3", "ema=0", "bf16=false",
        "threads=1", "log_every=5", "sink_context.max_gap=6"]


def train_config(tmp_path: Path, *overrides: str):
    return compose_run_config([*TINY, f"checkpoint_out={tmp_path / 'tiny.pt'}", *overrides], config_name="train")


def fixed_batch_loss(net: TinyVideoNet, cfg) -> float:
    """The training loss of one fixed batch (fixed clips, noise levels and noise)."""
    arch = net.cfg
    clips, scene_ids, positions = training.sample_batch(cfg, list(SCENES)[: arch.num_scenes], arch,
                                                        np.random.default_rng(123))
    spec = RopeSpec(head_dim=arch.head_dim, num_heads=arch.num_heads, train_frames=arch.train_frames)
    attention = ClipAttention(Rotary(build_tables(spec), arch.grid, arch.grid), cfg.clip_frames,
                              arch.chunk_frames, positions)
    with torch.no_grad():
        return training.flow_matching_loss(net, attention, to_model_space(clips), torch.from_numpy(scene_ids),
                                           cfg, torch.Generator().manual_seed(7)).item()


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    cfg = train_config(tmp_path, "steps=15")
    torch.manual_seed(cfg.seed)
    initial = TinyVideoNet(architecture_from_config(cfg.model))  # train() starts from this initialization
    record = training.train(cfg, tmp_path)
    trained, meta, _ = load_checkpoint(tmp_path / "tiny.pt")
    before, after = fixed_batch_loss(initial, cfg), fixed_batch_loss(trained, cfg)
    assert after < 0.7 * before, (before, after)
    assert meta["steps"] == 15 and np.isfinite(record["final_loss"])
    assert (tmp_path / "loss.csv").exists() and (tmp_path / training.STATE_FILE).exists()


def interrupt_at_step(monkeypatch, step: int) -> None:
    """Make train() raise KeyboardInterrupt while computing the loss of ``step`` (a Ctrl-C mid-run)."""
    real, calls = training.flow_matching_loss, []

    def loss(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "flow_matching_loss", loss)


def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path, monkeypatch):
    whole, first, second = (tmp_path / name for name in ("whole", "first", "second"))
    training.train(train_config(whole, "steps=6", "save_every=2"), whole)
    with monkeypatch.context() as patch:
        interrupt_at_step(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            training.train(train_config(first, "steps=6", "save_every=2"), first)
    saved = torch.load(first / training.STATE_FILE, weights_only=True)
    assert saved["step"] == 4  # the last save before the interruption
    training.train(train_config(second, "steps=6", "save_every=2", f"resume={first / training.STATE_FILE}"), second)

    expected = torch.load(whole / training.STATE_FILE, weights_only=True)
    resumed = torch.load(second / training.STATE_FILE, weights_only=True)
    for part in ("net", "ema"):
        for name, tensor in expected[part].items():
            assert torch.equal(resumed[part][name], tensor), (part, name)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in expected["history"]]
    shipped, resumed_net = (load_checkpoint(d / "tiny.pt")[0].state_dict() for d in (whole, second))
    assert all(torch.equal(resumed_net[name], tensor) for name, tensor in shipped.items())


def test_resume_refuses_a_different_config(tmp_path):
    training.train(train_config(tmp_path, "steps=3", "save_every=2"), tmp_path)
    state = tmp_path / training.STATE_FILE
    with pytest.raises(ValueError, match=r"differs from the saved run's in \['lr'\]"):
        training.train(train_config(tmp_path / "b", "steps=3", "lr=1e-2", f"resume={state}"), tmp_path / "b")
    with pytest.raises(ValueError, match="already finished step 3 of steps=3"):
        training.train(train_config(tmp_path / "c", "steps=3", f"resume={state}"), tmp_path / "c")


# ---------------------------------------------------------------------- documented distributions


def test_noise_levels_follow_the_documented_distributions():
    """First noisy chunk k ~ uniform over chunks; chunks >= k: t = s u / (1 + (s - 1) u), u ~ U[0, 1), so
    P(t <= x) = x / (s - (s - 1) x); chunks < k: t ~ U[0, context_noise]."""
    shift, context_noise, chunks = 3.0, 0.05, 7
    t, noisy = training.noise_levels(20_000, chunks, context_noise, shift, torch.Generator().manual_seed(0))
    t, noisy = t.numpy().astype(np.float64), noisy.numpy()
    assert np.all(np.diff(noisy.astype(int), axis=1) >= 0)  # the noisy chunks are a suffix
    first = chunks - noisy.sum(axis=1)
    assert stats.chisquare(np.bincount(first, minlength=chunks)).pvalue > 1e-3
    assert stats.kstest(t[noisy], lambda x: x / (shift - (shift - 1) * x)).pvalue > 1e-3
    assert stats.kstest(t[~noisy], stats.uniform(0, context_noise).cdf).pvalue > 1e-3
    assert np.median(t[noisy]) == pytest.approx(0.75, abs=0.01)  # u = 1/2 -> 1.5 / 2: shifted toward noise


def sampling_config(prob: float):
    return compose_run_config(["sink_context.max_gap=12", f"sink_context.prob={prob}", "batch=1", "clip_frames=9",
                               "model.train_frames=9", "model.image_size=8", "model.patch_stride=4"],
                              config_name="train")


class IndexWorld:
    """Stands in for ProceduralWorld: every pixel of frame t holds t mod 251, so a clip shows which frames it took."""

    def __init__(self, scene: str, seed: int, size: int):
        self.size = size

    def frames(self, start: int, count: int) -> np.ndarray:
        t = (np.arange(start, start + count) % 251).astype(np.uint8)
        return np.broadcast_to(t[:, None, None, None], (count, self.size, self.size, 3)).copy()


def test_sink_context_batches_have_the_documented_frequency_and_gaps(monkeypatch):
    """With prob p a batch is [first chunk at 0..2 | frames from 3 + gap on at their true positions], gap
    uniform over the multiples of the chunk up to max_gap (3, 6, 9, 12); otherwise positions 0..F-1."""
    monkeypatch.setattr(training, "ProceduralWorld", IndexWorld)
    monkeypatch.setattr(training, "sample_clips", lambda scenes, batch, frames, size, rng: (
        np.zeros((batch, frames, size, size, 3), np.uint8), np.zeros(batch, np.int64)))
    cfg = sampling_config(0.3)
    arch = architecture_from_config(cfg.model)
    rng = np.random.default_rng(0)
    gaps = []
    draws = 1000
    for _ in range(draws):
        _, _, positions = training.sample_batch(cfg, ["meadow"], arch, rng)
        gap = int(positions[3]) - 3
        assert positions[:3].tolist() == [0, 1, 2]
        assert positions[3:].tolist() == list(range(3 + gap, 9 + gap))
        if gap:
            gaps.append(gap)
    assert stats.binomtest(len(gaps), draws, 0.3).pvalue > 1e-3
    assert set(gaps) == {3, 6, 9, 12}
    assert stats.chisquare(np.unique(gaps, return_counts=True)[1]).pvalue > 1e-3


def test_sink_context_frames_are_one_streams_frames_at_their_positions(monkeypatch):
    """Frame f of a sink-context clip is the stream's frame origin + positions[f], one origin per clip."""
    monkeypatch.setattr(training, "ProceduralWorld", IndexWorld)
    cfg = sampling_config(1.0)
    clips, _, positions = training.sample_batch(cfg, ["meadow"], architecture_from_config(cfg.model),
                                                np.random.default_rng(5))
    offsets = (clips[0, :, 0, 0, 0].astype(int) - positions.numpy()) % 251  # origin mod 251, per frame
    assert len(set(offsets.tolist())) == 1
    assert int(positions[3]) > 3  # there is a gap
