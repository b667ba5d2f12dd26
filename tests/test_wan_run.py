"""`run.py model=wan` end to end on tiny random components in both folder layouts, and its early errors."""

from __future__ import annotations

import functools

import pandas as pd
import pytest
import torch

from lolbench.metrics.schema import undocumented
from lolbench.models import wan_pipeline
from lolbench.models.wan_retrieval import PE_CORE_ARCH, PE_CORE_DIM, PECoreEmbedder
from lolbench.models.wan_text import TextEncoderError
from lolbench.models.wan_vae import VAEError
from lolbench.runner import run
from lolbench.video_io import open_video
from tests.wan_fixtures import tiny_wan_overrides, write_text_and_vae, write_tiny_wan
from tests.wan_helpers import one_thread  # noqa: F401  (autouse: tiny models on one thread)

PROMPT = "prompt=a wingsuit flyer racing through a mountain valley"
FAST = ["num_frames=13", "probe_every=1", "logger=none", "metrics.quality.enabled=false"]  # 2 chunks: 9 + 4 frames



@pytest.fixture(scope="module", params=["diffusers", "original"])
def tiny_wan(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"wan_{request.param}")
    return request.param, write_tiny_wan(root, request.param)


@functools.lru_cache(maxsize=1)
def tiny_model_metric_keys() -> frozenset[str]:
    """The metric keys the built-in model's run writes with the same metric settings."""
    from lolbench.config import compose_run_config
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as out:
        summary = run(compose_run_config(FAST), Path(out), progress=False)
    return frozenset(summary["metrics"])


def frames_in(path) -> int:
    return sum(len(c) for c in open_video(path).chunks(16))


@pytest.mark.parametrize("sink", ["static", "dysink"])
def test_run_writes_requested_frames_and_every_metric_key(run_config, tmp_path, tiny_wan, sink):
    layout, overrides = tiny_wan
    summary = run(run_config([*overrides, PROMPT, f"sink={sink}", *FAST]), tmp_path, progress=False)
    assert summary["completed"] and summary["frames"] == 13 and frames_in(tmp_path / "video.mp4") == 13
    assert set(summary["metrics"]) == tiny_model_metric_keys() and not undocumented(summary["metrics"])
    assert summary["model"]["text_encoder"].startswith(f"umt5[{layout}]")
    generation = summary["generation"]
    for stage in ("transformer", "vae", "metrics"):
        assert generation[f"seconds_{stage}_mean"] > 0
    if sink == "dysink":  # no retrieval encoder given: the offline latent embedding, named as such
        assert summary["model"]["retrieval_embedding"] == "latent"
        assert "retrieval_score[latent]" in pd.read_parquet(tmp_path / "chunks.parquet")


def test_dysink_retrieves_with_pe_core_embeddings(run_config, tmp_path, tiny_wan, monkeypatch):
    import timm

    _, overrides = tiny_wan
    tiny = {"depth": 1, "img_size": 32}  # PE-Core-S16's widths, one block, 32 px input
    checkpoint = tmp_path / "PE-Core-S16-384.pt"
    torch.save(timm.create_model(PE_CORE_ARCH, num_classes=PE_CORE_DIM, **tiny).state_dict(), checkpoint)
    monkeypatch.setattr(wan_pipeline, "PECoreEmbedder", functools.partial(PECoreEmbedder, **tiny))
    cfg = run_config([*overrides, PROMPT, "sink=dysink", "sink.window_frames=3", "sink.top_k=1",
                      f"model.retrieval_encoder={checkpoint}", *FAST, "num_frames=33"])  # 3 chunks
    summary = run(cfg, tmp_path / "run", progress=False)
    assert summary["model"]["retrieval_embedding"] == "pe-core-s16-384"
    assert summary["model"]["retrieval_encoder"] == str(checkpoint)
    scores = pd.read_parquet(tmp_path / "run" / "chunks.parquet")["retrieval_score[pe-core-s16-384]"]
    assert scores.notna().any()  # from the third chunk on an entry outside the 1-chunk window is retrieved
    assert summary["generation"]["seconds_retrieval_mean"] > 0


def test_pe_core_embedding_without_encoder_file_is_named(run_config, tmp_path):
    overrides = tiny_wan_overrides(tmp_path)
    with pytest.raises(ValueError, match="model.retrieval_encoder"):
        wan_pipeline.retrieval_embedder(run_config([*overrides, "sink=dysink", "sink.embedder=pe-core-s16-384"]))


def test_missing_component_names_key_and_file(run_config, tmp_path):
    write_text_and_vae(tmp_path, "original")
    (tmp_path / "Wan2.1_VAE.pth").unlink()
    with pytest.raises(VAEError, match=r"model.wan_dir=.*Wan2.1_VAE.pth"):
        run(run_config([*tiny_wan_overrides(tmp_path), PROMPT, *FAST]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "video.mp4").exists()


def test_without_wan_dir_the_key_is_named(run_config, tmp_path):
    write_tiny_wan(tmp_path, "diffusers")
    overrides = [o for o in tiny_wan_overrides(tmp_path) if not o.startswith("model.wan_dir")]
    with pytest.raises(RuntimeError, match="model.wan_dir"):
        run(run_config([*overrides, PROMPT, *FAST]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "video.mp4").exists()


def test_tokenizer_encoder_mismatch_is_reported_before_generating(run_config, tmp_path):
    write_text_and_vae(tmp_path, "diffusers", vocab_size=20)  # fewer embedding rows than tokenizer pieces
    with pytest.raises(TextEncoderError, match="mismatch"):
        run(run_config([*tiny_wan_overrides(tmp_path), PROMPT, *FAST]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "video.mp4").exists()


def test_text_width_must_match_the_transformer(run_config, tmp_path):
    write_text_and_vae(tmp_path, "diffusers")
    with pytest.raises(ValueError, match="model.text_dim=32"):
        run(run_config([*tiny_wan_overrides(tmp_path), "model.text_dim=32", PROMPT, *FAST]), tmp_path / "run",
            progress=False)
