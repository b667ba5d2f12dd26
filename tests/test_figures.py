"""make_figures: every figure and table from a small stored-results folder, nothing generated, honest skips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data import latest_sweep, metric_key, rope_method_label
from analysis.figures import phase_kernel_figure
from analysis.make_figures import make_all
from lolbench.phase import PRESETS
from lolbench.rope import RopeSpec
from tests.fixtures import run_config, write_results, write_run

ROOT = Path(__file__).resolve().parent.parent
FIGURES = [
    "phase_kernel_wan2.1_t2v_1.3b", "collapse_index_bases_riflex_wan2.1_t2v_1.3b",  # model-free
    "ablation_sigma", "ablation_head_fraction", "rope_methods_collapse_vs_motion", "sinks_motion_quality",
    "dysink_gate_over_time", "sink_distance_vs_frame_sigma0", "sink_distance_vs_frame_sigma0.8",
    "attention_maps_ordinary_vs_collapse", "positions_sink_distance",
]
TABLES = ["ablation_sigma", "ablation_head_fraction", "rope_methods_table", "sinks_table", "positions_table",
          "world_reference"]


def test_make_figures_writes_every_figure_and_table_from_stored_results(tmp_path):
    write_results(tmp_path)
    stale = tmp_path / "runs" / "sigma" / "2025-01-01_00-00-00" / "0"  # an older sweep must be ignored
    write_run(stale, run_config(jitter__sigma=0.3, seed=0, prompt="meadow"))
    done = subprocess.run([sys.executable, "analysis/make_figures.py", "--results", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped" not in done.stdout, done.stdout
    out = tmp_path / "figures"
    expected = {f"{n}.{ext}" for n in FIGURES for ext in ("png", "pdf")}
    expected |= {f"{n}.{ext}" for n in TABLES for ext in ("csv", "md")}
    assert {p.name for p in out.iterdir()} == expected
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name  # a drawn figure, not an empty canvas

    table = pd.read_csv(out / "rope_methods_table.csv")
    assert list(table["method"]) == ["RoPE", "PI", "NTK", "YaRN", "RIFLEx", "LoL (σ=0.8)"]  # LoL Table 1 order
    sigma = pd.read_csv(out / "ablation_sigma.csv")
    assert list(sigma["cfg.jitter.sigma"]) == [0.0, 0.5, 0.8]  # the stale σ = 0.3 sweep is not mixed in
    assert (sigma["sc_max_mean"] >= sigma["sc_avg_mean"]).all()
    markdown = (out / "sinks_table.md").read_text()
    assert "| dysink |" in markdown and "±" in markdown


def test_without_stored_runs_only_model_free_figures_are_made_and_each_experiment_says_why(tmp_path):
    report = make_all(tmp_path, tmp_path / "figures")
    assert sorted(p.name for p in report.written) == sorted(f"{n}.{e}" for n in FIGURES[:2] for e in ("png", "pdf"))
    assert set(report.skipped) == {"sigma", "heads", "rope_methods", "sinks", "phase", "positions", "world"}
    assert "python run.py +experiment=phase" in report.skipped["phase"]


def test_missing_probes_skip_the_attention_maps_with_the_reason(tmp_path):
    runs = write_results(tmp_path, ["phase"])
    for run_dir in runs["phase"]:
        (run_dir / "probes.npz").unlink()
    report = make_all(tmp_path, tmp_path / "figures")
    assert "probe_every" in report.skipped["phase: phase_attention_maps"]
    assert (tmp_path / "figures" / "sink_distance_vs_frame_sigma0.png").exists()


def test_phase_kernel_figure_is_labelled_with_units_and_marks_the_maxima():
    fig = phase_kernel_figure(RopeSpec(**PRESETS["wan2.1-1.3b"]), 0.8, 300, "Wan2.1-T2V-1.3B")
    (ax,) = fig.axes
    assert "latent frames" in ax.get_xlabel() and "C(Δ)" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("σ=0.8" in label for label in labels) and any("maxima" in label for label in labels)
    plain = ax.get_lines()[0].get_ydata()
    assert plain[0] == pytest.approx(1.0) and np.all(plain <= 1.0 + 1e-12)  # C(0) = 1, never above


def test_helpers_name_settings_and_metrics(tmp_path):
    assert rope_method_label("none", 0.0) == "RoPE" and rope_method_label("none", 0.8) == "LoL (σ=0.8)"
    assert rope_method_label("yarn", 0.5) == "YaRN + LoL (σ=0.5)"
    with pytest.raises(ValueError, match="rope='rotary'"):
        rope_method_label("rotary", 0.0)
    runs = pd.DataFrame(columns=["dynamic_degree[raft]", "dynamic_degree[dis]", "temporal_flickering"])
    assert metric_key(runs, "dynamic_degree") == "dynamic_degree[dis]"
    assert metric_key(runs, "temporal_flickering") == "temporal_flickering"
    with pytest.raises(KeyError, match="aesthetic_quality"):
        metric_key(runs, "aesthetic_quality")
    with pytest.raises(ValueError, match="experiment='nope'"):
        latest_sweep(tmp_path, "nope")


def test_rerun_runs_each_named_experiment_into_a_new_sweep_under_results_then_makes_figures(tmp_path, monkeypatch):
    import analysis.make_figures as make_figures

    commands = []
    monkeypatch.setattr(make_figures.subprocess, "run", lambda command, **kw: commands.append((command, kw)))
    assert make_figures.main(["--results", str(tmp_path), "--rerun", "sigma", "phase",
                              "--override", "hydra/launcher=joblib"]) == 0
    assert [c[2] for c, _ in commands] == ["+experiment=sigma", "+experiment=phase"]
    for (command, kw), name in zip(commands, ["sigma", "phase"]):
        sweep = Path(command[3].removeprefix("hydra.sweep.dir="))
        assert sweep.parent == (tmp_path / "runs" / name).resolve()
        assert command[1].endswith("run.py") and command[-1] == "hydra/launcher=joblib" and kw["check"]
    assert (tmp_path / "figures" / "phase_kernel_wan2.1_t2v_1.3b.png").exists()
