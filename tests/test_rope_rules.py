"""The README's jitter and RoPE-method rules, with answers computed here and boundaries at each threshold.

test_jitter.py and test_rope.py check the tables against the jitter function's own draws; these tests check the
draws against the documented distribution (ε_h ~ U[-1, 1), one value per head) and the methods' switch-on
point s = L'/L > 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from lolbench.rope import (
    JitterSpec,
    RopeSpec,
    build_tables,
    jitter_factors,
    jittered_head_count,
    rope_spec_from_config,
)

HEADS = 4000  # one draw of ε per head: enough heads for a distribution test in one call


def epsilons(sigma: float, seed: int = 0) -> np.ndarray:
    """ε_h recovered from the factors 1 + σ ε_h of every head (all heads jittered)."""
    factors = jitter_factors(HEADS, JitterSpec(sigma=sigma, head_fraction=1.0, seed=seed)).numpy()
    return (factors - 1.0) / sigma


@pytest.mark.parametrize("seed", [0, 1])
def test_jitter_epsilon_is_uniform_on_minus_one_to_one(seed):
    eps = epsilons(0.8, seed)
    assert eps.min() >= -1.0 and eps.max() < 1.0
    assert stats.kstest(eps, stats.uniform(loc=-1.0, scale=2.0).cdf).pvalue > 1e-3
    assert 0.45 < np.mean(eps < 0) < 0.55  # half the heads get a smaller base, half a larger one
    assert eps.min() < -0.99 and eps.max() > 0.99  # the whole interval is reached


def test_jitter_factor_range_is_one_plus_minus_sigma():
    factors = 1.0 + 0.5 * epsilons(0.5)
    assert factors.min() == pytest.approx(0.5, abs=0.01) and factors.max() == pytest.approx(1.5, abs=0.01)


def test_epsilon_does_not_depend_on_sigma():
    """θ̂_h = θ0 (1 + σ ε_h) with the same ε_h for every σ: the ablation over σ scales one draw."""
    np.testing.assert_allclose(epsilons(0.1, seed=3), epsilons(0.9, seed=3), rtol=0, atol=1e-9)


def test_jittered_bases_give_the_documented_temporal_frequencies():
    """ω_{h,i} = θ̂_h^(-2i/d_t), computed here for the tiny model's split (d_t = 12)."""
    jitter = JitterSpec(sigma=0.8, seed=5)
    tables = build_tables(RopeSpec(head_dim=32, num_heads=6), jitter)
    for h, factor in enumerate(jitter_factors(6, jitter).tolist()):
        expected = [(10000.0 * factor) ** (-2 * i / 12) for i in range(6)]
        np.testing.assert_allclose(tables.time[h].numpy(), expected, rtol=1e-13)


@pytest.mark.parametrize(("fraction", "heads", "count"), [
    (0.5, 3, 2), (0.49, 3, 1), (0.51, 3, 2),  # 1.5 heads: half rounds up; just below / above
    (1 / 6, 6, 1), (0.25, 6, 2), (0.24, 6, 1), (0.7, 6, 4), (0.1, 12, 1), (0.0, 6, 0), (1.0, 6, 6),
])
def test_head_fraction_rounds_half_up(fraction, heads, count):
    assert jittered_head_count(fraction, heads) == count


@pytest.mark.parametrize("sigma", [0.0, 0.5, 0.999])
def test_sigma_below_one_keeps_every_base_positive(sigma):
    tables = build_tables(RopeSpec(head_dim=32, num_heads=64), JitterSpec(sigma=sigma, seed=2))
    assert bool((tables.head_bases > 0).all())


@pytest.mark.parametrize("sigma", [1.0, 1.2])
def test_sigma_one_or_more_is_rejected(sigma):
    with pytest.raises(ValueError, match=f"got {sigma}"):
        JitterSpec(sigma=sigma)


# Extension methods switch on strictly above s = L'/L = 1: L = 20, L' in {19, 20, 21}.
SPEC = {"head_dim": 16, "num_heads": 1, "theta": 100.0, "train_frames": 20}


@pytest.mark.parametrize("method", ["pi", "ntk", "yarn", "riflex"])
@pytest.mark.parametrize(("target", "extended"), [(19, False), (20, False), (21, True)])
def test_methods_switch_on_above_the_training_length(method, target, extended):
    plain = build_tables(RopeSpec(**SPEC))
    tables = build_tables(RopeSpec(method=method, target_frames=target, **SPEC))
    changed = not torch.equal(tables.time, plain.time) or tables.time_scale != 1.0 or tables.attn_scale != 1.0
    assert changed == extended


