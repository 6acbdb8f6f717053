"""Question 4, closing the gap (notebook 04): the learning-rate rules (C8), Hoffer's regime adaptation (C9),
ghost batch norm (C10) and batch growth instead of decay (C12). The learning-rate search's claims (C15, C18) are in
:mod:`bsnb.claims.q4_tuning`."""

from __future__ import annotations

import math

import pandas as pd

from bsnb import minima, parameters
from bsnb.claims.protocol import (
    MINIMA_AND_TEST,
    Claim,
    censored_seeds,
    intention_to_treat,
    one_claim,
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
    statement,
)
from bsnb.stats import (
    INCONCLUSIVE,
    MIN_SEEDS,
    censoring_bias,
    decide,
    decide_gated_contrast,
    decide_within,
    fieller,
    interval,
)

SMITH = ("Smith et al. 2018: batch growth instead of decay matched accuracy (Wide ResNet, CIFAR-10, 94.4 % vs "
         "94.3 %) with about a third of the updates")


GOYAL = "Goyal et al. 2017: top-1 error 23.60 +- 0.12 % at batch 256, 23.74 +- 0.09 % at 8k (linear rule, 5-epoch warm-up)"


HOFFER = "Hoffer et al. 2017: with the learning rate adapted and as many steps as the small batch, the gap closes"


# a remedy run matches its baselines on the setting it does not change (a remedy may change the budget,
# the batch norm and the patience)
SETTING_MATCH = tuple(k for k in parameters.SETTING
                      if k not in ("batch_size", "batch_norm", "budget", "epochs", "steps", "patience"))


def _baseline(runs: pd.DataFrame, like: pd.Series, batch: int) -> pd.DataFrame:
    """The article-setting runs (02: the same learning rate) of ``batch`` matching ``like``'s setting."""
    base = runs[(runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == batch)]
    for key in SETTING_MATCH:
        if key in base and key in like:
            base = base[base[key] == like[key]]
    return base[base["status"] == "ok"]


