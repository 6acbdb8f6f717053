"""What a job's notebook prints about its results: the reproducible per-seed table and one sentence.

Computed from the job's ``summary.json``; timings and machine facts are left out of the table, so
that re-executing the notebook on the same machine reproduces it (nbval checks it).
"""

from __future__ import annotations

import pandas as pd

from bsnb.results import JobStore

NOT_REPRODUCIBLE = ("seconds", "per_second", "device", "threads", "torch")


def seed_table(store: JobStore, digits: int = 4) -> pd.DataFrame:
    """The reproducible part of a run's summary, one row per seed: timings and machine facts left out."""
    df = pd.DataFrame(store.summary()["seeds"])
    keep = [c for c in df.columns if not any(word in c for word in NOT_REPRODUCIBLE)]
    return df[keep].round(digits).set_index("seed")


def describe(store: JobStore) -> str:
    """One sentence on a run, computed from its summary."""
    seeds = pd.DataFrame(store.summary()["seeds"])
    params = store.params()
    ok = seeds[seeds["status"] == "ok"]
    text = f"Batch size {params['batch_size']}, learning rate {params['lr']:g}: "
    if ok.empty:
        return text + f"all {len(seeds)} seeds diverged."
    sd = lambda s: f" +- {s.std(ddof=1):.3f}" if len(s) > 1 else ""  # noqa: E731
    text += (f"minimum validation loss {ok['min_val_loss'].mean():.3f}{sd(ok['min_val_loss'])}, reached at epoch "
             f"{ok['epoch_of_min_val_loss'].mean():.0f} of {int(ok['epochs_run'].max())}; test accuracy at that point "
             f"{ok['test_acc'].mean():.3f}; {ok['examples_per_second'].mean():,.0f} examples per second "
             f"(mean{' +- sd' if len(ok) > 1 else ''} over {len(ok)} seed{'s' if len(ok) > 1 else ''}).")
    if len(ok) < len(seeds):
        text += f" {len(seeds) - len(ok)} seed(s) diverged."
    return text


def store_note(jobs: pd.DataFrame) -> str:
    """One sentence on a store whose jobs did not all finish (empty when every job is ok): how many failed or are
    incomplete, with the first errors; when none finished, that every verdict is inconclusive for want of runs."""
    if jobs.empty:
        return "The store holds no job: run the profile first (`bsnb run PROFILE`). Every verdict is inconclusive."
    bad = jobs[~jobs["state"].isin(["ok", "manual", "diverged"])]
    if bad.empty:
        return ""
    errors = "; ".join(f"{r.job_id}: {r.error}" for r in bad.head(3).itertuples() if isinstance(r.error, str))
    states = ", ".join(f"{n} {state}" for state, n in bad["state"].value_counts().items())
    text = f"{len(bad)} of {len(jobs)} job(s) did not finish ({states})" + (f": {errors}." if errors else ".")
    if len(bad) == len(jobs):
        text += " No job finished, so there is nothing to compare: every verdict below is inconclusive."
    return text
