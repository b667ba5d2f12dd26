"""Wan's text encoder from a local folder in both layouts, against an independent UMT5 forward pass."""

from __future__ import annotations

import math

import pytest
import torch

from lolbench.models.wan_text import TextEncoderError, clean_prompt, load_text_encoder
from tests.wan_fixtures import tiny_tokenizer, umt5_to_original, write_text_and_vae

PROMPT = "a wingsuit flyer racing through a mountain valley"
MAX_LEN = 16


def _buckets(length: int, num_buckets: int, max_distance: int = 128) -> torch.Tensor:
    """T5's bidirectional relative-position buckets [Lq, Lk], written from the T5 paper's description."""
    rel = torch.arange(length)[None, :] - torch.arange(length)[:, None]  # key - query
    half = num_buckets // 2
    exact = half // 2
    distance = rel.abs()
    log_bucket = exact + (torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
                          * (half - exact)).long()
    return (rel > 0).long() * half + torch.where(distance < exact, distance, log_bucket.clamp(max=half - 1))


def reference_encoder(state: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Wan's T5 encoder (original key names): pre-RMSNorm blocks, unscaled attention with a per-layer relative
    bias, tanh-GELU gated feed-forward, final RMSNorm; output zeroed past the prompt's tokens."""
    def rms(x, weight):
        return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    x = state["token_embedding.weight"][ids]  # [B, L, C]
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(layers):
        w = {k[len(f"blocks.{i}."):]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        bias_table = w["pos_embedding.embedding.weight"]  # [buckets, H]
        heads = bias_table.shape[1]
        h = rms(x, w["norm1.weight"])
        q, k, v = (h @ w[f"attn.{n}.weight"].T for n in "qkv")
        q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))  # [B, H, L, d]
        bias = bias_table[_buckets(ids.shape[1], bias_table.shape[0])].permute(2, 0, 1)  # [H, L, L]
        scores = q @ k.transpose(-1, -2) + bias
        scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
        x = x + attn @ w["attn.o.weight"].T
        h = rms(x, w["norm2.weight"])
        gate = torch.nn.functional.gelu(h @ w["ffn.gate.0.weight"].T, approximate="tanh")
        x = x + (gate * (h @ w["ffn.fc1.weight"].T)) @ w["ffn.fc2.weight"].T
    return rms(x, state["norm.weight"]) * mask[..., None]


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_encoder_matches_reference_in_both_layouts(tmp_path, layout):
    model, _ = write_text_and_vae(tmp_path, layout)
    encoder = load_text_encoder(tmp_path, max_length=MAX_LEN)
    assert encoder.source.startswith(f"umt5[{layout}]")
    out = encoder.encode(PROMPT)
    tokens = tiny_tokenizer()([PROMPT], padding="max_length", max_length=MAX_LEN, truncation=True,
                              return_tensors="pt")
    expected = reference_encoder(umt5_to_original(model.state_dict()), tokens.input_ids, tokens.attention_mask)
    used = int(tokens.attention_mask.sum())
    assert out.shape == (1, MAX_LEN, model.config.d_model)
    assert 1 < used < MAX_LEN  # some padding, so the zeroing is tested
    assert torch.all(out[0, used:] == 0)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_prompt_longer_than_text_len_is_cut(tmp_path):
    write_text_and_vae(tmp_path, "diffusers")
    out = load_text_encoder(tmp_path, max_length=4).encode(PROMPT)
    assert out.shape[1] == 4 and torch.all(out.abs().sum(-1) > 0)


def test_missing_encoder_names_key_and_files(tmp_path):
    with pytest.raises(TextEncoderError) as err:
        load_text_encoder(tmp_path)
    message = str(err.value)
    assert "model.wan_dir" in message
    assert str(tmp_path / "text_encoder" / "config.json") in message
    assert str(tmp_path / "models_t5_umt5-xxl-enc-bf16.pth") in message


def test_missing_tokenizer_names_folder(tmp_path):
    write_text_and_vae(tmp_path, "original")
    (tmp_path / "google" / "umt5-xxl" / "tokenizer.json").unlink()
    (tmp_path / "google" / "umt5-xxl" / "tokenizer_config.json").unlink()
    (tmp_path / "google" / "umt5-xxl").rmdir()
    with pytest.raises(TextEncoderError, match="umt5-xxl"):
        load_text_encoder(tmp_path)


def test_tokenizer_larger_than_encoder_vocabulary_is_reported(tmp_path):
    vocab = len(tiny_tokenizer())
    write_text_and_vae(tmp_path, "original", vocab_size=vocab, extra_pieces=5)
    with pytest.raises(TextEncoderError, match=f"mismatch.*{vocab + 5} tokens.*{vocab} rows"):
        load_text_encoder(tmp_path)


def test_clean_prompt():
    assert clean_prompt("  a &amp; b\n\t c  ") == "a & b c"
