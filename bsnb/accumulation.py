"""Is gradient accumulation a bigger batch? (The question users ask most, in the issue trackers of the Tuning
Playbook, YOLOv5 and fastai.)

Training with ``accumulate`` = k takes each optimiser step on a batch of B examples as k forward and backward
passes over micro-batches of B / k, the loss averaged over the whole batch (:func:`bsnb.train._forward_backward`).
Without batch norm the gradient is the plain batch's, so the run should follow the plain large batch's trajectory
up to float rounding. With batch norm each micro-batch is normalised by its own statistics: the run should follow
ghost batch norm at the micro-batch size, not the plain large batch.

:func:`compare` trains each arm with the study's own training loop from the same seeds (same initial weights, same
batch order) for a hundred steps and sets the weights side by side; :func:`checks` says, for each pair, whether
the two trajectories agree within :data:`TOLERANCE`, and :func:`cost` what the accumulation costs in wall time
per step.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import pandas as pd
import torch

from bsnb import train

# Two trajectories "follow" each other when the final weights differ by less than this share of the distance the
# weights travelled from their initialisation: float32 rounding of a different summation order stays far below it,
# a different algorithm (batch norm over other examples) far above it.
TOLERANCE = 1e-3


@dataclass(frozen=True)
class Arm:
    name: str
    batch_norm: bool = False
    accumulated: bool = False  # the batch taken as micro-batches (compare's ``accumulate``)
    ghost: bool = False  # ghost batch norm in chunks of the micro-batch size


ARMS = (Arm("plain"), Arm("accumulated", accumulated=True), Arm("plain, batch norm", batch_norm=True),
        Arm("accumulated, batch norm", batch_norm=True, accumulated=True),
        Arm("ghost batch norm", batch_norm=True, ghost=True))
TIMED = ARMS[:2]  # the wall-time cost: the accumulated batch against the plain one (in float32, the study's type)
# (arm, arm it should follow or not, expected: True when they should agree)
PAIRS = (("accumulated", "plain", True), ("accumulated, batch norm", "ghost batch norm", True),
         ("accumulated, batch norm", "plain, batch norm", False))


def _flat(state: dict) -> torch.Tensor:
    return torch.cat([v.reshape(-1).double() for k, v in state.items() if v.is_floating_point()
                      and "running" not in k])


@contextmanager
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def compare(data, batch_size: int = 256, accumulate: int = 8, seeds=(0, 1, 2), steps: int = 100, lr: float = 0.03,
            momentum: float = 0.9, model: str = "cnn", width: int = 25, arms=ARMS, dtype=torch.float64
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train each of ``arms`` (``accumulate`` micro-batches where an arm accumulates; ghost batch norm in chunks of
    the same micro-batch) for ``steps`` steps from each seed, one model at a time, with the study's training loop.
    Returns the pairs of :data:`PAIRS` whose arms were trained (one row per pair and seed: the final weights'
    difference relative to the distance they travelled from the start) and the arms (per arm and seed: seconds per
    step, final training loss).

    In float64 by default: SGD amplifies a rounding difference by orders of magnitude over a few hundred steps (in
    float32 the accumulated and the plain batch, one algorithm, drifted 1.5e-5 to 4.7e-3 apart in 200 steps at
    batch 256 on 3 seeds), so float32 cannot tell a different summation order from a different algorithm; float64
    keeps one algorithm's drift near 1e-15."""
    micro = math.ceil(batch_size / accumulate)
    if dtype == torch.float64:
        data = replace(data, **{k: getattr(data, k).double() for k in ("x_train", "x_val", "x_test")})
    runs, rows = {}, []
    with _float64() if dtype == torch.float64 else nullcontext():
        for arm in arms:
            spec = train.TrainSpec(batch_size=batch_size, lr=lr, momentum=momentum, model=model, width=width,
                                   batch_norm=arm.batch_norm, ghost_batch=micro if arm.ghost else 0,
                                   accumulate=accumulate if arm.accumulated else 1, budget="steps",
                                   steps=steps, patience=0, log_points=2, noise_points=0, max_evals=1, stack="off")
            for seed in seeds:
                run = train.train(spec, data, seed)
                runs[arm.name, seed] = run
                rows.append({"arm": arm.name, "seed": seed, "dtype": str(dtype).replace("torch.", ""),
                             "check_batch": batch_size, "micro_batch": micro if spec.accumulate > 1 or arm.ghost
                             else batch_size, "steps": run.summary["steps_run"],
                             "seconds_per_step": run.summary["train_seconds"] / max(run.summary["steps_run"], 1),
                             "final_train_loss": run.summary["final_train_loss"]})
    pairs = []
    for first, second, agree in PAIRS:
        for seed in seeds:
            if (first, seed) not in runs or (second, seed) not in runs:
                continue
            a, b = runs[first, seed], runs[second, seed]
            w0, wa, wb = (_flat(r.states[k]) for r, k in ((b, "initial"), (a, "final"), (b, "final")))
            travelled = float(torch.linalg.vector_norm(wb - w0))
            pairs.append({"arm": first, "against": second, "seed": seed, "dtype": rows[0]["dtype"],
                          "expected": "same" if agree else "different", "steps": steps, "travelled": travelled,
                          "relative_difference": float(torch.linalg.vector_norm(wa - wb)) / travelled})
    return pd.DataFrame(pairs), pd.DataFrame(rows)


