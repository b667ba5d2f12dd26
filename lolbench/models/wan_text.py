"""Wan2.1's text encoder: UMT5-XXL's encoder (``transformers.UMT5EncoderModel``) and its tokenizer.

Users keep the weights in one of two layouts of a local Wan2.1 folder, and both load here without a download:

* diffusers: ``text_encoder/`` (config + safetensors) and ``tokenizer/``;
* original (Wan-Video's release): ``models_t5_umt5-xxl-enc-bf16.pth``, a state dict of Wan's own T5 encoder module,
  and the tokenizer files in ``google/umt5-xxl/``. Its keys are renamed to transformers' UMT5 names on load and
  the architecture is read off the tensor shapes, so a state dict of any size (the tests' tiny one included)
  needs no config file.

A prompt is encoded the way Wan2.1 encodes it: whitespace and HTML entities cleaned, padded or cut to
``max_length`` tokens, the encoder's output kept for the real tokens and zero after them.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import ftfy
import torch
from torch import Tensor

from lolbench._compat import ensure_torchvision

log = logging.getLogger(__name__)

ORIGINAL_WEIGHTS = "models_t5_umt5-xxl-enc-bf16.pth"
ORIGINAL_TOKENIZER = Path("google") / "umt5-xxl"
DIFFUSERS_ENCODER = "text_encoder"
DIFFUSERS_TOKENIZER = "tokenizer"
RELATIVE_MAX_DISTANCE = 128  # fixed in Wan's T5 relative position buckets; not stored in its state dict

# per-block renames, original Wan T5 -> transformers UMT5 (after the "blocks.{i}." / "encoder.block.{i}." prefix)
_BLOCK_KEYS = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",  # the GELU-gated branch
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",  # the linear branch
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_TOP_KEYS = {"token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
_BLOCK = re.compile(r"blocks\.(\d+)\.(.+)")


class TextEncoderError(ValueError):
    """A text encoder or tokenizer that cannot be used; the message names the config key and the files."""


@dataclass(frozen=True)
class TextComponents:
    """Where a Wan folder keeps its text encoder and tokenizer, and in which layout."""

    layout: str  # "diffusers" or "original"
    encoder: Path  # text_encoder/ folder or the .pth file
    tokenizer: Path


def find_text_components(wan_dir: Path, key: str = "model.wan_dir") -> TextComponents:
    """The text encoder and tokenizer in ``wan_dir``, diffusers layout first; the error lists what was looked for."""
    wan_dir = Path(wan_dir)
    diffusers = TextComponents("diffusers", wan_dir / DIFFUSERS_ENCODER, wan_dir / DIFFUSERS_TOKENIZER)
    original = TextComponents("original", wan_dir / ORIGINAL_WEIGHTS, wan_dir / ORIGINAL_TOKENIZER)
    if (diffusers.encoder / "config.json").is_file():
        found = diffusers
    elif original.encoder.is_file():
        found = original
    else:
        raise TextEncoderError(
            f"{key}={wan_dir} has no text encoder: looked for {diffusers.encoder / 'config.json'} (diffusers "
            f"layout) and {original.encoder} (original layout)")
    if not found.tokenizer.is_dir():
        raise TextEncoderError(f"{key}={wan_dir}: the {found.layout} layout's tokenizer folder {found.tokenizer} "
                               "does not exist")
    return found


def convert_original_umt5(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Wan's T5 encoder state dict -> transformers ``UMT5EncoderModel`` keys; unknown keys are an error."""
    out: dict[str, Tensor] = {}
    unknown = []
    for name, tensor in state.items():
        block = _BLOCK.fullmatch(name)
        if name in _TOP_KEYS:
            out[_TOP_KEYS[name]] = tensor
        elif block and block.group(2) in _BLOCK_KEYS:
            out[f"encoder.block.{block.group(1)}.{_BLOCK_KEYS[block.group(2)]}"] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise TextEncoderError(f"not a Wan T5 encoder state dict: {len(unknown)} unexpected keys, e.g. "
                               f"{sorted(unknown)[:5]}")
    if "shared.weight" in out:
        out["encoder.embed_tokens.weight"] = out["shared.weight"]  # tied in UMT5EncoderModel
    return out


