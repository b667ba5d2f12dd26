"""Structured configs: every option of every group composes with its schema dataclass, and an out-of-range,
mistyped or unknown value is rejected with the key (and its range) in the message; the debug preset runs."""

from __future__ import annotations

import re

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lolbench.config import compose_run_config
from lolbench.runner import run
from lolbench.schema import SCHEMAS, RunSchema, check_ranges

OPTIONS = [(group, option) for group, options in SCHEMAS.items() for option in options]

# one out-of-range value per option (the allowed range, from the papers and the code, in the comment)
OUT_OF_RANGE = {
    ("sink", "window"): ("sink.window_frames", 0),  # >= 1
    ("sink", "static"): ("sink.sink_frames", -1),  # >= 0
    ("sink", "deep"): ("sink.sink_fraction", 1.5),  # in [0, 1]
    ("sink", "dysink"): ("sink.gate_tau", 1.2),  # a fraction of heads
    ("rope", "none"): ("rope.positions", "sideways"),  # absolute | rolling
    ("rope", "pi"): ("rope.target_frames", 0),  # >= 1
    ("rope", "ntk"): ("rope.target_frames", -5),
    ("rope", "yarn"): ("rope.alpha", -1.0),  # >= 0
    ("rope", "riflex"): ("rope.k", 0),  # 1-based
    ("jitter", "lol"): ("jitter.sigma", 1.0),  # base θ0 (1 + σ ε) must stay > 0: σ < 1
    ("jitter", "none"): ("jitter.sigma", 0.1),  # none means σ = 0
    ("logger", "local"): ("logger.name", "local2"),
    ("logger", "none"): ("logger.name", "nothing"),
    ("logger", "wandb"): ("logger.mode", "cloud"),  # offline | online
    ("model", "tiny"): ("model.denoise_steps", 0),  # >= 1
    ("model", "world"): ("model.size", 0),  # >= 1
}


def test_every_option_has_an_out_of_range_case():
    assert set(OUT_OF_RANGE) == set(OPTIONS)


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_option_composes_with_its_schema(group, option):
    cfg = compose_run_config([f"{group}={option}"])
    assert OmegaConf.get_type(cfg[group]) is SCHEMAS[group][option]
    assert OmegaConf.get_type(cfg) is RunSchema
    check_ranges(cfg)


@pytest.mark.parametrize("group, option", OPTIONS)
def test_an_out_of_range_value_is_rejected_by_name(group, option):
    name, bad = OUT_OF_RANGE[(group, option)]
    cfg = compose_run_config([f"{group}={option}", f"{name}={bad}"])
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}={re.escape(repr(bad))} is out of range: must be "):
        check_ranges(cfg)


@pytest.mark.parametrize("override, message", [
    ("num_frames=0", "num_frames=0 is out of range: must be >= 1"),
    ("probe_every=-1", "probe_every=-1 is out of range: must be >= 0"),
    ("checkpoint_every=0", "checkpoint_every=0 is out of range: must be >= 1"),
    ("resume=maybe", "resume='maybe' is out of range: must be one of [False, True, 'auto']"),
    ("threads=0", "threads=0 is out of range: must be >= 1"),
])
def test_run_keys_are_range_checked(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_ranges(compose_run_config([override]))


@pytest.mark.parametrize("override, key", [("sink.sink_frames=three", "sink.sink_frames"),
                                           ("sink.bogus=1", "bogus"), ("num_frames=many", "num_frames")])
def test_mistyped_or_unknown_keys_fail_at_composition(override, key):
    with pytest.raises(ConfigCompositionException) as info:
        compose_run_config([override])
    chain = f"{info.value} {info.value.__cause__}"
    assert key in chain


def test_the_debug_preset_is_a_short_complete_run(tmp_path):
    cfg = compose_run_config(["debug=default"])
    assert cfg.num_frames <= 30 and cfg.threads == 1 and not cfg.metrics.quality.enabled
    summary = run(cfg, tmp_path, progress=False)
    assert summary["completed"] and summary["frames"] == cfg.num_frames