def checks(pairs: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Per pair (and float type): the smallest and largest relative difference over seeds, and whether the pair
    behaves as expected: the same (every seed within ``tolerance``) or different (every seed beyond it)."""
    rows = []
    for (arm, against, expected, dtype), g in pairs.groupby(["arm", "against", "expected", "dtype"], sort=False):
        least, worst = g["relative_difference"].min(), g["relative_difference"].max()
        rows.append({"arm": arm, "against": against, "dtype": dtype, "expected": expected,
                     "smallest_difference": least, "largest_difference": worst, "seeds": len(g),
                     "as_expected": bool(worst < tolerance if expected == "same" else least > tolerance)})
    return pd.DataFrame(rows)


def cost(arms: pd.DataFrame) -> pd.DataFrame:
    """Seconds per step of each arm (median over seeds) and its ratio to the plain batch's."""
    per_step = arms.groupby("arm", sort=False)["seconds_per_step"].median()
    return pd.DataFrame({"seconds_per_step": per_step, "ratio_to_plain": per_step / per_step.get("plain", math.nan)})


def measure(data, setting: dict, batch_size: int = 256, accumulate: int = 8, seeds=(0, 1, 2), steps: int = 100
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Notebook 01's check in one call, with the learning rate, momentum and model of a trained run's ``setting``:
    every pair in float64, the plain and the accumulated batch again in float32 (the study's type: how far one
    algorithm drifts there, and the wall time per step). Returns (pairs, float32 arms), empty for no ``steps``."""
    if steps <= 0:
        return pd.DataFrame(), pd.DataFrame()
    common = dict(batch_size=min(batch_size, len(data.y_train)), accumulate=accumulate, seeds=seeds, steps=steps,
                  lr=setting.get("lr", 0.03), momentum=setting.get("momentum", 0.9), model=setting.get("model", "cnn"),
                  width=setting.get("width", 25))
    pairs64, _ = compare(data, **common)
    pairs32, arms32 = compare(data, arms=TIMED, dtype=torch.float32, **common)
    return pd.concat([pairs64, pairs32], ignore_index=True), arms32


def summary(pairs: pd.DataFrame, arms: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """:func:`checks` with each arm's wall time per step against the plain batch (``time_vs_plain``, from the
    float32 ``arms``); empty when the store holds no check."""
    if pairs.empty:
        return pd.DataFrame()
    ratio = cost(arms)["ratio_to_plain"].rename("time_vs_plain") if not arms.empty else pd.Series(name="time_vs_plain")
    return checks(pairs, tolerance).join(ratio, on="arm")
