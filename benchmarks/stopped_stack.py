"""What computing only the active models of a stack saves: a profile's learning-rate search (its runs stop at their own
epochs) trained with the stack shrinking as runs stop, against the stack computing every model to the end (the way
before: a stopped model had rate 0 and was computed all the same), side by side in one process, on this machine.

    python benchmarks/stopped_stack.py [--profile quick] [--batch-sizes 16 64] [--rounds 1]

Each round trains each way in turn (alternating which goes first), the job's own search (`train.tune`, its grid,
seeds, patience and target), on one thread. Prints each way's training seconds, their ratio, the model-epochs each
way computed against those the runs needed, and whether every run's last and smoothed minimum validation loss are
the same both ways (on the batched path of the default CNN the records are the same to the bit: tests/test_stacking.py).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bsnb import data, profiles, remedies, stacking, train


class EveryModel(stacking.Stacked):
    """The stack as it was: every model computed at every step, a stopped one with learning rate 0."""

    def __call__(self, x):
        return self._forward(self.params, self.buffers, x)


def search_job(profile: str, batch_size: int):
    for job in profiles.expand(profiles.load_profile(profile)):
        p = job.params
        if job.notebook.startswith("04") and p.get("remedy") == "tuned" and p["batch_size"] == batch_size:
            return p
    raise SystemExit(f"--batch-sizes {batch_size}: the profile {profile} has no learning-rate search at that batch size")


def timed(params: dict, ds, every: bool) -> tuple[float, list]:
    spec = train.TrainSpec.from_params(params, **remedies.options(params))
    original = stacking.Stacked
    stacking.Stacked = EveryModel if every else original
    try:
        start = time.perf_counter()
        runs = train.tune(spec, ds, params["lr_grid"], params["seeds"], params["target_loss"], progress=False)
        return time.perf_counter() - start, runs
    finally:
        stacking.Stacked = original


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{args.profile}: the learning-rate search, stack shrinking as runs stop against every model computed; "
          f"1 thread, {args.rounds} round(s)")
    print(f"{'batch':>5} {'runs':>4} {'shrinking s':>11} {'every s':>8} {'ratio':>6} {'needed':>7} {'computed':>8} "
          f"{'same records':>12}")
    for b in args.batch_sizes:
        params = search_job(args.profile, b)
        ds = data.of_job(remedies.data_params(params), torch.device("cpu"))
        seconds, records = {True: [], False: []}, {}
        for r in range(args.rounds):
            for every in ((False, True) if r % 2 == 0 else (True, False)):
                t, records[every] = timed(params, ds, every)
                seconds[every].append(t)
        after, before = records[False], records[True]
        same = all(a.history[-1]["val_loss"] == b_.history[-1]["val_loss"] and
                   a.summary["min_val_loss"] == b_.summary["min_val_loss"] for a, b_ in zip(after, before))
        epochs = [r.summary["epochs_run"] for r in after]
        shrinking, every = statistics.median(seconds[False]), statistics.median(seconds[True])
        print(f"{b:5d} {len(epochs):4d} {shrinking:11.1f} {every:8.1f} {shrinking / every:6.2f} {sum(epochs):7d} "
              f"{len(epochs) * max(epochs):8d} {str(same):>12}")


if __name__ == "__main__":
    main()
