"""Question 2, the empirical comparison (notebook 02): small against large batches at one learning rate, by
training speed per epoch (C1), minimum validation loss (C2), wall time (C3) and epochs to the minimum (C4)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bsnb import minima
from bsnb.claims.protocol import (
    LEVELS,
    MATCHED_LEVELS,
    MINIMA,
    MINIMA_AND_TEST,
    PROTOCOL,
    SMOOTHINGS,
    Claim,
    Reading,
    best_rates,
    censored_seeds,
    choose_pair,
    common_level,
    comparison_runs,
    epochs_to_level,
    intention_to_treat,
    one_claim,
    paired,
    ran,
    usable_runs,
)
from bsnb.claims.verdict import (
    Verdict,
    censor,
    empty,
    evidence_note,
    fmt,
    join_notes,
    ratio_text,
    ratio_verdict,
    seed_slope,
    statement,
)
from bsnb.stats import INCONCLUSIVE, censoring_bias, decide, interval

ARTICLE = {"small_batch": 32, "large_batch": 256, "min_val_loss": {32: 0.344, 256: 0.395}}


def compared_epoch(epochs: pd.DataFrame, runs: pd.DataFrame, small: int, large: int, c1_epoch: int = 0) -> int:
    """The last epoch that every compared run trained (``c1_epoch`` when given)."""
    if c1_epoch > 0:
        return c1_epoch
    ids = runs.loc[runs["batch_size"].isin([small, large]), "job_id"]
    ep = epochs[epochs["job_id"].isin(ids) & epochs["train_loss"].notna()]
    return int(ep.groupby(["job_id", "seed"])["epoch"].max().min()) if len(ep) else 0


def empirical(runs: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
              c1_level: float = 0.0, confidence: float = 0.95, timing: pd.DataFrame | None = None,
              reading: "Reading | None" = None) -> list[Verdict]:
    """Verdicts of C1-C4 from the empirical-comparison runs, read by :func:`bsnb.minima.read_runs` (smoothed
    minima; failed runs marked); C3 from ``timing`` (:func:`bsnb.timing.interleaved_epochs`, measured alone) when
    given, else from the runs' own timings, labelled descriptive."""
    reading = reading or PROTOCOL
    runs, group_note = comparison_runs(runs)
    if runs.empty:
        return [empty(c, "no empirical-comparison runs in the store") for c in ("C1", "C2", "C3", "C4")]
    small, large, notes = choose_pair(runs, small_batch, large_batch)
    pair = f"batch {large} / batch {small}"
    notes = ([group_note] if group_note else []) + notes
    left_out = minima.unusable_note(runs[runs["batch_size"].isin([small, large])])
    if left_out:
        notes.append(left_out)
    base_note = "; ".join(notes)
    censored = {f"batch {small}": censored_seeds(runs, small), f"batch {large}": censored_seeds(runs, large)}
    smoothing = (f"smoothed over {reading.smoothing} evaluated epochs" if reading.smoothing > 1
                 else "raw, unsmoothed")
    out = []

    # C1: epochs to first reach a training-loss level, the lowest that every stable compared run reached
    usable = usable_runs(runs)
    compared = usable[usable["batch_size"].isin([small, large])]
    ep = epochs[epochs["job_id"].isin(compared["job_id"])] if len(epochs) else epochs
    if len(ep):
        ep = ep.merge(compared[["job_id", "seed"]], on=["job_id", "seed"])
    # the level is set by the stable runs; an unstable run is read there only if it reached it
    stable = compared[~compared["unstable"].fillna(False).astype(bool)] if "unstable" in compared else compared
    ep_stable = ep.merge(stable[["job_id", "seed"]], on=["job_id", "seed"]) if len(ep) else ep
    level, reached = ((c1_level, [c1_level]) if c1_level > 0 else common_level(ep_stable, shift=reading.level_shift))
    if level is None or ep.empty:
        why = ("no training-loss level of " + ", ".join(f"{x:g}" for x in MATCHED_LEVELS) + " was reached by every "
               "stable compared run" if not reached else f"the level {reading.level_shift:+d} place(s) from the lowest one "
               "every stable compared run reached was not reached by all")
        out.append(empty("C1", join_notes(base_note, why)))
    else:
        first = epochs_to_level(ep, level).rename("epochs_to_level").reset_index()
        first = first.merge(compared[["job_id", "seed", "batch_size"]], on=["job_id", "seed"]).assign(status="ok")
        v = ratio_verdict("C1", paired(first, "epochs_to_level", small, large), "greater", confidence,
                           f"epochs to first reach training loss {level:g} (the lowest of "
                           f"{', '.join(f'{x:g}' for x in MATCHED_LEVELS)} that every stable compared run reached), ratio {pair}",
                           fmt="{:.1f}",
                           published="article: the large batch's training loss falls more slowly per epoch (figure, "
                                     "no number)", note=base_note)
        out.append(v)

    # C2: minimum of the smoothed validation loss; a censored large batch can only have made the ratio larger
    published = (f"article: {ARTICLE['min_val_loss'][32]} (batch 32) vs {ARTICLE['min_val_loss'][256]} (batch 256), "
                 f"ratio {ARTICLE['min_val_loss'][256] / ARTICLE['min_val_loss'][32]:.2f}")
    v = ratio_verdict("C2", paired(runs, "min_val_loss", small, large), "greater", confidence,
                       f"minimum validation loss ({smoothing}), ratio {pair}", published=published, note=base_note)
    raw = paired(runs, "min_val_loss_raw", small, large)
    if len(raw):
        v.ours += f"; raw minima {ratio_text(raw, confidence)}"
    rho, lo, hi, n = seed_slope(usable[usable["batch_size"] >= small], "min_val_loss", confidence)
    if math.isfinite(rho):
        v.ours += (f"; per-seed slope of log minimum on log2(batch) over batches "
                   f"{', '.join(str(int(b)) for b in sorted(usable.loc[usable['batch_size'] >= small, 'batch_size'].unique()))}"
                   f" {fmt(rho)} [{fmt(lo)}, {fmt(hi)}]")
    out.append(censor(v, "greater", censored, censoring_bias(bool(censored[f"batch {large}"]),
                                                               bool(censored[f"batch {small}"]))))

    # C3: seconds per epoch, from a timing that ran alone (interleaved repeats, paired by repeat)
    published = "article: larger batches take less time per epoch (figure, no number)"
    if timing is not None and {small, large} <= set(timing.get("batch_size", [])):
        t = timing.rename(columns={"repeat": "seed"}).assign(status="ok")
        v = ratio_verdict("C3", paired(t, "seconds_per_epoch", small, large), "less", confidence,
                           f"seconds per training epoch, ratio {pair}, timed alone after the sweep on "
                           f"{int(t['threads'].iloc[0])} thread(s) ({t['device'].iloc[0]}), every batch size of the "
                           f"comparison in turn; 'seeds' counts the repeats", published=published, note=base_note)
    else:
        v = ratio_verdict("C3", paired(runs, "seconds_per_epoch", small, large), "less", confidence,
                           f"seconds per training epoch (median over epochs), ratio {pair}", published=published,
                           note=join_notes(base_note, "descriptive only: timed inside the sweep, while other jobs shared "
                                                 "the machine; no timing that ran alone is in the store"))
        v.verdict = INCONCLUSIVE
    eps = paired(runs, "examples_per_second", small, large)
    if len(eps):
        v.ours += f"; in the sweep's runs, examples/s small {eps['small'].mean():,.0f}, large {eps['large'].mean():,.0f}"
    out.append(v)

    # C4: epoch of the smoothed minimum, large - small. A censored large batch's true epoch is later (the
    # difference is understated), a censored small batch's overstates it.
    pairs = paired(runs, "epoch_of_min_val_loss", small, large)
    diff = pairs["large"] - pairs["small"]
    effect, lo, hi, n = interval(diff, confidence)
    v = Verdict("C4", decide(lo, hi, 0.0, "at_least", n), effect, lo, hi, n, statement("C4"),
                f"epoch of the minimum validation loss ({smoothing}), difference batch {large} - batch {small}",
                f"small {pairs['small'].mean():.1f}, large {pairs['large'].mean():.1f} epochs (mean of {n} seeds)"
                if n else "no paired seeds",
                "article: larger batches do not reach their minimum in fewer epochs",
                join_notes(base_note, evidence_note(diff, lo, hi, n)))
    out.append(censor(v, "at_least", censored, censoring_bias(bool(censored[f"batch {small}"]),
                                                                bool(censored[f"batch {large}"]))))
    return out


