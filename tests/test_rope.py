"""3D RoPE: Wan layout, relative-position property, exact large positions, extension methods, configs."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from lolbench.config import compose_run_config

from lolbench.rope import (
    EXTENSIONS,
    METHODS,
    JitterSpec,
    RopeSpec,
    Rotary,
    build_tables,
    position_mode,
    rope_spec_from_config,
)

TINY_MODEL = {"head_dim": 32, "num_heads": 6, "rope_theta": 10000.0, "rope_time_dim": None, "train_frames": 21}


def scores(rotary: Rotary, q: torch.Tensor, k: torch.Tensor, p_q: float, p_k: float) -> torch.Tensor:
    """[1, H, P, P] dot products of q rotated at frame p_q with k rotated at frame p_k."""
    dtype = torch.int64 if float(p_q).is_integer() and float(p_k).is_integer() else torch.float64
    qr = rotary.rotate(q, torch.tensor([p_q], dtype=dtype))
    kr = rotary.rotate(k, torch.tensor([p_k], dtype=dtype))
    return qr @ kr.transpose(-1, -2)


def test_wan_split_and_table_shapes():
    assert RopeSpec(head_dim=128, num_heads=12).axis_dims == (44, 42, 42)
    assert RopeSpec(head_dim=32, num_heads=6).axis_dims == (12, 10, 10)
    tables = build_tables(RopeSpec(head_dim=128, num_heads=12))
    assert tables.time.shape == (12, 22) and tables.height.shape == (12, 21) and tables.width.shape == (12, 21)
    assert tables.time.dtype == torch.float64
    assert torch.equal(tables.time, tables.time[:1].expand(12, -1))  # per-head rows, all equal without jitter


def test_tiny_frequencies_match_design():
    tables = build_tables(RopeSpec(head_dim=32, num_heads=6))
    expected = torch.tensor([10000.0 ** (-i / 6) for i in range(6)], dtype=torch.float64)
    torch.testing.assert_close(tables.time[0], expected, rtol=1e-14, atol=0)
    assert tables.time[0, 0].item() == 1.0
    assert 2 * math.pi / tables.time[0, 1].item() == pytest.approx(29.16, abs=0.01)  # the 29.2-frame period


def test_layout_time_then_height_then_width():
    """A unit vector in one pair rotates by exactly pos*ω of that pair's axis."""
    spec = RopeSpec(head_dim=16, num_heads=1, theta=100.0)  # time 8, height 4, width 4
    tables = build_tables(spec)
    rotary = Rotary(tables, grid_h=3, grid_w=4)
    row, col, frame = 2, 3, 5
    token = row * 4 + col
    for dim, angle in [(0, frame * 1.0), (2, frame * 100 ** -0.25), (8, row * 1.0), (10, row * 100 ** -0.5),
                       (12, col * 1.0), (14, col * 100 ** -0.5)]:
        x = torch.zeros(1, 1, 12, 16, dtype=torch.float64)
        x[0, 0, token, dim] = 1.0
        out = rotary.rotate(x, torch.tensor([frame]))[0, 0, token]
        expected = torch.zeros(16, dtype=torch.float64)
        expected[dim], expected[dim + 1] = math.cos(angle), math.sin(angle)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_scores_depend_only_on_frame_distance_with_jitter():
    spec = RopeSpec(head_dim=32, num_heads=4)
    rotary = Rotary(build_tables(spec, JitterSpec(sigma=0.5, seed=1)), grid_h=2, grid_w=3)
    gen = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 4, 6, 32, generator=gen, dtype=torch.float64) for _ in range(2))
    reference = scores(rotary, q, k, 7, 0)
    for p_q, p_k in [(12, 5), (107, 100), (123463, 123456), (6.5, -0.5)]:
        torch.testing.assert_close(scores(rotary, q, k, p_q, p_k), reference, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(scores(rotary, q, k, 8, 0), reference, atol=1e-3)


@pytest.mark.parametrize("offset", [10**6, 10**9])
def test_large_positions_keep_exact_phase(offset):
    spec = RopeSpec(head_dim=32, num_heads=6)
    rotary = Rotary(build_tables(spec, JitterSpec(sigma=0.8, seed=2)), grid_h=2, grid_w=2)
    gen = torch.Generator().manual_seed(1)
    q, k = (torch.randn(1, 6, 4, 32, generator=gen) for _ in range(2))
    for delta in (3, 29, 400):
        near = scores(rotary, q, k, delta, 0)
        far = scores(rotary, q, k, offset + delta, offset)
        assert (far - near).abs().max() <= 1e-5 * near.abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_rotation_preserves_norm_and_dtype(dtype):
    rotary = Rotary(build_tables(RopeSpec(head_dim=32, num_heads=6), JitterSpec(sigma=0.3)), grid_h=2, grid_w=2)
    x = torch.randn(2, 6, 3 * 4, 32).to(dtype)
    out = rotary.rotate(x, torch.tensor([0, 50, 10**6]))
    assert out.dtype == dtype and out.shape == x.shape
    pair_norm = lambda t: t.double().unflatten(-1, (-1, 2)).norm(dim=-1)  # noqa: E731
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-6
    torch.testing.assert_close(pair_norm(out), pair_norm(x), rtol=tol, atol=tol)


def test_rotation_by_zero_is_identity():
    rotary = Rotary(build_tables(RopeSpec(head_dim=32, num_heads=6), JitterSpec(sigma=0.8)), grid_h=1, grid_w=1)
    x = torch.randn(3, 6, 2, 32)
    assert torch.equal(rotary.rotate(x, torch.tensor([0, 0])), x)


def test_rotate_rejects_bad_input():
    rotary = Rotary(build_tables(RopeSpec(head_dim=32, num_heads=6)), grid_h=2, grid_w=2)
    with pytest.raises(TypeError, match="float32"):
        rotary.rotate(torch.randn(1, 6, 4, 32), torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"\[B, 6, 8, 32\]"):
        rotary.rotate(torch.randn(1, 6, 4, 32), torch.tensor([0, 1]))


# Small config with hand-computable answers: d=16 -> time 8 (ω = 100^(-i/4), i < 4), θ=100, L=10, L'=40, s=4.
SMALL = {"head_dim": 16, "num_heads": 2, "theta": 100.0, "train_frames": 10, "target_frames": 40}
BASE = torch.tensor([1.0, 100 ** -0.25, 100 ** -0.5, 100 ** -0.75], dtype=torch.float64)


def small_tables(method: str, **extra):
    return build_tables(RopeSpec(method=method, **{**SMALL, **extra}))


def assert_rows(table: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(table, expected.expand_as(table), rtol=1e-12, atol=0)


def test_pi_scales_positions():
    tables = small_tables("pi")
    assert tables.time_scale == 0.25 and tables.attn_scale == 1.0
    assert_rows(tables.time, BASE)
    x = torch.randn(1, 2, 1, 16, dtype=torch.float64)
    torch.testing.assert_close(Rotary(tables, 1, 1).rotate(x, torch.tensor([40])),
                               Rotary(small_tables("none"), 1, 1).rotate(x, torch.tensor([10])))


def test_ntk_base():
    tables = small_tables("ntk")
    base = 100 * 4 ** (8 / 6)
    assert_rows(tables.head_bases, torch.tensor([base], dtype=torch.float64))
    assert_rows(tables.time, torch.tensor([base ** (-i / 4) for i in range(4)], dtype=torch.float64))
    assert tables.time[0, -1].item() == pytest.approx(BASE[-1].item() / 4, rel=1e-12)  # slowest pair: exactly /s
    assert tables.time_scale == 1.0 and tables.attn_scale == 1.0


def test_yarn_ramp_and_temperature():
    tables = small_tables("yarn")
    gamma0 = (10 / (2 * math.pi) - 1) / 31  # only ω=1 makes more than alpha=1 rotation over L=10
    expected = BASE / 4
    expected[0] = (1 - gamma0) / 4 + gamma0
    assert_rows(tables.time, expected)
    assert tables.attn_scale == pytest.approx((0.1 * math.log(4) + 1) ** 2, rel=1e-12)
    assert small_tables("yarn", yarn_alpha=0.0, yarn_beta=1.0).time[0, 0].item() == 1.0  # r=1.59 > beta: kept


def test_riflex_changes_one_component():
    auto = small_tables("riflex")  # periods 6.3, 19.9, 62.8, 199: 6.3 is closest to L=10
    expected = BASE.clone()
    expected[0] = 0.9 * 2 * math.pi / 40
    assert_rows(auto.time, expected)
    chosen = small_tables("riflex", riflex_k=3)
    expected = BASE.clone()
    expected[2] = 0.9 * 2 * math.pi / 40
    assert_rows(chosen.time, expected)


@pytest.mark.parametrize("method", METHODS)
def test_methods_identity_without_extension_and_never_touch_space(method):
    plain = small_tables("none")
    for target in (10, 5):
        tables = small_tables(method, target_frames=target)
        for name in ("time", "height", "width", "head_bases"):
            assert torch.equal(getattr(tables, name), getattr(plain, name))
        assert tables.time_scale == 1.0 and tables.attn_scale == 1.0
    extended = small_tables(method)
    assert torch.equal(extended.height, plain.height) and torch.equal(extended.width, plain.width)


def test_every_method_has_an_extension():
    assert set(EXTENSIONS) == set(METHODS)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"method": "alibi"}, r"method='alibi' is not one of \('none', 'pi'"),
        ({"method": "pi"}, "needs target_frames"),
        ({"time_dim": 10}, "time_dim=10 does not fit head_dim=16"),
        ({"head_dim": 15}, "head_dim must be a positive even number, got 15"),
        ({"method": "riflex", "target_frames": 40, "riflex_k": 5}, r"riflex_k must be in \[1, 4\]"),
        ({"method": "yarn", "target_frames": 40, "yarn_alpha": 4.0, "yarn_beta": 2.0}, "yarn_beta must exceed"),
    ],
)
def test_spec_rejects_bad_values(fields, match):
    with pytest.raises(ValueError, match=match):
        RopeSpec(**{"head_dim": 16, "num_heads": 2, **fields})


def rope_group(name: str, num_frames: int = 84):
    """The rope group of `python run.py rope=<name> num_frames=<num_frames>`, resolved."""
    return OmegaConf.create(OmegaConf.to_container(
        compose_run_config([f"rope={name}", f"num_frames={num_frames}"]).rope, resolve=True))


@pytest.mark.parametrize("name", METHODS)
def test_every_rope_config_builds(name):
    rope_cfg = rope_group(name)
    spec = rope_spec_from_config(TINY_MODEL, rope_cfg)
    assert spec.method == name and spec.head_dim == 32 and spec.train_frames == 21
    assert spec.target_frames == (None if name == "none" else 84)
    assert position_mode(rope_cfg) == "absolute"
    build_tables(spec)


def test_rope_config_parameters():
    yarn = OmegaConf.merge(rope_group("yarn"), {"alpha": 2.0, "beta": 16.0})
    spec = rope_spec_from_config(TINY_MODEL, yarn)
    assert (spec.yarn_alpha, spec.yarn_beta) == (2.0, 16.0)
    assert rope_spec_from_config(TINY_MODEL, OmegaConf.merge(rope_group("riflex"), {"k": 2})).riflex_k == 2
