"""``model=wan`` end to end: the transformer (lolbench.models.wan_build) plus the components that turn a prompt
into frames: UMT5 text encoder, streaming VAE decoder and, for DySink, PE-Core retrieval embeddings.

Every component comes from local files (``model.wan_dir``, ``model.retrieval_encoder``) and every mismatch
between them (text width, latent channels, tokenizer) fails here, before the first chunk is generated.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from omegaconf import DictConfig, open_dict

from lolbench.models.wan_build import _dtype, build_wan
from lolbench.models.wan_retrieval import PECoreEmbedder
from lolbench.models.wan_sampler import WanGenerator
from lolbench.models.wan_text import WanTextEncoder, load_text_encoder
from lolbench.models.wan_vae import StreamingWanDecoder, load_vae

log = logging.getLogger(__name__)


WAN_DIR_HELP = ("model.wan_dir: a local Wan2.1 folder with its text encoder and VAE (diffusers layout: "
                "text_encoder/ tokenizer/ vae/; original: models_t5_umt5-xxl-enc-bf16.pth google/umt5-xxl/ "
                "Wan2.1_VAE.pth)")


def load_text(cfg: DictConfig) -> WanTextEncoder:
    """The text encoder of ``model.wan_dir``, checked against the transformer's text width."""
    m = cfg.model
    if not m.wan_dir:
        raise ValueError(f"model=wan needs {WAN_DIR_HELP}")
    text = load_text_encoder(m.wan_dir, max_length=m.text_len, device=m.device, dtype=_dtype(m.dtype))
    if text.dim != m.text_dim:
        raise ValueError(f"text encoder in model.wan_dir={m.wan_dir} outputs {text.dim} dims but the transformer's "
                         f"model.text_dim={m.text_dim}")
    return text


def load_decoder(cfg: DictConfig) -> StreamingWanDecoder:
    """The streaming VAE decoder of ``model.wan_dir`` (float32: its output is the video), checked against the
    transformer's latent channels."""
    m = cfg.model
    vae = load_vae(m.wan_dir, device=m.device)
    if vae.config.z_dim != m.in_channels:
        raise ValueError(f"VAE in model.wan_dir={m.wan_dir} has {vae.config.z_dim} latent channels but the "
                         f"transformer's model.in_channels={m.in_channels}")
    return StreamingWanDecoder(vae)


def retrieval_embedder(cfg: DictConfig) -> PECoreEmbedder | None:
    """PE-Core on decoded frames when DySink runs and ``model.retrieval_encoder`` names a file; else None (the
    cache's offline ``sink.embedder`` embeds the latents and its name goes into the statistics)."""
    if cfg.sink.name != "dysink":
        return None
    if not cfg.model.retrieval_encoder and cfg.sink.embedder == PECoreEmbedder.name:
        raise ValueError(f"sink.embedder={PECoreEmbedder.name} needs model.retrieval_encoder=PATH (a local "
                         "PE-Core-S16-384 checkpoint)")
    if not cfg.model.retrieval_encoder:
        return None
    return PECoreEmbedder(cfg.model.retrieval_encoder, device=cfg.model.device)


def bank_embedding(cfg: DictConfig, embedder: PECoreEmbedder | None) -> str:
    """The ``sink.embedder`` DySink's bank uses: the retrieval encoder's when there is one; otherwise the
    configured offline one, except that ``pixel`` (the default, for RGB chunks) becomes ``latent``: the cache
    holds Wan's chunks as latents."""
    if embedder is not None:
        return embedder.name
    if cfg.sink.embedder == "pixel":
        log.info("DySink on model=wan without model.retrieval_encoder: chunks are embedded offline from their "
                 "latents (sink.embedder=latent)")
        return "latent"
    return cfg.sink.embedder


def build_wan_latents(cfg: DictConfig) -> WanGenerator:
    """The Wan generator with its text encoder only: latents from prompts, no VAE (e.g. for phase analysis)."""
    return build_wan(cfg, text_encoder=load_text(cfg).encode)[0]


def build_wan_pipeline(cfg: DictConfig) -> tuple[WanGenerator, dict[str, Any]]:
    """The Wan generator with text encoder, streaming decoder and retrieval embedder, and what results record.

    Without ``model.wan_dir`` only the transformer is built: it makes latents from text embeddings given
    directly (``reset_embeds``, e.g. benchmarks), and asking it for a prompt or frames names the missing key."""
    if not cfg.model.wan_dir:
        log.warning("model.wan_dir is null: transformer only (latents from given text embeddings; no prompts, "
                    "no frames)")
        return build_wan(cfg)
    text = load_text(cfg)
    decoder = load_decoder(cfg)
    embedder = retrieval_embedder(cfg)
    if cfg.sink.name == "dysink":  # the bank is sized and its statistics named by sink.embedder
        cfg = copy.deepcopy(cfg)
        with open_dict(cfg):
            cfg.sink.embedder = bank_embedding(cfg, embedder)
    generator, info = build_wan(cfg, text_encoder=text.encode, decoder=decoder, chunk_embedder=embedder)
    info.update(text_encoder=text.source, vae=str(cfg.model.wan_dir),
                retrieval_encoder=embedder.source if embedder else None)
    if cfg.sink.name == "dysink":
        info["retrieval_embedding"] = cfg.sink.embedder
    return generator, info
