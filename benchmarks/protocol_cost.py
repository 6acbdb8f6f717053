"""What the pre-registered protocol costs: the default profile of today against the default profile of a baseline
commit (07dade7, the last study under protocol version 3, docs/protocol.md), side by side in one run, on this
machine.

    python benchmarks/protocol_cost.py [--baseline 07dade7] [--profile quick] [--rounds 1] [--keep reports/quick]
                                       [--keep-baseline DIR] [--today-first]

The baseline commit is checked out into a temporary git worktree and run from there; the candidate is this
working tree. Each runs ``bsnb run PROFILE --out TMP --force --quiet`` into a fresh folder (every job trained
anew), alternating which goes first when there are several rounds. Prints each one's wall time and the sweep's
job seconds, and the ratio today / baseline (the goal of the issue "Protocol v4 at no extra cost": at most 1.0 against
07dade7; an earlier goal, "eight seeds for the price of three", was at most 2.0 against 4feae72). A run takes
minutes: 07dade7's default profile about 15, today's about 25 on 2 cores. ``--keep DIR``
keeps today's study (its last round) in DIR, so that the run that is timed can also be the one a report quotes;
``--keep-baseline DIR`` keeps the baseline's, so that ``quick_profile.py --out TODAY --then DIR`` sets their phases
side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import alternate, worktree  # noqa: E402  (the same timed, alternating `bsnb run` the engine benchmark uses)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="07dade7", help="the baseline commit (default 07dade7, protocol v3)")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="copy today's finished study (its last round) to this folder")
    ap.add_argument("--keep-baseline", type=Path, help="copy the baseline's finished study (its last round) here")
    ap.add_argument("--today-first", action="store_true",
                    help="run today's study first in the first round (a one-round run otherwise starts with the "
                         "baseline; a second one-round run with this flag puts the other one first)")
    args = ap.parse_args(argv)
    for flag, folder in (("--keep", args.keep), ("--keep-baseline", args.keep_baseline)):
        if folder and folder.exists() and any(folder.iterdir()):
            sys.exit(f"{flag} {folder}: the folder exists and is not empty (nothing was run)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with worktree(args.baseline, tmp / "baseline") as base:
            trees = {"baseline": base, "today": ROOT}
            if args.today_first:
                trees = {"today": ROOT, "baseline": base}
            times = alternate(trees, args.profile, args.rounds, tmp)
            for name, folder in (("today", args.keep), ("baseline", args.keep_baseline)):
                if folder:
                    shutil.copytree(tmp / f"{name}-{args.rounds - 1}", folder, dirs_exist_ok=True)
    print(f"\nprofile {args.profile}: {args.baseline} against this working tree, {args.rounds} round(s), "
          f"{os.cpu_count()} CPU(s)")
    for what in ("wall", "jobs"):
        base = sum(t[what] for t in times["baseline"]) / args.rounds
        today = sum(t[what] for t in times["today"]) / args.rounds
        print(f"{what:4s}: {args.baseline} {base:7.1f} s, today {today:7.1f} s, ratio today/{args.baseline} "
              f"{today / base:.2f}")


if __name__ == "__main__":
    main()