def test_pi_and_yarn_scales_just_above_the_training_length():
    s = 21 / 20
    pi = build_tables(RopeSpec(method="pi", target_frames=21, **SPEC))
    yarn = build_tables(RopeSpec(method="yarn", target_frames=21, **SPEC))
    assert pi.time_scale == pytest.approx(1 / s, rel=1e-15)
    assert yarn.attn_scale == pytest.approx((0.1 * math.log(s) + 1.0) ** 2, rel=1e-15)


@pytest.mark.parametrize(("alpha", "beta", "kept"), [
    (0.0, 3.18, True), (0.0, 20 / (2 * math.pi), True), (0.0, 3.19, False),  # r = L·ω0/2π = 3.183 rotations
])
def test_yarn_keeps_a_component_once_its_rotations_reach_beta(alpha, beta, kept):
    """γ = clamp((r - α)/(β - α), 0, 1) for ω0 = 1, r = 20/2π: γ = 1 (kept) at r >= β, interpolated below."""
    r = 20 / (2 * math.pi)
    tables = build_tables(RopeSpec(method="yarn", target_frames=40, yarn_alpha=alpha, yarn_beta=beta, **SPEC))
    gamma = min(1.0, max(0.0, (r - alpha) / (beta - alpha)))
    assert tables.time[0, 0].item() == pytest.approx((1 - gamma) / 2 + gamma, rel=1e-12)
    assert (tables.time[0, 0].item() == pytest.approx(1.0, rel=1e-12)) == kept


@pytest.mark.parametrize(("train", "k"), [(10, 0), (15, 1), (20, 1), (50, 2)])
def test_riflex_picks_the_component_whose_period_is_closest_to_the_training_length(train, k):
    """Periods 2π/ω_i of θ = 100, d_t = 8: 6.28, 19.9, 62.8, 199 frames; L = 15 is closer to 19.9 (4.9) than to
    6.28 (8.7), L = 50 closer to 62.8 than to 19.9."""
    spec = RopeSpec(head_dim=16, num_heads=2, theta=100.0, train_frames=train, target_frames=4 * train,
                    method="riflex")
    expected = torch.tensor([100.0 ** (-i / 4) for i in range(4)], dtype=torch.float64)
    expected[k] = 0.9 * 2 * math.pi / (4 * train)
    torch.testing.assert_close(build_tables(spec).time, expected.expand(2, -1), rtol=1e-12, atol=0)


def test_riflex_chooses_the_component_per_head_under_jitter():
    """With jittered bases each head's periods differ, so each head's closest component is found on its own row."""
    spec = RopeSpec(head_dim=16, num_heads=8, theta=100.0, train_frames=40, target_frames=160, method="riflex")
    tables = build_tables(spec, JitterSpec(sigma=0.9, seed=1))
    periods = [[2 * math.pi * base ** (i / 4) for i in range(4)] for base in tables.head_bases.tolist()]
    chosen = [int(np.argmin([abs(p - 40) for p in row])) for row in periods]
    assert len(set(chosen)) > 1  # the heads disagree, or this test could not tell per-head from global
    for h, k in enumerate(chosen):
        assert tables.time[h, k].item() == pytest.approx(0.9 * 2 * math.pi / 160, rel=1e-12)
        others = [i for i in range(4) if i != k]
        np.testing.assert_allclose(tables.time[h, others].numpy(), [2 * math.pi / periods[h][i] for i in others],
                                   rtol=1e-12)


def test_a_rope_group_without_a_name_is_named():
    with pytest.raises(ValueError, match="rope config has no key 'name'"):
        rope_spec_from_config({"head_dim": 16}, {"positions": "absolute"})


def test_yarn_blends_each_component_by_its_own_ramp():
    """θ = 100, d_t = 8, L = 20, s = 2, α = 0, β = 2: rotations r_i = 20 ω_i / 2π = 3.18, 1.007, 0.318, 0.101, so
    γ = 1, 0.503, 0.159, 0.050 and ω'_i = (1 - γ_i) ω_i / 2 + γ_i ω_i, every component on its own ramp."""
    tables = build_tables(RopeSpec(method="yarn", target_frames=40, yarn_alpha=0.0, yarn_beta=2.0, **SPEC))
    expected = []
    for i in range(4):
        omega = 100.0 ** (-i / 4)
        gamma = min(1.0, 20 * omega / (2 * math.pi) / 2.0)
        expected.append((1 - gamma) * omega / 2 + gamma * omega)
    np.testing.assert_allclose(tables.time[0].numpy(), expected, rtol=1e-12)