def gap_by_budget(runs: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                  confidence: float = 0.95) -> pd.DataFrame:
    """C2's ratio as a function of the budget: per epoch k, the minimum validation loss over epochs 1..k of the
    large batch over the small batch's, geometric mean and interval over seeds (a run that stopped keeps its
    minimum)."""
    runs, _ = comparison_runs(runs)
    if runs.empty:
        return pd.DataFrame()
    small, large, _ = choose_pair(runs, small_batch, large_batch)
    ids = runs[runs["batch_size"].isin([small, large]) & (runs["status"] == "ok")]["job_id"]
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


def learning_rate_check(runs: pd.DataFrame, small_batch: int = 32) -> str:
    """Whether the comparison's one learning rate is the small batch's best in the learning-rate search (fewest
    steps to the target, the most common best over seeds), said in a sentence computed from the store."""
    comparison, _ = comparison_runs(runs)
    if comparison.empty or "remedy" not in runs:
        return ""
    lr = float(comparison["lr"].iloc[0])
    best = best_rates(runs)
    best = best[best["batch_size"] == small_batch] if len(best) else best
    if len(best):  # docs/protocol.md: the small batch's chosen rate, the lowest mean smoothed minimum
        chosen, n = float(best["best_lr"].iloc[0]), best["seed"].nunique()
        edge = " (on the edge of its grid after extension: the grid was too narrow)" if best["on_edge"].any() else ""
        if math.isclose(chosen, lr, rel_tol=1e-9):
            return (f"the comparison's learning rate {lr:g} is the batch-{small_batch} rate the learning-rate search "
                    f"chooses (lowest mean smoothed minimum validation loss over its {n} seeds){edge}")
        return (f"the comparison's learning rate {lr:g} is NOT the batch-{small_batch} rate the learning-rate search "
                f"chooses by mean smoothed minimum validation loss ({chosen:.4g}, over its {n} seeds){edge}: the "
                "comparison may be unfair to the small batch")
    tuned = runs[(runs["notebook"] == "04_closing_the_gap") & (runs["remedy"] == "tuned")
                 & (runs["batch_size"] == small_batch)]
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


