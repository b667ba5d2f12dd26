"""Prompt files: one free-text prompt a line (e.g. VBench or MovieGen prompt lists) swept one job per prompt.

``python run.py +sweep=prompts prompts_file=FILE ...`` turns the file into Hydra's sweep parameter ``prompt``
through the ``prompt_file_sweep`` resolver, so the jobs go through Hydra's launchers (joblib, submitit) like any
other sweep and combine with other swept keys.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

RESOLVER = "prompt_file_sweep"


def read_prompts(path: str | Path) -> list[str]:
    """The non-blank lines of ``path``, stripped; errors name the ``prompts_file`` key and the line."""
    if path is None:
        raise ValueError("+sweep=prompts needs prompts_file=PATH (one prompt a line)")
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"prompts_file={path}: no such file")
    prompts = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if "${" in line:  # OmegaConf would read it as an interpolation in the job's config
            raise ValueError(f"prompts_file={path}, line {number}: '${{' cannot appear in a prompt")
        if line.strip():
            prompts.append(line.strip())
    if not prompts:
        raise ValueError(f"prompts_file={path} holds no prompts")
    return prompts


def quote_override(value: str) -> str:
    """``value`` as a single-quoted Hydra override value that parses back to exactly ``value``.

    Hydra unescapes ``\\'`` and the backslashes that precede a quote or end the string; other backslashes
    are literal.
    """
    value = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    value = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, value)
    return f"'{value}'"


def prompt_sweep(path: str) -> str:
    """The sweep value ``'p1','p2',...`` of the prompts in ``path``."""
    return ",".join(quote_override(p) for p in read_prompts(path))


def register_prompt_resolver() -> None:
    """Make ``${prompt_file_sweep:PATH}`` available to configs (conf/sweep/prompts.yaml)."""
    OmegaConf.register_new_resolver(RESOLVER, prompt_sweep, replace=True)
