"""The cost of running the sweep on Dask: a profile's wall time with the Dask engine against the home-made
process pool it replaced, side by side in one run, on this machine.

    python benchmarks/engine.py [--profile smoke] [--rounds 2] [--baseline 289197e] [--candidate COMMIT]

The baseline is the last commit with the old pool; it is checked out into a temporary git worktree and run
from there (``python -m`` puts the working folder first on ``sys.path``, ahead of the editable install). The
candidate is this working tree, or a commit checked out the same way (to compare engines on the same
training code when later commits changed it). Both run ``bsnb run PROFILE --out TMP --force --quiet`` into fresh folders,
alternating which goes first, so drift in the machine's speed falls on both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def worktree(commit: str, where: Path):
    """``commit`` checked out at ``where`` (a detached git worktree of this repository), removed afterwards."""
    subprocess.run(["git", "worktree", "add", "--detach", str(where), commit], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True)


def timed_run(code: Path, profile: str, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bsnb.cli", "run", profile, "--out", str(out), "--force", "--quiet"],
                          cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{code}: bsnb run {profile} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    import json

    timings = json.loads((out / "logs" / "timings.json").read_text())
    return {"wall": wall, "jobs": timings["jobs"]}


def alternate(trees: dict, profile: str, rounds: int, tmp: Path) -> dict:
    """``bsnb run PROFILE`` in each of ``trees`` (name -> code folder), ``rounds`` times, alternating which goes
    first so that drift in the machine's speed falls on all; name -> list of :func:`timed_run` results."""
    times = {name: [] for name in trees}
    for r in range(rounds):
        order = list(trees.items())
        for name, code in order if r % 2 == 0 else order[::-1]:
            t = timed_run(code, profile, tmp / f"{name}-{r}")
            times[name].append(t)
            print(f"round {r + 1}: {name:8s} wall {t['wall']:7.1f} s (jobs {t['jobs']:7.1f} s)", flush=True)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", default="289197e", help="a commit with the old process pool")
    ap.add_argument("--candidate", help="a commit with the Dask engine (default: this working tree)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        trees = [base]
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        candidate = ROOT
        if args.candidate:
            candidate = tmp / "candidate"
            subprocess.run(["git", "worktree", "add", "--detach", str(candidate), args.candidate], cwd=ROOT,
                           check=True, capture_output=True)
            trees.append(candidate)
        try:
            times = alternate({"pool": base, "dask": candidate}, args.profile, args.rounds, tmp)
        finally:
            for tree in trees:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    print(f"\nprofile {args.profile}, {args.rounds} round(s) each, {os.cpu_count()} CPU(s)")
    for what in ("wall", "jobs"):
        pool = sum(t[what] for t in times["pool"]) / args.rounds
        dask = sum(t[what] for t in times["dask"]) / args.rounds
        print(f"{what:4s}: old pool {pool:6.1f} s, Dask {dask:6.1f} s, ratio Dask/pool {dask / pool:.3f}")


if __name__ == "__main__":
    main()
