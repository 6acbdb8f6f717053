"""The learning-rate search's rule (docs/protocol.md, "Searches"): which rates a search trains after its grid, and
which rate it chooses.

The grid is spaced by a factor of 2. While the rate with the lowest mean smoothed minimum validation loss over the
search seeds lies on an edge of the grid, the next factor-2 rate beyond that edge is trained for every seed (at most
:data:`EXTENSIONS` times, and never past a rate that failed to train in every seed). Then the two rates a factor
sqrt 2 either side of that rate are trained (the refinement). The **chosen rate** is the rate, of all searched, with
the lowest mean smoothed minimum. A run that never trained, or whose minimum is not finite, counts with the chance
loss in that mean: a rate that fails in some seeds is not a good rate.

One function, :func:`next_rates`, says what to train next from the runs so far; the search job
(:func:`bsnb.train.tune`) calls it after each round, and the findings call :func:`choose` on the stored runs, so the
job and the verdicts read the same rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

EXTENSIONS = 3  # at most this many factor-2 rates added beyond an edge
FACTOR = 2.0  # the grid's spacing
REFINE = math.sqrt(2.0)  # the refinement's factor either side of the factor-2 best
GRID, EXTENSION, REFINEMENT = "grid", "extension", "refinement"  # how a rate entered the search (``search_step``)
COLUMNS = ["lr", "seed", "min_val_loss", "failed", "chance_loss", "search_step"]


@dataclass(frozen=True)
class Choice:
    """A batch size's search read by the rule: the chosen rate, and what the reading rests on."""

    rate: float  # lowest mean smoothed minimum over the search seeds, of every searched rate
    on_edge: bool  # the factor-2 best still lies on an edge of its grid (extensions ran out or were blocked)
    means: pd.Series  # mean smoothed minimum per rate (failed runs at the chance loss), indexed by rate
    extensions: int  # factor-2 rates added beyond an edge
    refined: bool  # the sqrt-2 rates were trained
    seeds: int  # search seeds


def _factor2(table: pd.DataFrame) -> pd.DataFrame:
    step = table["search_step"] if "search_step" in table else pd.Series(GRID, index=table.index)
    return table[step.fillna(GRID).isin([GRID, EXTENSION])]


def rate_means(table: pd.DataFrame) -> pd.Series:
    """The mean smoothed minimum validation loss per rate over the search seeds; a run that failed to train or whose
    minimum is not finite counts with the chance loss."""
    loss = table["min_val_loss"].astype(float)
    failed = table["failed"].fillna(False).astype(bool) | ~np.isfinite(loss)
    counted = loss.where(~failed, table["chance_loss"].astype(float))
    return counted.groupby(table["lr"].astype(float)).mean().sort_index()


def _failed_everywhere(table: pd.DataFrame, rate: float) -> bool:
    at = table[np.isclose(table["lr"].astype(float), rate, rtol=1e-9)]
    failed = at["failed"].fillna(False).astype(bool) | ~np.isfinite(at["min_val_loss"].astype(float))
    return len(at) > 0 and bool(failed.all())


def _edge_step(table: pd.DataFrame) -> tuple[float, float | None]:
    """The factor-2 best rate and, while it lies on an edge of its grid, the rate beyond that edge (else None)."""
    means = rate_means(_factor2(table))
    best = float(means.idxmin())
    rates = list(means.index)
    if len(rates) < 2:
        return best, None
    if math.isclose(best, rates[-1], rel_tol=1e-9):
        beyond = best * FACTOR
    elif math.isclose(best, rates[0], rel_tol=1e-9):
        beyond = best / FACTOR
    else:
        return best, None
    return best, (None if _failed_everywhere(table, best) else beyond)


def next_rates(table: pd.DataFrame) -> tuple[list[float], str] | None:
    """The rates to train next for every search seed, and why (:data:`EXTENSION` or :data:`REFINEMENT`), given the
    runs so far (columns :data:`COLUMNS`); None when the search is complete."""
    if table.empty or not np.isfinite(rate_means(table)).any():
        return None
    steps = table["search_step"].fillna(GRID)
    if (steps == REFINEMENT).any():
        return None
    extensions = int(table.loc[steps == EXTENSION, "lr"].nunique())
    best, beyond = _edge_step(table)
    if beyond is not None and extensions < EXTENSIONS:
        return [beyond], EXTENSION
    return [best / REFINE, best * REFINE], REFINEMENT


