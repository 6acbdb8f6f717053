"""Verdicts on the article's claims, computed from the results tables, never written by hand.

Each claim compares a small and a large batch (by default the article's 32 and 256) trained
with the same seeds, so the per-seed effects are paired. The effect's confidence interval is a
Student-t interval over seeds (on the log scale for ratios). The verdict follows from the
interval alone:

* ``supported``: the whole interval lies on the side the claim predicts;
* ``not supported``: the whole interval lies on the other side;
* ``inconclusive``: the interval straddles the null value, or fewer than two seeds are usable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from bsnb import minima, parameters
from bsnb.results import NOISE_WINDOW, TARGET, level_checkpoint, windowed_b_simple
from bsnb.stats import (INCONCLUSIVE, MIN_SEEDS, NOT_SUPPORTED, SUPPORTED, censoring_bias, decide,  # noqa: F401
                        decide_within,
                        dropped_note, evidence_problem, interval, withdraw_if_censored)

COLUMNS = ["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "robust", "statement", "measure", "ours",
           "published", "note", "rule", "sensitivity"]

KESKAR_TABLE3 = {"small": 1.23, "large": 205.14}  # F1 (MNIST MLP), full space, epsilon 1e-3
SMITH = ("Smith et al. 2018: batch growth instead of decay matched accuracy (Wide ResNet, CIFAR-10, 94.4 % vs "
         "94.3 %) with about a third of the updates")
GOYAL = "Goyal et al. 2017: top-1 error 23.60 +- 0.12 % at batch 256, 23.74 +- 0.09 % at 8k (linear rule, 5-epoch warm-up)"
HOFFER = "Hoffer et al. 2017: with the learning rate adapted and as many steps as the small batch, the gap closes"
ARTICLE = {"small_batch": 32, "large_batch": 256, "min_val_loss": {32: 0.344, 256: 0.395}}


@dataclass
class Verdict:
    claim: str
    verdict: str
    effect: float
    ci_low: float
    ci_high: float
    seeds: int
    statement: str
    measure: str
    ours: str = ""
    published: str = ""
    note: str = ""
    rule: str = ""
    robust: bool | None = None  # set by robustness(): the label holds under every alternative reading
    sensitivity: str = ""  # what each alternative reading gave


def _pick(available, wanted: int, fallback) -> int:
    return wanted if wanted in available else fallback(available)


def choose_pair(seeds: pd.DataFrame, small_batch: int, large_batch: int) -> tuple[int, int, list[str]]:
    """The article's pair when both were run, else the smallest and the largest batch size."""
    sizes = sorted(int(b) for b in seeds["batch_size"].unique())
    small = _pick(sizes, small_batch, min)
    large = _pick([b for b in sizes if b > small] or sizes, large_batch, max)
    notes = []
    if (small, large) != (small_batch, large_batch):
        notes.append(f"batch sizes {small_batch} and {large_batch} not both in the sweep; compared {small} and {large}")
    return small, large, notes


def _empty(claim: str, why: str) -> Verdict:
    return Verdict(claim, INCONCLUSIVE, math.nan, math.nan, math.nan, 0, STATEMENTS[claim], "", note=why)


def _ratio_text(pairs: pd.DataFrame, confidence: float) -> str:
    effect, lo, hi, n = interval(pairs["large"] / pairs["small"], confidence, log=True)
    return f"{_fmt(effect)} [{_fmt(lo)}, {_fmt(hi)}]" if n else "n/a"


def rank_trend(values: pd.DataFrame, column: str, confidence: float = 0.95, by: str = "batch_size"
               ) -> tuple[float, float, float, int]:
    """Spearman's rank correlation of ``column`` with ``by`` (the batch size) over every row (seed and batch size),
    with a Fisher interval (Bonett and Wright's standard error for Spearman): does the measure rise with it?"""
    from scipy import stats as sps

    v = values[[by, column]].replace([np.inf, -np.inf], np.nan).dropna()
    n = len(v)
    if n < 4 or v[by].nunique() < 3:
        return math.nan, math.nan, math.nan, n
    rho = float(sps.spearmanr(v[by], v[column]).statistic)
    z, se = math.atanh(max(-0.9999, min(0.9999, rho))), math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    half = float(sps.norm.ppf((1 + confidence) / 2)) * se
    return rho, math.tanh(z - half), math.tanh(z + half), n


def _level_of(checkpoint: str) -> float:
    """The training-loss level of a ``loss<level>`` checkpoint name (NaN for any other)."""
    return float(checkpoint[4:]) if isinstance(checkpoint, str) and checkpoint.startswith("loss") else math.nan


