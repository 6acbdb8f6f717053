"""Measurements the findings make across runs: they combine data, models, stored weights and curvature.

The findings notebook reads the store and calls these; each returns a tidy table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bsnb import data as data_mod
from bsnb import models, results, sharpness


@dataclass
class OpenJob:
    """A stored training job made live again: its store, parameters, data and a model to load its seed runs'
    weights into."""

    store: results.JobStore
    params: dict
    data: data_mod.Data
    model: "torch.nn.Module"  # noqa: F821


def open_job(job_dir, device="cpu") -> OpenJob:
    """The data and the model of the training job in ``job_dir``, rebuilt from its parameters, on ``device``."""
    store = results.JobStore(job_dir)
    p = store.params()
    ds = data_mod.of_job(p, device)
    net = models.of_job(p, ds)
    return OpenJob(store, p, ds, net)


def interpolation_between(small: results.JobStore, large: results.JobStore, alphas=None, device="cpu") -> pd.DataFrame:
    """Keskar's parametric plot for every seed the two runs share: loss and accuracy of the mixed weights."""
    alphas = np.linspace(-0.5, 1.5, 41) if alphas is None else alphas
    run = open_job(small.dir, device)
    ds, net = run.data, run.model
    splits = {"train": (ds.x_train, ds.y_train), "val": (ds.x_val, ds.y_val)}
    a_states, b_states = small.load_states("final"), large.load_states("final")
    rows = []
    for seed in sorted(set(a_states) & set(b_states)):
        for row in sharpness.interpolate(net, a_states[seed], b_states[seed], splits, alphas):
            rows.append({"seed": seed, **row})
    return pd.DataFrame(rows)


def log_fits(steps: pd.DataFrame, tail: float = 0.5) -> pd.DataFrame:
    """Least-squares fit of distance = a + b log(step) per (run, seed), over the last ``tail`` of the
    sampled steps (log-spaced), with its R^2 and the final distance."""
    rows = []
    keys = ["job_id", "run"] if "run" in steps else ["job_id", "seed"]
    for _, g in steps.groupby(keys):
        g = g.sort_values("step")
        job, seed = g["job_id"].iloc[0], g["seed"].iloc[0]
        fit = g.iloc[int(len(g) * (1 - tail)):]
        t, d = np.log(fit["step"].to_numpy(float)), fit["distance"].to_numpy(float)
        b, a = np.polyfit(t, d, 1)
        resid = d - (a + b * t)
        r2 = 1 - resid.var() / d.var() if d.var() > 0 else np.nan
        rows.append({"job_id": job, "seed": seed, "batch_size": g["batch_size"].iloc[0], "a": a, "b": b, "r2": r2,
                     "t_min": fit["step"].min(), "t_max": fit["step"].max(),
                     "final_distance": g["distance"].iloc[-1], "final_step": g["step"].iloc[-1]})
    return pd.DataFrame(rows)


def surfaces_of(contours: pd.DataFrame, small_batch: int, large_batch: int) -> pd.DataFrame:
    """The 2-D loss surfaces of the small and the large batch at their final weights, for the first seed both have."""
    if contours.empty or not {small_batch, large_batch} <= set(contours["batch_size"]):
        return pd.DataFrame()
    c = contours[contours["batch_size"].isin([small_batch, large_batch])]
    if "checkpoint" in c:
        c = c[c["checkpoint"] == "final"]
    seeds = set(c[c["batch_size"] == small_batch]["seed"]) & set(c[c["batch_size"] == large_batch]["seed"])
    return c[c["seed"] == min(seeds)] if seeds else pd.DataFrame()


def timing_alone(store_dir, comparison: pd.DataFrame, small_batch: int, large_batch: int,
                 repeats: int = 7) -> pd.DataFrame:
    """Seconds per epoch of every batch size of the comparison (:func:`bsnb.timing.interleaved_epochs`), in the
    setting of its runs, on the profile's device with the threads a worker gave its job, one model at a time: C3's timing,
    the speed figure and the seconds to the target come from it, never from runs that trained stacked or beside
    other jobs. Empty when the pair was not trained."""
    from bsnb import timing

    if comparison.empty or not {small_batch, large_batch} <= set(comparison["batch_size"]):
        return pd.DataFrame()
    from bsnb import train

    job = comparison[comparison["batch_size"] == small_batch]["job_id"].iloc[0]
    params = results.JobStore(results.store_dir_of(store_dir) / job).params()
    # the protocol's C3: on the profile's device, with the threads one of the sweep's workers gave its job
    device = str(train.resolve_device(params.get("device", "auto")))
    threads = int(params.get("threads") or 1)
    return timing.interleaved_epochs(params, sorted(int(b) for b in comparison["batch_size"].unique()), repeats=repeats,
                                     threads=threads, device=device)


def extreme_interpolation(store_dir, comparison: pd.DataFrame, alphas=None) -> tuple[pd.DataFrame, int, int]:
    """Interpolation between the smallest-batch and the largest-batch runs of ``comparison``."""
    jobs = comparison.groupby("batch_size")["job_id"].first().sort_index()
    small, large = int(jobs.index[0]), int(jobs.index[-1])
    store = results.store_dir_of(store_dir)
    rows = interpolation_between(results.JobStore(store / jobs.iloc[0]), results.JobStore(store / jobs.iloc[-1]), alphas)
    return rows, small, large