def remedy_table(runs: pd.DataFrame, small_batch: int = 32, confidence: float = 0.95,
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
    if "remedy" not in runs:
        return pd.DataFrame()
    # the share of a gap is defined above the small batch only (C9's and C12's arms at the small batch are read
    # by their own claims)
    rem = runs[(runs["notebook"] == "04_closing_the_gap") & (runs["remedy"] != "tuned")
                & (runs["batch_size"] != small_batch)]
    rows = []
    for (batch, remedy), g in rem.groupby(["batch_size", "remedy"]):
        large, small = _baseline(runs, g.iloc[0], batch), _baseline(runs, g.iloc[0], small_batch)
        ok = intention_to_treat(g)  # the remedy's arm keeps its failed runs; the baselines only those that trained
        per = pd.DataFrame({"remedy": ok.set_index("seed")["min_val_loss"],
                            "large": large.set_index("seed")["min_val_loss"],
                            "small": small.set_index("seed")["min_val_loss"]}).dropna()
        share = (per["large"] - per["remedy"]) / (per["large"] - per["small"])
        mean, lo, hi, n = interval(share, confidence)
        # protocol v4: the statement "closes more than half the gap" as a per-seed contrast, c < 0 exactly then
        contrast = per["remedy"] - (per["large"] + per["small"]) / 2
        _, c_lo, c_hi, _ = interval(contrast, confidence)
        gap, gap_lo, gap_hi, _ = interval(per["large"] - per["small"], confidence)
        _, f_lo, f_hi, _ = fieller(per["large"] - per["remedy"], per["large"] - per["small"], confidence)
        cost = ok["train_seconds"].mean() / large["train_seconds"].mean() if len(large) else math.nan
        row = {"batch_size": int(batch), "remedy": remedy, "small_batch": small_batch, "seeds": n,
               "min_val_loss": ok["min_val_loss"].mean(),
               "baseline_large": per["large"].mean() if n else math.nan,
               "baseline_small": per["small"].mean() if n else math.nan,
               "gap_closed": mean, "ci_low": lo, "ci_high": hi, "train_seconds": ok["train_seconds"].mean(),
               "contrast": contrast.mean() if n else math.nan, "contrast_low": c_lo, "contrast_high": c_hi,
               "gap": gap, "gap_low": gap_lo, "gap_high": gap_hi, "share_fieller_low": f_lo,
               "share_fieller_high": f_hi,
               "steps": ok["steps_run"].mean(), "small_steps": small["steps_run"].mean() if len(small) else math.nan,
               "cost_vs_baseline": cost, "diverged": int((g["status"] == "diverged").sum()),
               "failed": int((g["status"] == minima.FAILED).sum()), "tried": int(g["seed"].nunique()),
               "lr": float(g["lr_used"].iloc[0]) if "lr_used" in g else math.nan,
               "left_out": join_notes(minima.unusable_note(g, kept=True), minima.unusable_note(large),
                                      minima.unusable_note(small)),
               "censored_remedy": censored_seeds(ok, batch), "censored_large": censored_seeds(large, batch),
               "censored_small": censored_seeds(small, small_batch),
               "evidence": evidence_note(contrast, c_lo, c_hi, n)}
        if distances is not None and len(distances):
            d = distances[distances["job_id"].isin(g["job_id"])]
            row["final_distance"] = d["final_distance"].mean() if len(d) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _contrast_verdict(claim: str, table: pd.DataFrame, remedy: str, large_batch: int, published: str,
                      also: tuple = ()) -> Verdict:
    """C8: per seed, c = L_remedy - (L_large + L_small) / 2 (below 0 exactly when the remedy closes more than half the
    gap), decided only where C2's gap has its interval above 0; the share of the gap, with Fieller's interval, beside
    it (docs/protocol.md; version 3 decided on the share, which divides by a noisy gap)."""
    rows = table[table["remedy"] == remedy] if len(table) else table
    if rows.empty:
        return empty(claim, f"no runs of the remedy {remedy!r} in the store (the profile does not include it)")
    row = (rows[rows["batch_size"] == large_batch] if large_batch in set(rows["batch_size"]) else rows).iloc[0]
    n = int(row.seeds)
    verdict = decide_gated_contrast((row.gap_low, row.gap_high), (row.contrast_low, row.contrast_high), n)
    notes = [row.evidence, row.get("left_out", "")]
    if not (math.isfinite(row.gap_low) and row.gap_low > 0):
        notes.insert(0, f"no gap to close: batch {int(row.batch_size)} minus batch {int(row.small_batch)} is "
                        f"{fmt(row.gap)} [{fmt(row.gap_low)}, {fmt(row.gap_high)}], not clear of 0")
    v = Verdict(claim, verdict, row.contrast, row.contrast_low, row.contrast_high, n, statement(claim),
                f"per seed, min validation loss with {remedy} minus the mean of batch {int(row.batch_size)}'s and batch "
                f"{int(row.small_batch)}'s (below 0: more than half the gap closed), where the gap's interval is above 0",
                f"min validation loss {row.min_val_loss:.3f} with {remedy}, {row.baseline_large:.3f} without, "
                f"{row.baseline_small:.3f} at batch {int(row.small_batch)}; gap {fmt(row.gap)} [{fmt(row.gap_low)}, "
                f"{fmt(row.gap_high)}]; share of it closed {fmt(row.gap_closed)} (Fieller {fmt(row.share_fieller_low)} "
                f"to {fmt(row.share_fieller_high)}); training time x{row.cost_vs_baseline:.2f}",
                published, join_notes(*notes))
    unusable = int(row.get("failed", 0)) + int(row.get("diverged", 0))
    if unusable and unusable * 2 > int(row.get("tried", 0)):
        v.note = join_notes(f"{remedy}'s learning rate {row.get('lr', math.nan):.3g} at batch {int(row.batch_size)} failed "
                       f"to train or diverged in {unusable} of {int(row.tried)} seeds: the remedy does not work at "
                       "this rate", v.note)
    for other in also:
        o = table[(table["remedy"] == other) & (table["batch_size"] == row.batch_size)]
        if len(o):
            o = o.iloc[0]
            v.ours += (f"; {other}: c {fmt(o.contrast)} [{fmt(o.contrast_low)}, {fmt(o.contrast_high)}], closes "
                       f"{fmt(o.gap_closed)} of the gap")
    # c falls with the remedy's minimum and rises with the baselines': a censored remedy run (its true minimum lower)
    # can only have made c larger, a censored baseline smaller
    censored = {f"{remedy} at batch {int(row.batch_size)}": row.censored_remedy,
                f"batch {int(row.small_batch)}": row.censored_small,
                f"batch {int(row.batch_size)} without the remedy": row.censored_large}
    bias = censoring_bias(bool(row.censored_remedy), bool(row.censored_small) or bool(row.censored_large))
    return censor(v, "less", censored, bias)


def closing(table: pd.DataFrame, runs: pd.DataFrame, large_batch: int = 256, confidence: float = 0.95,
            small_batch: int = 32) -> list[Verdict]:
    """C8 (linear rule with warm-up; square root beside it), C9 (Hoffer's regime adaptation, three arms), C10
    (ghost against plain BN, both with the square-root rule; BN at the small batch beside it) and C12 (Smith's
    batch growth against learning-rate decay, with the constant rate as the control)."""
    rem = runs[(runs["notebook"] == "04_closing_the_gap")] if "remedy" in runs else pd.DataFrame(
        columns=["remedy", "batch_size", "seed", "min_val_loss", "status", "notebook"])
    out = [_contrast_verdict("C8", table, "linear_warmup", large_batch, GOYAL, also=("sqrt", "linear")),
           regime_adaptation(rem, small_batch, large_batch, confidence)]
    # ghost batch norm is the remedy's arm (kept by intention to treat); plain batch norm the runs that trained
    plain, ghost = rem[rem["remedy"] == "bn"], rem[rem["remedy"] == "ghost_bn"]
    v = _paired_remedies(pd.concat([usable_runs(plain), intention_to_treat(ghost)]), "C10", "bn", "ghost_bn",
                         large_batch, confidence)
    small_bn = rem[(rem["remedy"] == "bn") & (rem["batch_size"] == small_batch) & (rem["status"] == "ok")]
    if len(small_bn):
        v.ours += f"; plain BN at batch {small_batch} {small_bn['min_val_loss'].mean():.3f}"
    v.note = join_notes(v.note, minima.unusable_note(plain), minima.unusable_note(ghost, kept=True))
    out.append(v)
    control = runs[(runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == small_batch)]
    decay = rem[rem["remedy"] == "lr_decay"] if "remedy" in rem else rem
    if len(decay):  # the comparison runs of the schedules' own setting (the same rate, model, data)
        control = _baseline(runs, decay.iloc[0], small_batch)
    out.append(batch_growth(rem, small_batch, confidence, comparison=control))
    return out


def _arm(rem: pd.DataFrame, remedy: str, batch: int) -> pd.DataFrame:
    return rem[(rem["remedy"] == remedy) & (rem["batch_size"] == batch)]


def _paired_remedies(rem: pd.DataFrame, claim: str, first: str, second: str, large_batch: int,
                     confidence: float) -> Verdict:
    """C10: plain minus ghost batch norm at the large batch, both with the square-root rule (> 0: ghost helps)."""
    a, b = rem[rem["remedy"] == first], rem[rem["remedy"] == second]
    sizes = sorted(set(a["batch_size"]) & set(b["batch_size"]))
    if not sizes:
        return empty(claim, f"no pair of {first} and {second} runs that finished at one batch size in the store")
    batch = large_batch if large_batch in sizes else sizes[-1]
    a, b = a[a["batch_size"] == batch], b[b["batch_size"] == batch]
    pair = pd.DataFrame({"a": a.set_index("seed")["min_val_loss"], "b": b.set_index("seed")["min_val_loss"]}).dropna()
    censored = {f"{first} at batch {batch}": censored_seeds(a, batch), f"{second} at batch {batch}":
                censored_seeds(b, batch)}
    diff = pair["a"] - pair["b"]
    effect, lo, hi, n = interval(diff, confidence)
    v = Verdict(claim, decide(lo, hi, 0.0, "greater", n), effect, lo, hi, n, statement(claim),
                f"min validation loss (smoothed) with plain batch norm minus with ghost batch norm, batch {batch}, "
                "both with the square-root learning-rate rule (> 0: ghost helps)",
                f"plain BN {pair['a'].mean():.3f}, ghost BN {pair['b'].mean():.3f} (mean of {n} seeds)",
                "Hoffer et al. 2017: ghost batch norm (chunks of 128) is part of the recipe that closes the "
                "large-batch gap", evidence_note(diff, lo, hi, n))
    bias = censoring_bias(bool(censored[f"{first} at batch {batch}"]), bool(censored[f"{second} at batch {batch}"]))
    return censor(v, "greater", censored, bias)


def regime_adaptation(rem: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
                      confidence: float = 0.95) -> Verdict:
    """C9, Hoffer et al.'s regime adaptation as docs/protocol.md fixes it: three arms under one step schedule (the rate
    divided by 10 at 50% and 75% of the epochs, no patience): the small batch for E epochs (``step``), the large
    batch with the square-root rule for E epochs (``sqrt_step``) and for E x large/small epochs (``sqrt_step_longer``,
    the same steps). The gap is the same-epochs arm minus the small arm; the share closed is the same-steps arm's,
    per seed. Decided on the per-seed contrast c = L_steps - L_small - 0.1 (L_epochs - L_small), where the same-epochs
    gap's interval lies above 0: supported when c's upper end is below 0 (at least 90% of the gap closed), not
    supported when its lower end is above 0 (docs/protocol.md); the share closed with Fieller's interval beside."""
    ok = rem[rem["status"] == "ok"]
    # the remedy's arm (as many steps) by intention to treat; the two arms it is set against, the runs that trained
    small, same_epochs, same_steps = (_arm(ok, "step", small_batch), _arm(ok, "sqrt_step", large_batch),
                                      intention_to_treat(_arm(rem, "sqrt_step_longer", large_batch)))
    tried = rem[rem["remedy"].isin(["step", "sqrt_step"])]
    kept = _arm(rem, "sqrt_step_longer", large_batch)
    if small.empty or same_epochs.empty or same_steps.empty:
        return empty("C9", join_notes(f"needs Hoffer's three arms (step at batch {small_batch}, sqrt_step and "
                                  f"sqrt_step_longer at batch {large_batch}) in the store", minima.unusable_note(tried),
                                  minima.unusable_note(kept, kept=True)))
    per = pd.DataFrame({"small": small.set_index("seed")["min_val_loss"],
                        "epochs": same_epochs.set_index("seed")["min_val_loss"],
                        "steps": same_steps.set_index("seed")["min_val_loss"]}).dropna()
    share = (per["epochs"] - per["steps"]) / (per["epochs"] - per["small"])
    # protocol v4: "closes at least 90% of the gap" as a per-seed contrast, c <= 0 exactly then
    contrast = per["steps"] - per["small"] - 0.1 * (per["epochs"] - per["small"])
    effect, lo, hi, n = interval(contrast, confidence)
    gap, gap_lo, gap_hi, _ = interval(per["epochs"] - per["small"], confidence)
    closed, f_lo, f_hi, _ = fieller(per["epochs"] - per["steps"], per["epochs"] - per["small"], confidence)
    steps = {name: arm["steps_run"].mean() for name, arm in (("small", small), ("epochs", same_epochs),
                                                              ("steps", same_steps))}
    notes = [evidence_note(contrast, lo, hi, n), minima.unusable_note(tried), minima.unusable_note(kept, kept=True)]
    if not (math.isfinite(gap_lo) and gap_lo > 0):
        notes.insert(0, f"no gap to close: batch {large_batch} at the same epochs minus batch {small_batch} is "
                        f"{fmt(gap)} [{fmt(gap_lo)}, {fmt(gap_hi)}], not clear of 0")
    v = Verdict("C9", decide_gated_contrast((gap_lo, gap_hi), (lo, hi), n), effect, lo, hi, n, statement("C9"),
                f"per seed, c = L_steps - L_small - 0.1 (L_epochs - L_small): batch {large_batch} trained as many steps "
                f"as batch {small_batch} (square-root rule, the rate divided by 10 at 50% and 75% of the epochs, "
                f"milestones stretched) against the small batch and a tenth of the same-epochs gap (below 0: at least "
                f"90% of the gap closed), where that gap's interval is above 0",
                f"min validation loss (smoothed) batch {small_batch} {per['small'].mean():.3f} in "
                f"{int(small['epochs_run'].max())} epochs; batch {large_batch} {per['epochs'].mean():.3f} in the same "
                f"epochs, {per['steps'].mean():.3f} in {int(same_steps['epochs_run'].max())} epochs; steps "
                f"{steps['small']:.0f}, {steps['epochs']:.0f} and {steps['steps']:.0f}; gap {fmt(gap)} "
                f"[{fmt(gap_lo)}, {fmt(gap_hi)}]; share closed {fmt(closed)} (Fieller {fmt(f_lo)} to {fmt(f_hi)}; "
                f"mean of per-seed shares {fmt(share.mean())})",
                HOFFER, join_notes(*notes))
    # a censored arm's minimum bounds its truth from above: the same-steps arm's can only have made c larger; the
    # small arm's and the same-epochs arm's smaller
    censored = {f"step at batch {small_batch}": censored_seeds(small, small_batch),
                f"sqrt_step at batch {large_batch}": censored_seeds(same_epochs, large_batch),
                f"sqrt_step_longer at batch {large_batch}": censored_seeds(same_steps, large_batch)}
    bias = censoring_bias(bool(censored[f"sqrt_step_longer at batch {large_batch}"]),
                          bool(censored[f"step at batch {small_batch}"]) or
                          bool(censored[f"sqrt_step at batch {large_batch}"]))
    return censor(v, "less", censored, bias)


def batch_growth(rem: pd.DataFrame, small_batch: int = 32, confidence: float = 0.95, control: float = 0.95,
                 band: tuple = (0.95, 1.05), comparison: pd.DataFrame | None = None) -> Verdict:
    """C12, Smith et al. 2018 as docs/protocol.md fixes it: from the small batch at the comparison's rate, the same epochs,
    milestones at 1/3 and 2/3; decay divides the rate by 5 at each, growth multiplies the batch by 5 (up to a
    tenth of the training set, the rest of the factor going to the rate). The constant-rate control is the small
    batch's comparison run (``comparison``: the 02 runs at the same rate, each minimum confirmed by patience; protocol
    v4, where a separate constant-rate run of the same epochs was that run continued). The control must hold first
    (decay over constant, upper end < ``control``): without it the schedule has no effect here and the claim is
    inconclusive. Then growth over decay within ``band`` supports it, wholly outside refutes it."""
    ok = rem[rem["status"] == "ok"]
    grown = intention_to_treat(rem[rem["remedy"] == "batch_growth"])  # the remedy's arm keeps its failed runs
    sizes = sorted(set(ok.loc[ok["remedy"] == "lr_decay", "batch_size"]) & set(grown["batch_size"]))
    tried = rem[rem["remedy"] == "lr_decay"]
    kept = rem[rem["remedy"] == "batch_growth"]
    if not sizes:
        return empty("C12", join_notes("no pair of lr_decay and batch_growth runs that finished at one batch size in the "
                                   "store", minima.unusable_note(tried), minima.unusable_note(kept, kept=True)))
    batch = small_batch if small_batch in sizes else sizes[0]
    decay, growth = _arm(ok, "lr_decay", batch), _arm(grown, "batch_growth", batch)
    constant = comparison[comparison["batch_size"] == batch] if comparison is not None else decay.iloc[0:0]
    pair = pd.DataFrame({"decay": decay.set_index("seed")["min_val_loss"],
                         "growth": growth.set_index("seed")["min_val_loss"]}).dropna()
    ratio = pair["growth"] / pair["decay"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    verdict = decide_within(lo, hi, *band, n)
    updates = growth["steps_run"].mean() / decay["steps_run"].mean()
    notes = [evidence_note(ratio, lo, hi, n, log=True), minima.unusable_note(tried),
             minima.unusable_note(_arm(kept, "batch_growth", batch), kept=True)]
    ours = (f"decay {pair['decay'].mean():.3f}, growth {pair['growth'].mean():.3f} (smoothed minima, mean of {n} "
            f"seeds); growth took {updates:.2f}x the parameter updates")
    if constant.empty:
        verdict = INCONCLUSIVE
        notes.append(f"no constant-rate control (batch {batch}'s comparison run at the same rate) in the store: "
                     "whether the schedule has any effect here is unknown")
    else:
        ctl = pd.DataFrame({"decay": decay.set_index("seed")["min_val_loss"],
                            "constant": constant.set_index("seed")["min_val_loss"]}).dropna()
        c, clo, chi, cn = interval(ctl["decay"] / ctl["constant"], confidence, log=True)
        ours += (f"; control: decay over constant {fmt(c)} [{fmt(clo)}, {fmt(chi)}] (constant "
                 f"{ctl['constant'].mean():.3f})")
        held = cn >= MIN_SEEDS and chi < control
        if not held:
            verdict = INCONCLUSIVE
            notes.append(f"the control does not hold (decay over constant rate has an upper end of {fmt(chi)}, not "
                         f"below {control:g}): the schedule has no effect here, so replacing it says nothing")
        # a censored constant-rate run bounds its minimum from above, so the measured control can only look
        # stronger than it is: a control resting on such a bound is not established (the protocol's censoring rule)
        censored_control = censored_seeds(constant, batch)
        if censored_control:
            notes.append(f"the constant-rate control is censored in seed{'s' * (len(censored_control) > 1)} "
                         f"{', '.join(map(str, censored_control))} (the cap came before its patience confirmed the "
                         "minimum)" + (": the control may be an artefact of the bound, so the verdict is inconclusive"
                                       if held else ""))
            verdict = INCONCLUSIVE
    v = Verdict("C12", verdict, effect, lo, hi, n, statement("C12"),
                f"smoothed minimum validation loss with batch growth over with learning-rate decay, batch {batch} at "
                f"the start, same epochs (supported within [{band[0]:g}, {band[1]:g}] once decay beats the constant "
                f"rate: decay over constant upper end < {control:g})", ours, SMITH, join_notes(*notes))
    censored = {f"{name} at batch {batch}": censored_seeds(arm, batch) for name, arm in
                (("lr_decay", decay), ("batch_growth", growth))}
    return censor(v, "greater", censored, "both" if any(censored.values()) else None)


def _closing(claim):
    def compute(st, rd):
        runs = st.runs(rd)
        return one_claim(st.memo(("closing", rd), lambda: closing(remedy_table(runs, st.small_batch, st.confidence), runs,
                                                             st.large_batch, st.confidence, st.small_batch)), claim)
    return compute


# this question's claims, in the registry (bsnb.claims.registry)
CLAIMS = [
    Claim("C8", "Scaling the learning rate with the batch size (linear with warm-up, or square root) closes most "
                "of the gap", "per seed c = L_remedy - (L_large + L_small)/2, where the gap's interval is above 0: upper end < 0 / "
          "lower end > 0; no gap: inconclusive; censoring withdraws",
          "remedies", _closing("C8"), 4, MINIMA_AND_TEST, needs=ran("04_closing_the_gap", "linear_warmup")),
    Claim("C9", "Hoffer's regime adaptation closes the gap: the large batch, with the square-root rule, trained for "
                "as many steps as the small batch",
          "per seed c = L_steps - L_small - 0.1 (L_epochs - L_small), where the same-epochs gap's interval is above 0: "
          "upper end < 0 / lower end > 0; censoring withdraws", "remedies",
          _closing("C9"), 4, MINIMA_AND_TEST, needs=ran("04_closing_the_gap", "step", "sqrt_step", "sqrt_step_longer")),
    Claim("C10", "Ghost batch norm helps large batches",
          "plain minus ghost BN minimum validation loss, both with the square-root rule: lower end > 0 / upper end "
          "< 0; censoring withdraws", "remedies", _closing("C10"), 4, MINIMA_AND_TEST, needs=ran("04_closing_the_gap", "bn", "ghost_bn")),
    Claim("C12", "Increasing the batch size instead of decaying the learning rate reaches the same validation loss "
                 "with fewer parameter updates",
          "with the control holding (decay over constant rate: upper end < 0.95), ratio growth/decay of the smoothed "
          "minimum validation loss within [0.95, 1.05] / wholly outside; without the control inconclusive",
          "remedies", _closing("C12"), 4, MINIMA_AND_TEST, needs=ran("04_closing_the_gap", "lr_decay", "batch_growth")),
]
