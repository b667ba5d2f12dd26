"""The results store: run directories load into one table with their provenance; aggregation matches by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from lolbench.results import (
    find_runs, load_probes, load_runs, load_tables, numeric, read_summary, seed_statistics, setting_columns,
    sink_collapse_table,
)
from lolbench.probes import FrameKind
from tests.fixtures import run_config, write_results, write_run

UNAVAILABLE = "unavailable: reference distance is 0"


def hand_table() -> pd.DataFrame:
    """Two settings x 2 seeds x 2 prompts with round numbers; setting B misses one prompt's drop for seed 0."""
    rows = [
        ("A", 0, "meadow", 10.0, 0.2), ("A", 0, "desert", 30.0, 0.4),
        ("A", 1, "meadow", 20.0, 0.6), ("A", 1, "desert", 60.0, 0.8),
        ("B", 0, "meadow", 5.0, 0.1), ("B", 0, "desert", UNAVAILABLE, 0.3),
        ("B", 1, "meadow", 4.0, 0.5), ("B", 1, "desert", 6.0, 0.7),
    ]
    return pd.DataFrame(rows, columns=["cfg.sink.name", "seed", "prompt", "sink_distance_drop[rms]",
                                       "dynamic_degree[dis]"])


def test_sink_collapse_over_prompts_then_mean_std_over_seeds_matches_hand_computation():
    table = sink_collapse_table(hand_table(), by=["cfg.sink.name"]).set_index("cfg.sink.name")
    # A: seed 0 -> max 30, mean 20; seed 1 -> max 60, mean 40
    assert table.loc["A", "sc_max_mean"] == pytest.approx(45.0)
    assert table.loc["A", "sc_max_std"] == pytest.approx(math.sqrt(((30 - 45) ** 2 + (60 - 45) ** 2) / 1))
    assert table.loc["A", "sc_avg_mean"] == pytest.approx(30.0)
    assert table.loc["A", "sc_avg_std"] == pytest.approx(math.sqrt(200.0))
    assert table.loc["A", "sc_max_n"] == 2 and table.loc["A", "n_prompts"] == 2
    # B: seed 0 lacks a prompt -> left out (not averaged over one prompt, not counted as 0); seed 1 -> 6 / 5
    assert table.loc["B", "sc_max_mean"] == pytest.approx(6.0)
    assert table.loc["B", "sc_avg_mean"] == pytest.approx(5.0)
    assert table.loc["B", "sc_max_n"] == 1 and table.loc["B", "sc_max_missing"] == 1
    assert math.isnan(table.loc["B", "sc_max_std"])  # one seed: no spread to report


def test_other_metrics_are_averaged_over_prompts_then_over_seeds():
    table = seed_statistics(hand_table(), ["dynamic_degree[dis]"], by=["cfg.sink.name"]).set_index("cfg.sink.name")
    # A: seeds 0.3 and 0.7; B: seeds 0.2 and 0.6
    assert table.loc["A", "dynamic_degree[dis]_mean"] == pytest.approx(0.5)
    assert table.loc["A", "dynamic_degree[dis]_std"] == pytest.approx(math.sqrt(0.08))
    assert table.loc["B", "dynamic_degree[dis]_mean"] == pytest.approx(0.4)
    assert table.loc["B", "dynamic_degree[dis]_n"] == 2


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return root, write_results(root)


def test_runs_are_found_below_any_folder_and_loaded_together(stored):
    root, runs = stored
    assert find_runs([root]) == sorted(p for dirs in runs.values() for p in dirs)
    both = load_runs([root / "runs" / "heads", runs["sinks"][0]])
    assert len(both) == len(runs["heads"]) + 1


def test_settings_are_the_varying_config_keys_but_not_seed_prompt_or_their_copies(stored):
    root, _ = stored
    assert setting_columns(load_runs([root / "runs" / "positions"])) == ["cfg.jitter.sigma", "cfg.rope.positions"]


def test_aggregating_stored_runs_equals_a_direct_computation_from_their_summaries(stored):
    root, runs = stored
    table = sink_collapse_table(load_runs([root / "runs" / "sigma"])).set_index("cfg.jitter.sigma")
    drops: dict[tuple[float, int], list[float]] = {}
    for run_dir in runs["sigma"]:
        s = read_summary(run_dir)
        setting = (s["config"]["jitter"]["sigma"], s["seed"])
        drops.setdefault(setting, []).append(s["metrics"]["sink_distance_drop[rms]"])
    for sigma in (0.0, 0.5, 0.8):
        per_seed_max = [max(drops[(sigma, seed)]) for seed in (0, 1)]
        assert table.loc[sigma, "sc_max_mean"] == pytest.approx(np.mean(per_seed_max))
        assert table.loc[sigma, "sc_max_std"] == pytest.approx(np.std(per_seed_max, ddof=1))
    assert table.loc[0.0, "sc_avg_mean"] > table.loc[0.8, "sc_avg_mean"]  # the fixture's deeper dips at σ = 0


def test_curves_chunks_series_and_probes_load_on_their_own_axes(stored):
    _, runs = stored
    run_dir = runs["phase"][0]
    tables = load_tables(run_dir)
    assert list(tables.frames["frame"]) == list(range(150))
    assert tables.chunks["first_frame"].tolist() == [3 * c for c in range(50)]
    series = tables.indexed_series()
    axis, index, values = series["flow_top5[dis]"]
    assert axis == "frame" and index[0] == 2 and len(index) == len(values)
    axis, index, _ = series["head_sink_mass"]
    assert axis == "chunk" and list(index) == list(range(50))  # phase runs probe every chunk
    probes = load_probes(run_dir)
    assert probes.mass.shape == (50, 2, 3, 15)
    np.testing.assert_allclose(np.nansum(probes.mass, axis=3), 1.0, rtol=1e-5)  # padding: NaN, no mass
    assert (probes.kind[1:, :3] == int(FrameKind.SINK)).all() and list(probes.context_frames()[:6]) == [
        3, 6, 9, 12, 15, 15]
    sink = probes.mass_on(FrameKind.SINK, FrameKind.RETRIEVED)  # [n, L, H]
    assert sink.shape == (50, 2, 3) and sink[0].max() == 0.0  # chunk 0 has no sink frame in its context
    expected = pd.read_parquet(run_dir / "chunks.parquet")["sink_mass_mean"].to_numpy()
    np.testing.assert_allclose(sink[1:, 0, 0], expected[1:], rtol=1e-5)


def test_a_summary_without_a_required_key_is_named(tmp_path):
    write_run(tmp_path / "run", run_config(seed=0))
    path = tmp_path / "run" / "summary.json"
    summary = json.loads(path.read_text())
    del summary["environment"]
    path.write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="environment"):
        load_runs([tmp_path])
    with pytest.raises(FileNotFoundError, match="summary.json"):
        read_summary(tmp_path)
    with pytest.raises(KeyError, match="no_such_metric"):
        numeric(hand_table(), "no_such_metric")


def test_a_repeated_run_is_refused_rather_than_counted_twice():
    table = pd.concat([hand_table(), hand_table().iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="counted twice"):
        sink_collapse_table(table, by=["cfg.sink.name"])