def _source_status(measured: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Measurements of a trained run (03) take the status of the run they measured (02, the same batch size and
    seed): a run that failed to train is left out of the measurements too."""
    if "status" not in runs or measured.empty:
        return measured
    src = comparison_runs(runs)[0]
    status = src.set_index(["batch_size", "seed"])["status"]
    status = status[~status.index.duplicated()]
    keys = pd.MultiIndex.from_frame(measured[["batch_size", "seed"]])
    return measured.assign(status=status.reindex(keys).fillna("ok").to_numpy())


def sharpness(seeds: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
              confidence: float = 0.95, epsilon: float = 1e-3, reading: "Reading | None" = None) -> Verdict:
    """C6: the top Hessian eigenvalue, large over small batch, where the training loss first fell to the lowest of
    1, 0.3, 0.1, 0.03 that every measured run reached (the matched level), and its rank trend over every measured
    batch size.

    Supported when the ratio's lower end is above 1 and the trend's interval lies above 0; not supported when
    the ratio's upper end is below 1 or the trend's interval below 0. The trace and Keskar's epsilon-sharpness
    (at the sharpness notebook's ``matched_loss``) and the top eigenvalue at the final weights are reported beside
    it. ``reading.level_shift`` moves the matched level to a neighbouring one (the sensitivity analysis).
    """
    reading = reading or PROTOCOL
    r, group_note = comparison_runs(seeds, "03_sharpness")
    if r.empty:
        return _empty("C6", "no sharpness runs in the store")
    r = _source_status(r, seeds)
    small, large, notes = choose_pair(r, small_batch, large_batch)
    source = comparison_runs(seeds)[0]
    left_out = minima.unusable_note(source[source["batch_size"].isin(r["batch_size"])]) if len(source) else ""
    usable = _usable_seeds(r)
    final = usable[usable["checkpoint"] == "final"] if "checkpoint" in usable else usable
    levels = usable.assign(level=usable["checkpoint"].map(_level_of)) if "checkpoint" in usable else usable.iloc[0:0]
    levels = levels[levels["level"].isin(C1_LEVELS)]
    n_runs = final.groupby(["batch_size", "seed"]).ngroups
    reached = [lv for lv in C1_LEVELS if levels[levels["level"] == lv].groupby(["batch_size", "seed"]).ngroups == n_runs]
    level = shifted_level(reached, reading.level_shift)
    if level is not None:
        primary, where = levels[levels["level"] == level], f"where the training loss first fell to {level:g}"
    else:
        old = usable[usable["checkpoint"] == "matched"] if "checkpoint" in usable else usable.iloc[0:0]
        if reading.level_shift == 0 and len(old) and old.groupby(["batch_size", "seed"]).ngroups == n_runs:
            level = float(old["matched_loss"].iloc[0])  # a store measured before the levels were
            primary, where = old, f"where the training loss first fell to {level:g}"
        elif reading.level_shift:
            return _empty("C6", f"no level {reading.level_shift:+d} place(s) from the matched one was reached by "
                                "every measured run")
        else:
            primary, where = final, "at the final weights"
            notes.append("no training-loss level of 1, 0.3, 0.1, 0.03 was reached by every measured run: compared at "
                         "the final weights, where the training losses differ and the Hessian shrinks with the loss")
    v = _ratio_verdict("C6", paired(primary, "lambda_max", small, large), "greater", confidence,
                       f"top Hessian eigenvalue of the training loss {where} (the lowest of 1, 0.3, 0.1, 0.03 every "
                       f"measured run reached), ratio batch {large} / batch {small}; and its rank correlation with "
                       "the batch size over every measured batch size",
                       published=f"Keskar et al. 2017, Table 3 (MNIST MLP, full space, eps 1e-3): "
                       f"epsilon-sharpness {KESKAR_TABLE3['small']} small batch vs {KESKAR_TABLE3['large']} large")
    rho, lo, hi, n = rank_trend(primary, "lambda_max", confidence)
    sizes = ", ".join(str(int(b)) for b in sorted(primary["batch_size"].unique()))
    v.ours += f"; rank correlation with the batch size (batches {sizes}) {_fmt(rho)} [{_fmt(lo)}, {_fmt(hi)}]"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        notes.append("the trend needs at least 3 measured batch sizes")
        trend = INCONCLUSIVE
    else:
        trend = SUPPORTED if lo > 0 else NOT_SUPPORTED if hi < 0 else INCONCLUSIVE
        if trend != SUPPORTED:
            notes.append(f"the measure does not rise monotonically with the batch size (rank correlation "
                         f"{rho:.2f} [{lo:.2f}, {hi:.2f}])")
    v.verdict = (NOT_SUPPORTED if NOT_SUPPORTED in (v.verdict, trend) else
                 SUPPORTED if (v.verdict, trend) == (SUPPORTED, SUPPORTED) else INCONCLUSIVE)
    full = usable[usable["checkpoint"] == "matched"] if "checkpoint" in usable else usable.iloc[0:0]
    eps = paired(full, f"eps_full_{epsilon:g}", small, large)
    if len(eps):
        at = f" at training loss {full['matched_loss'].iloc[0]:g}" if "matched_loss" in full else ""
        v.ours += (f"; trace ratio{at} {_ratio_text(paired(full, 'trace', small, large), confidence)}; "
                   f"epsilon-sharpness (full, eps {epsilon:g}) ratio {_ratio_text(eps, confidence)}")
    if primary is not final:
        v.ours += f"; at the final weights, top eigenvalue ratio {_ratio_text(paired(final, 'lambda_max', small, large), confidence)}"
    losses = paired(primary, "train_loss", small, large)
    if len(losses):
        v.ours += f"; training loss there small {losses['small'].mean():.3g}, large {losses['large'].mean():.3g}"
    v.note = _join(group_note, *notes, left_out, v.note)
    return v


def edge_of_stability(runs: pd.DataFrame, level_sharpness: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                      confidence: float = 0.95, reading: "Reading | None" = None, rule: str = "linear_warmup"
                      ) -> Verdict:
    """C16, the edge-of-stability challenge to C6: the top Hessian eigenvalue at the matched training-loss level,
    large over small, with the learning rate scaled by the linear rule (the large batch's ``rule`` runs of notebook
    04, measured there with ``sharpness_at_levels``; the small batch's comparison runs, measured by notebook 03), so
    that the noise scale lr N / B is the same. Supported when the ratio's upper end is below 1 (the large batch is
    flatter: sharpness follows the rate); not supported when its lower end is above 1 (sharper even at an equal
    noise scale: Keskar's mechanism). Beside it, lambda_max x lr / (2 (1 + momentum)) of every measured run, the
    share of full-batch gradient descent's stability edge it sits at."""
    reading = reading or PROTOCOL
    sharp = _source_status(comparison_runs(runs, "03_sharpness")[0], runs) if "notebook" in runs else runs.iloc[0:0]
    sharp = _usable_seeds(sharp)
    small = sharp[sharp["batch_size"] == small_batch] if len(sharp) else sharp
    large = level_sharpness.copy() if len(level_sharpness) else pd.DataFrame()
    if len(large) and "remedy" in large:
        large = large[(large["remedy"] == rule) & (large["batch_size"] == large_batch)]
    trained = runs[(runs.get("notebook") == "04_closing_the_gap") & (runs.get("remedy") == rule)
                   & (runs["batch_size"] == large_batch)] if "remedy" in runs else runs.iloc[0:0]
    if len(large) and len(trained):  # a rule's run that failed to train leaves its measurements too
        ok = set(_usable_seeds(trained)["seed"])
        large = large[large["seed"].isin(ok)]
    if small.empty or large.empty or "checkpoint" not in small:
        return _empty("C16", f"needs the top eigenvalue at the loss levels of batch {small_batch}'s comparison runs "
                             f"(03) and of batch {large_batch}'s {rule} runs (04 with sharpness_at_levels)")
    small = small.assign(level=small["checkpoint"].map(_level_of))
    large = large.assign(level=large["checkpoint"].map(_level_of))
    n_small, n_large = small.loc[small["checkpoint"] == "final", "seed"].nunique(), trained["seed"].nunique()
    reached = [lv for lv in C1_LEVELS if small.loc[small["level"] == lv, "seed"].nunique() == n_small
               and large.loc[large["level"] == lv, "seed"].nunique() == len(set(large["seed"]))]
    level = shifted_level(reached, reading.level_shift)
    if level is None:
        return _empty("C16", "no training-loss level of 1, 0.3, 0.1, 0.03 (or its neighbour) was reached by every "
                             f"measured run of batch {small_batch} and of batch {large_batch} under {rule}")
    pair = pd.DataFrame({"small": small[small["level"] == level].set_index("seed")["lambda_max"],
                         "large": large[large["level"] == level].set_index("seed")["lambda_max"]}).dropna()
    pair = pair[~pair.index.duplicated()]
    ratio = pair["large"] / pair["small"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    compared = comparison_runs(runs)[0]
    lr_small = float(compared["lr"].iloc[0]) if len(compared) else math.nan
    lr_large = float(trained["lr_used"].iloc[0]) if "lr_used" in trained and len(trained) else math.nan
    momentum = float(trained["momentum"].iloc[0]) if "momentum" in trained and len(trained) else 0.9
    edge = lambda lam, lr: lam * lr / (2 * (1 + momentum))  # noqa: E731
    at = sharp.assign(level=sharp["checkpoint"].map(_level_of))
    at = at[at["level"] == level].groupby("batch_size")["lambda_max"].mean()
    ours = (f"top eigenvalue small {pair['small'].mean():.3g} (lr {lr_small:g}), large {pair['large'].mean():.3g} "
            f"(lr {lr_large:.3g}) (mean of {n} seeds); lambda_max x lr / (2 (1 + momentum)) at that level: batch "
            f"{large_batch} under {rule} {edge(pair['large'].mean(), lr_large):.2f}; at the comparison's rate "
            + ", ".join(f"batch {int(b)} {edge(lam, lr_small):.2f}" for b, lam in at.items())
            + " (1 is full-batch descent's stability edge)")
    return Verdict("C16", decide(lo, hi, 1.0, "less", n), effect, lo, hi, n, STATEMENTS["C16"],
                   f"top Hessian eigenvalue where the training loss first fell to {level:g} (the lowest of 1, 0.3, 0.1, "
                   f"0.03 every measured run reached), ratio batch {large_batch} / batch {small_batch}, the large batch "
                   f"under the linear rule ({rule}: the rate scaled with the batch, so the noise scale is equal)",
                   ours, "Kaur, Cohen and Lipton 2023: scaling the batch and the rate together moves lambda_max "
                         "without changing generalisation; Andriushchenko et al. 2023: sharpness tracks the rate",
                   _join(evidence_note(ratio, lo, hi, n, log=True), minima.unusable_note(trained)))


def best_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (batch size, seed) of the learning-rate search trained to its minimum: the rate whose smoothed minimum
    validation loss is lowest, that minimum, and whether the rate lies on the edge of the searched grid."""
    tuned = runs[(runs.get("notebook") == "04_closing_the_gap") & (runs.get("remedy") == "tuned")] \
        if "remedy" in runs else runs.iloc[0:0]
    if tuned.empty or "stopped_by" not in tuned:
        return pd.DataFrame()
    tuned = tuned[(tuned["stopped_by"] != "target") & ~tuned.get("pruned", pd.Series(False, index=tuned.index))
                  .fillna(False).astype(bool)]
    rows = []
    for (batch, seed), g in tuned.groupby(["batch_size", "seed"]):
        ok = _usable_seeds(g)
        grid = sorted(g["lr_used"].unique())
        if ok.empty or ok["min_val_loss"].isna().all():
            continue
        best = ok.loc[ok["min_val_loss"].idxmin()]
        rows.append({"batch_size": int(batch), "seed": int(seed), "status": "ok", "best_lr": float(best["lr_used"]),
                     "min_val_loss": float(best["min_val_loss"]), "censored": bool(best.get("censored", False)),
                     "on_edge": len(grid) < 3 or best["lr_used"] in (grid[0], grid[-1]),
                     "grid": ", ".join(f"{x:g}" for x in grid)})
    return pd.DataFrame(rows)


def tuned_rates(runs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256, confidence: float = 0.95,
                band: tuple = (0.95, 1.05)) -> Verdict:
    """C15, the article's conclusion and the Tuning Playbook's null: each batch size at its own best learning rate
    (the search's grid, each run trained to its smoothed minimum), the smoothed minimum validation loss large over
    small; supported when its interval lies within ``band`` (an equivalence), not supported when wholly outside.
    A best rate on its grid's edge means the grid was too narrow: the verdict is then inconclusive."""
    best = best_rates(runs)
    if best.empty:
        return _empty("C15", "needs the learning-rate search (04, tuned) trained to its minimum (a profile patience "
                             "for the search): a search that stops at the target says nothing about the best minimum")
    small, large, notes = choose_pair(best, small_batch, large_batch)
    pairs = paired(best, "min_val_loss", small, large)
    ratio = pairs["large"] / pairs["small"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    verdict = decide_within(lo, hi, *band, n)
    edges = best[best["on_edge"] & best["batch_size"].isin([small, large])]
    if len(edges):
        verdict = INCONCLUSIVE
        notes.append("best learning rate on the edge of the searched grid, so the grid was too narrow: " + "; ".join(
            f"batch {r.batch_size} seed {r.seed} (lr {r.best_lr:g} of {r.grid})" for r in edges.itertuples()))
    rho, tlo, thi, _ = rank_trend(best, "min_val_loss", confidence)
    by_batch = best.groupby("batch_size").agg(loss=("min_val_loss", "mean"), lr=("best_lr", "median"))
    v = Verdict("C15", verdict, effect, lo, hi, n, STATEMENTS["C15"],
                f"smoothed minimum validation loss at each batch size's own best learning rate (a factor-2 grid, each "
                f"run trained to its minimum), ratio batch {large} / batch {small} (supported within "
                f"[{band[0]:g}, {band[1]:g}])",
                "per batch size, mean minimum at the median best rate: " + "; ".join(
                    f"batch {b} {r.loss:.3f} (lr {r.lr:g})" for b, r in by_batch.iterrows())
                + f"; rank correlation with the batch size {_fmt(rho)} [{_fmt(tlo)}, {_fmt(thi)}]",
                "the article: with the rate adjusted, large batches train faster at little or no loss; Shallue et "
                "al. 2019 and the Tuning Playbook: no evidence that larger batches degrade the best result",
                _join(*notes, evidence_note(ratio, lo, hi, n, log=True)))
    censored = {f"batch {b}": sorted(int(s) for s in best.loc[(best["batch_size"] == b) & best["censored"], "seed"])
                for b in (small, large)}
    return _censor(v, "greater", censored, "both" if any(censored.values()) else None)


def distance(runs: pd.DataFrame, steps: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
             confidence: float = 0.95, reading: "Reading | None" = None) -> Verdict:
    """C7: ||w - w_0|| at the weights of the smoothed minimum, large over small (the law of growth is C13); at equal
    steps (the fewer of the two runs' steps to their minimum) beside it.

    ``runs`` is read by :func:`bsnb.minima.read_runs`; the distance at a step is interpolated between the steps
    the run logged (log-spaced).
    """
    reading = reading or PROTOCOL
    comparison, group_note = comparison_runs(runs)
    if comparison.empty or steps.empty or "step_of_min_val_loss" not in comparison:
        return _empty("C7", "no sampled steps in the store")
    small, large, notes = choose_pair(comparison, small_batch, large_batch)
    c = _usable_seeds(comparison[comparison["batch_size"].isin([small, large])])
    c = c.assign(run=minima.run_labels(c))
    key = pd.MultiIndex.from_frame(c[["job_id", "run"]])
    c = c.assign(distance_at_min=minima.value_at_step(steps, "distance", pd.Series(
        c["step_of_min_val_loss"].to_numpy(float), index=key)).reindex(key).to_numpy())
    smoothing = (f"smoothed over {reading.smoothing} evaluated epochs" if reading.smoothing > 1 else "raw")
    v = _ratio_verdict("C7", paired(c, "distance_at_min", small, large), "less", confidence,
                       f"distance from initialisation at the weights of the minimum validation loss ({smoothing}; "
                       f"interpolated between logged steps), ratio batch {large} / batch {small}",
                       published="Keskar et al. 2017: small-batch minima lie 3 to 10 times farther from the start "
                                 "(a ratio of 0.1 to 0.33)",
                       note=_join(group_note, *notes, minima.unusable_note(comparison[comparison["batch_size"].isin(
                           [small, large])])))
    # at equal steps: both runs at the fewer of their two steps to the minimum
    both = paired(c, "step_of_min_val_loss", small, large)
    if len(both):
        at = both.min(axis=1)
        equal = c[c["seed"].isin(at.index)].drop_duplicates(["batch_size", "seed"])
        key = pd.MultiIndex.from_frame(equal[["job_id", "run"]])
        equal = equal.assign(distance=minima.value_at_step(steps, "distance", pd.Series(
            equal["seed"].map(at).to_numpy(float), index=key)).reindex(key).to_numpy())
        v.ours += (f"; at equal steps (the fewer of the two runs' steps to their minimum, {at.mean():.0f} on "
                   f"average) {_ratio_text(paired(equal, 'distance', small, large), confidence)}")
    return v


def minimum_steps(runs: pd.DataFrame) -> pd.Series:
    """Per (job_id, run) of the comparison's usable runs, the step of the smoothed minimum (C13 fits up to it)."""
    c = _usable_seeds(comparison_runs(runs)[0])
    if c.empty or "step_of_min_val_loss" not in c:
        return pd.Series(dtype=float)
    return pd.Series(c["step_of_min_val_loss"].to_numpy(float),
                     index=pd.MultiIndex.from_arrays([c["job_id"], minima.run_labels(c)]))


def distance_law(laws: pd.DataFrame, confidence: float = 0.95) -> Verdict:
    """C13: log(t) against sqrt(t), out of sample, fitted up to each run's smoothed minimum: per seed, the mean over
    batch sizes of the difference of the held-out errors (log minus sqrt, relative to the last fitted distance);
    supported when its interval is below 0. Each batch size's own interval is reported beside it.

    ``laws`` is :func:`bsnb.analysis.distance_laws` of the empirical-comparison runs.
    """
    if laws.empty:
        return _empty("C13", "no sampled steps in the store")
    per_seed = laws.groupby("seed")["rmse_diff"].mean()
    effect, lo, hi, n = interval(per_seed, confidence)
    c = laws.groupby("batch_size")["exponent"].median()
    by_batch = []
    for b, g in laws.groupby("batch_size"):
        e, blo, bhi, bn = interval(g["rmse_diff"], confidence)
        side = "log" if bhi < 0 else "sqrt" if blo > 0 else "neither"
        by_batch.append(f"batch {int(b)} {_fmt(e)} [{_fmt(blo)}, {_fmt(bhi)}] ({side})")
    return Verdict("C13", decide(lo, hi, 0.0, "less", n), effect, lo, hi, n, STATEMENTS["C13"],
                   "held-out error of distance = a + b log(t) minus that of a + b sqrt(t), relative to the last fitted "
                   "distance, fitted on the first share of the logged steps from the end of the first epoch to the "
                   "smoothed minimum and scored on the rest, mean over batch sizes (< 0: the log law predicts better)",
                   "per batch size (which law predicts better): " + "; ".join(by_batch)
                   + "; median exponent c of a + b t^c (0: logarithmic, 0.5: random walk): " + ", ".join(
                       f"batch {int(b)} {x:.2f}" for b, x in c.items()),
                   "Hoffer et al. 2017: ||w_t - w_0|| grows like log(t), an ultra-slow diffusion",
                   evidence_note(per_seed, lo, hi, n))


def noise_growth(seeds: pd.DataFrame, confidence: float = 0.95, reading: "Reading | None" = None) -> Verdict:
    """C14: the rank correlation of the exact B_simple (per-example gradients, notebook 01) with -log(level) over
    the training-loss levels from 1 down to the lowest every seed reached, pooled over seeds (Fisher interval);
    supported when the interval lies above 0 (it grows as the loss falls), not supported when below.

    At each level, tr(Sigma) and |G|^2 are each summed over the window of the checkpoint where the training loss
    first fell to it and the next ``reading.window - 1`` evaluated epochs (``results.windowed_b_simple``). The
    start (the initial weights) is not a level: there |G|^2 is large and B_simple an artefact of the
    initialisation; it is shown beside the trend.
    """
    reading = reading or PROTOCOL
    r = seeds[seeds["notebook"] == "01_what_is_batch_size"] if "notebook" in seeds else seeds.iloc[0:0]
    if r.empty or "b_simple" not in r:
        return _empty("C14", "no exact gradient-noise measurements (notebook 01) in the store")
    batch = int(r["batch_size"].iloc[0])
    r = windowed_b_simple(r, reading.window)
    n_seeds = r["seed"].nunique()
    levels = [lv for lv in C1_LEVELS if r.loc[r["checkpoint"] == level_checkpoint(lv), "seed"].nunique() == n_seeds]
    if len(levels) < 3:
        return _empty("C14", f"fewer than 3 training-loss levels of {', '.join(f'{x:g}' for x in C1_LEVELS)} were "
                             f"reached and measured in every seed ({', '.join(f'{x:g}' for x in levels) or 'none'})")
    at = r[r["checkpoint"].isin([level_checkpoint(lv) for lv in levels])]
    at = at.assign(neg_log_level=-np.log(at["checkpoint"].map(_level_of)))
    rho, lo, hi, n = rank_trend(at, "b_simple", confidence, by="neg_log_level")
    verdict = INCONCLUSIVE if not (math.isfinite(lo) and math.isfinite(hi)) or n_seeds < MIN_SEEDS else (
        SUPPORTED if lo > 0 else NOT_SUPPORTED if hi < 0 else INCONCLUSIVE)
    trend = "; ".join(f"loss {lv:g}: {at.loc[at['checkpoint'] == level_checkpoint(lv), 'b_simple'].mean():.3g}"
                      for lv in levels)
    start = r[r["checkpoint"] == "initial"]
    return Verdict("C14", verdict, rho, lo, hi, n_seeds, STATEMENTS["C14"],
                   f"rank correlation (Spearman, pooled over {n_seeds} seeds and {len(levels)} levels, Fisher "
                   f"interval) of B_simple = tr(Sigma)/|G|^2 from per-example gradients with -log(training-loss level),"
                   f" over the levels 1 down to {min(levels):g} (the lowest every seed reached), batch {batch} run; "
                   f"{_window_text(at, reading.window)}",
                   f"mean B_simple along the falling loss, {trend}"
                   + (f"; at the start (training loss {start['train_loss'].mean():.3g}, not a level) "
                      f"{start['b_simple'].mean():.3g}" if len(start) else "") + f" (means of {n_seeds} seeds)",
                   "McCandlish et al. 2018: the noise scale grows by orders of magnitude as the loss falls "
                   "(MNIST: B_simple 50 to 900)",
                   "" if n_seeds >= MIN_SEEDS else f"only {n_seeds} seeds: a verdict needs at least {MIN_SEEDS}")


def _window_text(windows: pd.DataFrame, size: int = 3) -> str:
    """How the windows' tr(Sigma) and |G|^2 were averaged, and how many were cut short by the end of training."""
    short = int((windows["measured"] < size).sum())
    if size <= 1:
        return "tr(Sigma) and |G|^2 at that epoch alone"
    return (f"tr(Sigma) and |G|^2 each summed over that epoch and the next {size - 1} evaluated ones"
            + (f"; {short} window(s) cut short by the end of training" if short else ""))


def comparison_runs(seeds: pd.DataFrame, notebook: str = "02_empirical_comparison") -> tuple[pd.DataFrame, str]:
    """The runs of one fixed setting that differ only in batch size (the largest such group)."""
    r = seeds[seeds["notebook"] == notebook] if "notebook" in seeds else seeds
    keys = [k for k in parameters.SETTING if k != "batch_size" and k in r]
    if r.empty or not keys:
        return r, ""
    groups = r.groupby(keys, dropna=False)
    if groups.ngroups == 1:
        return r, ""
    best_key = max(groups.groups, key=lambda k: (r.loc[groups.groups[k], "batch_size"].nunique(),
                                                 len(groups.groups[k])))
    chosen = groups.get_group(best_key)
    desc = ", ".join(f"{k}={v}" for k, v in zip(keys, best_key))
    return chosen, f"the store holds {groups.ngroups} settings; compared the one with most batch sizes ({desc})"


def paired(seeds: pd.DataFrame, column: str, small: int, large: int) -> pd.DataFrame:
    """Per-seed values of ``column`` for the small and the large batch, seeds present in both."""
    ok = seeds[seeds["status"].isna() | (seeds["status"] == "ok")] if "status" in seeds else seeds
    if column not in ok:
        return pd.DataFrame(columns=["small", "large"])
    wide = ok.pivot_table(index="seed", columns="batch_size", values=column, aggfunc="first")
    if small not in wide or large not in wide:
        return pd.DataFrame(columns=["small", "large"])
    return wide[[small, large]].dropna().set_axis(["small", "large"], axis=1)


def _join(*notes) -> str:
    return "; ".join(n for n in notes if n)


def evidence_note(values, lo: float, hi: float, n: int, log: bool = False) -> str:
    """What the interval could not use, and why it cannot decide (if it cannot)."""
    return _join(dropped_note(values, log), evidence_problem(lo, hi, n))


def _ratio_verdict(claim, pairs, direction, confidence, measure, fmt="{:.3f}", published="", note=""):
    ratio = pairs["large"] / pairs["small"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    ours = (f"small {fmt.format(pairs['small'].mean())}, large {fmt.format(pairs['large'].mean())} "
            f"(mean of {n} seeds)") if n else "no paired seeds"
    return Verdict(claim, decide(lo, hi, 1.0, direction, n), effect, lo, hi, n, STATEMENTS[claim], measure,
                   ours, published, _join(note, evidence_note(ratio, lo, hi, n, log=True)))


def censored_seeds(seeds: pd.DataFrame, batch: int) -> list:
    """Seeds of ``batch`` whose minimum validation loss the budget ended before confirming (STUDY.md's censoring).

    Runs record it as ``censored`` (the cap came before the patience ran out); older runs without
    the column count a minimum on the last trained epoch.
    """
    r = seeds[(seeds["batch_size"] == batch) & ((seeds["status"] == "ok") if "status" in seeds else True)]
    if "censored" in r and r["censored"].notna().all():
        flags = r["censored"].astype(bool)
    else:
        flags = r["epoch_of_min_val_loss"] >= r["epochs_run"]
    return sorted(int(s) for s in r.loc[flags, "seed"])


C1_LEVELS = parameters.MATCHED_LEVELS  # STUDY.md v3: the training-loss levels C1, C6 and C14 match runs at


def epochs_to_level(epochs: pd.DataFrame, level: float) -> pd.Series:
    """Per (job_id, seed), the first evaluated epoch whose training loss is at or below ``level`` (NaN if never)."""
    ep = epochs[(epochs["epoch"] > 0) & epochs["train_loss"].notna()]
    first = ep[ep["train_loss"] <= level].groupby(["job_id", "seed"])["epoch"].min()
    return first.reindex(ep.groupby(["job_id", "seed"]).size().index)


def shifted_level(reached: list, shift: int = 0, levels=C1_LEVELS) -> float | None:
    """The lowest of ``reached`` (levels every run reached) moved by ``shift`` places among ``levels`` (-1: the
    next higher level, +1: the next lower); None when there is none, or the shifted level was not reached by all."""
    if not reached:
        return None
    i = levels.index(reached[-1]) + shift
    return levels[i] if 0 <= i < len(levels) and levels[i] in reached else None


def common_level(epochs: pd.DataFrame, levels=C1_LEVELS, shift: int = 0) -> tuple[float | None, list[float]]:
    """The lowest of ``levels`` that every run in ``epochs`` reached, moved by ``shift`` places (-1: the next
    higher level, +1: the next lower); None when no level (or no shifted level) was reached by all. Also returns
    every level all of them reached."""
    reached = [lv for lv in levels if len(epochs) and epochs_to_level(epochs, lv).notna().all()]
    return shifted_level(reached, shift, levels), reached


def compared_epoch(epochs: pd.DataFrame, seeds: pd.DataFrame, small: int, large: int, c1_epoch: int = 0) -> int:
    """The last epoch that every compared run trained (``c1_epoch`` when given)."""
    if c1_epoch > 0:
        return c1_epoch
    ids = seeds.loc[seeds["batch_size"].isin([small, large]), "job_id"]
    ep = epochs[epochs["job_id"].isin(ids) & epochs["train_loss"].notna()]
    return int(ep.groupby(["job_id", "seed"])["epoch"].max().min()) if len(ep) else 0


def _usable_seeds(seeds: pd.DataFrame) -> pd.DataFrame:
    return seeds[seeds["status"].isna() | (seeds["status"] == "ok")] if "status" in seeds else seeds


def empirical(seeds: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
              c1_level: float = 0.0, confidence: float = 0.95, timing: pd.DataFrame | None = None,
              reading: "Reading | None" = None) -> list[Verdict]:
    """Verdicts of C1-C4 from the empirical-comparison runs, read by :func:`bsnb.minima.read_runs` (smoothed
    minima; failed runs marked); C3 from ``timing`` (:func:`bsnb.timing.interleaved_epochs`, measured alone) when
    given, else from the runs' own timings, labelled descriptive."""
    reading = reading or PROTOCOL
    seeds, group_note = comparison_runs(seeds)
    if seeds.empty:
        return [_empty(c, "no empirical-comparison runs in the store") for c in ("C1", "C2", "C3", "C4")]
    small, large, notes = choose_pair(seeds, small_batch, large_batch)
    pair = f"batch {large} / batch {small}"
    notes = ([group_note] if group_note else []) + notes
    left_out = minima.unusable_note(seeds[seeds["batch_size"].isin([small, large])])
    if left_out:
        notes.append(left_out)
    base_note = "; ".join(notes)
    censored = {f"batch {small}": censored_seeds(seeds, small), f"batch {large}": censored_seeds(seeds, large)}
    smoothing = (f"smoothed over {reading.smoothing} evaluated epochs" if reading.smoothing > 1
                 else "raw, unsmoothed")
    out = []

    # C1: epochs to first reach a training-loss level, the lowest that every compared run reached
    usable = _usable_seeds(seeds)
    compared = usable[usable["batch_size"].isin([small, large])]
    ep = epochs[epochs["job_id"].isin(compared["job_id"])] if len(epochs) else epochs
    if len(ep):
        ep = ep.merge(compared[["job_id", "seed"]], on=["job_id", "seed"])
    level, reached = ((c1_level, [c1_level]) if c1_level > 0 else common_level(ep, shift=reading.level_shift))
    if level is None or ep.empty:
        why = ("no training-loss level of " + ", ".join(f"{x:g}" for x in C1_LEVELS) + " was reached by every "
               "compared run" if not reached else f"the level {reading.level_shift:+d} place(s) from the lowest one "
               "every compared run reached was not reached by all")
        out.append(_empty("C1", _join(base_note, why)))
    else:
        first = epochs_to_level(ep, level).rename("epochs_to_level").reset_index()
        first = first.merge(compared[["job_id", "seed", "batch_size"]], on=["job_id", "seed"]).assign(status="ok")
        v = _ratio_verdict("C1", paired(first, "epochs_to_level", small, large), "greater", confidence,
                           f"epochs to first reach training loss {level:g} (the lowest of "
                           f"{', '.join(f'{x:g}' for x in C1_LEVELS)} that every compared run reached), ratio {pair}",
                           fmt="{:.1f}",
                           published="article: the large batch's training loss falls more slowly per epoch (figure, "
                                     "no number)", note=base_note)
        out.append(v)

    # C2: minimum of the smoothed validation loss; a censored large batch can only have made the ratio larger
    published = (f"article: {ARTICLE['min_val_loss'][32]} (batch 32) vs {ARTICLE['min_val_loss'][256]} (batch 256), "
                 f"ratio {ARTICLE['min_val_loss'][256] / ARTICLE['min_val_loss'][32]:.2f}")
    v = _ratio_verdict("C2", paired(seeds, "min_val_loss", small, large), "greater", confidence,
                       f"minimum validation loss ({smoothing}), ratio {pair}", published=published, note=base_note)
    raw = paired(seeds, "min_val_loss_raw", small, large)
    if len(raw):
        v.ours += f"; raw minima {_ratio_text(raw, confidence)}"
    rho, lo, hi, n = rank_trend(usable[usable["batch_size"] >= small], "min_val_loss", confidence)
    if math.isfinite(rho):
        v.ours += (f"; rank correlation with the batch size over batches "
                   f"{', '.join(str(int(b)) for b in sorted(usable.loc[usable['batch_size'] >= small, 'batch_size'].unique()))}"
                   f" {_fmt(rho)} [{_fmt(lo)}, {_fmt(hi)}]")
    out.append(_censor(v, "greater", censored, censoring_bias(bool(censored[f"batch {large}"]),
                                                               bool(censored[f"batch {small}"]))))

    # C3: seconds per epoch, from a timing that ran alone (interleaved repeats, paired by repeat)
    published = "article: larger batches take less time per epoch (figure, no number)"
    if timing is not None and {small, large} <= set(timing.get("batch_size", [])):
        t = timing.rename(columns={"repeat": "seed"}).assign(status="ok")
        v = _ratio_verdict("C3", paired(t, "seconds_per_epoch", small, large), "less", confidence,
                           f"seconds per training epoch, ratio {pair}, timed alone after the sweep on "
                           f"{int(t['threads'].iloc[0])} thread(s) ({t['device'].iloc[0]}), every batch size of the "
                           f"comparison in turn; 'seeds' counts the repeats", published=published, note=base_note)
    else:
        v = _ratio_verdict("C3", paired(seeds, "seconds_per_epoch", small, large), "less", confidence,
                           f"seconds per training epoch (median over epochs), ratio {pair}", published=published,
                           note=_join(base_note, "descriptive only: timed inside the sweep, while other jobs shared "
                                                 "the machine; no timing that ran alone is in the store"))
        v.verdict = INCONCLUSIVE
    eps = paired(seeds, "examples_per_second", small, large)
    if len(eps):
        v.ours += f"; in the sweep's runs, examples/s small {eps['small'].mean():,.0f}, large {eps['large'].mean():,.0f}"
    out.append(v)

    # C4: epoch of the smoothed minimum, large - small. A censored large batch's true epoch is later (the
    # difference is understated), a censored small batch's overstates it.
    pairs = paired(seeds, "epoch_of_min_val_loss", small, large)
    diff = pairs["large"] - pairs["small"]
    effect, lo, hi, n = interval(diff, confidence)
    v = Verdict("C4", decide(lo, hi, 0.0, "at_least", n), effect, lo, hi, n, STATEMENTS["C4"],
                f"epoch of the minimum validation loss ({smoothing}), difference batch {large} - batch {small}",
                f"small {pairs['small'].mean():.1f}, large {pairs['large'].mean():.1f} epochs (mean of {n} seeds)"
                if n else "no paired seeds",
                "article: larger batches do not reach their minimum in fewer epochs",
                _join(base_note, evidence_note(diff, lo, hi, n)))
    out.append(_censor(v, "at_least", censored, censoring_bias(bool(censored[f"batch {small}"]),
                                                                bool(censored[f"batch {large}"]))))
    return out


def gap_by_budget(seeds: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                  confidence: float = 0.95) -> pd.DataFrame:
    """C2's ratio as a function of the budget: per epoch k, the minimum validation loss over epochs 1..k of the
    large batch over the small batch's, geometric mean and interval over seeds (a run that stopped keeps its
    minimum)."""
    seeds, _ = comparison_runs(seeds)
    if seeds.empty:
        return pd.DataFrame()
    small, large, _ = choose_pair(seeds, small_batch, large_batch)
    ids = seeds[seeds["batch_size"].isin([small, large]) & (seeds["status"] == "ok")]["job_id"]
    ep = epochs[epochs["job_id"].isin(ids) & (epochs["epoch"] > 0)][["batch_size", "seed", "epoch", "val_loss"]]
    if ep.empty:
        return pd.DataFrame()
    wide = ep.pivot_table(index="epoch", columns=["batch_size", "seed"], values="val_loss").sort_index()
    if not {small, large} <= set(wide.columns.get_level_values(0)):  # one of the pair has no usable run
        return pd.DataFrame()
    best = wide.ffill().cummin()
    rows = []
    for k, row in best.iterrows():
        ratio = [row[(large, s)] / row[(small, s)] for s in sorted(set(wide[large].columns) & set(wide[small].columns))]
        effect, lo, hi, n = interval(ratio, confidence, log=True)
        rows.append({"epoch": int(k), "ratio": effect, "ci_low": lo, "ci_high": hi, "seeds": n,
                     "small_batch": small, "large_batch": large})
    return pd.DataFrame(rows)


def learning_rate_check(seeds: pd.DataFrame, small_batch: int = 32) -> str:
    """Whether the comparison's one learning rate is the small batch's best in the learning-rate search (fewest
    steps to the target, the most common best over seeds), said in a sentence computed from the store."""
    comparison, _ = comparison_runs(seeds)
    if comparison.empty or "remedy" not in seeds:
        return ""
    lr = float(comparison["lr"].iloc[0])
    best = best_rates(seeds)
    best = best[best["batch_size"] == small_batch] if len(best) else best
    if len(best):  # STUDY.md: the small batch's best rate by smoothed minimum validation loss
        mode = float(best["best_lr"].mode().iloc[0])
        agree = int(np.isclose(best["best_lr"], lr).sum())
        edge = " (on the edge of its grid: the grid was too narrow)" if best["on_edge"].any() else ""
        if math.isclose(mode, lr, rel_tol=1e-9):
            return (f"the comparison's learning rate {lr:g} is the batch-{small_batch} best of the learning-rate search "
                    f"(lowest smoothed minimum validation loss) in {agree} of {len(best)} seeds{edge}")
        return (f"the comparison's learning rate {lr:g} is NOT the batch-{small_batch} best of the learning-rate search "
                f"by smoothed minimum validation loss ({mode:g}, in {int((best['best_lr'] == mode).sum())} of "
                f"{len(best)} seeds){edge}: the comparison may be unfair to the small batch")
    tuned = seeds[(seeds["notebook"] == "04_closing_the_gap") & (seeds["remedy"] == "tuned")
                 & (seeds["batch_size"] == small_batch)]
    reached = tuned[tuned["reached_target"] == True] if "reached_target" in tuned else tuned.iloc[0:0]  # noqa: E712
    if reached.empty:
        return (f"the comparison's learning rate {lr:g} is not checked: the learning-rate search has no batch-"
                f"{small_batch} run that reached its target")
    best = reached.loc[reached.groupby("seed")["steps_to_target"].idxmin(), "lr_used"]
    mode = float(best.mode().iloc[0])
    if math.isclose(mode, lr, rel_tol=1e-9):
        return (f"the comparison's learning rate {lr:g} is the batch-{small_batch} best of the learning-rate search "
                f"(fewest steps to validation loss {tuned['target_loss'].iloc[0]:g}) in {int((best == lr).sum())} of "
                f"{len(best)} seeds")
    return (f"the comparison's learning rate {lr:g} is NOT the batch-{small_batch} best of the learning-rate search "
            f"({mode:g}): the comparison may be unfair to the small batch")


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def conclusions(verdicts: list[Verdict]) -> str:
    """One generated line per claim: verdict, effect and interval, and the published figure."""
    lines = []
    for v in verdicts:
        line = (f"{v.claim} {v.verdict.upper()}: {v.statement}. Measured {v.measure}: {_fmt(v.effect)} "
                f"[{_fmt(v.ci_low)}, {_fmt(v.ci_high)}] over {v.seeds} seed{'s' if v.seeds != 1 else ''}.")
        if v.published:
            line += f" Published: {v.published}."
        if v.note:
            line += f" Note: {v.note}."
        lines.append(line)
    return "\n".join(lines)


def table(verdicts: list[Verdict]) -> pd.DataFrame:
    """The verdicts as a table, in the order of the claims (C1, C2, ..., C11)."""
    rows = sorted(({**asdict(v), "rule": v.rule or CLAIMS[v.claim].rule} for v in verdicts),
                  key=lambda r: int(r["claim"][1:]))
    return pd.DataFrame(rows, columns=COLUMNS)


def save(verdicts: list[Verdict], path) -> pd.DataFrame:
    """Write ``claims.csv`` (atomically) and return the table."""
    from bsnb.results import write_atomic

    df = table(verdicts)
    write_atomic(path, df.to_csv(index=False))
    return df


# ------------------------------------------------------------------------------------------------
# closing the gap (04)

# a remedy run matches its baselines on the setting it does not change (a remedy may change the budget,
# the batch norm and the patience)
SETTING_MATCH = tuple(k for k in parameters.SETTING
                      if k not in ("batch_size", "batch_norm", "budget", "epochs", "steps", "patience"))


def _baseline(seeds: pd.DataFrame, like: pd.Series, batch: int) -> pd.DataFrame:
    """The article-setting runs (02: the same learning rate) of ``batch`` matching ``like``'s setting."""
    base = seeds[(seeds["notebook"] == "02_empirical_comparison") & (seeds["batch_size"] == batch)]
    for key in SETTING_MATCH:
        if key in base and key in like:
            base = base[base[key] == like[key]]
    return base[base["status"] == "ok"]


def remedy_table(seeds: pd.DataFrame, small_batch: int = 32, confidence: float = 0.95,
                 distances: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (large batch, remedy): its minimum validation loss, the share of the gap it closes, its cost.

    The gap is the article's: minimum validation loss of the large batch minus the small batch's,
    both at the small batch's learning rate (the 02 runs, each trained to its minimum). A remedy's
    share is (large baseline - large with the remedy) / gap, per seed, with a Student-t interval
    over seeds: 1 closes the gap, 0 does nothing, below 0 makes it worse. The cost is the remedy's
    training time over the large baseline's. The ``censored_*`` columns list the seeds whose
    minimum the budget ended before confirming. ``distances`` (from :func:`bsnb.analysis.log_fits`)
    adds the final distance from initialisation.
    """
    if "remedy" not in seeds:
        return pd.DataFrame()
    # the share of a gap is defined above the small batch only (C9's and C12's arms at the small batch are read
    # by their own claims)
    rem = seeds[(seeds["notebook"] == "04_closing_the_gap") & (seeds["remedy"] != "tuned")
                & (seeds["batch_size"] != small_batch)]
    rows = []
    for (batch, remedy), g in rem.groupby(["batch_size", "remedy"]):
        large, small = _baseline(seeds, g.iloc[0], batch), _baseline(seeds, g.iloc[0], small_batch)
        ok = g[g["status"] == "ok"]
        per = pd.DataFrame({"remedy": ok.set_index("seed")["min_val_loss"],
                            "large": large.set_index("seed")["min_val_loss"],
                            "small": small.set_index("seed")["min_val_loss"]}).dropna()
        share = (per["large"] - per["remedy"]) / (per["large"] - per["small"])
        mean, lo, hi, n = interval(share, confidence)
        cost = ok["train_seconds"].mean() / large["train_seconds"].mean() if len(large) else math.nan
        row = {"batch_size": int(batch), "remedy": remedy, "small_batch": small_batch, "seeds": n,
               "min_val_loss": ok["min_val_loss"].mean(),
               "baseline_large": per["large"].mean() if n else math.nan,
               "baseline_small": per["small"].mean() if n else math.nan,
               "gap_closed": mean, "ci_low": lo, "ci_high": hi, "train_seconds": ok["train_seconds"].mean(),
               "steps": ok["steps_run"].mean(), "small_steps": small["steps_run"].mean() if len(small) else math.nan,
               "cost_vs_baseline": cost, "diverged": int((g["status"] == "diverged").sum()),
               "failed": int((g["status"] == minima.FAILED).sum()), "tried": int(g["seed"].nunique()),
               "lr": float(g["lr_used"].iloc[0]) if "lr_used" in g else math.nan,
               "left_out": _join(minima.unusable_note(g), minima.unusable_note(large), minima.unusable_note(small)),
               "censored_remedy": censored_seeds(ok, batch), "censored_large": censored_seeds(large, batch),
               "censored_small": censored_seeds(small, small_batch),
               "evidence": evidence_note(share, lo, hi, n)}
        if distances is not None and len(distances):
            d = distances[distances["job_id"].isin(g["job_id"])]
            row["final_distance"] = d["final_distance"].mean() if len(d) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _share_verdict(claim: str, table: pd.DataFrame, remedy: str, large_batch: int, published: str,
                   null: float, direction: str, rule: str, also: tuple = ()) -> Verdict:
    """A claim on the share of the gap a remedy closes: supported when the interval's lower end passes ``null``."""
    rows = table[table["remedy"] == remedy] if len(table) else table
    if rows.empty:
        return _empty(claim, f"no runs of the remedy {remedy!r} in the store (the profile does not include it)")
    row = (rows[rows["batch_size"] == large_batch] if large_batch in set(rows["batch_size"]) else rows).iloc[0]
    v = Verdict(claim, decide(row.ci_low, row.ci_high, null, direction, row.seeds),
                row.gap_closed, row.ci_low, row.ci_high, int(row.seeds), STATEMENTS[claim],
                f"share of the batch-{int(row.batch_size)} gap closed by {remedy} (1: all of it; {rule})",
                f"min validation loss {row.min_val_loss:.3f} with {remedy}, {row.baseline_large:.3f} without, "
                f"{row.baseline_small:.3f} at batch {int(row.small_batch)}; training time x{row.cost_vs_baseline:.2f}",
                published, _join(row.evidence, row.get("left_out", "")))
    unusable = int(row.get("failed", 0)) + int(row.get("diverged", 0))
    if unusable and unusable * 2 > int(row.get("tried", 0)):
        v.note = _join(f"{remedy}'s learning rate {row.get('lr', math.nan):.3g} at batch {int(row.batch_size)} failed "
                       f"to train or diverged in {unusable} of {int(row.tried)} seeds: the remedy does not work at "
                       "this rate", v.note)
    for other in also:
        o = table[(table["remedy"] == other) & (table["batch_size"] == row.batch_size)]
        if len(o):
            o = o.iloc[0]
            v.ours += f"; {other} closes {_fmt(o.gap_closed)} [{_fmt(o.ci_low)}, {_fmt(o.ci_high)}]"
    # a censored remedy run can only have understated the share; a censored small batch overstated it;
    # a censored large baseline moves both the gain and the gap, either way
    censored = {f"{remedy} at batch {int(row.batch_size)}": row.censored_remedy,
                f"batch {int(row.small_batch)}": row.censored_small,
                f"batch {int(row.batch_size)} without the remedy": row.censored_large}
    bias = censoring_bias(bool(row.censored_small) or bool(row.censored_large),
                          bool(row.censored_remedy) or bool(row.censored_large))
    return _censor(v, direction, censored, bias)


def _censor(v: Verdict, direction: str, censored: dict, bias: str | None) -> Verdict:
    named = [f"{label} in seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
             for label, seeds in censored.items() if len(seeds)]
    if not named:
        return v
    verdict = withdraw_if_censored(v.verdict, direction, bias)
    note = "censored (the budget ended before the minimum was confirmed): " + "; ".join(named)
    if verdict != v.verdict:
        note += (f"; the interval says {v.verdict}, but censoring can only have pushed the effect that way, so the "
                 "verdict is inconclusive: a longer budget decides it")
    v.verdict, v.note = verdict, _join(v.note, note)
    return v


def closing(table: pd.DataFrame, seeds: pd.DataFrame, large_batch: int = 256, confidence: float = 0.95,
            small_batch: int = 32) -> list[Verdict]:
    """C8 (linear rule with warm-up; square root beside it), C9 (Hoffer's regime adaptation, three arms), C10
    (ghost against plain BN, both with the square-root rule; BN at the small batch beside it) and C12 (Smith's
    batch growth against learning-rate decay, with the constant rate as the control)."""
    rem = seeds[(seeds["notebook"] == "04_closing_the_gap")] if "remedy" in seeds else pd.DataFrame(
        columns=["remedy", "batch_size", "seed", "min_val_loss", "status", "notebook"])
    out = [_share_verdict("C8", table, "linear_warmup", large_batch, GOYAL, 0.5, "greater",
                          "'most' means a lower end > 0.5", also=("sqrt", "linear")),
           regime_adaptation(rem, small_batch, large_batch, confidence)]
    v = _paired_remedies(rem[rem["status"] == "ok"], "C10", "bn", "ghost_bn", large_batch, confidence)
    small_bn = rem[(rem["remedy"] == "bn") & (rem["batch_size"] == small_batch) & (rem["status"] == "ok")]
    if len(small_bn):
        v.ours += f"; plain BN at batch {small_batch} {small_bn['min_val_loss'].mean():.3f}"
    v.note = _join(v.note, minima.unusable_note(rem[rem["remedy"].isin(["bn", "ghost_bn"])]))
    out.append(v)
    out.append(batch_growth(rem, small_batch, confidence))
    return out


def _arm(rem: pd.DataFrame, remedy: str, batch: int) -> pd.DataFrame:
    return rem[(rem["remedy"] == remedy) & (rem["batch_size"] == batch)]


def _paired_remedies(rem: pd.DataFrame, claim: str, first: str, second: str, large_batch: int,
                     confidence: float) -> Verdict:
    """C10: plain minus ghost batch norm at the large batch, both with the square-root rule (> 0: ghost helps)."""
    a, b = rem[rem["remedy"] == first], rem[rem["remedy"] == second]
    sizes = sorted(set(a["batch_size"]) & set(b["batch_size"]))
    if not sizes:
        return _empty(claim, f"no pair of {first} and {second} runs that finished at one batch size in the store")
    batch = large_batch if large_batch in sizes else sizes[-1]
    a, b = a[a["batch_size"] == batch], b[b["batch_size"] == batch]
    pair = pd.DataFrame({"a": a.set_index("seed")["min_val_loss"], "b": b.set_index("seed")["min_val_loss"]}).dropna()
    censored = {f"{first} at batch {batch}": censored_seeds(a, batch), f"{second} at batch {batch}":
                censored_seeds(b, batch)}
    diff = pair["a"] - pair["b"]
    effect, lo, hi, n = interval(diff, confidence)
    v = Verdict(claim, decide(lo, hi, 0.0, "greater", n), effect, lo, hi, n, STATEMENTS[claim],
                f"min validation loss (smoothed) with plain batch norm minus with ghost batch norm, batch {batch}, "
                "both with the square-root learning-rate rule (> 0: ghost helps)",
                f"plain BN {pair['a'].mean():.3f}, ghost BN {pair['b'].mean():.3f} (mean of {n} seeds)",
                "Hoffer et al. 2017: ghost batch norm (chunks of 128) is part of the recipe that closes the "
                "large-batch gap", evidence_note(diff, lo, hi, n))
    bias = censoring_bias(bool(censored[f"{first} at batch {batch}"]), bool(censored[f"{second} at batch {batch}"]))
    return _censor(v, "greater", censored, bias)


def regime_adaptation(rem: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                      confidence: float = 0.95) -> Verdict:
    """C9, Hoffer et al.'s regime adaptation as STUDY.md fixes it: three arms under one step schedule (the rate
    divided by 10 at 50% and 75% of the epochs, no patience): the small batch for E epochs (``step``), the large
    batch with the square-root rule for E epochs (``sqrt_step``) and for E x large/small epochs (``sqrt_step_longer``,
    the same steps). The gap is the same-epochs arm minus the small arm; the share closed is the same-steps arm's,
    per seed; supported when the interval's lower end is at least 0.9."""
    ok = rem[rem["status"] == "ok"]
    small, same_epochs, same_steps = (_arm(ok, "step", small_batch), _arm(ok, "sqrt_step", large_batch),
                                      _arm(ok, "sqrt_step_longer", large_batch))
    tried = rem[rem["remedy"].isin(["step", "sqrt_step", "sqrt_step_longer"])]
    if small.empty or same_epochs.empty or same_steps.empty:
        return _empty("C9", _join(f"needs Hoffer's three arms (step at batch {small_batch}, sqrt_step and "
                                  f"sqrt_step_longer at batch {large_batch}) in the store", minima.unusable_note(tried)))
    per = pd.DataFrame({"small": small.set_index("seed")["min_val_loss"],
                        "epochs": same_epochs.set_index("seed")["min_val_loss"],
                        "steps": same_steps.set_index("seed")["min_val_loss"]}).dropna()
    share = (per["epochs"] - per["steps"]) / (per["epochs"] - per["small"])
    effect, lo, hi, n = interval(share, confidence)
    steps = {name: arm["steps_run"].mean() for name, arm in (("small", small), ("epochs", same_epochs),
                                                              ("steps", same_steps))}
    v = Verdict("C9", decide(lo, hi, 0.9, "at_least", n), effect, lo, hi, n, STATEMENTS["C9"],
                f"share of the batch-{large_batch} gap closed by training it as many steps as batch {small_batch} "
                f"(square-root rule, the rate divided by 10 at 50% and 75% of the epochs, milestones stretched); the "
                f"gap is batch {large_batch} at the same epochs minus batch {small_batch}, both under the same "
                "schedule ('closes' means a lower end >= 0.9, an equivalence)",
                f"min validation loss (smoothed) batch {small_batch} {per['small'].mean():.3f} in "
                f"{int(small['epochs_run'].max())} epochs; batch {large_batch} {per['epochs'].mean():.3f} in the same "
                f"epochs, {per['steps'].mean():.3f} in {int(same_steps['epochs_run'].max())} epochs; steps "
                f"{steps['small']:.0f}, {steps['epochs']:.0f} and {steps['steps']:.0f}",
                HOFFER, _join(evidence_note(share, lo, hi, n), minima.unusable_note(tried)))
    # a censored arm's minimum bounds its truth from above: the same-steps arm's understates the share, the
    # small arm's overstates it (its true gap is larger), the same-epochs arm's moves both
    censored = {f"step at batch {small_batch}": censored_seeds(small, small_batch),
                f"sqrt_step at batch {large_batch}": censored_seeds(same_epochs, large_batch),
                f"sqrt_step_longer at batch {large_batch}": censored_seeds(same_steps, large_batch)}
    bias = censoring_bias(bool(censored[f"step at batch {small_batch}"]) or
                          bool(censored[f"sqrt_step at batch {large_batch}"]),
                          bool(censored[f"sqrt_step_longer at batch {large_batch}"]) or
                          bool(censored[f"sqrt_step at batch {large_batch}"]))
    return _censor(v, "at_least", censored, bias)


def batch_growth(rem: pd.DataFrame, small_batch: int = 32, confidence: float = 0.95, control: float = 0.95,
                 band: tuple = (0.95, 1.05)) -> Verdict:
    """C12, Smith et al. 2018 as STUDY.md fixes it: from the small batch at the comparison's rate, the same epochs,
    milestones at 1/3 and 2/3; decay divides the rate by 5 at each, growth multiplies the batch by 5 (up to a
    tenth of the training set, the rest of the factor going to the rate), constant keeps both (``none`` without
    patience). The control must hold first (decay over constant, upper end < ``control``): without it the
    schedule has no effect here and the claim is inconclusive. Then growth over decay within ``band`` supports it,
    wholly outside refutes it."""
    ok = rem[rem["status"] == "ok"]
    sizes = sorted(set(ok.loc[ok["remedy"] == "lr_decay", "batch_size"]) &
                   set(ok.loc[ok["remedy"] == "batch_growth", "batch_size"]))
    tried = rem[rem["remedy"].isin(["lr_decay", "batch_growth"])]
    if not sizes:
        return _empty("C12", _join("no pair of lr_decay and batch_growth runs that finished at one batch size in the "
                                   "store", minima.unusable_note(tried)))
    batch = small_batch if small_batch in sizes else sizes[0]
    decay, growth = _arm(ok, "lr_decay", batch), _arm(ok, "batch_growth", batch)
    constant = _arm(ok, "none", batch)
    if "patience" in constant:
        constant = constant[constant["patience"].fillna(0) == 0]
    pair = pd.DataFrame({"decay": decay.set_index("seed")["min_val_loss"],
                         "growth": growth.set_index("seed")["min_val_loss"]}).dropna()
    ratio = pair["growth"] / pair["decay"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    verdict = decide_within(lo, hi, *band, n)
    updates = growth["steps_run"].mean() / decay["steps_run"].mean()
    notes = [evidence_note(ratio, lo, hi, n, log=True), minima.unusable_note(tried)]
    ours = (f"decay {pair['decay'].mean():.3f}, growth {pair['growth'].mean():.3f} (smoothed minima, mean of {n} "
            f"seeds); growth took {updates:.2f}x the parameter updates")
    if constant.empty:
        verdict = INCONCLUSIVE
        notes.append(f"no constant-rate control (remedy none without patience at batch {batch}) in the store: whether "
                     "the schedule has any effect here is unknown")
    else:
        ctl = pd.DataFrame({"decay": decay.set_index("seed")["min_val_loss"],
                            "constant": constant.set_index("seed")["min_val_loss"]}).dropna()
        c, clo, chi, cn = interval(ctl["decay"] / ctl["constant"], confidence, log=True)
        ours += (f"; control: decay over constant {_fmt(c)} [{_fmt(clo)}, {_fmt(chi)}] (constant "
                 f"{ctl['constant'].mean():.3f})")
        held = cn >= MIN_SEEDS and chi < control
        if not held:
            verdict = INCONCLUSIVE
            notes.append(f"the control does not hold (decay over constant rate has an upper end of {_fmt(chi)}, not "
                         f"below {control:g}): the schedule has no effect here, so replacing it says nothing")
        # a censored constant-rate run bounds its minimum from above, so the measured control can only look
        # stronger than it is: a control resting on such a bound is not established (STUDY.md's censoring rule)
        censored_control = censored_seeds(constant, batch)
        if censored_control:
            notes.append(f"the constant-rate control is censored in seed{'s' * (len(censored_control) > 1)} "
                         f"{', '.join(map(str, censored_control))} (its smoothed loss still fell by more than 1% over "
                         f"its last 10% of epochs)" + (": the control may be an artefact of the bound, so the verdict "
                                                        "is inconclusive" if held else ""))
            verdict = INCONCLUSIVE
    v = Verdict("C12", verdict, effect, lo, hi, n, STATEMENTS["C12"],
                f"smoothed minimum validation loss with batch growth over with learning-rate decay, batch {batch} at "
                f"the start, same epochs (supported within [{band[0]:g}, {band[1]:g}] once decay beats the constant "
                f"rate: decay over constant upper end < {control:g})", ours, SMITH, _join(*notes))
    censored = {f"{name} at batch {batch}": censored_seeds(arm, batch) for name, arm in
                (("lr_decay", decay), ("batch_growth", growth))}
    return _censor(v, "greater", censored, "both" if any(censored.values()) else None)


def steps_to_target(seeds: pd.DataFrame, confidence: float = 0.95, timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Shallue et al.'s curve from the tuned runs: per batch size, the fewest steps (and seconds) to the
    target over the learning-rate grid, per seed, then a geometric mean and interval over seeds.

    The seconds are the steps times the seconds per step of that batch size timed alone (``timing``,
    :func:`bsnb.analysis.timing_alone`); without such a timing, the runs' own seconds where they trained
    one model at a time, and none where they trained stacked (their time is the stack's)."""
    tuned = seeds[(seeds["notebook"] == "04_closing_the_gap") & (seeds["remedy"] == "tuned")] if "remedy" in seeds \
        else seeds.iloc[0:0]
    if tuned.empty or "reached_target" not in tuned:
        return pd.DataFrame()
    reached = tuned[tuned["reached_target"] == True]  # noqa: E712
    if reached.empty:
        return pd.DataFrame()
    best = reached.loc[reached.groupby(["batch_size", "seed"])["steps_to_target"].idxmin()]
    per_step = _seconds_per_step(timing, tuned)
    alone = best["stacked"].fillna(1) <= 1 if "stacked" in best else pd.Series(True, index=best.index)
    best = best.assign(seconds_to_target=np.where(
        best["batch_size"].isin(per_step.index), best["steps_to_target"] * best["batch_size"].map(per_step),
        best["seconds_to_target"].where(alone)))
    rows = []
    for batch, g in best.groupby("batch_size"):
        steps, lo, hi, n = interval(g["steps_to_target"], confidence, log=True)
        secs, slo, shi, _ = interval(g["seconds_to_target"], confidence, log=True)
        rows.append({"batch_size": int(batch), "seeds": n, "seeds_tried": tuned[tuned["batch_size"] == batch]["seed"]
                     .nunique(), "steps": steps, "steps_low": lo, "steps_high": hi, "seconds": secs,
                     "seconds_low": slo, "seconds_high": shi, "seconds_timed_alone": batch in per_step.index,
                     "best_lr": g["lr_used"].median(),
                     "target": g["target_loss"].iloc[0]})
    table = pd.DataFrame(rows).sort_values("batch_size").reset_index(drop=True)
    return regimes(table)


def _seconds_per_step(timing: pd.DataFrame | None, runs: pd.DataFrame) -> pd.Series:
    """Median seconds per optimiser step of each batch size timed alone (an epoch is ceil(n_train / B) steps)."""
    if timing is None or timing.empty or "n_train" not in runs:
        return pd.Series(dtype=float)
    n_train = int(runs["n_train"].iloc[0])
    per_epoch = timing.groupby("batch_size")["seconds_per_epoch"].median()
    return per_epoch / np.ceil(n_train / per_epoch.index.to_numpy())


def regimes(table: pd.DataFrame, perfect: float = -0.75, plateau: float = -0.2) -> pd.DataFrame:
    """Label each step of the curve by its log-log slope: perfect scaling (doubling the batch nearly halves the
    steps: slope <= ``perfect``), plateau (slope >= ``plateau``), diminishing returns in between."""
    slopes = np.diff(np.log(table["steps"])) / np.diff(np.log(table["batch_size"])) if len(table) > 1 else []
    labels = ["perfect scaling" if s <= perfect else "plateau" if s >= plateau else "diminishing returns"
              for s in slopes]
    return table.assign(slope_to_next=list(slopes) + [math.nan], regime_to_next=labels + [""])


# ------------------------------------------------------------------------------------------------
# what batch size is (01): gradient noise and the critical batch size

MCCANDLISH = "McCandlish et al. 2018, Table 1 (MNIST): B_crit 20 (start) to 200 (average), B_simple 50 to 900"


def noise_variance(variance: pd.DataFrame, confidence: float = 0.95, tolerance: float = 0.1) -> Verdict:
    """C5: measured E|g_B - G|^2 over the formula tr(Sigma)/B (m-B)/(m-1), geometric mean over batch sizes, per seed.

    The formula must hold at every checkpoint measured (initial, best, final weights): supported
    when every checkpoint's interval lies within 1 +- ``tolerance``, not supported when one lies
    wholly outside it. The effect is the ratio pooled over checkpoints; the note gives each.
    """
    if variance.empty:
        return _empty("C5", "no gradient-noise measurements in the store")
    v = variance[variance["predicted"] > 0]
    v = v.assign(r=np.log(v["measured"] / v["predicted"]))
    parts, verdicts = [], []
    for checkpoint in [c for c in ("initial", "best", "final") if c in set(v["checkpoint"])]:
        per_seed = v[v["checkpoint"] == checkpoint].groupby("seed")["r"].mean().map(math.exp)
        e, lo, hi, n = interval(per_seed, confidence, log=True)
        verdicts.append(decide_within(lo, hi, 1 - tolerance, 1 + tolerance, n))
        parts.append(f"{checkpoint} {_fmt(e)} [{_fmt(lo)}, {_fmt(hi)}]")
    verdict = (NOT_SUPPORTED if NOT_SUPPORTED in verdicts else SUPPORTED if set(verdicts) == {SUPPORTED}
               else INCONCLUSIVE)
    pooled = v.groupby("seed")["r"].mean().map(math.exp)
    effect, lo, hi, n = interval(pooled, confidence, log=True)
    slope = np.polyfit(np.log(v["batch_size"]), np.log(v["measured"]), 1)[0] if v["batch_size"].nunique() > 1 \
        else math.nan
    cos = v.groupby("batch_size")["cosine_mean"].mean()
    return Verdict("C5", verdict, effect, lo, hi, n, STATEMENTS["C5"],
                   f"measured / predicted variance of the batch gradient, geometric mean over batch sizes "
                   f"{', '.join(str(int(b)) for b in sorted(v['batch_size'].unique()))} and checkpoints "
                   f"(supported when every checkpoint lies within 1 +- {tolerance:g})",
                   f"by checkpoint: {'; '.join(parts)}; log-log slope of the measured variance {slope:.2f} (1/B: -1); "
                   f"cosine(g_B, G) {cos.iloc[0]:.2f} at batch {int(cos.index[0])}, {cos.iloc[-1]:.2f} at batch "
                   f"{int(cos.index[-1])}" + (
                       f"; {int(v['draws'].min()):,} to {int(v['draws'].max()):,} draws per batch size and checkpoint, "
                       f"each measured mean to a relative standard error of at most {v['rel_se'].max():.1%} (the "
                       "protocol asks 3%)" if "rel_se" in v and v["rel_se"].notna().all() else ""),
                   "the formula is exact for sampling without replacement; McCandlish et al. 2018, App. A")


def fit_critical_batch(steps: pd.Series) -> tuple[float, float]:
    """McCandlish et al.'s S(B) = S_min (1 + B_crit / B), fitted in log space to fewest steps per batch size.

    ``steps`` is indexed by batch size. Returns (S_min, B_crit).
    """
    from scipy.optimize import least_squares

    b, s = steps.index.to_numpy(float), steps.to_numpy(float)

    def resid(theta):
        s_min, b_crit = np.exp(theta)
        return np.log(s_min * (1 + b_crit / b)) - np.log(s)

    fit = least_squares(resid, x0=[np.log(s.min()), np.log(np.median(b))])
    s_min, b_crit = np.exp(fit.x)
    return float(s_min), float(b_crit)


def _noise_windows(noise_log: pd.DataFrame, history: pd.DataFrame, target: float):
    """Per seed, the two-batch estimates logged before the validation loss first reached ``target``."""
    for seed, g in noise_log.groupby("seed"):
        h = history[(history["seed"] == seed) & (history["val_loss"] <= target)]
        until = h["step"].min() if len(h) else g["step"].max()
        yield seed, g[g["step"] <= until]


def b_simple_until(noise_log: pd.DataFrame, history: pd.DataFrame, target: float) -> pd.Series:
    """Per seed: B_simple from the two-batch estimates logged before the validation loss first reached ``target``
    (the ratio of the mean S to the mean |G|^2 over those steps, McCandlish's training average)."""
    out = {}
    for seed, window in _noise_windows(noise_log, history, target):
        if len(window) >= 2 and window["g2_est"].mean() > 0:
            out[seed] = window["s_est"].mean() / window["g2_est"].mean()
    return pd.Series(out, dtype=float)


def negative_g2_share(noise_log: pd.DataFrame, history: pd.DataFrame, target: float) -> float:
    """Share of the two-batch |G|^2 estimates in the windows of ``b_simple_until`` that are negative: the
    estimate is unbiased but noisy, and when it is often negative its mean, the denominator of B_simple, is
    close to zero and the ratio unstable."""
    windows = [w["g2_est"] for _, w in _noise_windows(noise_log, history, target)]
    values = pd.concat(windows) if windows else pd.Series(dtype=float)
    return float((values < 0).mean()) if len(values) else math.nan


def two_batch_defined(noise_log: pd.DataFrame, history: pd.DataFrame, target: float,
                      confidence: float = 0.95) -> pd.Series:
    """Per seed: whether the two-batch B_simple of :func:`b_simple_until` is defined, that is whether the interval
    of the mean |G|^2 estimate over its window lies above 0 (its denominator cannot be zero)."""
    out = {}
    for seed, window in _noise_windows(noise_log, history, target):
        _, lo, _, n = interval(window["g2_est"], confidence)
        out[seed] = bool(n >= 2 and lo > 0)
    return pd.Series(out, dtype=bool)


def grid_edges(tuned: pd.DataFrame) -> list[str]:
    """(batch, seed) whose best learning rate lies on the edge of the grid it searched: the grid was too narrow."""
    reached = tuned[tuned["reached_target"] == True]  # noqa: E712
    edges = []
    for (batch, seed), g in reached.groupby(["batch_size", "seed"]):
        grid = sorted(tuned[(tuned["batch_size"] == batch) & (tuned["seed"] == seed)]["lr_used"].unique())
        best = g.loc[g["steps_to_target"].idxmin(), "lr_used"]
        if len(grid) < 3 or best in (grid[0], grid[-1]):
            edges.append(f"batch {int(batch)} seed {int(seed)} (lr {best:g} of {', '.join(f'{x:g}' for x in grid)})")
    return edges


def exact_b_simple_at_target(seeds: pd.DataFrame, ref: pd.DataFrame, wanted, target: float, window: int = 3
                             ) -> tuple[pd.Series, str, str]:
    """Notebook 01's exact B_simple per seed for C11, where the reference run's validation loss first reached the
    search's ``target`` (McCandlish sets the noise scale where training reaches a loss beside the critical batch
    for that loss); the best weights where that checkpoint is missing for a ``wanted`` seed or was saved at another
    loss. Returns the values, where they were measured, and a note saying why when it fell back ('' if not)."""
    exact = seeds[seeds.get("notebook") == "01_what_is_batch_size"] if "checkpoint" in seeds else seeds.iloc[0:0]
    exact = windowed_b_simple(exact, window) if len(exact) else exact
    at = {c: g.set_index("seed")["b_simple"] for c, g in exact.groupby("checkpoint")} if len(exact) else {}
    saved = ref["checkpoint_val_loss"].dropna().unique() if "checkpoint_val_loss" in ref else []
    at_target = len(saved) == 1 and math.isclose(saved[0], target)
    found = at.get(TARGET, pd.Series(dtype=float))
    missing = [int(sd) for sd in wanted if sd not in found.index]
    if at_target and not missing:
        windows = exact[exact["checkpoint"] == TARGET]
        return found, f"where the validation loss first reached {target:g} ({_window_text(windows, window)})", ""
    best = at.get("best", pd.Series(dtype=float))
    if not len(exact):
        why = ""
    elif not at_target:
        why = (f"the reference runs saved no checkpoint at validation loss {target:g}"
               + (f" (they saved one at {', '.join(f'{x:g}' for x in saved)})" if len(saved) else "")
               + ", so B_simple is read at the best weights")
    else:
        why = (f"the reference run never reached validation loss {target:g} for seed"
               f"{'s' * (len(missing) > 1)} {', '.join(map(str, missing))}, so B_simple is read at the best weights")
    return best, "at the best weights", why


def critical_batch(seeds: pd.DataFrame, noise_log: pd.DataFrame, epochs: pd.DataFrame, reference_batch: int = 32,
                   confidence: float = 0.95, factor: float = 5.0, reading: "Reading | None" = None
                   ) -> tuple[Verdict, pd.DataFrame]:
    """C11: B_simple over B_crit (fitted to the steps-to-target of the learning-rate search), per seed; supported
    when the interval lies within a factor ``factor`` either way and both are defined.

    B_simple is the exact value from per-example gradients where the reference run's validation loss first
    reached the search's target (notebook 01; :func:`exact_b_simple_at_target`), the primary estimate; the
    two-batch estimate along that run until the target is shown beside it and counts as undefined where the
    interval of its |G|^2 reaches 0. B_crit is defined only when every batch size's best learning rate lies
    inside the searched grid. Returns the verdict and a per-seed table.
    """
    tuned = seeds[(seeds.get("notebook") == "04_closing_the_gap") & (seeds.get("remedy") == "tuned")] \
        if "remedy" in seeds else pd.DataFrame()
    if tuned.empty or "reached_target" not in tuned:
        return _empty("C11", "needs the learning-rate search (04, tuned)"), pd.DataFrame()
    reached = tuned[tuned["reached_target"] == True]  # noqa: E712
    target = float(tuned["target_loss"].dropna().iloc[0])
    rows, short = [], []
    for seed in sorted(tuned["seed"].unique()):
        best = reached[reached["seed"] == seed].groupby("batch_size")["steps_to_target"].min()
        if len(best) >= 3:
            s_min, b_crit = fit_critical_batch(best)
            rows.append({"seed": seed, "s_min": s_min, "b_crit": b_crit})
        else:
            short.append(f"seed {seed} ({len(best)} of {tuned[tuned['seed'] == seed]['batch_size'].nunique()})")
    table = pd.DataFrame(rows)
    if table.empty:
        return _empty("C11", f"fewer than 3 batch sizes reached validation loss {target:g} for every seed: "
                             f"{', '.join(short)}"), table
    # B_simple: exact (notebook 01, where the validation loss first reached the target), and the two-batch
    # estimate beside it
    ref = seeds[(seeds["notebook"] == "02_empirical_comparison") & (seeds["batch_size"] == reference_batch)]
    exact, where, why = exact_b_simple_at_target(seeds, ref, table["seed"], target, (reading or PROTOCOL).window)
    log = noise_log[noise_log["job_id"].isin(ref["job_id"])] if len(noise_log) else noise_log
    hist = epochs[epochs["job_id"].isin(ref["job_id"])] if len(epochs) else epochs
    two = b_simple_until(log, hist, target) if len(log) else pd.Series(dtype=float)
    defined = two_batch_defined(log, hist, target, confidence) if len(log) else pd.Series(dtype=bool)
    table["b_simple"] = table["seed"].map(exact)
    table["b_simple_two_batch"] = table["seed"].map(two)
    table["two_batch_defined"] = table["seed"].map(defined).fillna(False).astype(bool)
    primary = "exact"
    if table["b_simple"].isna().all():  # no notebook-01 run: the two-batch estimate, where defined, decides
        primary = "two-batch"
        table["b_simple"] = table["b_simple_two_batch"].where(table["two_batch_defined"])
    ratio = table["b_simple"] / table["b_crit"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    verdict = decide_within(lo, hi, 1 / factor, factor, n)
    notes = [evidence_note(ratio, lo, hi, n, log=True), why]
    if len(two):
        notes.append("two-batch B_simple by seed: " + ", ".join(
            f"{x:.0f}" + ("" if table.loc[table['seed'] == sd, 'two_batch_defined'].all() else
                          " (undefined: the interval of its |G|^2 reaches 0)")
            for sd, x in two.items()) + f"; {negative_g2_share(log, hist, target):.0%} of its |G|^2 estimates are "
            "negative")
    edges = grid_edges(tuned)
    if edges:
        notes.append("best learning rate on the edge of the searched grid, so B_crit is not defined: "
                     + "; ".join(edges))
        verdict = INCONCLUSIVE
    if short:
        notes.append(f"left out, because fewer than 3 batch sizes reached validation loss {target:g} at any learning "
                     f"rate: {', '.join(short)}")
    v = Verdict("C11", verdict, effect, lo, hi, n, STATEMENTS["C11"],
                f"B_simple / B_crit, per seed; B_simple {primary} ("
                + (f"per-example gradients of the batch-{reference_batch} run {where}" if primary == "exact" else
                   f"two-batch estimates along the batch-{reference_batch} run") + "), B_crit fitted as "
                f"S = S_min (1 + B_crit/B) to the fewest steps to validation loss {target:g} (supported within a "
                f"factor {factor:g})",
                f"B_simple {table['b_simple'].mean():.0f}, B_crit {table['b_crit'].mean():.0f}, S_min "
                f"{table['s_min'].mean():.0f} steps (means over {n} seed{'s' if n != 1 else ''})", MCCANDLISH,
                _join(*notes))
    return v, table


# ------------------------------------------------------------------------------------------------
# the registry: one entry per claim. Adding a claim is adding an entry here and its function above.


@dataclass(frozen=True)
class Reading:
    """The protocol's reading choices that a verdict depends on (STUDY.md v3). :data:`PROTOCOL` is the one fixed
    before the runs; the sensitivity analysis reads the same data with the alternatives STUDY.md names."""

    smoothing: int = minima.SMOOTHING  # evaluated epochs in the centred moving average of the validation loss
    level_shift: int = 0  # C1, C6: places from the lowest level every compared run reached (-1: the next higher)
    window: int = NOISE_WINDOW  # C11, C14: evaluated epochs whose tr(Sigma) and |G|^2 are summed
    train_share: float = 0.7  # C13: share of the logged steps the laws are fitted on

    def describe(self) -> str:
        """How this reading differs from the protocol's, in a few words."""
        parts = []
        if self.smoothing != PROTOCOL.smoothing:
            parts.append("raw minima" if self.smoothing <= 1 else f"{self.smoothing}-epoch smoothing")
        if self.level_shift:
            parts.append(f"the {'next higher' if self.level_shift < 0 else 'next lower'} loss level")
        if self.window != PROTOCOL.window:
            parts.append(f"a window of {self.window} epoch{'s' * (self.window > 1)}")
        if self.train_share != PROTOCOL.train_share:
            parts.append(f"fitted on {self.train_share:g} of the steps")
        return ", ".join(parts) or "the protocol"


PROTOCOL = Reading()


@dataclass
class Study:
    """What the claims are computed from: a store's tables, the compared pair and the timing that ran alone."""

    tables: object  # bsnb.results.Tables (seeds, epochs, steps, table(name))
    small_batch: int = 32
    large_batch: int = 256
    confidence: float = 0.95
    speed: pd.DataFrame | None = None
    c1_level: float = 0.0
    _read: dict = field(default_factory=dict, repr=False)

    def runs(self, reading: Reading = PROTOCOL) -> pd.DataFrame:
        """The per-seed table read by :func:`bsnb.minima.read_runs` with ``reading``'s smoothing (kept)."""
        if reading.smoothing not in self._read:
            self._read[reading.smoothing] = minima.read_runs(self.tables.seeds, self.tables.epochs, reading.smoothing)
        return self._read[reading.smoothing]

    def comparison_steps(self, reading: Reading = PROTOCOL) -> pd.DataFrame:
        comparison, _ = comparison_runs(self.runs(reading))
        steps = self.tables.steps
        return steps[steps["job_id"].isin(comparison["job_id"])] if len(steps) and len(comparison) else steps.iloc[0:0]


def _one(verdicts: list[Verdict], claim: str) -> Verdict:
    return next(v for v in verdicts if v.claim == claim)


def _empirical(claim):
    return lambda st, rd: _one(empirical(st.runs(rd), st.tables.epochs, st.small_batch, st.large_batch, st.c1_level,
                                         st.confidence, st.speed, rd), claim)


def _closing(claim):
    def compute(st, rd):
        runs = st.runs(rd)
        return _one(closing(remedy_table(runs, st.small_batch, st.confidence), runs, st.large_batch, st.confidence,
                            st.small_batch), claim)
    return compute


def _c11(st, rd):
    return critical_batch(st.runs(rd), st.tables.table("noise"), st.tables.epochs, st.small_batch, st.confidence,
                          reading=rd)[0]


def _c13(st, rd):
    laws = minima.distance_laws(st.comparison_steps(rd), st.tables.epochs, rd.train_share,
                                until=minimum_steps(st.runs(rd)))
    return distance_law(laws, st.confidence)


SMOOTHINGS = (Reading(smoothing=1), Reading(smoothing=3), Reading(smoothing=9))
LEVELS = (Reading(level_shift=-1), Reading(level_shift=1))
WINDOWS = (Reading(window=1), Reading(window=5))


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    rule: str  # when it is supported / not supported (STUDY.md's table)
    figure: str  # the figure of the findings that decides it
    compute: object  # compute(study, reading) -> Verdict
    question: int = 0  # the article's question (report page, notebook 05's section)
    alternatives: tuple = ()  # STUDY.md's sensitivity analysis: the readings a robust verdict survives


CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("C1", "At a fixed learning rate, larger batches lower the training loss more slowly per epoch",
          "ratio large/small of the epochs to first reach the lowest training-loss level of 1, 0.3, 0.1, 0.03 that "
          "every compared run reached: lower end > 1 / upper end < 1", "loss_curves", _empirical("C1"), 2, LEVELS),
    Claim("C2", "At a fixed learning rate, larger batches reach a worse minimum validation loss",
          "ratio large/small of the smoothed minimum validation loss: lower end > 1 / upper end < 1; censoring "
          "withdraws", "minima", _empirical("C2"), 2, SMOOTHINGS),
    Claim("C3", "Larger batches take less wall time per epoch",
          "ratio large/small of seconds per epoch, timed alone: upper end < 1 / lower end > 1", "speed",
          _empirical("C3"), 2),
    Claim("C4", "Larger batches do not need fewer epochs to reach their minimum validation loss",
          "difference large - small of the epoch of the smoothed minimum: lower end >= 0 with some spread / upper "
          "end < 0; censoring withdraws", "minima", _empirical("C4"), 2, SMOOTHINGS),
    Claim("C5", "The variance of the batch gradient falls as 1/B (with the finite-sample correction (m-B)/(m-1)); "
                "a check of the measurement",
          "measured/formula within 1 +- 0.1 at every checkpoint / any checkpoint wholly outside", "gradient_noise",
          lambda st, rd: noise_variance(st.tables.table("variance"), st.confidence), 1),
    Claim("C6", "Large-batch minima are sharper",
          "ratio large/small of the top Hessian eigenvalue at the matched training-loss level: lower end > 1, and a "
          "rank correlation with the batch size above 0 / upper end < 1 or the trend below 0", "sharpness",
          lambda st, rd: sharpness(st.runs(rd), st.small_batch, st.large_batch, st.confidence, reading=rd), 3, LEVELS),
    Claim("C7", "Large-batch weights end closer to their initialisation",
          "ratio large/small of ||w - w_0|| at the smoothed minimum: upper end < 1 / lower end > 1", "distance",
          lambda st, rd: distance(st.runs(rd), st.comparison_steps(rd), st.small_batch, st.large_batch,
                                  st.confidence, rd), 3, SMOOTHINGS),
    Claim("C8", "Scaling the learning rate with the batch size (linear with warm-up, or square root) closes most "
                "of the gap", "share of the gap closed: lower end > 0.5 / upper end < 0.5; censoring withdraws",
          "remedies", _closing("C8"), 4, SMOOTHINGS),
    Claim("C9", "Hoffer's regime adaptation closes the gap: the large batch, with the square-root rule, trained for "
                "as many steps as the small batch",
          "share of the same-epochs gap (both under one step schedule) closed by the same-steps arm: lower end >= 0.9 "
          "/ upper end < 0.9; censoring withdraws", "remedies",
          _closing("C9"), 4, SMOOTHINGS),
    Claim("C10", "Ghost batch norm helps large batches",
          "plain minus ghost BN minimum validation loss, both with the square-root rule: lower end > 0 / upper end "
          "< 0; censoring withdraws", "remedies", _closing("C10"), 4, SMOOTHINGS),
    Claim("C11", "The gradient noise scale B_simple predicts the critical batch size beyond which more batch no "
                 "longer cuts steps",
          "B_simple/B_crit within [1/5, 5], both defined / wholly outside", "steps_to_target", _c11, 1, WINDOWS),
    Claim("C12", "Increasing the batch size instead of decaying the learning rate reaches the same validation loss "
                 "with fewer parameter updates",
          "with the control holding (decay over constant rate: upper end < 0.95), ratio growth/decay of the smoothed "
          "minimum validation loss within [0.95, 1.05] / wholly outside; without the control inconclusive",
          "remedies", _closing("C12"), 4, SMOOTHINGS),
    Claim("C13", "The distance from initialisation grows like log(steps), more slowly than a random walk's "
                 "sqrt(steps)",
          "mean over batch sizes of the held-out error of the log fit minus the sqrt fit, up to the smoothed "
          "minimum: upper end < 0 / lower end > 0", "distance", _c13, 3,
          (Reading(train_share=0.5), Reading(train_share=0.85))),
    Claim("C14", "The gradient noise scale grows as the training loss falls",
          "rank correlation of the exact B_simple with -log(level) over the levels from 1 down to the lowest every "
          "seed reached: interval above 0 / below 0", "noise_scale",
          lambda st, rd: noise_growth(st.runs(rd), st.confidence, rd), 1, WINDOWS),
    Claim("C15", "With the learning rate tuned for each batch size, large batches reach the small batch's minimum "
                 "validation loss", "ratio large/small of the smoothed minimum validation loss, each batch size at its "
          "own best rate: within [0.95, 1.05] / wholly outside; a best rate on the grid's edge is inconclusive",
          "steps_to_target", lambda st, rd: tuned_rates(st.runs(rd), st.small_batch, st.large_batch, st.confidence),
          4, SMOOTHINGS),
    Claim("C16", "Sharpness follows the learning rate, not the batch size: with the rate scaled with the batch (the "
                 "linear rule), large-batch minima are not sharper",
          "ratio large/small of the top Hessian eigenvalue at the matched level, the large batch under the linear "
          "rule: upper end < 1 / lower end > 1", "sharpness",
          lambda st, rd: edge_of_stability(st.runs(rd), st.tables.table("level_sharpness"), st.small_batch,
                                           st.large_batch, st.confidence, rd), 3, LEVELS),
]}
STATEMENTS = {c.id: c.statement for c in CLAIMS.values()}
FIGURES = {c.id: c.figure for c in CLAIMS.values()}


def question(study: Study, number: int, reading: Reading = PROTOCOL) -> list[Verdict]:
    """The verdicts of every claim of one of the article's questions (1 to 4), in the registry's order."""
    return [c.compute(study, reading) for c in CLAIMS.values() if c.question == number]


def robustness(study: Study, verdicts: list[Verdict]) -> list[Verdict]:
    """STUDY.md's sensitivity analysis: each verdict recomputed under its claim's alternative readings. A verdict
    is robust when every alternative gives its label; ``sensitivity`` says what each gave. A claim without
    alternatives (C3, C5) has none to fail, and is marked robust; an alternative that cannot be read from the
    store (a level no run reached) is named and left out."""
    out = []
    for v in verdicts:
        claim = CLAIMS.get(v.claim)
        found, missing = [], []
        for alt in (claim.alternatives if claim else ()):
            try:
                w = claim.compute(study, alt)
            except Exception as e:  # noqa: BLE001 - an alternative that cannot be computed is reported, not fatal
                missing.append(f"{alt.describe()} ({type(e).__name__})")
                continue
            if not math.isfinite(w.effect) and w.seeds == 0:
                missing.append(alt.describe())
                continue
            found.append(f"{alt.describe()}: {w.verdict}, {_fmt(w.effect)} [{_fmt(w.ci_low)}, {_fmt(w.ci_high)}]")
            if w.verdict != v.verdict:
                v.robust = False
        if v.robust is None:
            v.robust = True
        v.sensitivity = "; ".join(found + ([f"not readable: {', '.join(missing)}"] if missing else [])) or \
            "the protocol names no alternative reading"
        out.append(v)
    return out
