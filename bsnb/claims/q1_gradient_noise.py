"""Question 1, what batch size is (notebook 01): the batch gradient as an estimate of the full gradient (C5), the
gradient noise scale against the training loss (C14), and the critical batch size it predicts (C11), with
Shallue et al.'s steps-to-target curve."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bsnb.claims.protocol import (
    MATCHED_LEVELS,
    PROTOCOL,
    WINDOWS,
    Claim,
    Reading,
    best_rates,
    level_of,
    ran,
)
from bsnb.claims.verdict import Verdict, empty, evidence_note, fmt, join_notes, rank_trend, seed_slope, statement
from bsnb.results import TARGET, level_checkpoint, windowed_b_simple
from bsnb.stats import INCONCLUSIVE, MIN_SEEDS, NOT_SUPPORTED, SUPPORTED, decide_within, interval


def noise_growth(runs: pd.DataFrame, confidence: float = 0.95, reading: "Reading | None" = None) -> Verdict:
    """C14: per seed, the least-squares slope of log B_simple (exact, per-example gradients, notebook 01) on
    -log(level) over the training-loss levels from 1 down to the lowest every seed reached, with a t interval over
    seeds; supported when the interval lies above 0 (it grows as the loss falls), not supported when below. The
    rank correlation pooled over seeds and levels is shown beside it (it treated them as independent: v3).

    At each level, tr(Sigma) and |G|^2 are each summed over the window of the checkpoint where the training loss
    first fell to it and the next ``reading.window - 1`` evaluated epochs (``results.windowed_b_simple``). The
    start (the initial weights) is not a level: there |G|^2 is large and B_simple an artefact of the
    initialisation; it is shown beside the trend.
    """
    reading = reading or PROTOCOL
    r = runs[runs["notebook"] == "01_what_is_batch_size"] if "notebook" in runs else runs.iloc[0:0]
    if r.empty or "b_simple" not in r:
        return empty("C14", "no exact gradient-noise measurements (notebook 01) in the store")
    batch = int(r["batch_size"].iloc[0])
    r = windowed_b_simple(r, reading.window)
    n_seeds = r["seed"].nunique()
    levels = [lv for lv in MATCHED_LEVELS if r.loc[r["checkpoint"] == level_checkpoint(lv), "seed"].nunique() == n_seeds]
    if len(levels) < 3:
        return empty("C14", f"fewer than 3 training-loss levels of {', '.join(f'{x:g}' for x in MATCHED_LEVELS)} were "
                             f"reached and measured in every seed ({', '.join(f'{x:g}' for x in levels) or 'none'})")
    at = r[r["checkpoint"].isin([level_checkpoint(lv) for lv in levels])]
    at = at.assign(neg_log_level=-np.log(at["checkpoint"].map(level_of)))
    slope, lo, hi, n = seed_slope(at, "b_simple", confidence, by="neg_log_level", x=lambda v: v)
    rho, rlo, rhi, _ = rank_trend(at, "b_simple", confidence, by="neg_log_level")
    verdict = INCONCLUSIVE if not (math.isfinite(lo) and math.isfinite(hi)) or n < MIN_SEEDS else (
        SUPPORTED if lo > 0 else NOT_SUPPORTED if hi < 0 else INCONCLUSIVE)
    trend = "; ".join(f"loss {lv:g}: {at.loc[at['checkpoint'] == level_checkpoint(lv), 'b_simple'].mean():.3g}"
                      for lv in levels)
    start = r[r["checkpoint"] == "initial"]
    return Verdict("C14", verdict, slope, lo, hi, n, statement("C14"),
                   f"per-seed least-squares slope of log B_simple (tr(Sigma)/|G|^2 from per-example gradients) on "
                   f"-log(training-loss level), t interval over {n} seeds, over the levels 1 down to {min(levels):g} "
                   f"(the lowest every seed reached), batch {batch} run; {_window_text(at, reading.window)}",
                   f"mean B_simple along the falling loss, {trend}; rank correlation beside it (pooled) {fmt(rho)} "
                   f"[{fmt(rlo)}, {fmt(rhi)}]"
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


def steps_to_target(runs: pd.DataFrame, confidence: float = 0.95, timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Shallue et al.'s curve from the tuned runs: per batch size, the fewest steps (and seconds) to the
    target over the learning-rate grid, per seed, then a geometric mean and interval over seeds.

    The seconds are the steps times the seconds per step of that batch size timed alone (``timing``,
    :func:`bsnb.analysis.timing_alone`); without such a timing, the runs' own seconds where they trained
    one model at a time, and none where they trained stacked (their time is the stack's)."""
    tuned = runs[(runs["notebook"] == "04_closing_the_gap") & (runs["remedy"] == "tuned")] if "remedy" in runs \
        else runs.iloc[0:0]
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


