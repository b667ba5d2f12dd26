"""Tracking: an offline W&B run holds everything a run produced (read back from its file); the rest are no-ops."""

from __future__ import annotations

import json
import shutil
import struct
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import OmegaConf

from lolbench.results import read_summary
from lolbench.tracking import FilesOnly, build_logger
from tests.fixtures import run_config, write_run

BLOCK = 32768  # W&B's transaction log is LevelDB-log framed: 32 KiB blocks of (crc32, length, type) records
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What an offline run's .wandb file says, decoded without the network or a W&B account."""

    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _key(item) -> str:
    return "/".join(item.nested_key) if len(item.nested_key) else item.key


def _records(wandb_dir: Path) -> Iterator[Any]:
    """The protobuf records of the one offline run under ``wandb_dir``, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    (run_dir,) = list(wandb_dir.glob("offline-run-*"))
    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    position, pending = HEADER, b""
    while position + HEADER <= len(data):
        if BLOCK - position % BLOCK < HEADER:  # block trailer too small for a header: padding
            position += BLOCK - position % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[position: position + HEADER])
        if (kind == 0 and length == 0) or position + HEADER + length > len(data):  # end, or still being written
            break
        chunk, position = data[position + HEADER: position + HEADER + length], position + HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def finished_records(wandb_dir: Path, timeout: float = 30.0) -> list[Any]:
    """All records once the exit record is on disk: W&B's service process may still be writing the file when
    ``run.finish()`` returns."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(_records(wandb_dir))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def read_offline_run(wandb_dir: Path) -> tuple[OfflineRun, Path]:
    out = OfflineRun()
    for record in finished_records(wandb_dir):
        which = record.WhichOneof("record_type")
        if which == "run":
            out.config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
            out.tags = list(record.run.tags)
        elif which == "config":
            out.config.update({_key(u): json.loads(u.value_json) for u in record.config.update})
        elif which == "summary":
            out.summary.update({_key(u): json.loads(u.value_json) for u in record.summary.update})
        elif which == "history":
            out.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif which == "files":
            out.files += [f.path for f in record.files.files]
    (run_dir,) = list(wandb_dir.glob("offline-run-*"))
    return out, run_dir


