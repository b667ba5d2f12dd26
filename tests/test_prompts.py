"""Prompt-file sweeps: `+sweep=prompts prompts_file=FILE` composes one job per non-blank line, text intact."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode

from lolbench.config import CONF_DIR, register_configs
from lolbench.prompts import read_prompts

PROMPTS = ["a wingsuit flyer racing through a mountain valley", "it's a \"quoted\", comma'd prompt",
           r"a back\slash", "ends in a backslash\\", r"escaped \' quote", "ünïcode 字 and 100% $5"]


def sweep_jobs(overrides: list[str]) -> list[dict[str, str]]:
    """The values each job of Hydra's basic sweeper gets: every combination of the swept values, each job's
    override string parsed back the way the job parses it."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[o for o in overrides if "," not in o],
                      return_hydra_config=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    params += [o for o in overrides if "," in o]  # swept on the command line
    parser = OverridesParser.create()
    jobs: list[dict[str, str]] = [{}]
    for override in parser.parse_overrides(params):
        key = override.get_key_element()
        strings = list(override.sweep_string_iterator()) if override.is_sweep_override() \
            else [override.get_value_element_as_str()]
        values = [parser.parse_override(f"{key}={s}").value() for s in strings]
        jobs = [{**job, key: v} for job in jobs for v in values]
    return jobs


def test_one_job_per_line(tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("\n".join([PROMPTS[0], "", *PROMPTS[1:], "   "]) + "\n", encoding="utf-8")
    jobs = sweep_jobs(["+sweep=prompts", f"prompts_file={file}"])
    assert [job["prompt"] for job in jobs] == PROMPTS


def test_combines_with_other_swept_keys(tmp_path):
    file = tmp_path / "prompts.txt"
    file.write_text("first prompt\nsecond prompt\n")
    jobs = sweep_jobs(["+sweep=prompts", f"prompts_file={file}", "sink=static,dysink"])
    assert sorted((j["prompt"], j["sink"]) for j in jobs) == [
        ("first prompt", "dysink"), ("first prompt", "static"), ("second prompt", "dysink"),
        ("second prompt", "static")]


def test_bad_files_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="prompts_file=.*missing.txt"):
        read_prompts(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="holds no prompts"):
        read_prompts(tmp_path / "empty.txt")
    (tmp_path / "interp.txt").write_text("fine\ncosts ${x}\n")
    with pytest.raises(ValueError, match="line 2"):
        read_prompts(tmp_path / "interp.txt")
