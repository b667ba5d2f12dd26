"""Mutation testing of lolbench's numeric core, each module against its own test files.

    python tools/mutation.py                      # rope, cache, metrics and phase, one after the other
    python tools/mutation.py rope phase           # only these modules
    python tools/mutation.py --max-children 2     # worker processes (default: 2)
    python tools/mutation.py cache --only "lolbench.cache.dysink.*"   # only mutants whose names match

Why per module: a mutant counts as killed only by the tests written for its module, so the score says how well
those tests pin the module down, not whether some end-to-end test happens to notice. Each module gets its own
scratch folder ``.mutation/<module>/`` (links to ``lolbench``, ``tests`` and ``conf`` plus a generated mutmut
configuration), so the modules' results and mutmut's caches never mix. Re-running resumes: mutants whose code did
not change keep their result; delete ``.mutation/`` to start over. Prints, per module, the counts and the
mutation score (killed or timed out / checked mutants; "no tests" counts as surviving; a run limited with
``--only`` or stopped early scores the mutants it checked), then every surviving mutant's name;
``cd .mutation/<module> && mutmut show NAME`` prints its diff.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
LINKED = ("lolbench", "tests", "conf")
# "-p MODULE" imports MODULE in mutmut's fork server once: torch.testing.assert_close imports
# torch.distributed.tensor on its first call (~4 s), which every forked mutant would otherwise pay again
PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "torch.distributed.tensor", "-q"]

# module -> (files to mutate, the module's own test files)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "rope": (["lolbench/rope/*"], ["tests/test_rope.py", "tests/test_jitter.py", "tests/test_rope_rules.py"]),
    "cache": (["lolbench/cache/*"], ["tests/test_cache.py", "tests/test_dysink.py", "tests/test_cache_rules.py"]),
    "metrics": (["lolbench/metrics/*"],
                ["tests/test_sink_distance.py", "tests/test_cycles.py", "tests/test_heads.py", "tests/test_dynamic.py",
                 "tests/test_flow.py", "tests/test_motion.py", "tests/test_quality.py", "tests/test_backbones.py",
                 "tests/test_suite.py", "tests/test_metric_rules.py", "tests/test_raft.py"]),
    "phase": (["lolbench/phase.py"], ["tests/test_phase.py", "tests/test_usage.py"]),
}


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def prepare(module: str) -> Path:
    """The scratch folder of one module: links to the sources and tests, and its mutmut configuration."""
    mutate, tests = MODULES[module]
    folder = WORK / module
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    tests = [t for t in tests if (ROOT / t).exists()]
    (folder / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["lolbench"]\n'
        f"only_mutate = {_toml_list(mutate)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        f"pytest_add_cli_args = {_toml_list(PYTEST_ARGS)}\n"
        'also_copy = ["conf"]\n'
        'process_isolation = "forkserver"\n'
        # mutmut's wall-clock limit is (tests' time + constant) x multiplier; on a loaded shared machine the default
        # constant (1 s) times out healthy mutants, so allow a minute before calling a mutant stuck
        "timeout_multiplier = 3.0\ntimeout_constant = 20.0\n"
        "use_git_change_detection = false\n")
    return folder


def run(module: str, max_children: int, only: list[str]) -> None:
    """Run mutmut on one module (niced: the machine is shared); ``only``: mutant name patterns to run."""
    folder = prepare(module)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the mutated copy must be what imports
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    command = ["nice", "-n", "10", sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children),
               *only]
    subprocess.run(command, cwd=folder, env=env, check=False)


def report(module: str) -> list[str]:
    """Print the module's counts and score; returns its surviving mutants."""
    folder = WORK / module
    lines = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=folder,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    status = dict(line.strip().rsplit(": ", 1) for line in lines if ": " in line)
    counts = Counter(status.values())
    checked = sum(counts.values()) - counts["not checked"]
    detected = counts["killed"] + counts["timeout"]
    score = detected / checked if checked else float("nan")
    detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"{module}: mutation score {score:.1%} ({detected}/{checked} checked mutants detected; {detail})")
    return sorted(name for name, s in status.items() if s in ("survived", "no tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", default=list(MODULES), help=f"of {', '.join(MODULES)} (default: all)")
    parser.add_argument("--max-children", type=int, default=2, help="mutmut worker processes")
    parser.add_argument("--only", nargs="+", default=[], metavar="GLOB",
                        help="mutant names to run, e.g. 'lolbench.cache.dysink.*' (default: all of the module)")
    parser.add_argument("--report-only", action="store_true", help="print the stored results, run nothing")
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    for module in args.modules:
        if not args.report_only:
            run(module, args.max_children, args.only)
    for module in args.modules:
        survivors = report(module)
        print(f"  surviving mutants of {module} ({len(survivors)}):")
        for name in survivors:
            print(f"    {name}")


if __name__ == "__main__":
    main()
