"""What a real `python run.py` writes is what the results store and the figures read.

The runs come from the session fixture ``real_results`` (conftest.py): the user's sweep command on the shipped
checkpoint, 4 runs of 64 frames. Expected numbers are read from each run's own summary.json and aggregated here
by hand (SC-Max: worst prompt per seed, then mean ± sample std over seeds).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd

from analysis.make_figures import make_all
from lolbench import runner
from lolbench.probes import FrameKind
from lolbench.results import load_probes, load_runs, load_tables, numeric, read_summary
from lolbench.video_io import open_video

DROP = "sink_collapse_drop[rms]"


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "runs" / "sigma").glob("*/*/summary.json"))


def by_sigma(root: Path) -> dict[float, list[dict]]:
    """Summaries grouped by σ."""
    groups: dict[float, list[dict]] = {}
    for run_dir in run_dirs(root):
        summary = read_summary(run_dir)
        groups.setdefault(summary["config"]["jitter"]["sigma"], []).append(summary)
    return groups


def test_every_real_run_is_one_row_with_the_provenance_of_its_summary(real_results):
    dirs = run_dirs(real_results)
    frame = load_runs([real_results / "runs" / "sigma"])
    assert len(dirs) == len(frame) == 4
    for run_dir in dirs:
        summary = read_summary(run_dir)
        row = frame[frame["run_dir"] == str(run_dir)].iloc[0]
        assert summary["completed"] and summary["frames"] == summary["frames_requested"] == 64
        assert row["checkpoint_sha256"] == summary["model"]["checkpoint_sha256"] and len(row["checkpoint_sha256"]) == 64
        assert row["git_revision"] == summary["environment"]["git_revision"]
        assert (row["seed"], row["prompt"]) == (summary["seed"], summary["prompt"])
        assert row["cfg.jitter.sigma"] == summary["config"]["jitter"]["sigma"]
        assert row[DROP] == summary["metrics"][DROP]
        assert {name for name in summary["files"]} <= {p.name for p in run_dir.iterdir()}
    assert sorted(frame["cfg.jitter.sigma"]) == [0.0, 0.0, 0.8, 0.8] and sorted(frame["seed"]) == [0, 0, 1, 1]
    assert frame["imaging_quality"].str.startswith("unavailable:").all()  # kept as stored, with its reason
    assert numeric(frame, "imaging_quality").isna().all()  # and never read as a number


def test_a_real_runs_tables_load_on_their_axes(real_results):
    run_dir = run_dirs(real_results)[0]
    tables = load_tables(run_dir)
    assert tables.frames["frame"].tolist() == list(range(64))
    assert tables.chunks["first_frame"].tolist() == [3 * c for c in range(22)]  # ceil(64 / 3) chunks
    axis, index, values = tables.indexed_series()["head_sink_mass"]
    assert axis == "chunk" and index.tolist() == [0, 4, 8, 12, 16, 20] and len(values) == 6  # probe_every = 4
    probes = load_probes(run_dir)
    assert probes.mass.shape[:3] == (6, 4, 6)  # probed chunks, layers, heads of the tiny model
    np.testing.assert_allclose(np.nansum(probes.mass, axis=3), 1.0, rtol=1e-4)  # each head's mass sums to 1
    assert probes.mass_on(FrameKind.SINK)[0].max() == 0.0  # chunk 0 has no sink frame before it
    assert (probes.kind[1:, :3] == int(FrameKind.SINK)).all()  # later chunks: 3 sink frames first
    np.testing.assert_allclose(probes.mass_on(FrameKind.SINK).mean(axis=(1, 2))[1:],
                               tables.chunks["sink_mass_mean"].dropna().to_numpy()[1:], rtol=1e-4)


class Interrupting:
    """Wraps a generator: its third chunk raises KeyboardInterrupt, as Ctrl-C during generation would."""

    def __init__(self, generator):
        self.generator, self.calls = generator, 0

    def __getattr__(self, name):
        return getattr(self.generator, name)

    def next_chunk(self, probe: bool = False):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return self.generator.next_chunk(probe=probe)


def test_an_interrupted_run_writes_an_incomplete_summary_that_the_results_load(run_config, tmp_path, monkeypatch):
    build = runner.build_generator
    monkeypatch.setattr(runner, "build_generator", lambda cfg: (lambda g, info: (Interrupting(g), info))(*build(cfg)))
    summary = runner.run(run_config(["num_frames=48", "metrics.quality.enabled=false"]), tmp_path, progress=False)
    assert summary["completed"] is False and summary["frames"] == 6 and summary["frames_requested"] == 48
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["completed"] is False and saved["frames"] == 6
    assert sum(len(c) for c in open_video(tmp_path / "video.mp4").chunks(16)) == 6
    row = load_runs([tmp_path]).iloc[0]
    assert not row["completed"] and row["frames"] == 6


def test_figures_and_tables_of_real_runs_hold_the_hand_aggregated_numbers(real_results, tmp_path, monkeypatch):
    drawn: list[matplotlib.figure.Figure] = []  # every figure make_all saves (PNG and PDF: twice each)
    savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *args, **kwargs: (drawn.append(fig), savefig(fig, *args, **kwargs))[1])
    make_all(real_results, tmp_path)

    groups = by_sigma(real_results)
    sigmas = sorted(groups)
    sc_max = {s: [max(r["metrics"][DROP] for r in groups[s] if r["seed"] == seed) for seed in (0, 1)]
              for s in sigmas}  # worst prompt per seed (one prompt here)
    table = pd.read_csv(tmp_path / "ablation_sigma.csv")
    assert table["cfg.jitter.sigma"].tolist() == sigmas == [0.0, 0.8]
    np.testing.assert_allclose(table["sc_max_mean"], [np.mean(sc_max[s]) for s in sigmas], rtol=1e-12)
    np.testing.assert_allclose(table["sc_max_std"], [np.std(sc_max[s], ddof=1) for s in sigmas], rtol=1e-9)
    assert (table["sc_max_n"] == 2).all() and (table["n_prompts"] == 1).all()
    markdown = (tmp_path / "ablation_sigma.md").read_text()
    for s in sigmas:
        assert f"{np.mean(sc_max[s]):.2f} ± {np.std(sc_max[s], ddof=1):.2f}" in markdown

    (figure,) = {f for f in drawn if f._suptitle and f._suptitle.get_text().startswith("Ablation of the jitter")}
    collapse = figure.axes[0]
    (bars,) = [c for c in collapse.containers if c.get_label().startswith("SC-Max")]  # an errorbar container
    data, (low, high) = bars.lines[0], bars.lines[1]  # the mean line and the caps at mean -/+ std
    np.testing.assert_allclose(data.get_xdata(), sigmas)
    np.testing.assert_allclose(data.get_ydata(), [np.mean(sc_max[s]) for s in sigmas], rtol=1e-9)
    np.testing.assert_allclose(high.get_ydata() - low.get_ydata(), [2 * np.std(sc_max[s], ddof=1) for s in sigmas],
                               rtol=1e-9)
    assert "σ" in collapse.get_xlabel() and "%" in collapse.get_ylabel()
    image = grey_image(tmp_path / "ablation_sigma.png")
    assert image.std() > 0.05 and (image < 0.5).mean() > 0.001  # drawn: dark strokes on a light canvas


def grey_image(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)[..., :3].mean(axis=2)  # grey levels in [0, 1]

