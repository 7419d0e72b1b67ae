"""Run one benchmark on two revisions of the code, alternating, in one run (before/after).

Run: .venv/bin/python bench/ab.py BASE_REV bench_client.py [-- ARGS...] [--pairs N]

Checks out BASE_REV into a temporary git worktree and runs `bench/SCRIPT` from it and from the
working tree, in turn (A B, then B A, ...), each in its own process with that tree's `src` first
on sys.path, so both see the same shared-machine noise. Prints each run's output, labelled.
Benchmarks already report ratios against their own floors; compare those between A and B.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(tree: Path, script: str, args: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run(
        [sys.executable, str(tree / "bench" / script), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    return done.stdout + (f"\n[exit {done.returncode}]\n{done.stderr}" if done.returncode else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the 'before' git revision")
    parser.add_argument("script", help="a script under bench/, e.g. bench_client.py")
    parser.add_argument("--pairs", type=int, default=2, help="A/B pairs to run")
    parser.add_argument("args", nargs="*", help="arguments for the script (after --)")
    # What follows `--` (or any option ab.py does not know) goes to the script.
    options, extra = parser.parse_known_args()
    script_args = options.args + [arg for arg in extra if arg != "--"]
    with tempfile.TemporaryDirectory(prefix="etcd_layers-ab-") as scratch:
        base = Path(scratch) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(base), options.base],
            cwd=ROOT,
            check=True,
        )
        try:
            trees = {"A (before)": base, "B (after)": ROOT}
            for pair in range(options.pairs):
                order = list(trees.items())
                if pair % 2:
                    order.reverse()
                for label, tree in order:
                    print(f"===== pair {pair + 1}, {label} =====", flush=True)
                    print(_run(tree, options.script, script_args), flush=True)
        finally:
            remove = ["git", "worktree", "remove", "--force", str(base)]
            subprocess.run(remove, cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