ONE_PASS_MARGIN = 1.05  # C17's non-inferiority margin (docs/protocol.md): the large batch at most 5% worse


def _best_by_step(epochs: pd.DataFrame, job_id: str, run: str, step: float, window: int, whole: bool = False
                  ) -> float:
    """The best smoothed validation loss of one run within its first ``step`` optimiser steps (the smoothed curve
    interpolated at ``step`` counts too). A run that stopped before ``step``: NaN, unless ``whole`` (a run stopped at
    a minimum its patience confirmed, whose best within the first ``step`` steps is its best)."""
    g = epochs[(epochs["job_id"] == job_id) & (epochs["run"] == run) & (epochs["epoch"] > 0)].sort_values("step")
    if g.empty or not math.isfinite(step) or step < g["step"].min():
        return math.nan
    x, sm = g["step"].to_numpy(float), minima.smooth(g["val_loss"].to_numpy(float), window)
    if not np.isfinite(sm).any():  # a run that diverged from its first evaluation
        return math.nan
    if step > x[-1]:
        return float(np.nanmin(sm)) if whole else math.nan
    return float(min(np.nanmin(sm[x <= step]), np.interp(step, x, sm)))


def _ended_before(epochs: pd.DataFrame, run: pd.Series, step: float) -> bool:
    """Whether a run's last evaluated step comes before ``step``."""
    g = epochs[(epochs["job_id"] == run["job_id"]) & (epochs["run"] == run["run"])]
    return bool(len(g) and math.isfinite(step) and g["step"].max() < step)