@pytest.fixture
def isolated_wandb(tmp_path, monkeypatch):
    """No account, no user settings, caches inside tmp_path; env changes undone after the test."""
    home = tmp_path / "home"
    for var, sub in (("HOME", ""), ("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"),
                     ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")  # the logger's offline setting must win over this
    monkeypatch.setenv("WANDB_SILENT", "false")


def test_offline_wandb_run_holds_config_curves_summary_video_figures_and_events(tmp_path, isolated_wandb):
    run_dir = tmp_path / "run"
    config = run_config(("logger=wandb",), seed=3, prompt="desert", logger__tags=["test"])
    summary = write_run(run_dir, config, frames=90, depth=0.7, video=True)
    assert summary["events"], "the fixture must contain collapse events"
    logger = build_logger(OmegaConf.create(config["logger"]), run_dir, OmegaConf.create(config))
    for chunk in range(30):
        logger.log_chunk(chunk, {"seconds": 0.01 * chunk, "gate_fraction": 0.5})
    logger.finish(summary, run_dir)

    run, wandb_run_dir = read_offline_run(run_dir / "wandb")  # offline: written under the run directory
    assert {k: v for k, v in run.config.items() if not k.startswith("_")} == config
    assert run.tags == ["test"]
    assert run.summary["metrics/sink_distance_drop[rms]"] == pytest.approx(
        summary["metrics"]["sink_distance_drop[rms]"])
    assert run.summary["metrics/imaging_quality"].startswith("unavailable:")
    assert run.summary["model/checkpoint_sha256"] == summary["model"]["checkpoint_sha256"]
    assert run.summary["environment/git_revision"] == "0123abc"

    logged = defaultdict(list)
    for row in run.history:
        for key, value in row.items():
            logged[key].append(value)
    assert len(logged["frame/sink_distance[rms]"]) == 90  # per-frame curves, every frame
    assert logged["chunk/seconds"] == pytest.approx([0.01 * c for c in range(30)])  # as generated
    assert len(logged["chunk/head_sink_mass"]) == 8  # probed chunks 0, 4, ..., 28
    assert "frame/flow_top5[dis]" in logged  # flow at the frames it was measured on

    media = wandb_run_dir / "files" / "media"
    assert len(list((media / "videos").glob("*.mp4"))) == 1
    assert list((media / "images" / "figures").glob("overview*.png"))
    (events_file,) = list((media / "table").glob("collapse_events*.table.json"))
    events = json.loads(events_file.read_text())
    assert len(events["data"]) == len(summary["events"])
    assert sorted(events["columns"]) == sorted(summary["events"][0])


def test_offline_wandb_run_of_a_real_run_holds_its_summary_curves_chunks_and_video(real_results, tmp_path,
                                                                                    isolated_wandb):
    """A run directory written by run.py (tests/conftest.py), logged as the runner logs it."""
    source = sorted((real_results / "runs" / "sigma").glob("*/0"))[0]
    run_dir = shutil.copytree(source, tmp_path / "run")
    summary = read_summary(run_dir)
    config = {**summary["config"], "logger": {**summary["config"]["logger"], "name": "wandb", "mode": "offline",
                                              "project": "lolbench", "entity": None, "dir": None, "tags": []}}
    logger = build_logger(OmegaConf.create(config["logger"]), run_dir, OmegaConf.create(config))
    chunks = pd.read_parquet(run_dir / "chunks.parquet")
    for row in chunks.to_dict("records"):
        logger.log_chunk(int(row["chunk"]), {k: v for k, v in row.items() if k != "chunk" and pd.notna(v)})
    logger.finish(summary, run_dir)

    run, wandb_run_dir = read_offline_run(run_dir / "wandb")
    for key, value in summary["metrics"].items():
        if isinstance(value, float):
            assert run.summary[f"metrics/{key}"] == pytest.approx(value), key
    assert run.summary["model/checkpoint_sha256"] == summary["model"]["checkpoint_sha256"]
    logged = defaultdict(list)
    for row in run.history:
        for key, value in row.items():
            logged[key].append(value)
    curves = pd.read_parquet(run_dir / "curves.parquet")
    assert logged["frame/sink_distance[rms]"] == pytest.approx(curves["sink_distance[rms]"].dropna().tolist())
    assert logged["chunk/seconds"] == pytest.approx(chunks["seconds"].tolist())
    assert len(list((wandb_run_dir / "files" / "media" / "videos").glob("*.mp4"))) == 1


def test_online_mode_without_credentials_stops_with_an_error_instead_of_prompting(tmp_path, isolated_wandb):
    config = run_config(("logger=wandb",), logger__mode="online")
    with pytest.raises(ValueError, match="logger.mode=online needs W&B credentials"):
        build_logger(OmegaConf.create(config["logger"]), tmp_path, OmegaConf.create(config))
    assert not (tmp_path / "wandb").exists()


@pytest.mark.parametrize("name", ["local", "none"])
def test_local_and_none_keep_only_the_run_directory_files(tmp_path, name):
    logger = build_logger({"name": name}, tmp_path, {})
    assert isinstance(logger, FilesOnly)
    logger.log_chunk(0, {"seconds": 1.0})
    logger.finish({"completed": True}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_chunk_scalars_must_be_numbers(tmp_path, isolated_wandb):
    config = run_config(("logger=wandb",))
    logger = build_logger(OmegaConf.create(config["logger"]), tmp_path, OmegaConf.create(config))
    with pytest.raises(ValueError, match="chunk 2: embedder='pixel' is not a number"):
        logger.log_chunk(2, {"embedder": "pixel"})
    logger.run.finish()


def test_a_run_left_unfinished_in_the_process_is_closed_as_failed_before_the_next(tmp_path, isolated_wandb):
    config = run_config(("logger=wandb",))
    first = build_logger(OmegaConf.create(config["logger"]), tmp_path / "a", OmegaConf.create(config))
    second = build_logger(OmegaConf.create(config["logger"]), tmp_path / "b", OmegaConf.create(config))
    assert second.run.id != first.run.id
    second.run.finish()
    records = finished_records(tmp_path / "a" / "wandb")
    (exit_record,) = [r for r in records if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit.exit_code == 1