def umt5_config_from_state(state: dict[str, Tensor]):
    """The ``UMT5Config`` of a converted state dict, read off its tensor shapes (the .pth carries no config)."""
    from transformers import UMT5Config

    try:
        vocab, dim = state["shared.weight"].shape
        buckets, heads = state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape
        inner = state["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
        ffn = state["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].shape[0]
    except KeyError as err:
        raise TextEncoderError(f"Wan T5 encoder state dict lacks {err.args[0]} (after conversion)") from None
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.block."))
    return UMT5Config(vocab_size=vocab, d_model=dim, d_kv=inner // heads, d_ff=ffn, num_layers=layers,
                      num_heads=heads, relative_attention_num_buckets=buckets,
                      relative_attention_max_distance=RELATIVE_MAX_DISTANCE, dropout_rate=0.0,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)


def _load_original(path: Path, dtype: torch.dtype):
    """UMT5EncoderModel from Wan's .pth: built on the meta device and given the file's tensors (no random init)."""
    from transformers import UMT5EncoderModel

    state = convert_original_umt5(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    config = umt5_config_from_state(state)
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    expected = set(model.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise TextEncoderError(f"{path}: converted keys do not fit UMT5EncoderModel; missing {missing[:5]}, "
                               f"unexpected {extra[:5]}")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    model.encoder.embed_tokens = model.shared
    return model


def clean_prompt(text: str) -> str:
    """Fix mojibake, unescape HTML entities and collapse whitespace, as Wan2.1's tokenizer wrapper does."""
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return re.sub(r"\s+", " ", text).strip()


class WanTextEncoder:
    """Prompt -> text embedding [1, max_length, dim] for Wan's cross-attention (zeros after the prompt's tokens)."""

    def __init__(self, model, tokenizer, max_length: int, source: str):
        if max_length < 1:
            raise TextEncoderError(f"model.text_len must be >= 1, got {max_length}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.source = source
        self.dim = model.config.d_model

    @torch.no_grad()
    def encode(self, prompt: str) -> Tensor:
        if not isinstance(prompt, str) or not prompt.strip():
            raise TextEncoderError(f"prompt must be non-empty text for model=wan, got {prompt!r}")
        tokens = self.tokenizer([clean_prompt(prompt)], padding="max_length", max_length=self.max_length,
                                truncation=True, add_special_tokens=True, return_tensors="pt")
        device = self.model.shared.weight.device
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [1, T, dim]
        return hidden * mask[..., None].to(hidden.dtype)  # padded positions exactly 0, as Wan feeds them


def check_tokenizer(tokenizer, vocab_size: int, where: str) -> None:
    """A tokenizer whose ids run past the encoder's embedding table would index out of range mid-run."""
    size = len(tokenizer)
    if size > vocab_size:
        raise TextEncoderError(
            f"tokenizer/encoder mismatch in {where}: the tokenizer has {size} tokens but the text encoder's "
            f"embedding table has {vocab_size} rows; they come from different models")
    if tokenizer.pad_token_id is None:
        raise TextEncoderError(f"tokenizer in {where} has no pad token; Wan pads prompts to a fixed length")


def load_text_encoder(wan_dir: Path, max_length: int = 512, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32) -> WanTextEncoder:
    """Tokenizer and UMT5 encoder from a local Wan2.1 folder in either layout; never downloads."""
    ensure_torchvision()  # transformers imports torchvision
    from transformers import AutoTokenizer, UMT5EncoderModel

    parts = find_text_components(wan_dir)
    tokenizer = AutoTokenizer.from_pretrained(parts.tokenizer, local_files_only=True)
    if parts.layout == "diffusers":
        model = UMT5EncoderModel.from_pretrained(parts.encoder, local_files_only=True, dtype=dtype)
    else:
        model = _load_original(parts.encoder, dtype)
    check_tokenizer(tokenizer, model.config.vocab_size, f"{parts.tokenizer} vs {parts.encoder}")
    log.info("text encoder: UMT5 (%s layout, %d layers, dim %d) from %s", parts.layout, model.config.num_layers,
             model.config.d_model, parts.encoder)
    return WanTextEncoder(model.to(device), tokenizer, max_length, source=f"umt5[{parts.layout}]:{parts.encoder}")
