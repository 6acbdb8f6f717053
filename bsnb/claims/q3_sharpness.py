"""Question 3, the sharpness analysis (notebook 03, and 04's linear-rule run): sharpness at the matched level
(C6), and under the linear rule (C16), the distance from initialisation (C7) and its law of growth (C13)."""

from __future__ import annotations

import math

import pandas as pd

from bsnb import minima
from bsnb.claims.protocol import (
    MATCHED_LEVELS,
    PROTOCOL,
    SHARPNESS,
    SMOOTHINGS,
    Claim,
    Reading,
    censored_seeds,
    choose_pair,
    comparison_runs,
    level_of,
    paired,
    ran,
    shifted_level,
    usable_runs,
)
from bsnb.claims.verdict import (
    Verdict,
    censor,
    empty,
    evidence_note,
    fmt,
    join_notes,
    rank_trend,
    ratio_text,
    ratio_verdict,
    seed_slope,
    statement,
)
from bsnb.stats import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, censoring_bias, decide, evidence_problem, interval

KESKAR_TABLE3 = {"small": 1.23, "large": 205.14}  # F1 (MNIST MLP), full space, epsilon 1e-3


def _source_status(measured: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Measurements of a trained run (03) take the status of the run they measured (02, the same batch size and
    seed): a run that failed to train is left out of the measurements too."""
    if "status" not in runs or measured.empty:
        return measured
    src = comparison_runs(runs)[0]
    src = src.assign(unstable=src["unstable"].fillna(False).astype(bool) if "unstable" in src else False)
    status = src.set_index(["batch_size", "seed"])[["status", "unstable"]]
    status = status[~status.index.duplicated()]
    keys = pd.MultiIndex.from_frame(measured[["batch_size", "seed"]])
    found = status.reindex(keys)
    return measured.assign(status=found["status"].fillna("ok").to_numpy(),
                           unstable=found["unstable"].fillna(False).astype(bool).to_numpy())


def _stable(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of stable runs: only they set a matched level (docs/protocol.md, unstable runs)."""
    return rows[~rows["unstable"].fillna(False).astype(bool)] if "unstable" in rows else rows


def sharpness(runs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
              confidence: float = 0.95, epsilon: float = 1e-3, reading: "Reading | None" = None) -> Verdict:
    """C6: the top Hessian eigenvalue, large over small batch, where the training loss first fell to the lowest of
    1, 0.3, 0.1, 0.03 that every stable run of the pair reached (the pair's matched level), and its per-seed slope
    over every measured batch size at the lowest level every stable run of every size reached.

    Supported when the ratio's lower end is above 1 and the slope's interval lies above 0; not supported when
    the ratio's upper end is below 1 or the slope's interval below 0. The trace and Keskar's epsilon-sharpness
    (at the sharpness notebook's ``matched_loss``) and the top eigenvalue at the final weights are reported beside
    it. ``reading.level_shift`` moves the matched level to a neighbouring one (the sensitivity analysis).
    """
    reading = reading or PROTOCOL
    r, group_note = comparison_runs(runs, "03_sharpness")
    if r.empty:
        return empty("C6", "no sharpness runs in the store")
    r = _source_status(r, runs)
    small, large, notes = choose_pair(r, small_batch, large_batch)
    source = comparison_runs(runs)[0]
    left_out = minima.unusable_note(source[source["batch_size"].isin(r["batch_size"])]) if len(source) else ""
    usable = usable_runs(r)
    final = usable[usable["checkpoint"] == "final"] if "checkpoint" in usable else usable
    levels = usable.assign(level=usable["checkpoint"].map(level_of)) if "checkpoint" in usable else usable.iloc[0:0]
    levels = levels[levels["level"].isin(MATCHED_LEVELS)]
    n_runs = final.groupby(["batch_size", "seed"]).ngroups

    def reached_by(sizes) -> list:
        """The levels every stable run of ``sizes`` reached (an unstable run is read at a level only if it reached
        it, and sets none)."""
        runs_of = _stable(final)[final["batch_size"].isin(sizes)] if len(final) else final
        stable = _stable(levels)[levels["batch_size"].isin(sizes)] if len(levels) else levels
        n_stable = runs_of.groupby(["batch_size", "seed"]).ngroups
        return [lv for lv in MATCHED_LEVELS if n_stable and
                stable[stable["level"] == lv].groupby(["batch_size", "seed"]).ngroups == n_stable]

    # docs/protocol.md, matched loss: the ratio at the pair's level (every stable run of both batch sizes reached
    # it), the trend over batch sizes at the level every stable run of every measured size reached
    level = shifted_level(reached_by([small, large]), reading.level_shift)
    trend_level = shifted_level(reached_by(sorted(set(final["batch_size"]))), reading.level_shift)
    at_levels = level is not None
    if at_levels:
        primary, where = levels[levels["level"] == level], f"where the training loss first fell to {level:g}"
    else:
        old = usable[usable["checkpoint"] == "matched"] if "checkpoint" in usable else usable.iloc[0:0]
        if reading.level_shift == 0 and len(old) and old.groupby(["batch_size", "seed"]).ngroups == n_runs:
            level = float(old["matched_loss"].iloc[0])  # a store measured before the levels were
            primary, where = old, f"where the training loss first fell to {level:g}"
        elif reading.level_shift:
            return empty("C6", f"no level {reading.level_shift:+d} place(s) from the matched one was reached by "
                                "every measured run")
        else:
            primary, where = final, "at the final weights"
            notes.append("no training-loss level of 1, 0.3, 0.1, 0.03 was reached by every measured run: compared at "
                         "the final weights, where the training losses differ and the Hessian shrinks with the loss")
    best = usable[usable["checkpoint"] == "best"] if "checkpoint" in usable else usable.iloc[0:0]
    if reading.at_minimum:
        if best.groupby(["batch_size", "seed"]).ngroups < n_runs or not n_runs:
            return empty("C6", "the top eigenvalue at the smoothed minimum was not measured for every run")
        primary, where, notes = best, "at the weights of the smoothed minimum", [
            n for n in notes if not n.startswith("no training-loss level")]
    if reading.at_minimum or not at_levels:  # the fallbacks read the trend where they read the ratio
        trend_rows, trend_where = primary, ""
    else:
        trend_rows = levels[levels["level"] == trend_level] if trend_level is not None else levels.iloc[0:0]
        trend_where = (f" where the training loss first fell to {trend_level:g} (the lowest every stable run of every "
                       "measured size reached)" if trend_level is not None else
                       " (no level every stable run of every measured size reached)")
    what = "" if reading.at_minimum else " (the lowest of 1, 0.3, 0.1, 0.03 every stable run of the pair reached)"
    v = ratio_verdict("C6", paired(primary, "lambda_max", small, large), "greater", confidence,
                       f"top Hessian eigenvalue of the training loss {where}{what}, ratio batch {large} / batch "
                       f"{small}; and the per-seed slope of log lambda_max on log2(batch) over every measured "
                       f"batch size{trend_where}",
                       published=f"Keskar et al. 2017, Table 3 (MNIST MLP, full space, eps 1e-3): "
                       f"epsilon-sharpness {KESKAR_TABLE3['small']} small batch vs {KESKAR_TABLE3['large']} large")
    slope, lo, hi, n_slopes = seed_slope(trend_rows, "lambda_max", confidence)
    rho, rlo, rhi, _ = rank_trend(trend_rows, "lambda_max", confidence)
    sizes = ", ".join(str(int(b)) for b in sorted(trend_rows["batch_size"].unique()))
    v.ours += (f"; per-seed slope of log lambda_max on log2(batch) (batches {sizes}) {fmt(slope)} [{fmt(lo)}, "
               f"{fmt(hi)}] over {n_slopes} seeds; rank correlation beside it {fmt(rho)} [{fmt(rlo)}, {fmt(rhi)}]")
    if not (math.isfinite(lo) and math.isfinite(hi)) or n_slopes < 3:
        notes.append("the trend needs at least 3 measured batch sizes in at least 3 seeds")
        trend = INCONCLUSIVE
    else:
        trend = SUPPORTED if lo > 0 else NOT_SUPPORTED if hi < 0 else INCONCLUSIVE
        if trend != SUPPORTED:
            notes.append(f"the top eigenvalue does not clearly rise with the batch size (per-seed slope "
                         f"{slope:.2f} [{lo:.2f}, {hi:.2f}] per doubling, on the log scale)")
    v.verdict = (NOT_SUPPORTED if NOT_SUPPORTED in (v.verdict, trend) else
                 SUPPORTED if (v.verdict, trend) == (SUPPORTED, SUPPORTED) else INCONCLUSIVE)
    full = usable[usable["checkpoint"] == "matched"] if "checkpoint" in usable else usable.iloc[0:0]
    eps = paired(full, f"eps_full_{epsilon:g}", small, large)
    if len(eps):
        at = f" at training loss {full['matched_loss'].iloc[0]:g}" if "matched_loss" in full else ""
        v.ours += (f"; trace ratio{at} {ratio_text(paired(full, 'trace', small, large), confidence)}; "
                   f"epsilon-sharpness (full, eps {epsilon:g}) ratio {ratio_text(eps, confidence)}")
    if primary is not final:
        v.ours += f"; at the final weights, top eigenvalue ratio {ratio_text(paired(final, 'lambda_max', small, large), confidence)}"
    if primary is not best and len(best):  # docs/protocol.md: the smoothed minimum beside the matched level
        v.ours += (f"; at the smoothed minimum, top eigenvalue ratio "
                   f"{ratio_text(paired(best, 'lambda_max', small, large), confidence)}")
    losses = paired(primary, "train_loss", small, large)
    if len(losses):
        v.ours += f"; training loss there small {losses['small'].mean():.3g}, large {losses['large'].mean():.3g}"
    v.note = join_notes(group_note, *notes, left_out, v.note)
    return v


C16_MARGIN = 1.25  # C16 (b): at an equal noise scale the large batch is not sharper, with a non-inferiority margin


def _pair_at_level(x: pd.DataFrame, y: pd.DataFrame, reading: "Reading") -> tuple[pd.DataFrame, str, float] | None:
    """The top eigenvalue of two arms per seed (columns x, y) at their pair's matched level: the lowest of 1, 0.3, 0.1,
    0.03 that every stable run of both reached (moved by ``reading.level_shift``), or at the weights of the smoothed
    minimum when ``reading.at_minimum``; None when there is no such level. Returns the pair, where it was read and the
    level (NaN at the minimum)."""
    level = math.nan
    if reading.at_minimum:
        take = lambda d: d[d["checkpoint"] == "best"]  # noqa: E731
        where = "at the weights of the smoothed minimum"
    else:
        calm_x, calm_y = _stable(x), _stable(y)
        reached = [lv for lv in MATCHED_LEVELS
                   if calm_x.loc[calm_x["level"] == lv, "seed"].nunique() == calm_x["seed"].nunique()
                   and calm_y.loc[calm_y["level"] == lv, "seed"].nunique() == calm_y["seed"].nunique()]
        level = shifted_level(reached, reading.level_shift)
        if level is None:
            return None
        take = lambda d: d[d["level"] == level]  # noqa: E731
        where = f"where the training loss first fell to {level:g}"
    both = pd.DataFrame({"x": take(x).set_index("seed")["lambda_max"], "y": take(y).set_index("seed")["lambda_max"]})
    both = both[~both.index.duplicated()].dropna()
    return (both, where, level) if len(both) else None


def edge_of_stability(runs: pd.DataFrame, level_sharpness: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                      confidence: float = 0.95, reading: "Reading | None" = None, rule: str = "linear_warmup"
                      ) -> Verdict:
    """C16, the edge-of-stability challenge to C6, in two parts, each at its pair's matched training-loss level
    (docs/protocol.md): (a) the top Hessian eigenvalue of the large batch under the linear rule (``rule``: notebook 04,
    measured with ``sharpness_at_levels``) over the large batch at the comparison's rate (notebook 03): below 1 when
    the rate moves sharpness; (b) the large batch under the linear rule over the small batch's comparison runs (03), at
    an equal noise scale lr N / B: not above :data:`C16_MARGIN` when the large batch is not sharper. Supported when
    (a)'s upper end is below 1 and (b)'s below 1.25 (flatter, as the edge of stability predicts, supports it too); not
    supported when (b)'s lower end is above 1.25 (sharper even at an equal noise scale: Keskar's mechanism) or (a)'s
    lower end above 1. The effect is (b). Beside it, lambda_max x lr / (2 (1 + momentum)) of every measured run, the
    share of full-batch gradient descent's stability edge it sits at."""
    reading = reading or PROTOCOL
    sharp = _source_status(comparison_runs(runs, "03_sharpness")[0], runs) if "notebook" in runs else runs.iloc[0:0]
    sharp = usable_runs(sharp)
    small = sharp[sharp["batch_size"] == small_batch] if len(sharp) else sharp
    at_rate = sharp[sharp["batch_size"] == large_batch] if len(sharp) else sharp
    large = level_sharpness.copy() if len(level_sharpness) else pd.DataFrame()
    if len(large) and "remedy" in large:
        large = large[(large["remedy"] == rule) & (large["batch_size"] == large_batch)]
    trained = runs[(runs.get("notebook") == "04_closing_the_gap") & (runs.get("remedy") == rule)
                   & (runs["batch_size"] == large_batch)] if "remedy" in runs else runs.iloc[0:0]
    if len(large) and len(trained):  # a rule's run that failed to train leaves its measurements too
        ok = set(usable_runs(trained)["seed"])
        large = large[large["seed"].isin(ok)]
        shaky = set(minima.unstable(trained)["seed"])
        large = large.assign(unstable=large["seed"].isin(shaky))
    if small.empty or large.empty or "checkpoint" not in small:
        return empty("C16", f"needs the top eigenvalue at the loss levels of batch {small_batch}'s comparison runs "
                             f"(03) and of batch {large_batch}'s {rule} runs (04 with sharpness_at_levels)")
    small, large = (d.assign(level=d["checkpoint"].map(level_of)) for d in (small, large))
    at_rate = at_rate.assign(level=at_rate["checkpoint"].map(level_of)) if len(at_rate) else at_rate
    b_read = _pair_at_level(large, small, reading)
    if b_read is None:
        return empty("C16", "no training-loss level of 1, 0.3, 0.1, 0.03 (or its neighbour) was reached by every "
                             f"stable measured run of batch {small_batch} and of batch {large_batch} under {rule}")
    pair, where, level = b_read
    ratio = pair["x"] / pair["y"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    notes = [evidence_note(ratio, lo, hi, n, log=True), minima.unusable_note(trained)]
    a_read = _pair_at_level(large, at_rate, reading) if len(at_rate) and "checkpoint" in at_rate else None
    if a_read is None:
        a_text, a_lo, a_hi = "not measured", math.nan, math.nan
        notes.insert(0, f"(a) needs the top eigenvalue at the loss levels of batch {large_batch}'s comparison runs (03 "
                        "at the large batch) and a level both reached: without it the claim cannot be supported")
    else:
        a_pair, a_where, _ = a_read
        a_eff, a_lo, a_hi, _ = interval(a_pair["x"] / a_pair["y"], confidence, log=True)
        a_text = f"{fmt(a_eff)} [{fmt(a_lo)}, {fmt(a_hi)}] ({a_where})"
    if (math.isfinite(lo) and lo > C16_MARGIN) or (math.isfinite(a_lo) and a_lo > 1):
        verdict = NOT_SUPPORTED
    elif math.isfinite(a_hi) and a_hi < 1 and math.isfinite(hi) and hi < C16_MARGIN:
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    if evidence_problem(lo, hi, n):
        verdict = INCONCLUSIVE
    compared = comparison_runs(runs)[0]
    lr_small = float(compared["lr"].iloc[0]) if len(compared) else math.nan
    lr_large = float(trained["lr_used"].iloc[0]) if "lr_used" in trained and len(trained) else math.nan
    momentum = float(trained["momentum"].iloc[0]) if "momentum" in trained and len(trained) else 0.9
    edge = lambda lam, lr: lam * lr / (2 * (1 + momentum))  # noqa: E731
    at = sharp.assign(level=sharp["checkpoint"].map(level_of))
    at = (at[at["checkpoint"] == "best"] if reading.at_minimum else at[at["level"] == level]) \
        .groupby("batch_size")["lambda_max"].mean()
    ours = (f"(b) batch {large_batch} under {rule} over batch {small_batch}: top eigenvalue {pair['x'].mean():.3g} "
            f"(lr {lr_large:.3g}) against {pair['y'].mean():.3g} (lr {lr_small:g}) (mean of {n} seeds); (a) batch "
            f"{large_batch} under {rule} over batch {large_batch} at the comparison's rate: {a_text}; "
            f"lambda_max x lr / (2 (1 + momentum)) there: batch {large_batch} under {rule} "
            f"{edge(pair['x'].mean(), lr_large):.2f}; at the comparison's rate "
            + ", ".join(f"batch {int(b)} {edge(lam, lr_small):.2f}" for b, lam in at.items())
            + " (1 is full-batch descent's stability edge)")
    return Verdict("C16", verdict, effect, lo, hi, n, statement("C16"),
                   f"top Hessian eigenvalue {where}, ratio batch {large_batch} under the linear rule ({rule}: the rate "
                   f"scaled with the batch, so the noise scale is equal) / batch {small_batch} (b: not sharper when the "
                   f"upper end is below {C16_MARGIN:g}); and (a) the same run over batch {large_batch} at the "
                   "comparison's rate (the rate moves sharpness when the upper end is below 1)",
                   ours, "Kaur, Cohen and Lipton 2023: scaling the batch and the rate together moves lambda_max "
                         "without changing generalisation; Andriushchenko et al. 2023: sharpness tracks the rate",
                   join_notes(*notes))


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
        return empty("C7", "no sampled steps in the store")
    small, large, notes = choose_pair(comparison, small_batch, large_batch)
    c = usable_runs(comparison[comparison["batch_size"].isin([small, large])])
    c = c.assign(run=minima.run_labels(c))
    key = pd.MultiIndex.from_frame(c[["job_id", "run"]])
    c = c.assign(distance_at_min=minima.value_at_step(steps, "distance", pd.Series(
        c["step_of_min_val_loss"].to_numpy(float), index=key)).reindex(key).to_numpy())
    smoothing = (f"smoothed over {reading.smoothing} evaluated epochs" if reading.smoothing > 1 else "raw")
    v = ratio_verdict("C7", paired(c, "distance_at_min", small, large), "less", confidence,
                       f"distance from initialisation at the weights of the minimum validation loss ({smoothing}; "
                       f"interpolated between logged steps), ratio batch {large} / batch {small}",
                       published="Keskar et al. 2017: small-batch minima lie 3 to 10 times farther from the start "
                                 "(a ratio of 0.1 to 0.33)",
                       note=join_notes(group_note, *notes, minima.unusable_note(comparison[comparison["batch_size"].isin(
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
                   f"average) {ratio_text(paired(equal, 'distance', small, large), confidence)}")
    # a censored minimum lies later than measured, where the weights are farther out: a censored small batch may have
    # made the ratio larger than the truth, a censored large batch smaller (the protocol's censoring rule)
    censored = {f"batch {small}": censored_seeds(comparison, small), f"batch {large}": censored_seeds(comparison, large)}
    return censor(v, "less", censored, censoring_bias(bool(censored[f"batch {small}"]), bool(censored[f"batch {large}"])))


def minimum_steps(runs: pd.DataFrame) -> pd.Series:
    """Per (job_id, run) of the comparison's usable runs, the step of the smoothed minimum (C13 fits up to it)."""
    c = usable_runs(comparison_runs(runs)[0])
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
        return empty("C13", "no sampled steps in the store")
    per_seed = laws.groupby("seed")["rmse_diff"].mean()
    effect, lo, hi, n = interval(per_seed, confidence)
    c = laws.groupby("batch_size")["exponent"].median()
    by_batch = []
    for b, g in laws.groupby("batch_size"):
        e, blo, bhi, bn = interval(g["rmse_diff"], confidence)
        side = "log" if bhi < 0 else "sqrt" if blo > 0 else "neither"
        by_batch.append(f"batch {int(b)} {fmt(e)} [{fmt(blo)}, {fmt(bhi)}] ({side})")
    return Verdict("C13", decide(lo, hi, 0.0, "less", n), effect, lo, hi, n, statement("C13"),
                   "held-out error of distance = a + b log(t) minus that of a + b sqrt(t), relative to the last fitted "
                   "distance, fitted on the first share of the logged steps from the end of the first epoch to the "
                   "smoothed minimum and scored on the rest, mean over batch sizes (< 0: the log law predicts better)",
                   "per batch size (which law predicts better): " + "; ".join(by_batch)
                   + "; median exponent c of a + b t^c (0: logarithmic, 0.5: random walk): " + ", ".join(
                       f"batch {int(b)} {x:.2f}" for b, x in c.items()),
                   "Hoffer et al. 2017: ||w_t - w_0|| grows like log(t), an ultra-slow diffusion",
                   evidence_note(per_seed, lo, hi, n))


def _c13(st, rd):
    laws = minima.distance_laws(st.comparison_steps(rd), st.tables.epochs, rd.train_share,
                                until=minimum_steps(st.runs(rd)))
    return distance_law(laws, st.confidence)


# this question's claims, in the registry (bsnb.claims.registry)
CLAIMS = [
    Claim("C6", "Large-batch minima are sharper",
          "ratio large/small of the top Hessian eigenvalue at the matched training-loss level: lower end > 1, and the "
          "per-seed slope of log lambda_max on log2(batch) above 0 / upper end < 1 or the slope below 0", "sharpness",
          lambda st, rd: sharpness(st.runs(rd), st.small_batch, st.large_batch, st.confidence, reading=rd), 3,
          SHARPNESS, needs=ran("03_sharpness")),
    Claim("C7", "Large-batch weights end closer to their initialisation",
          "ratio large/small of ||w - w_0|| at the smoothed minimum: upper end < 1 / lower end > 1", "distance",
          lambda st, rd: distance(st.runs(rd), st.comparison_steps(rd), st.small_batch, st.large_batch,
                                  st.confidence, rd), 3, SMOOTHINGS),
    Claim("C13", "The distance from initialisation grows like log(steps), more slowly than a random walk's "
                 "sqrt(steps)",
          "mean over batch sizes of the held-out error of the log fit minus the sqrt fit, up to the smoothed "
          "minimum: upper end < 0 / lower end > 0", "distance", _c13, 3,
          (Reading(train_share=0.5), Reading(train_share=0.85))),
    Claim("C16", "Sharpness follows the learning rate, not the batch size: with the rate scaled with the batch (the "
                 "linear rule), large-batch minima are not sharper",
          "at each pair's matched level, (a) the large batch under the linear rule over the large batch at the "
          "comparison's rate: upper end < 1, and (b) the same over the small batch: upper end < 1.25 / (b)'s lower "
          "end > 1.25, or (a)'s lower end > 1", "sharpness",
          lambda st, rd: edge_of_stability(st.runs(rd), st.tables.table("level_sharpness"), st.small_batch,
                                           st.large_batch, st.confidence, rd), 3, SHARPNESS, needs=ran("04_closing_the_gap", "linear_warmup")),
]