def choose(table: pd.DataFrame) -> Choice | None:
    """The chosen rate of one batch size's search (the lowest mean smoothed minimum over every searched rate)."""
    if table.empty or not np.isfinite(rate_means(table)).any():
        return None
    means = rate_means(table)
    steps = table["search_step"].fillna(GRID) if "search_step" in table else pd.Series(GRID, index=table.index)
    extensions = int(table.loc[steps == EXTENSION, "lr"].nunique())
    _, beyond = _edge_step(table)
    on_edge = beyond is not None or (len(_factor2(table)["lr"].unique()) < 3)
    return Choice(rate=float(means.idxmin()), on_edge=bool(on_edge), means=means, extensions=extensions,
                  refined=bool((steps == REFINEMENT).any()), seeds=int(table["seed"].nunique()))


def table_of(runs: pd.DataFrame) -> pd.DataFrame:
    """The search's runs (the per-seed table read by :func:`bsnb.minima.read_runs`, or a job's summaries) in the
    columns the rule reads."""
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    lr = runs["lr_used"] if "lr_used" in runs else runs["lr"]
    status = runs["status"] if "status" in runs else pd.Series("ok", index=runs.index)
    failed = runs["failed_to_train"] if "failed_to_train" in runs else pd.Series(False, index=runs.index)
    step = runs["search_step"] if "search_step" in runs else pd.Series(GRID, index=runs.index)
    return pd.DataFrame({"lr": lr.astype(float), "seed": runs["seed"], "min_val_loss": runs["min_val_loss"].astype(float),
                         "failed": failed.fillna(False).astype(bool) | (status.fillna("ok") != "ok"),
                         "chance_loss": runs["chance_loss"].astype(float) if "chance_loss" in runs else math.nan,
                         "search_step": step.fillna(GRID)})


def confirmed(params: dict, search_dir) -> dict:
    """A confirmation job's parameters (remedy ``confirm``): ``lr`` set to the rate the search in ``search_dir``
    chose. Raises ValueError, naming the folder, where that search cannot choose one."""
    from bsnb import results

    store = results.JobStore(search_dir)
    try:
        searched, summary = store.params(), store.summary()
    except (OSError, ValueError) as exc:
        raise ValueError(f"source_dir = {search_dir!s}: no finished learning-rate search there ({exc})") from exc
    if searched.get("remedy") != "tuned" or not searched.get("patience"):
        raise ValueError(f"source_dir = {search_dir!s} holds no learning-rate search trained to its minimum (remedy "
                         f"{searched.get('remedy')!r}, patience {searched.get('patience')}): there is no rate to confirm")
    choice = choose(table_of(pd.DataFrame(summary["seeds"])))
    if choice is None:
        raise ValueError(f"source_dir = {search_dir!s}: no run of the search has a finite minimum: no rate to confirm")
    return {**params, "lr": choice.rate}


def chosen_rates(out_dir) -> pd.DataFrame:
    """Every finished search of a study's output folder read by the rule, a row per (workload, batch size): the
    chosen rate, whether the factor-2 best still lies on an edge, the extensions, the refinement, the search seeds
    and the rates searched. What a pilot search pins (``bsnb rates``; params/workloads.yaml)."""
    from bsnb import results

    store = results.store_dir_of(out_dir)
    rows = []
    for workload in results.workloads_of(store) or [""]:  # in the profile's order, each by batch size
        jobs = sorted(results.jobs_in(store, workload=workload), key=lambda j: j.params().get("batch_size", 0))
        for job in jobs:
            params, status = job.params(), job.status() or {}
            if params.get("remedy") != "tuned" or not params.get("patience") or status.get("status") != "ok":
                continue
            choice = choose(table_of(pd.DataFrame(job.summary()["seeds"])))
            if choice is None:
                continue
            rows.append({"workload": workload, "batch_size": params.get("batch_size"), "chosen_lr": choice.rate,
                         "on_edge": choice.on_edge, "extensions": choice.extensions, "refined": choice.refined,
                         "seeds": choice.seeds, "rates": ", ".join(f"{r:.4g}" for r in sorted(choice.means.index)),
                         "job": job.dir.name})
    return pd.DataFrame(rows, columns=["workload", "batch_size", "chosen_lr", "on_edge", "extensions", "refined",
                                       "seeds", "rates", "job"])
