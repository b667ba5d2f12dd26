"""Wan transformer weights from local paths only: a diffusers folder or an original-layout checkpoint, plus LoRA.

Original layout: the causal Wan repositories (Self-Forcing, LongLive, DySink) save a ``.pt`` whose ``generator`` /
``generator_ema`` (LongLive also ``model``) entry is the state dict of a wrapper holding the network as ``model``,
so keys read ``model.blocks.0.self_attn.q.weight`` in Wan's own naming. Such keys are renamed by diffusers' own
conversion (``diffusers.loaders.single_file_utils.convert_wan_transformer_to_diffusers``), never by a copy of it.
LongLive's ``lora.pt`` is a PEFT LoRA state dict (optionally under ``generator_lora``) on the Linear layers of the
attention blocks; it is merged into the weights with ``peft``. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import Tensor

from lolbench._compat import ensure_torchvision
from lolbench.models.checkpoint import CheckpointError, file_sha256
from lolbench.models.wan import WanArch, build_transformer

ensure_torchvision()  # diffusers and peft import torchvision when it is installed
from diffusers import WanTransformer3DModel  # noqa: E402
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers  # noqa: E402

WRAPPERS = ("generator", "generator_ema", "model")  # searched in this order when no key is given
SHOWN = 5  # keys listed per kind of mismatch


def _read(path: Path, what: str) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{what}: {path} is not a readable torch checkpoint ({e})") from e


def _strip(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def original_state_dict(payload: dict, key: str | None, path: Path) -> dict[str, Tensor]:
    """The network's state dict in Wan's naming: the wrapper entry ``key`` (or the first of ``WRAPPERS`` present,
    or the file itself), without FSDP's ``_fsdp_wrapped_module.`` and the wrapper's ``model.`` prefix."""
    if key is not None:
        if key not in payload:
            raise CheckpointError(f"model.checkpoint_key={key!r} is not in {path} (entries: {sorted(payload)[:10]})")
        state = payload[key]
    else:
        state = next((payload[k] for k in WRAPPERS if k in payload), payload)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"model.checkpoint: {path} holds no state dict of tensors under {list(WRAPPERS)} "
                              f"(entries: {sorted(payload)[:10]})")
    state = {k.replace("_fsdp_wrapped_module.", ""): v for k, v in state.items()}
    if not any(k.startswith("model.diffusion_model.") for k in state):  # that prefix is diffusers' to remove
        state = _strip(state, "model.")
    return state


def to_diffusers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Wan naming -> diffusers naming, by diffusers' own single-file conversion (it consumes its input)."""
    return convert_wan_transformer_to_diffusers(dict(state))


def check_state_dict(model: torch.nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Raise a CheckpointError listing missing, unexpected and wrong-shape keys (the first few of each)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} vs model {expected[k]}" for k in sorted(set(state) & set(expected))
             if tuple(state[k].shape) != expected[k]]
    problems = [f"{len(keys)} {kind} keys: {keys[:SHOWN]}{' ...' if len(keys) > SHOWN else ''}"
                for kind, keys in (("missing", missing), ("unexpected", unexpected), ("wrong-shape", wrong)) if keys]
    if problems:
        raise CheckpointError(f"{source} does not match the Wan transformer of the model config: "
                              + "; ".join(problems))


def _folder_state_dict(path: Path, arch: WanArch) -> tuple[dict[str, Tensor], str]:
    """Weights of a diffusers transformer folder (config.json + *.safetensors) and a hash over its weight files."""
    from safetensors.torch import load_file

    config_file = path / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        wanted = {k: list(v) if isinstance(v, tuple) else v for k, v in arch.diffusers_config().items()}
        differs = {k: (config[k], v) for k, v in wanted.items() if k in config and config[k] != v}  # JSON: lists
        if differs:
            raise CheckpointError(f"model.checkpoint: {path}/config.json differs from the model config "
                                  f"(key: (folder, config)): {differs}")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"model.checkpoint: {path} is a folder without *.safetensors weights")
    state: dict[str, Tensor] = {}
    digest = hashlib.sha256()
    for f in files:
        state.update(load_file(f))
        digest.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return state, digest.hexdigest()


def load_transformer(arch: WanArch, checkpoint: str | Path, checkpoint_key: str | None = None
                     ) -> tuple[WanTransformer3DModel, str]:
    """The transformer with the weights at ``checkpoint`` (float32) and the checkpoint's sha256."""
    path = Path(checkpoint)
    if not path.exists():
        raise CheckpointError(f"model.checkpoint: no file or folder at {path}")
    if path.is_dir():
        state, sha = _folder_state_dict(path, arch)
    else:
        state, sha = to_diffusers(original_state_dict(_read(path, "model.checkpoint"), checkpoint_key, path)), \
            file_sha256(path)
    transformer = build_transformer(arch)
    check_state_dict(transformer, state, f"model.checkpoint {path}")
    transformer.load_state_dict({k: v.float() for k, v in state.items()})
    return transformer, sha


def lora_targets(state: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
    """Module name -> (A [r, in], B [out, r]) from a PEFT LoRA state dict in diffusers naming."""
    names = {k.rsplit(".lora_", 1)[0] for k in state if ".lora_" in k}
    pairs = {}
    for name in sorted(names):
        a, b = state.get(f"{name}.lora_A.weight"), state.get(f"{name}.lora_B.weight")
        if a is None or b is None:
            raise CheckpointError(f"model.lora: {name} has lora_{'A' if a is None else 'B'}.weight missing")
        pairs[name] = (a, b)
    other = sorted(k for k in state if ".lora_" not in k)
    if other or not pairs:
        raise CheckpointError(f"model.lora: expected only lora_A/lora_B weights, found {other[:SHOWN] or 'none'}")
    return pairs


def merge_lora(transformer: WanTransformer3DModel, lora: str | Path, rank: int, alpha: float
               ) -> tuple[WanTransformer3DModel, str]:
    """Merge the PEFT LoRA at ``lora`` into the weights (W += B @ A * alpha / rank); returns (model, sha256)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    path = Path(lora)
    if not path.is_file():
        raise CheckpointError(f"model.lora: no file at {path}")
    payload = _read(path, "model.lora")
    state = payload.get("generator_lora", payload)
    state = to_diffusers(_strip(_strip(state, "base_model.model."), "model."))
    pairs = lora_targets(state)
    modules = dict(transformer.named_modules())
    not_linear = [n for n in pairs if not isinstance(modules.get(n), torch.nn.Linear)]
    wrong = [f"{n}: A {tuple(a.shape)} B {tuple(b.shape)} vs Linear {tuple(modules[n].weight.shape)}, rank {rank}"
             for n, (a, b) in pairs.items() if n not in not_linear
             and (tuple(a.shape), tuple(b.shape)) != ((rank, modules[n].in_features), (modules[n].out_features, rank))]
    if not_linear or wrong:
        raise CheckpointError(f"model.lora: {path} does not fit the model: {len(not_linear)} targets that are not "
                              f"Linear layers of the model: {not_linear[:SHOWN]}; {len(wrong)} wrong shapes: "
                              f"{wrong[:SHOWN]}")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=sorted(pairs))
    peft_model = get_peft_model(transformer, config)
    result = set_peft_model_state_dict(peft_model, {f"base_model.model.{k}": v.float() for k, v in state.items()})
    if result.unexpected_keys:
        raise CheckpointError(f"model.lora: peft did not place {result.unexpected_keys[:SHOWN]}")
    return peft_model.merge_and_unload(), file_sha256(path)
