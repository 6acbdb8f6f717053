"""Whether a change of code changed a number: a profile run at a baseline commit and in this working tree, every
table of every job the two runs share compared cell by cell, the seconds and other timings left out.

    python benchmarks/same_numbers.py [--baseline 4c9f8af] [--profile smoke]

The baseline is checked out into a temporary git worktree; both run ``bsnb run PROFILE --force`` into fresh
folders (:func:`engine.timed_run`). A job the two share has the same job id (the same notebook and parameters).
Prints, per shared job, the tables that are equal and every column that differs (with its largest difference),
and the jobs only one of the runs has. Exit status 1 when a shared number differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import timed_run, worktree  # noqa: E402

from bsnb.results import OWN_BATCH  # noqa: E402

# columns that measure time or place, not the computation
TIMING = ("seconds", "examples_per_second", "seconds_per_epoch", "train_seconds", "seconds_to_target", "started",
          "finished", "wall", "threads", "device", "host", "worker", "pid", "kernel")


def _timing(column: str) -> bool:
    return any(word in column for word in TIMING)


def tables(job: Path) -> dict[str, pd.DataFrame]:
    """Every CSV table of a job, and its per-seed summary as one more, columns named as
    :func:`bsnb.results.load_tables` names them (a store written before a column was renamed reads the same)."""
    out = {p.stem: pd.read_csv(p) for p in sorted(job.glob("*.csv"))}
    for name, own in OWN_BATCH.items():  # read as the store reads them: a batch of a table's own under its own name
        if name in out and "batch_size" in out[name] and own not in out[name]:
            out[name] = out[name].rename(columns={"batch_size": own})
    summary = job / "summary.json"
    if summary.exists():
        out["summary"] = pd.DataFrame(json.loads(summary.read_text())["seeds"])
    return out


def differences(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The columns of two tables that differ, leaving timings out."""
    found = []
    if len(a) != len(b):
        return [f"{len(a)} rows against {len(b)}"]
    for col in sorted(set(a.columns) | set(b.columns)):
        if _timing(col):
            continue
        if col not in a or col not in b:
            found.append(f"{col} only in {'the baseline' if col in a else 'today'}")
            continue
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            same = (xv == yv) | (np.isnan(xv) & np.isnan(yv))
            if not same.all():
                found.append(f"{col} (largest difference {np.nanmax(np.abs(xv - yv)):.3g})")
        elif not x.astype(str).equals(y.astype(str)):
            found.append(col)
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="4c9f8af")
    ap.add_argument("--profile", default="smoke")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with worktree(args.baseline, tmp / "code") as base:  # the runs go beside it: the worktree is removed
            for name, code in (("baseline", base), ("today", ROOT)):
                t = timed_run(code, args.profile, tmp / "runs" / name)
                print(f"{name}: wall {t['wall']:.1f} s", flush=True)
        jobs = {name: {p.name: p for p in (tmp / "runs" / name / "runs").iterdir() if p.is_dir()}
                for name in ("baseline", "today")}
        shared = sorted(set(jobs["baseline"]) & set(jobs["today"]))
        changed = 0
        for job in shared:
            a, b = tables(jobs["baseline"][job]), tables(jobs["today"][job])
            for name in sorted(set(a) | set(b)):
                if name not in a or name not in b:
                    print(f"{job} {name}: only in {'the baseline' if name in a else 'today'}")
                    continue
                diff = differences(a[name], b[name])
                changed += bool(diff)
                print(f"{job} {name}: " + ("equal" if not diff else "DIFFERS in " + "; ".join(diff)))
        for name in ("baseline", "today"):
            other = "today" if name == "baseline" else "baseline"
            only = sorted(set(jobs[name]) - set(jobs[other]))
            if only:
                print(f"jobs only {name} ran: {', '.join(only)}")
        print(f"\n{len(shared)} shared jobs; {changed} table(s) with a differing number (timings left out)")
        return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