def _repeated_bounds(table: pd.DataFrame, small_batch: int, large_batch: int) -> dict:
    """The seeds whose repeated-data run ended before s at a censored minimum, by arm: their best by s is an upper
    bound (docs/protocol.md, censoring)."""
    return {f"batch {b} with repeated data (stopped by the cap before step s)":
            sorted(table.loc[table[f"repeated_{key}_bound"], "seed"].tolist())
            for key, b in (("small", small_batch), ("large", large_batch)) if f"repeated_{key}_bound" in table}


def one_pass_arms(runs: pd.DataFrame, small_batch: int, large_batch: int, usable: bool = True) -> tuple[dict, dict]:
    """C17's runs: the one-pass arms and the repeated-data comparison, each {"small": ..., "large": ...}. ``usable``:
    the comparison's runs that trained, and the one-pass arms (the remedy's) by intention to treat (a failed or
    diverged run kept, docs/protocol.md); else every run."""
    remedy = runs["remedy"] if "remedy" in runs else pd.Series("", index=runs.index)
    arm = {"small": runs[(remedy == "one_pass") & (runs["batch_size"] == small_batch)],
           "large": runs[(remedy == "one_pass_longer") & (runs["batch_size"] == large_batch)]}
    if usable:
        arm = {k: intention_to_treat(v) for k, v in arm.items()}
    comparison, _ = comparison_runs(usable_runs(runs) if usable else runs)
    repeated = {k: comparison[comparison["batch_size"] == b] for k, b in (("small", small_batch), ("large", large_batch))}
    return arm, repeated


def one_pass_curves(runs: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                    window: int = minima.SMOOTHING) -> tuple[pd.DataFrame, pd.Series]:
    """C17's figure: the smoothed validation loss against the step of each run of both regimes (``regime``, ``batch_size``,
    ``seed``, ``step``, ``val_loss``), and the steps of the small batch's repeated-data minima."""
    arm, repeated = one_pass_arms(runs, small_batch, large_batch)
    ep = epochs.assign(run=minima.run_labels(epochs)) if "run" not in epochs else epochs
    frames = []
    if arm["small"].empty and arm["large"].empty:  # no one-pass run: nothing to draw
        repeated = {k: v.iloc[0:0] for k, v in repeated.items()}
    for regime, chosen in (("one pass", arm), ("repeated data", repeated)):
        for key, rows in chosen.items():
            for _, r in rows.iterrows():
                g = ep[(ep["job_id"] == r["job_id"]) & (ep["run"] == r["run"]) & (ep["epoch"] > 0)].sort_values("step")
                frames.append(pd.DataFrame({"regime": regime, "batch_size": r["batch_size"], "seed": r["seed"],
                                            "step": g["step"].to_numpy(), "val_loss": minima.smooth(g["val_loss"], window)}))
    curves = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["regime", "batch_size", "seed", "step", "val_loss"])
    return curves, repeated["small"].get("step_of_min_val_loss", pd.Series(dtype=float))


