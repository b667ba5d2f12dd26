"""Tiny random Wan2.1 components (text encoder, tokenizer, VAE, transformer) written to a folder in either
layout users have, and the run overrides that use them.

Built the way diffusers' and transformers' own tests build tiny models: the real classes with small widths. The
original layout is made by renaming the tiny diffusers/transformers weights back to Wan's release names; those
names are written out here from Wan's public module structure, independently of lolbench's converter.

``python -m tests.wan_fixtures DIR [--layout original]`` writes one and prints the overrides that run it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lolbench._compat import ensure_torchvision

ensure_torchvision()

from diffusers import AutoencoderKLWan  # noqa: E402
from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel  # noqa: E402

WORDS = "a the wingsuit flyer racing through mountain valley waves beach sunset city street night neon".split()
TEXT_DIM = 16


def tiny_tokenizer(extra_pieces: int = 0) -> T5Tokenizer:
    """A unigram T5 tokenizer over a few words and the letters (pad 0, eos 1, unk 2, like UMT5's)."""
    letters = sorted(set("".join(WORDS)))
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{w}", -1.0) for w in WORDS] + [(c, -3.0) for c in letters]
    pieces += [(f"▁extra{i}", -5.0) for i in range(extra_pieces)]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def tiny_umt5(vocab_size: int = 64, seed: int = 0) -> UMT5EncoderModel:
    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=vocab_size, d_model=TEXT_DIM, d_kv=4, d_ff=24, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8, dropout_rate=0.0, is_encoder_decoder=False)
    model = UMT5EncoderModel(config).eval()
    with torch.no_grad():  # layer norms and the relative bias start at constants; make every weight matter
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.uniform_(0.5, 1.5)
            elif "relative_attention_bias" in name:
                p.normal_(0, 1)
    return model


def umt5_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers UMT5 encoder keys -> Wan's T5Encoder keys (wan/modules/t5.py module names)."""
    inner = {"layer.0.layer_norm.weight": "norm1.weight", "layer.1.layer_norm.weight": "norm2.weight",
             "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
             "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
             "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight", "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight"}
    inner.update({f"layer.0.SelfAttention.{p}.weight": f"attn.{p}.weight" for p in "qkvo"})
    out = {"token_embedding.weight": state["shared.weight"], "norm.weight": state["encoder.final_layer_norm.weight"]}
    for key, value in state.items():
        if key.startswith("encoder.block."):
            _, _, index, rest = key.split(".", 3)
            out[f"blocks.{index}.{inner[rest]}"] = value
    return out


def tiny_vae(seed: int = 0) -> AutoencoderKLWan:
    """Wan2.1's VAE structure (z 16, 4 stages, 2 res blocks, 2 temporal up-samplings) at width 4."""
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=4).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return vae


def _vae_resnet_to_original(rest: str) -> str:
    names = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
             "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
             "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}
    return names.get(rest, rest)


def vae_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKLWan keys -> Wan2.1_VAE.pth keys (wan/modules/vae.py module names)."""
    fixed = {"quant_conv": "conv1", "post_quant_conv": "conv2", "encoder.conv_in": "encoder.conv1",
             "decoder.conv_in": "decoder.conv1", "encoder.norm_out": "encoder.head.0",
             "encoder.conv_out": "encoder.head.2", "decoder.norm_out": "decoder.head.0",
             "decoder.conv_out": "decoder.head.2"}
    out = {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        parts = module.split(".")
        if module in fixed:
            new = f"{fixed[module]}.{param}"
        elif parts[1] == "mid_block":  # resnets 0, 1 -> middle.0, middle.2; attention -> middle.1
            index = 1 if parts[2] == "attentions" else 2 * int(parts[3])
            rest = ".".join(parts[4:] + [param])
            new = f"{parts[0]}.middle.{index}.{rest if parts[2] == 'attentions' else _vae_resnet_to_original(rest)}"
        elif parts[1] == "down_blocks":
            new = f"encoder.downsamples.{parts[2]}.{_vae_resnet_to_original('.'.join(parts[3:] + [param]))}"
        elif parts[1] == "up_blocks":  # 3 resnets then an up-sampler per stage: original index 4 * stage + i
            stage = int(parts[2])
            if parts[3] == "resnets":
                rest = _vae_resnet_to_original(".".join(parts[5:] + [param]))
                new = f"decoder.upsamples.{4 * stage + int(parts[4])}.{rest}"
            else:  # upsamplers.0.<resample|time_conv>...
                new = f"decoder.upsamples.{4 * stage + 3}.{'.'.join(parts[5:] + [param])}"
        else:
            raise KeyError(key)
        out[new] = value
    return out


def write_text_and_vae(root: Path, layout: str, vocab_size: int = 64, extra_pieces: int = 0
                       ) -> tuple[UMT5EncoderModel, AutoencoderKLWan]:
    """Write a tiny tokenizer, UMT5 encoder and VAE into ``root`` in ``layout``; return the models written."""
    root.mkdir(parents=True, exist_ok=True)
    tokenizer, encoder, vae = tiny_tokenizer(extra_pieces), tiny_umt5(vocab_size), tiny_vae()
    if layout == "diffusers":
        tokenizer.save_pretrained(root / "tokenizer")
        encoder.save_pretrained(root / "text_encoder")
        vae.save_pretrained(root / "vae")
    elif layout == "original":
        tokenizer.save_pretrained(root / "google" / "umt5-xxl")
        torch.save(umt5_to_original(encoder.state_dict()), root / "models_t5_umt5-xxl-enc-bf16.pth")
        torch.save(vae_to_original(vae.state_dict()), root / "Wan2.1_VAE.pth")
    else:
        raise ValueError(layout)
    return encoder, vae


def tiny_wan_overrides(root: Path, latent_size: int = 4) -> list[str]:
    """``run.py`` overrides for the tiny Wan in ``root``: conf/model/wan_tiny.yaml with Wan2.1's 16 latent
    channels (the VAE's) and ``latent_size`` x ``latent_size`` latents (8x those pixels)."""
    return ["model=wan_tiny", "model.in_channels=16", "model.out_channels=16",
            f"model.latent_height={latent_size}", f"model.latent_width={latent_size}", f"model.wan_dir={root}",
            f"model.checkpoint={root / 'transformer'}"]


def write_tiny_wan(root: Path, layout: str, latent_size: int = 4) -> list[str]:
    """Text encoder, tokenizer, VAE (in ``layout``) and a random transformer (diffusers folder) in ``root``;
    returns the overrides that run them."""
    from lolbench.config import compose_run_config
    from lolbench.models.wan import WanArch, build_transformer

    write_text_and_vae(root, layout)
    overrides = tiny_wan_overrides(root, latent_size)
    arch = WanArch.from_config(compose_run_config(overrides[:-2]).model)
    torch.manual_seed(0)
    build_transformer(arch).save_pretrained(root / "transformer")
    return overrides


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--layout", choices=("diffusers", "original"), default="diffusers")
    parser.add_argument("--latent-size", type=int, default=4)
    args = parser.parse_args()
    print(" ".join(write_tiny_wan(args.root, args.layout, args.latent_size)))
