"""The VBench weight cache: where files are looked for, what a missing or a broken file does."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lolbench.metrics.quality import vbench_quality
from lolbench.metrics.vbench_cache import FILES, cache_dir, candidates, locate
from tests.vbench_weights import save_clip, save_dino


def test_cache_dir_follows_vbench_s_rule(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(str(tmp_path / "cfg")) == tmp_path / "cfg"  # the config key wins
    monkeypatch.delenv("VBENCH_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "vbench"


def test_file_names_are_vbench_s(tmp_path, monkeypatch) -> None:
    assert FILES["raft"].relative == "raft_model/models/raft-things.pth"
    assert FILES["dino"].relative == "dino_model/dino_vitbase16_pretrain.pth"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert candidates("amt", tmp_path) == [tmp_path / "amt_model/amt-s.pth",
                                           tmp_path / "home/.cache/amt_model/amt-s.pth"]
    legacy = tmp_path / "home/.cache/aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"x")
    assert locate("aesthetic_head", tmp_path, "unused") == legacy


def test_a_missing_file_is_one_line_naming_it_and_where(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lolbench.metrics.vbench_cache"):
        assert locate("dino", tmp_path, "subject consistency uses the pixel stand-in") is None
    (line,) = caplog.messages
    assert str(tmp_path / "dino_model/dino_vitbase16_pretrain.pth") in line and "pixel stand-in" in line


def test_found_files_are_used_and_named(tmp_path) -> None:
    save_dino(tmp_path)
    save_clip(tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    result, _ = vbench_quality(frames, fps=4, flow="dis", vbench_cache=str(tmp_path))
    assert isinstance(result["subject_consistency[dino-vit-d64-l1-p16/in-clip]"], float)
    assert isinstance(result["background_consistency[clip-vit-w64-l1-p32/in-clip]"], float)
    assert "subject_consistency:dino-vit-d64-l1-p16/in-clip" in next(k for k in result if k.startswith("quality_score"))


def test_a_broken_file_is_an_error_naming_it_and_other_dims_go_on(tmp_path, caplog) -> None:
    bad = tmp_path / FILES["dino"].relative
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    save_dino(tmp_path / "elsewhere")  # a DINO file where CLIP is expected: the wrong architecture
    (tmp_path / FILES["clip"].relative).parent.mkdir(parents=True)
    (tmp_path / FILES["clip"].relative).write_bytes((tmp_path / "elsewhere" / FILES["dino"].relative).read_bytes())
    frames = np.random.default_rng(0).integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    with caplog.at_level(logging.ERROR):
        result, _ = vbench_quality(frames, fps=4, flow="dis", vbench_cache=str(tmp_path))
    subject = result["subject_consistency[in-clip]"]
    assert subject.startswith("unavailable:") and str(bad) in subject
    background = result["background_consistency[in-clip]"]
    assert "is not a CLIP in OpenAI's format" in background and FILES["clip"].relative in background
    assert isinstance(result["temporal_flickering[no-static-filter]"], float)
    assert isinstance(result["dynamic_degree[dis]"], float)
    assert any(str(bad) in message for message in caplog.messages)


def test_unknown_role_is_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown VBench cache role 'dinov2'"):
        candidates("dinov2", tmp_path)
