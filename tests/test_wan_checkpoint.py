"""model=wan checkpoints: original-layout files converted by diffusers, diffusers folders, LoRA merge, clear errors.

The original-layout state dicts are made from a tiny diffusers model by renaming its keys back to Wan's own
module names (the inverse written out below from Wan2.1's module structure, independently of the conversion
under test).
"""

from __future__ import annotations

import pytest
import torch

from lolbench.models.checkpoint import CheckpointError
from lolbench.models.wan import build_transformer
from lolbench.models.wan_checkpoint import load_transformer, merge_lora
from tests.wan_helpers import ARCH, one_thread  # noqa: F401  (autouse fixture)

# diffusers name piece -> Wan2.1's own name piece, applied in this order
TO_ORIGINAL = [
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    (".attn1.", ".self_attn."), (".attn2.", ".cross_attn."),
    (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."), (".to_out.0.", ".o."),
    (".norm2.", ".norm3."),  # the cross-attention norm is norm3 in Wan, norm2 in diffusers
    (".ffn.net.0.proj.", ".ffn.0."), (".ffn.net.2.", ".ffn.2."),
]


def to_original(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("proj_out."):
        return key.replace("proj_out.", "head.head.")
    key = key.replace(".scale_shift_table", ".modulation")
    for new, old in TO_ORIGINAL:
        key = key.replace(new, old)
    return key


@pytest.fixture(scope="module")
def tiny() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_transformer(ARCH).state_dict()


def test_the_inverse_names_are_wans():
    torch.manual_seed(0)
    original = {to_original(k) for k in build_transformer(ARCH).state_dict()}
    assert {"patch_embedding.weight", "text_embedding.0.weight", "time_projection.1.bias", "head.modulation",
            "head.head.weight", "blocks.1.modulation", "blocks.0.self_attn.q.weight",
            "blocks.0.self_attn.norm_k.weight", "blocks.0.cross_attn.o.bias", "blocks.0.norm3.weight",
            "blocks.1.ffn.2.weight"} <= original


@pytest.mark.parametrize(("wrapper", "prefix"), [("generator", "model."), ("generator_ema", "model."),
                                                 ("model", "model."), ("generator", ""), (None, "")])
def test_original_layout_converts_back_to_the_same_weights(tmp_path, tiny, wrapper, prefix):
    original = {prefix + to_original(k): v.clone() for k, v in tiny.items()}
    path = tmp_path / "ckpt.pt"
    torch.save(original if wrapper is None else {wrapper: original, "step": torch.tensor(3)}, path)
    transformer, sha = load_transformer(ARCH, path)
    loaded = transformer.state_dict()
    assert loaded.keys() == tiny.keys() and len(sha) == 64
    assert all(torch.equal(loaded[k], tiny[k]) for k in tiny)


def test_a_diffusers_folder_loads_and_a_different_config_is_named(tmp_path, tiny):
    torch.manual_seed(0)
    build_transformer(ARCH).save_pretrained(tmp_path / "transformer")
    transformer, _ = load_transformer(ARCH, tmp_path / "transformer")
    assert all(torch.equal(transformer.state_dict()[k], tiny[k]) for k in tiny)
    other = type(ARCH)(**{**ARCH.__dict__, "ffn_dim": 48})
    with pytest.raises(CheckpointError, match="ffn_dim"):
        load_transformer(other, tmp_path / "transformer")


def test_missing_extra_and_wrong_shape_keys_are_listed(tmp_path, tiny):
    original = {"model." + to_original(k): v.clone() for k, v in tiny.items()}
    del original["model.blocks.1.self_attn.k.bias"]
    original["model.blocks.0.self_attn.extra.weight"] = torch.zeros(3)
    original["model.blocks.0.ffn.0.weight"] = torch.zeros(5, 5)
    path = tmp_path / "bad.pt"
    torch.save({"generator": original}, path)
    with pytest.raises(CheckpointError) as error:
        load_transformer(ARCH, path)
    message = str(error.value)
    assert "1 missing keys: ['blocks.1.attn1.to_k.bias']" in message
    assert "1 unexpected keys: ['blocks.0.attn1.extra.weight']" in message
    assert "blocks.0.ffn.net.0.proj.weight (5, 5) vs model (32, 24)" in message
    with pytest.raises(CheckpointError, match="no file or folder"):
        load_transformer(ARCH, tmp_path / "absent.pt")


def test_lora_merge_changes_exactly_the_targeted_linears_by_b_a_alpha_over_r(tmp_path, tiny):
    rank, alpha = 2, 6.0
    gen = torch.Generator().manual_seed(1)
    targets = {"blocks.0.self_attn.q": ("blocks.0.attn1.to_q", 24, 24),
               "blocks.1.ffn.0": ("blocks.1.ffn.net.0.proj", 24, 32)}
    lora, expected = {}, dict(tiny)
    for original, (name, fan_in, fan_out) in targets.items():
        a, b = torch.randn(rank, fan_in, generator=gen), torch.randn(fan_out, rank, generator=gen)
        lora[f"base_model.model.{original}.lora_A.weight"] = a
        lora[f"base_model.model.{original}.lora_B.weight"] = b
        expected[f"{name}.weight"] = tiny[f"{name}.weight"] + b @ a * (alpha / rank)
    torch.save({"generator_lora": lora}, tmp_path / "lora.pt")
    torch.manual_seed(0)
    transformer = build_transformer(ARCH)
    merged, sha = merge_lora(transformer, tmp_path / "lora.pt", rank, alpha)
    state = merged.state_dict()
    assert state.keys() == tiny.keys() and len(sha) == 64
    for key in tiny:
        if key in ("blocks.0.attn1.to_q.weight", "blocks.1.ffn.net.0.proj.weight"):
            torch.testing.assert_close(state[key], expected[key], atol=1e-6, rtol=0)
            assert not torch.equal(state[key], tiny[key])
        else:
            assert torch.equal(state[key], tiny[key]), key
    assert type(merged.blocks[0].attn1.to_q) is torch.nn.Linear  # merged and unwrapped


def test_lora_with_a_wrong_rank_names_the_layer(tmp_path):
    lora = {"blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 24),
            "blocks.0.self_attn.q.lora_B.weight": torch.zeros(24, 4)}
    torch.save(lora, tmp_path / "lora.pt")
    with pytest.raises(CheckpointError, match=r"blocks\.0\.attn1\.to_q: A \(4, 24\)"):
        merge_lora(build_transformer(ARCH), tmp_path / "lora.pt", rank=2, alpha=2)