def one_pass_table(runs: pd.DataFrame, epochs: pd.DataFrame, small_batch: int, large_batch: int,
                   window: int) -> tuple[pd.DataFrame, list, str]:
    """Per seed, s (the step of the small batch's repeated-data smoothed minimum) and each arm's best smoothed
    validation loss within the first s steps, in one pass (``small``, ``large``) and with repeated data
    (``repeated_small``, ``repeated_large``). Returns the table, the seeds whose one-pass budget ended before s, and
    why there is no table (empty when there is one)."""
    if runs.empty or "remedy" not in runs:
        return pd.DataFrame(), [], "no one-pass runs (notebook 04's one_pass and one_pass_longer arms)"
    arm, repeated = one_pass_arms(runs, small_batch, large_batch)
    ep = epochs.assign(run=minima.run_labels(epochs)) if "run" not in epochs else epochs
    if arm["small"].empty or arm["large"].empty:
        trained = one_pass_arms(runs, small_batch, large_batch, usable=False)[0]
        why = (" that trained: every one failed to train or diverged" if not trained["small"].empty
               and not trained["large"].empty else "")
        return pd.DataFrame(), [], (f"no one-pass runs at batch {small_batch} (remedy one_pass) and batch "
                                    f"{large_batch} (remedy one_pass_longer){why}")
    if repeated["small"].empty:
        return pd.DataFrame(), [], (f"no repeated-data comparison run at batch {small_batch}: the step of its minimum "
                                    "is where C17 reads the one-pass runs")
    rows, beyond = [], []
    # a repeated-data run that ended before s at a minimum the cap cut off: its best by s is only bounded (censoring)
    cut = {key: set(censored_seeds(rows_, int(rows_["batch_size"].iloc[0]))) if len(rows_) else set()
           for key, rows_ in repeated.items()}
    for _, ref in repeated["small"].iterrows():
        seed, step = ref["seed"], float(ref.get("step_of_min_val_loss", math.nan))
        row = {"seed": seed, "step": step}
        for key in ("small", "large"):
            one = arm[key][arm[key]["seed"] == seed]
            failed = len(one) and one["status"].iloc[0] not in ("ok", None) if "status" in one else False
            # a run kept by intention to treat stopped for good: its best so far is its best by s (chance if none)
            row[key] = _best_by_step(ep, one["job_id"].iloc[0], one["run"].iloc[0], step, window, whole=failed) \
                if len(one) else math.nan
            if failed and not math.isfinite(row[key]):
                row[key] = float(one["chance_loss"].iloc[0]) if "chance_loss" in one else math.nan
            rep = repeated[key][repeated[key]["seed"] == seed]
            row[f"repeated_{key}"] = (_best_by_step(ep, rep["job_id"].iloc[0], rep["run"].iloc[0], step, window,
                                                    whole=True) if len(rep) else math.nan)
            row[f"repeated_{key}_bound"] = bool(len(rep) and seed in cut[key] and _ended_before(ep, rep.iloc[0], step))
            if len(one) and not math.isfinite(row[key]) and seed not in beyond:
                beyond.append(seed)
        rows.append(row)
    return pd.DataFrame(rows), beyond, ""


def _one_pass_notes(runs: pd.DataFrame, small_batch: int, large_batch: int, beyond: list) -> list[str]:
    notes = []
    if beyond:
        notes.append(f"the one-pass budget ended before the step of the repeated-data minimum in seed"
                     f"{'s' if len(beyond) > 1 else ''} {', '.join(map(str, beyond))}: left out (a longer one-pass "
                     "budget reads them)")
    failed = [f"{key} batch seed {r['seed']} ({r['status']})" for key, rows in one_pass_arms(runs, small_batch, large_batch,
                                                                                          usable=False)[0].items()
              for _, r in rows.iterrows() if r.get("status") not in (None, "ok") and isinstance(r.get("status"), str)]
    if failed:
        notes.append("kept with their measured best (intention to treat; a non-finite one counts as the chance loss), "
                     "one pass: " + ", ".join(failed))
    return notes