MCCANDLISH = "McCandlish et al. 2018, Table 1 (MNIST): B_crit 20 (start) to 200 (average), B_simple 50 to 900"


def noise_variance(variance: pd.DataFrame, confidence: float = 0.95, tolerance: float = 0.1) -> Verdict:
    """C5: measured E|g_B - G|^2 over the formula tr(Sigma)/B (m-B)/(m-1), per seed, at every batch size and checkpoint.

    The formula must hold at every batch size and every checkpoint measured (initial, best, final weights), each
    read on its own (docs/protocol.md: not their geometric mean, which could hide one that misses): supported when
    every interval lies within 1 +- ``tolerance``, not supported when one lies wholly outside it. The effect is the
    ratio pooled over batch sizes and checkpoints; the text gives each checkpoint and the farthest cell.
    """
    if variance.empty:
        return empty("C5", "no gradient-noise measurements in the store")
    v = variance[variance["predicted"] > 0]
    v = v.assign(r=np.log(v["measured"] / v["predicted"]))
    parts, verdicts, cells = [], [], []
    for checkpoint in [c for c in ("initial", "best", "final") if c in set(v["checkpoint"])]:
        at = v[v["checkpoint"] == checkpoint]
        per_seed = at.groupby("seed")["r"].mean().map(math.exp)
        e, lo, hi, _ = interval(per_seed, confidence, log=True)
        parts.append(f"{checkpoint} {fmt(e)} [{fmt(lo)}, {fmt(hi)}]")
        for batch, g in at.groupby("drawn_batch"):
            e, lo, hi, n = interval(g.groupby("seed")["r"].mean().map(math.exp), confidence, log=True)
            verdicts.append(decide_within(lo, hi, 1 - tolerance, 1 + tolerance, n))
            cells.append((abs(math.log(e)) if e > 0 else math.inf, f"batch {int(batch)} at {checkpoint} {fmt(e)} "
                                                                   f"[{fmt(lo)}, {fmt(hi)}]", verdicts[-1]))
    verdict = (NOT_SUPPORTED if NOT_SUPPORTED in verdicts else SUPPORTED if set(verdicts) == {SUPPORTED}
               else INCONCLUSIVE)
    farthest = max(cells)[1] if cells else ""
    undecided = [text for _, text, w in cells if w != SUPPORTED]
    pooled = v.groupby("seed")["r"].mean().map(math.exp)
    effect, lo, hi, n = interval(pooled, confidence, log=True)
    slope = np.polyfit(np.log(v["drawn_batch"]), np.log(v["measured"]), 1)[0] if v["drawn_batch"].nunique() > 1 \
        else math.nan
    cos = v.groupby("drawn_batch")["cosine_mean"].mean()
    return Verdict("C5", verdict, effect, lo, hi, n, statement("C5"),
                   f"measured / predicted variance of the batch gradient at each of batch sizes "
                   f"{', '.join(str(int(b)) for b in sorted(v['drawn_batch'].unique()))} and each checkpoint "
                   f"(supported when every one of the {len(cells)} lies within 1 +- {tolerance:g}); the effect pools them",
                   f"by checkpoint: {'; '.join(parts)}; farthest from 1: {farthest}"
                   + (f"; not within 1 +- {tolerance:g}: {'; '.join(undecided)}" if undecided else "")
                   + f"; log-log slope of the measured variance {slope:.2f} (1/B: -1); "
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
    """Where B_crit is not defined because a grid was too narrow. docs/protocol.md: every batch size's chosen rate
    must lie inside its grid after extension (:func:`bsnb.search.choose`, whose edge ignores the sqrt-2 refinement
    rates: they lie beyond an edge the chosen rate still holds). A search stopped at its target has no chosen rate:
    there, each (batch, seed) whose fewest-steps rate lies on an end of the rates it tried."""
    chosen = best_rates(tuned)
    if len(chosen):
        edges = chosen[chosen["on_edge"]].drop_duplicates("batch_size")
        return [f"batch {int(r.batch_size)} (chosen lr {r.best_lr:.4g} of {r.grid})" for r in edges.itertuples()]
    reached = tuned[tuned["reached_target"] == True]  # noqa: E712
    edges = []
    for (batch, seed), g in reached.groupby(["batch_size", "seed"]):
        grid = sorted(tuned[(tuned["batch_size"] == batch) & (tuned["seed"] == seed)]["lr_used"].unique())
        best = g.loc[g["steps_to_target"].idxmin(), "lr_used"]
        if len(grid) < 3 or best in (grid[0], grid[-1]):
            edges.append(f"batch {int(batch)} seed {int(seed)} (lr {best:g} of {', '.join(f'{x:g}' for x in grid)})")
    return edges


def exact_b_simple_at_target(runs: pd.DataFrame, ref: pd.DataFrame, wanted, target: float, window: int = 3
                             ) -> tuple[pd.Series, str, str]:
    """Notebook 01's exact B_simple per seed for C11, where the reference run's validation loss first reached the
    search's ``target`` (McCandlish sets the noise scale where training reaches a loss beside the critical batch
    for that loss); the best weights where that checkpoint is missing for a ``wanted`` seed or was saved at another
    loss. Returns the values, where they were measured, and a note saying why when it fell back ('' if not)."""
    exact = runs[runs.get("notebook") == "01_what_is_batch_size"] if "checkpoint" in runs else runs.iloc[0:0]
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


def critical_batch(runs: pd.DataFrame, noise_log: pd.DataFrame, epochs: pd.DataFrame, reference_batch: int = 32,
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
    tuned = runs[(runs.get("notebook") == "04_closing_the_gap") & (runs.get("remedy") == "tuned")] \
        if "remedy" in runs else pd.DataFrame()
    if tuned.empty or "reached_target" not in tuned:
        return empty("C11", "needs the learning-rate search (04, tuned)"), pd.DataFrame()
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
        return empty("C11", f"fewer than 3 batch sizes reached validation loss {target:g} for every seed: "
                             f"{', '.join(short)}"), table
    # B_simple: exact (notebook 01, where the validation loss first reached the target), and the two-batch
    # estimate beside it
    ref = runs[(runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == reference_batch)]
    exact, where, why = exact_b_simple_at_target(runs, ref, table["seed"], target, (reading or PROTOCOL).window)
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
    if len(two):  # every seed of the reference run, the search's or not, with its own definedness
        def said(sd) -> str:
            x = two.get(sd, math.nan)
            value = f"{x:.0f}" if math.isfinite(x) else "none"
            return f"seed {sd} {value}" + ("" if bool(defined.get(sd, False)) else
                                           " (undefined: the interval of its |G|^2 reaches 0)")
        notes.append("two-batch B_simple by seed: " + ", ".join(map(said, sorted(set(two.index) | set(defined.index))))
                     + f"; {negative_g2_share(log, hist, target):.0%} of its |G|^2 estimates are negative")
    edges = grid_edges(tuned)
    if edges:
        notes.append("learning rate on the edge of the searched grid after its extensions, so B_crit is not defined: "
                     + "; ".join(edges))
        verdict = INCONCLUSIVE
    if short:
        notes.append(f"left out, because fewer than 3 batch sizes reached validation loss {target:g} at any learning "
                     f"rate: {', '.join(short)}")
    v = Verdict("C11", verdict, effect, lo, hi, n, statement("C11"),
                f"B_simple / B_crit, per seed; B_simple {primary} ("
                + (f"per-example gradients of the batch-{reference_batch} run {where}" if primary == "exact" else
                   f"two-batch estimates along the batch-{reference_batch} run") + "), B_crit fitted as "
                f"S = S_min (1 + B_crit/B) to the fewest steps to validation loss {target:g} (supported within a "
                f"factor {factor:g})",
                f"B_simple {table['b_simple'].mean():.0f}, B_crit {table['b_crit'].mean():.0f}, S_min "
                f"{table['s_min'].mean():.0f} steps (means over {n} seed{'s' if n != 1 else ''})", MCCANDLISH,
                join_notes(*notes))
    return v, table


def _c11(st, rd):
    return critical_batch(st.runs(rd), st.tables.table("noise"), st.tables.epochs, st.small_batch, st.confidence,
                          reading=rd)[0]


# this question's claims, in the registry (bsnb.claims.registry)
CLAIMS = [
    Claim("C5", "The variance of the batch gradient falls as 1/B (with the finite-sample correction (m-B)/(m-1)); "
                "a check of the measurement",
          "measured/formula within 1 +- 0.1 at every batch size and checkpoint / any wholly outside", "gradient_noise",
          lambda st, rd: noise_variance(st.tables.table("variance"), st.confidence), 1, needs=ran("01_what_is_batch_size"),
          at_comparison_rate=False),
    Claim("C11", "The gradient noise scale B_simple predicts the critical batch size beyond which more batch no "
                 "longer cuts steps",
          "B_simple/B_crit within [1/5, 5], both defined / wholly outside", "steps_to_target", _c11, 1, WINDOWS,
          needs=ran("04_closing_the_gap", "tuned"), at_comparison_rate=False),
    Claim("C14", "The gradient noise scale grows as the training loss falls",
          "per-seed slope of log B_simple (exact) on -log(level) over the levels from 1 down to the lowest every "
          "seed reached: interval above 0 / below 0", "noise_scale",
          lambda st, rd: noise_growth(st.runs(rd), st.confidence, rd), 1, WINDOWS, needs=ran("01_what_is_batch_size")),
]
