"""LoL multi-head RoPE jitter: exact no-op at sigma 0, which heads change, determinism, configs."""

from __future__ import annotations


import pytest
import torch
from omegaconf import OmegaConf

from lolbench.config import compose_run_config

from lolbench.rope import (
    JitterSpec,
    RopeSpec,
    build_tables,
    jitter_factors,
    jitter_spec_from_config,
    jittered_head_count,
    jittered_heads,
)

SPEC = RopeSpec(head_dim=32, num_heads=12)
TABLE_FIELDS = ("time", "height", "width", "head_bases")


def changed_heads(a, b) -> torch.Tensor:
    return (a.time != b.time).any(dim=1)  # [H]


@pytest.mark.parametrize("method", ["none", "pi", "ntk", "yarn", "riflex"])
def test_sigma_zero_is_bitwise_no_jitter(method):
    spec = RopeSpec(head_dim=32, num_heads=12, method=method, target_frames=100)
    plain = build_tables(spec)
    off = build_tables(spec, JitterSpec(sigma=0.0, head_fraction=0.7, seed=123))
    for name in TABLE_FIELDS:
        assert torch.equal(getattr(off, name), getattr(plain, name)), name
    assert (off.time_scale, off.attn_scale) == (plain.time_scale, plain.attn_scale)


@pytest.mark.parametrize(("fraction", "count"), [(0.1, 1), (0.4, 5), (0.7, 8), (1.0, 12), (0.0, 0)])
def test_jitter_changes_exactly_the_chosen_temporal_rows(fraction, count):
    plain = build_tables(SPEC)
    jitter = JitterSpec(sigma=0.8, head_fraction=fraction, seed=4)
    jittered = build_tables(SPEC, jitter)
    changed = changed_heads(jittered, plain)
    assert int(changed.sum()) == count == jittered_head_count(fraction, 12)
    assert torch.equal(changed, jittered_heads(12, jitter))
    assert torch.equal(jittered.height, plain.height) and torch.equal(jittered.width, plain.width)
    assert torch.equal(jittered.time[:, 0], plain.time[:, 0])  # ω_0 = θ^0 = 1 whatever the base


def test_jittered_frequencies_follow_the_head_base():
    jitter = JitterSpec(sigma=0.8, seed=7)
    tables = build_tables(SPEC, jitter)
    assert torch.equal(tables.head_bases, 10000.0 * jitter_factors(12, jitter))
    assert bool(((tables.head_bases >= 2000.0) & (tables.head_bases <= 18000.0)).all())  # θ0(1 ± 0.8)
    exponents = torch.arange(6, dtype=torch.float64) / 6  # 2i/d_t with d_t = 12
    torch.testing.assert_close(tables.time, tables.head_bases[:, None] ** -exponents, rtol=1e-14, atol=0)


def test_same_seed_same_tables_other_seed_differs():
    a, b = (build_tables(SPEC, JitterSpec(sigma=0.5, head_fraction=0.4, seed=3)) for _ in range(2))
    for name in TABLE_FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.time, build_tables(SPEC, JitterSpec(sigma=0.5, head_fraction=0.4, seed=4)).time)


def test_fractions_nest_and_keep_each_heads_draw():
    small, large = (JitterSpec(sigma=0.5, head_fraction=f, seed=9) for f in (0.4, 0.7))
    small_mask, large_mask = jittered_heads(12, small), jittered_heads(12, large)
    assert bool((small_mask <= large_mask).all())
    assert torch.equal(jitter_factors(12, small)[small_mask], jitter_factors(12, large)[small_mask])


def test_jitter_composes_with_ntk():
    spec = RopeSpec(head_dim=32, num_heads=12, method="ntk", target_frames=84)
    jitter = JitterSpec(sigma=0.8, seed=1)
    expected = 10000.0 * jitter_factors(12, jitter) * 4.0 ** (12 / 10)
    torch.testing.assert_close(build_tables(spec, jitter).head_bases, expected, rtol=1e-14, atol=0)


def test_head_count_rounds_half_up():
    assert [jittered_head_count(f, 3) for f in (0.0, 0.5, 1 / 3, 1.0)] == [0, 2, 1, 3]


@pytest.mark.parametrize(
    ("fields", "match"),
    [({"sigma": 1.0}, r"sigma must be in \[0, 1\).*got 1.0"), ({"sigma": -0.1}, "got -0.1"),
     ({"head_fraction": 1.5}, r"head_fraction must be in \[0, 1\], got 1.5"), ({"seed": 1.5}, "seed must be an int")],
)
def test_spec_rejects_bad_values(fields, match):
    with pytest.raises(ValueError, match=match):
        JitterSpec(**fields)


def jitter_group(name: str, seed: int = 3):
    """The jitter group of `python run.py jitter=<name> seed=<seed>`, resolved."""
    return OmegaConf.create(OmegaConf.to_container(compose_run_config([f"jitter={name}", f"seed={seed}"]).jitter,
                                                   resolve=True))


def test_configs():
    assert jitter_spec_from_config(jitter_group("none")) == JitterSpec(sigma=0.0, head_fraction=1.0, seed=3)
    lol = OmegaConf.merge(jitter_group("lol", seed=5), {"sigma": 0.8, "head_fraction": 0.4})
    assert jitter_spec_from_config(lol) == JitterSpec(sigma=0.8, head_fraction=0.4, seed=5)