def one_pass(runs: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
             confidence: float = 0.95, reading: Reading = PROTOCOL) -> Verdict:
    """C17 (Vyas et al. 2024): in one pass over fresh data (notebook 04's ``one_pass`` arm at the small batch and
    ``one_pass_longer`` at the large batch, as many steps), the best smoothed validation loss within the first s steps,
    large / small, seed by seed, s being the step of the small batch's repeated-data smoothed minimum; the same ratio
    with repeated data beside it, read the same way. Non-inferiority: supported when the upper end < 1.05."""
    table, beyond, why = one_pass_table(runs, epochs, small_batch, large_batch, reading.smoothing)
    if why:
        return empty("C17", why)
    pairs = table.dropna(subset=["small", "large"])
    ratio = pairs["large"] / pairs["small"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    rep_pairs = table.dropna(subset=["repeated_small", "repeated_large"])
    r_effect, r_lo, r_hi, r_n = interval(rep_pairs["repeated_large"] / rep_pairs["repeated_small"], confidence, log=True)
    ours = (f"one pass: small {pairs['small'].mean():.3f}, large {pairs['large'].mean():.3f}, the best within the "
            f"small batch's steps to its repeated-data minimum (mean {table['step'].mean():.0f} steps, {n} seed"
            f"{'s' * (n != 1)}); repeated data read the same way: {fmt(r_effect)} [{fmt(r_lo)}, {fmt(r_hi)}] "
            f"({r_n} seed{'s' * (r_n != 1)})") if n else "no paired seeds"
    notes = [evidence_note(ratio, lo, hi, n, log=True), *_one_pass_notes(runs, small_batch, large_batch, beyond)]
    bounds = "; ".join(f"{arm} in seeds {', '.join(map(str, seeds))}"
                       for arm, seeds in _repeated_bounds(table, small_batch, large_batch).items() if seeds)
    if bounds:  # the verdict reads one pass only; the repeated-data ratio beside it is a bound there
        notes.append(f"the repeated-data ratio beside it rests on bounds: {bounds}")
    if r_n < len(table):
        notes.append("the repeated-data ratio leaves out seeds without a large-batch comparison run")
    return Verdict("C17", decide(lo, hi, ONE_PASS_MARGIN, "less", n), effect, lo, hi, n, statement("C17"),
                   f"best smoothed validation loss within the first s steps (s: the step of the batch-{small_batch} "
                   f"repeated-data minimum), one pass over fresh data, ratio batch {large_batch} / batch {small_batch}",
                   ours, "Vyas et al. 2024: in one pass, small batches confer no advantage beyond computation (no "
                   "number for this setting)", join_notes(*notes))


def one_pass_interaction(runs: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                         confidence: float = 0.95, reading: Reading = PROTOCOL) -> Verdict:
    """C19 (Vyas et al. 2024): the small batch's advantage is an effect of repeated data. Per seed, log(one-pass ratio
    large/small) - log(repeated-data ratio large/small), both read as C17 reads them; supported when the interval lies
    below 0 (one pass shrinks the large batch's deficit), not supported when above."""
    table, beyond, why = one_pass_table(runs, epochs, small_batch, large_batch, reading.smoothing)
    if why:
        return empty("C19", why)
    both = table.dropna(subset=["small", "large", "repeated_small", "repeated_large"])
    both = both[(both[["small", "large", "repeated_small", "repeated_large"]] > 0).all(axis=1)]
    diff = np.log(both["large"] / both["small"]) - np.log(both["repeated_large"] / both["repeated_small"])
    effect, lo, hi, n = interval(diff, confidence)
    ours = (f"log ratio large/small, one pass {np.log(both['large'] / both['small']).mean():.3f}, repeated data "
            f"{np.log(both['repeated_large'] / both['repeated_small']).mean():.3f} (means of {n} seeds)") if n \
        else "no paired seeds"
    v = Verdict("C19", decide(lo, hi, 0.0, "less", n), effect, lo, hi, n, statement("C19"),
                f"per seed, log(one-pass ratio batch {large_batch}/{small_batch}) - log(repeated-data ratio), both the "
                "best smoothed validation loss within the first s steps (below 0: one pass removes some of the "
                "small batch's advantage)", ours,
                "Vyas et al. 2024: in one pass, small batches confer no implicit-bias advantage; their benefit is "
                "only computational",
                join_notes(evidence_note(diff, lo, hi, n), *_one_pass_notes(runs, small_batch, large_batch, beyond)))
    # a censored large batch's best by s is an upper bound: the repeated-data ratio may be smaller, the difference
    # larger than measured (a bias down); a censored small batch's, the other way
    small_cut, large_cut = (bool(both.get(f"repeated_{key}_bound", pd.Series(dtype=bool)).any())
                            for key in ("small", "large"))
    return censor(v, "less", _repeated_bounds(both, small_batch, large_batch), censoring_bias(small_cut, large_cut))


def _empirical(claim):
    return lambda st, rd: one_claim(st.memo(("empirical", rd), lambda: empirical(
        st.runs(rd), st.tables.epochs, st.small_batch, st.large_batch, st.c1_level, st.confidence, st.speed, rd)), claim)


# this question's claims, in the registry (bsnb.claims.registry)
CLAIMS = [
    Claim("C1", "At a fixed learning rate, larger batches lower the training loss more slowly per epoch",
          "ratio large/small of the epochs to first reach the lowest training-loss level of 1, 0.3, 0.1, 0.03 that "
          "every stable compared run reached: lower end > 1 / upper end < 1", "loss_curves", _empirical("C1"), 2, LEVELS, needs=ran("02_empirical_comparison")),
    Claim("C2", "At a fixed learning rate, larger batches reach a worse minimum validation loss",
          "ratio large/small of the smoothed minimum validation loss: lower end > 1 / upper end < 1; censoring "
          "withdraws", "minima", _empirical("C2"), 2, MINIMA_AND_TEST, needs=ran("02_empirical_comparison")),
    Claim("C3", "Larger batches take less wall time per epoch",
          "ratio large/small of seconds per epoch, timed alone: upper end < 1 / lower end > 1", "speed",
          _empirical("C3"), 2, at_comparison_rate=False),
    Claim("C4", "Larger batches do not need fewer epochs to reach their minimum validation loss",
          "difference large - small of the epoch of the smoothed minimum: lower end >= 0 with some spread / upper "
          "end < 0; censoring withdraws", "minima", _empirical("C4"), 2, MINIMA, needs=ran("02_empirical_comparison")),
    Claim("C17", "When no example is seen twice (one pass over fresh data), the large batch is no worse than the "
          "small batch at the same number of steps",
          "ratio large/small of the best smoothed validation loss in one pass within the first s steps (s: the step of "
          "the small batch's repeated-data minimum): upper end < 1.05 (non-inferiority) / lower end > 1.05",
          "one_pass",
          lambda st, rd: one_pass(st.runs(rd), st.tables.epochs, st.small_batch, st.large_batch, st.confidence, rd),
          2, needs=ran("04_closing_the_gap", "one_pass", "one_pass_longer")),
    Claim("C19", "The small batch's advantage is an effect of repeated data: in one pass it shrinks or vanishes",
          "per seed, log(one-pass ratio large/small) - log(repeated-data ratio), both the best smoothed validation "
          "loss within the first s steps: interval below 0 / above 0; a repeated-data run the cap cut before s is a "
          "bound, and censoring withdraws", "one_pass",
          lambda st, rd: one_pass_interaction(st.runs(rd), st.tables.epochs, st.small_batch, st.large_batch,
                                              st.confidence, rd),
          2, SMOOTHINGS, needs=ran("04_closing_the_gap", "one_pass", "one_pass_longer")),
]
