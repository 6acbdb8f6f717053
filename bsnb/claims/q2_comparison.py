"""Question 2, the empirical comparison (notebook 02): small against large batches at one learning rate, by
training speed per epoch (C1), minimum validation loss (C2), wall time (C3) and epochs to the minimum (C4)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bsnb import minima
from bsnb.claims.protocol import (
    C1_LEVELS,
    LEVELS,
    PROTOCOL,
    SMOOTHINGS,
    Claim,
    Reading,
    _one,
    _usable_seeds,
    best_rates,
    censored_seeds,
    choose_pair,
    common_level,
    comparison_runs,
    epochs_to_level,
    paired,
)
from bsnb.claims.verdict import (
    Verdict,
    _censor,
    _empty,
    _fmt,
    _join,
    _ratio_text,
    _ratio_verdict,
    evidence_note,
    rank_trend,
    statement,
)
from bsnb.stats import INCONCLUSIVE, censoring_bias, decide, interval

ARTICLE = {"small_batch": 32, "large_batch": 256, "min_val_loss": {32: 0.344, 256: 0.395}}


def compared_epoch(epochs: pd.DataFrame, seeds: pd.DataFrame, small: int, large: int, c1_epoch: int = 0) -> int:
    """The last epoch that every compared run trained (``c1_epoch`` when given)."""
    if c1_epoch > 0:
        return c1_epoch
    ids = seeds.loc[seeds["batch_size"].isin([small, large]), "job_id"]
    ep = epochs[epochs["job_id"].isin(ids) & epochs["train_loss"].notna()]
    return int(ep.groupby(["job_id", "seed"])["epoch"].max().min()) if len(ep) else 0


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
    v = Verdict("C4", decide(lo, hi, 0.0, "at_least", n), effect, lo, hi, n, statement("C4"),
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


def _empirical(claim):
    return lambda st, rd: _one(empirical(st.runs(rd), st.tables.epochs, st.small_batch, st.large_batch, st.c1_level,
                                         st.confidence, st.speed, rd), claim)


# this question's claims, in the registry (bsnb.claims.registry)
CLAIMS = [
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
]
