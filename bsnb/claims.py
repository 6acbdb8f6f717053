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
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
COLUMNS = ["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "statement", "measure", "ours",
           "published", "note"]

STATEMENTS = {
    "C1": "At a fixed learning rate, larger batches lower the training loss more slowly per epoch",
    "C2": "At a fixed learning rate, larger batches reach a worse minimum validation loss",
    "C3": "Larger batches take less wall time per epoch",
    "C4": "Larger batches do not need fewer epochs to reach their minimum validation loss",
    "C6": "Large-batch minima are sharper",
    "C7": "Large-batch weights end closer to their initialisation; the distance grows about like log(steps)",
}
KESKAR_TABLE3 = {"small": 1.23, "large": 205.14}  # F1 (MNIST MLP), full space, epsilon 1e-3
STATEMENTS.update({
    "C8": "Scaling the learning rate with the batch size (linear with warm-up, or square root) closes most of the gap",
    "C9": "Training the large batch for the same number of steps as the small batch closes the gap",
    "C10": "Ghost batch norm helps large batches",
})
GOYAL = "Goyal et al. 2017: top-1 error 23.60 +- 0.12 % at batch 256, 23.74 +- 0.09 % at 8k (linear rule, 5-epoch warm-up)"
HOFFER = "Hoffer et al. 2017: with the learning rate adapted and as many steps as the small batch, the gap closes"
# the figure of the findings that decides each claim
FIGURES = {"C1": "loss_curves", "C2": "minima", "C3": "speed", "C4": "minima", "C5": "gradient_noise",
           "C6": "sharpness", "C7": "distance", "C8": "remedies", "C9": "remedies", "C10": "remedies",
           "C11": "steps_to_target"}
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


def interval(values, confidence: float = 0.95, log: bool = False) -> tuple[float, float, float, int]:
    """Mean and Student-t confidence interval of ``values`` (geometric mean and interval if ``log``)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if log:
        v = np.log(v[v > 0])
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        lo = hi = math.nan
    else:
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
        lo, hi = mean - half, mean + half
    if log:
        return math.exp(mean), math.exp(lo) if n > 1 else math.nan, math.exp(hi) if n > 1 else math.nan, n
    return mean, lo, hi, n


def decide(lo: float, hi: float, null: float, direction: str, n: int) -> str:
    """The verdict implied by an interval [lo, hi] for a claim that the effect is ``direction`` of ``null``.

    ``direction`` is ``greater``, ``less``, or ``at_least`` (the effect is not below ``null``).
    """
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if direction == "greater":
        return SUPPORTED if lo > null else NOT_SUPPORTED if hi < null else INCONCLUSIVE
    if direction == "less":
        return SUPPORTED if hi < null else NOT_SUPPORTED if lo > null else INCONCLUSIVE
    if direction == "at_least":
        return SUPPORTED if lo >= null else NOT_SUPPORTED if hi < null else INCONCLUSIVE
    raise ValueError(f"direction = {direction!r}: expected greater, less or at_least")


def _pick(available, wanted: int, fallback) -> int:
    return wanted if wanted in available else fallback(available)


def choose_pair(runs: pd.DataFrame, small_batch: int, large_batch: int) -> tuple[int, int, list[str]]:
    """The article's pair when both were run, else the smallest and the largest batch size."""
    sizes = sorted(int(b) for b in runs["batch_size"].unique())
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


def sharpness(runs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
              confidence: float = 0.95, epsilon: float = 1e-3) -> Verdict:
    """C6 from the sharpness runs: the ratio of top Hessian eigenvalues, large over small batch.

    The trace and Keskar's epsilon-sharpness ratios are reported beside it; the verdict rests on
    the top eigenvalue alone, the measure with the smallest error.
    """
    r, group_note = comparison_runs(runs, "03_sharpness")
    if r.empty:
        return _empty("C6", "no sharpness runs in the store")
    small, large, notes = choose_pair(r, small_batch, large_batch)
    v = _ratio_verdict("C6", paired(r, "lambda_max", small, large), "greater", confidence,
                       f"top Hessian eigenvalue of the training loss at the final weights, ratio batch {large} / "
                       f"batch {small}", published=f"Keskar et al. 2017, Table 3 (MNIST MLP, full space, eps 1e-3): "
                       f"epsilon-sharpness {KESKAR_TABLE3['small']} small batch vs {KESKAR_TABLE3['large']} large")
    losses = paired(r, "train_loss", small, large)
    if len(losses) and losses["large"].mean() > 3 * losses["small"].mean():
        notes.append(f"the two batch sizes end at different training losses ({losses['small'].mean():.3g} small, "
                     f"{losses['large'].mean():.3g} large); the Hessian of cross-entropy shrinks as the loss goes to "
                     "zero, so part of the difference in curvature is a difference in how far training got")
    col = f"eps_full_{epsilon:g}"
    eps = paired(r, col, small, large)
    v.ours += (f"; trace ratio {_ratio_text(paired(r, 'trace', small, large), confidence)}; epsilon-sharpness "
               f"(full, eps {epsilon:g}) small {eps['small'].mean():.3g}, large {eps['large'].mean():.3g}, ratio "
               f"{_ratio_text(eps, confidence)}" if len(eps) else "")
    v.note = "; ".join(filter(None, [group_note, *notes]))
    return v


def distance(fits: pd.DataFrame, small_batch: int = 32, large_batch: int = 256, confidence: float = 0.95) -> Verdict:
    """C7 from the log fits of distance from initialisation: ratio of final distances, large over small.

    ``fits`` is :func:`bsnb.analysis.log_fits` of the empirical-comparison runs; the R^2 of the
    log fits is reported in the note.
    """
    if fits.empty:
        return _empty("C7", "no sampled steps in the store")
    small, large, notes = choose_pair(fits, small_batch, large_batch)
    v = _ratio_verdict("C7", paired(fits, "final_distance", small, large), "less", confidence,
                       f"distance from initialisation at the end of the budget, ratio batch {large} / batch {small}",
                       published="Keskar et al. 2017: small-batch minima lie 3 to 10 times farther from the start "
                                 "(a ratio of 0.1 to 0.33); Hoffer et al. 2017: distance grows like log(steps)")
    r2 = fits.groupby("batch_size")["r2"].median()
    notes.append("median R^2 of distance = a + b log(step): " + ", ".join(f"batch {int(b)} {x:.2f}"
                                                                        for b, x in r2.items()))
    v.note = "; ".join(notes)
    return v


def comparison_runs(runs: pd.DataFrame, notebook: str = "02_empirical_comparison") -> tuple[pd.DataFrame, str]:
    """The runs of one fixed setting that differ only in batch size (the largest such group)."""
    r = runs[runs["notebook"] == notebook] if "notebook" in runs else runs
    keys = [k for k in ("optimizer", "lr", "momentum", "weight_decay", "dataset", "model", "width", "batch_norm",
                        "budget", "epochs", "steps") if k in r]
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


def paired(runs: pd.DataFrame, column: str, small: int, large: int) -> pd.DataFrame:
    """Per-seed values of ``column`` for the small and the large batch, seeds present in both."""
    ok = runs[runs["status"].isna() | (runs["status"] == "ok")] if "status" in runs else runs
    if column not in ok:
        return pd.DataFrame(columns=["small", "large"])
    wide = ok.pivot_table(index="seed", columns="batch_size", values=column, aggfunc="first")
    if small not in wide or large not in wide:
        return pd.DataFrame(columns=["small", "large"])
    return wide[[small, large]].dropna().set_axis(["small", "large"], axis=1)


def _ratio_verdict(claim, pairs, direction, confidence, measure, fmt="{:.3f}", published="", note=""):
    ratio = pairs["large"] / pairs["small"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    ours = (f"small {fmt.format(pairs['small'].mean())}, large {fmt.format(pairs['large'].mean())} "
            f"(mean of {n} seeds)") if n else "no paired seeds"
    return Verdict(claim, decide(lo, hi, 1.0, direction, n), effect, lo, hi, n, STATEMENTS[claim], measure,
                   ours, published, note)


def empirical(runs: pd.DataFrame, epochs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256,
              c1_epoch: int = 0, confidence: float = 0.95) -> list[Verdict]:
    """Verdicts of C1-C4 from the empirical-comparison runs."""
    runs, group_note = comparison_runs(runs)
    if runs.empty:
        return [_empty(c, "no empirical-comparison runs in the store") for c in ("C1", "C2", "C3", "C4")]
    small, large, notes = choose_pair(runs, small_batch, large_batch)
    pair = f"batch {large} / batch {small}"
    notes = ([group_note] if group_note else []) + notes
    diverged = runs[(runs["status"] != "ok") & runs["batch_size"].isin([small, large])]
    if len(diverged):
        notes.append(f"{len(diverged)} diverged run(s) left out")
    base_note = "; ".join(notes)
    out = []

    # C1: training loss after k epochs
    ep = epochs[epochs["job_id"].isin(runs["job_id"])]
    if c1_epoch > 0:
        at = ep[ep["epoch"] == c1_epoch]
        when = f"epoch {c1_epoch}"
    else:
        at = ep.loc[ep.groupby(["job_id", "seed"])["epoch"].idxmax()]
        when = "the last epoch"
    at = at.assign(status="ok")
    out.append(_ratio_verdict("C1", paired(at, "train_loss", small, large), "greater", confidence,
                              f"training loss at {when}, ratio {pair}", fmt="{:.4f}",
                              published="article: the large batch's training loss falls more slowly (figure, no number)",
                              note=base_note))

    # C2: minimum validation loss
    published = (f"article: {ARTICLE['min_val_loss'][32]} (batch 32) vs {ARTICLE['min_val_loss'][256]} (batch 256), "
                 f"ratio {ARTICLE['min_val_loss'][256] / ARTICLE['min_val_loss'][32]:.2f}")
    out.append(_ratio_verdict("C2", paired(runs, "min_val_loss", small, large), "greater", confidence,
                              f"minimum validation loss, ratio {pair}", published=published, note=base_note))

    # C3: seconds per epoch
    pairs = paired(runs, "seconds_per_epoch", small, large)
    v = _ratio_verdict("C3", pairs, "less", confidence, f"seconds per training epoch (median over epochs), ratio {pair}",
                       published="article: larger batches take less time per epoch (figure, no number)",
                       note=base_note)
    eps = paired(runs, "examples_per_second", small, large)
    if len(eps):
        v.ours += f"; examples/s small {eps['small'].mean():,.0f}, large {eps['large'].mean():,.0f}"
    out.append(v)

    # C4: epoch of the minimum validation loss. A minimum on the last epoch is censored by the budget:
    # the run was still improving, so its true epoch is at least the one observed. A censored large
    # batch can only understate large - small (a support still holds, a refutation does not); a
    # censored small batch can only overstate it (a refutation still holds, a support does not).
    pairs = paired(runs, "epoch_of_min_val_loss", small, large)
    effect, lo, hi, n = interval(pairs["large"] - pairs["small"], confidence)
    last = paired(runs, "epochs_run", small, large)
    censored = {side: int((pairs[side] >= last.loc[pairs.index, side]).sum()) if n else 0
                for side in ("small", "large")}
    verdict = decide(lo, hi, 0.0, "at_least", n)
    notes = [base_note]
    for side, batch in (("small", small), ("large", large)):
        if censored[side]:
            notes.append(f"the batch-{batch} minimum fell on the last epoch in {censored[side]} of {n} seeds: it was "
                         "still improving when the budget ended")
    if (verdict == SUPPORTED and censored["small"]) or (verdict == NOT_SUPPORTED and censored["large"]):
        notes.append(f"the interval says {verdict}, but censoring of the batch-"
                     f"{small if verdict == SUPPORTED else large} minima can make that direction an artefact of "
                     "the budget, so the verdict is inconclusive; a longer budget decides it")
        verdict = INCONCLUSIVE
    note = "; ".join(filter(None, notes))
    out.append(Verdict("C4", verdict, effect, lo, hi, n, STATEMENTS["C4"],
                       f"epoch of the minimum validation loss, difference batch {large} - batch {small}",
                       f"small {pairs['small'].mean():.1f}, large {pairs['large'].mean():.1f} epochs (mean of {n} seeds)"
                       if n else "no paired seeds",
                       "article: larger batches do not reach their minimum in fewer epochs", note))
    return out


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
    rows = sorted((asdict(v) for v in verdicts), key=lambda r: int(r["claim"][1:]))
    return pd.DataFrame(rows, columns=COLUMNS)


def save(verdicts: list[Verdict], path) -> pd.DataFrame:
    """Write ``claims.csv`` (atomically) and return the table."""
    from bsnb.results import write_atomic

    df = table(verdicts)
    write_atomic(path, df.to_csv(index=False))
    return df


# ------------------------------------------------------------------------------------------------
# closing the gap (04)

SETTING_MATCH = ("optimizer", "lr", "momentum", "weight_decay", "dataset", "model", "width", "epochs")


def _baseline(runs: pd.DataFrame, like: pd.Series, batch: int) -> pd.DataFrame:
    """The article-setting runs (02: same learning rate and epochs) of ``batch`` matching ``like``'s setting."""
    base = runs[(runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == batch)]
    for key in SETTING_MATCH:
        if key in base and key in like:
            base = base[base[key] == like[key]]
    return base[base["status"] == "ok"]


def remedy_table(runs: pd.DataFrame, small_batch: int = 32, confidence: float = 0.95,
                 distances: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (large batch, remedy): its minimum validation loss, the share of the gap it closes, its cost.

    The gap is the article's: minimum validation loss of the large batch minus the small batch's,
    both at the small batch's learning rate and epochs (the 02 runs). A remedy's share is
    (large baseline - large with the remedy) / gap, per seed, with a Student-t interval over
    seeds: 1 closes the gap, 0 does nothing, below 0 makes it worse. The cost is the remedy's
    training time over the large baseline's. ``distances`` (from :func:`bsnb.analysis.log_fits`)
    adds the final distance from initialisation.
    """
    if "remedy" not in runs:
        return pd.DataFrame()
    rem = runs[(runs["notebook"] == "04_closing_the_gap") & (runs["remedy"] != "tuned")]
    rows = []
    for (batch, remedy), g in rem.groupby(["batch_size", "remedy"]):
        large, small = _baseline(runs, g.iloc[0], batch), _baseline(runs, g.iloc[0], small_batch)
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
               "cost_vs_baseline": cost, "diverged": int((g["status"] != "ok").sum())}
        if distances is not None and len(distances):
            d = distances[distances["job_id"].isin(g["job_id"])]
            row["final_distance"] = d["final_distance"].mean() if len(d) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _share_verdict(claim: str, table: pd.DataFrame, remedy: str, large_batch: int, published: str,
                   also: tuple = ()) -> Verdict:
    rows = table[table["remedy"] == remedy] if len(table) else table
    if rows.empty:
        return _empty(claim, f"no runs of the remedy {remedy!r} in the store (the profile does not include it)")
    row = (rows[rows["batch_size"] == large_batch] if large_batch in set(rows["batch_size"]) else rows).iloc[0]
    v = Verdict(claim, decide(row.ci_low, row.ci_high, 0.5, "greater", row.seeds), row.gap_closed, row.ci_low,
                row.ci_high, int(row.seeds), STATEMENTS[claim],
                f"share of the batch-{int(row.batch_size)} gap closed by {remedy} (1: all of it; 'most' means > 0.5)",
                f"min validation loss {row.min_val_loss:.3f} with {remedy}, {row.baseline_large:.3f} without, "
                f"{row.baseline_small:.3f} at batch {int(row.small_batch)}; training time x{row.cost_vs_baseline:.2f}",
                published)
    for other in also:
        o = table[(table["remedy"] == other) & (table["batch_size"] == row.batch_size)]
        if len(o):
            o = o.iloc[0]
            v.ours += f"; {other} closes {_fmt(o.gap_closed)} [{_fmt(o.ci_low)}, {_fmt(o.ci_high)}]"
    return v


def closing(table: pd.DataFrame, runs: pd.DataFrame, large_batch: int = 256, confidence: float = 0.95) -> list[Verdict]:
    """C8 (linear rule with warm-up; square root beside it), C9 (same steps) and C10 (ghost against plain BN)."""
    out = [_share_verdict("C8", table, "linear_warmup", large_batch, GOYAL, also=("sqrt", "linear")),
           _share_verdict("C9", table, "longer", large_batch, HOFFER)]
    rem = runs[(runs["notebook"] == "04_closing_the_gap")] if "remedy" in runs else pd.DataFrame(
        columns=["remedy", "batch_size", "seed", "min_val_loss"])
    bn, ghost = rem[rem["remedy"] == "bn"], rem[rem["remedy"] == "ghost_bn"]
    sizes = sorted(set(bn["batch_size"]) & set(ghost["batch_size"]))
    if not sizes:
        out.append(_empty("C10", "no pair of bn and ghost_bn runs at one batch size in the store"))
        return out
    batch = large_batch if large_batch in sizes else sizes[-1]
    pair = pd.DataFrame({"bn": bn[bn["batch_size"] == batch].set_index("seed")["min_val_loss"],
                         "ghost": ghost[ghost["batch_size"] == batch].set_index("seed")["min_val_loss"]}).dropna()
    effect, lo, hi, n = interval(pair["bn"] - pair["ghost"], confidence)
    out.append(Verdict("C10", decide(lo, hi, 0.0, "greater", n), effect, lo, hi, n, STATEMENTS["C10"],
                       f"min validation loss with plain batch norm minus with ghost batch norm, batch {batch} "
                       "(> 0: ghost helps)",
                       f"plain BN {pair['bn'].mean():.3f}, ghost BN {pair['ghost'].mean():.3f} (mean of {n} seeds)",
                       "Hoffer et al. 2017: ghost batch norm (chunks of 128) is part of the recipe that closes the "
                       "large-batch gap"))
    return out


def steps_to_target(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Shallue et al.'s curve from the tuned runs: per batch size, the fewest steps (and seconds) to the
    target over the learning-rate grid, per seed, then a geometric mean and interval over seeds."""
    tuned = runs[(runs["notebook"] == "04_closing_the_gap") & (runs["remedy"] == "tuned")] if "remedy" in runs \
        else runs.iloc[0:0]
    if tuned.empty or "reached_target" not in tuned:
        return pd.DataFrame()
    reached = tuned[tuned["reached_target"] == True]  # noqa: E712
    if reached.empty:
        return pd.DataFrame()
    best = reached.loc[reached.groupby(["batch_size", "seed"])["steps_to_target"].idxmin()]
    rows = []
    for batch, g in best.groupby("batch_size"):
        steps, lo, hi, n = interval(g["steps_to_target"], confidence, log=True)
        secs, slo, shi, _ = interval(g["seconds_to_target"], confidence, log=True)
        rows.append({"batch_size": int(batch), "seeds": n, "seeds_tried": tuned[tuned["batch_size"] == batch]["seed"]
                     .nunique(), "steps": steps, "steps_low": lo, "steps_high": hi, "seconds": secs,
                     "seconds_low": slo, "seconds_high": shi, "best_lr": g["lr_used"].median(),
                     "target": g["target_loss"].iloc[0]})
    table = pd.DataFrame(rows).sort_values("batch_size").reset_index(drop=True)
    return regimes(table)


def regimes(table: pd.DataFrame, perfect: float = -0.75, plateau: float = -0.2) -> pd.DataFrame:
    """Label each step of the curve by its log-log slope: perfect scaling (doubling the batch nearly halves the
    steps: slope <= ``perfect``), plateau (slope >= ``plateau``), diminishing returns in between."""
    slopes = np.diff(np.log(table["steps"])) / np.diff(np.log(table["batch_size"])) if len(table) > 1 else []
    labels = ["perfect scaling" if s <= perfect else "plateau" if s >= plateau else "diminishing returns"
              for s in slopes]
    return table.assign(slope_to_next=list(slopes) + [math.nan], regime_to_next=labels + [""])


# ------------------------------------------------------------------------------------------------
# what batch size is (01): gradient noise and the critical batch size

STATEMENTS.update({
    "C5": "The variance of the batch gradient falls as 1/B (with the finite-sample correction (m-B)/(m-1))",
    "C11": "The gradient noise scale B_simple predicts the critical batch size beyond which more batch no longer "
           "cuts steps",
})
MCCANDLISH = "McCandlish et al. 2018, Table 1 (MNIST): B_crit 20 (start) to 200 (average), B_simple 50 to 900"


def decide_within(lo: float, hi: float, low: float, high: float, n: int) -> str:
    """Verdict of an equivalence claim: the effect lies within [low, high]."""
    if n < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if low <= lo and hi <= high:
        return SUPPORTED
    if hi < low or lo > high:
        return NOT_SUPPORTED
    return INCONCLUSIVE


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
                   f"{int(cos.index[-1])}",
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


def critical_batch(runs: pd.DataFrame, noise_log: pd.DataFrame, epochs: pd.DataFrame, reference_batch: int = 32,
                   confidence: float = 0.95, factor: float = 3.0) -> tuple[Verdict, pd.DataFrame]:
    """C11: B_simple (two-batch, averaged over the reference run until the target) over B_crit (fitted to the
    steps-to-target of the learning-rate search), per seed. Supported within a factor ``factor`` either way.

    Returns the verdict and a per-seed table (b_simple, b_crit, s_min).
    """
    tuned = runs[(runs.get("notebook") == "04_closing_the_gap") & (runs.get("remedy") == "tuned")] \
        if "remedy" in runs else pd.DataFrame()
    if tuned.empty or "reached_target" not in tuned or noise_log.empty:
        return _empty("C11", "needs the learning-rate search (04, tuned) and two-batch noise logs (02)"), pd.DataFrame()
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
    ref = runs[(runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == reference_batch)]
    log = noise_log[noise_log["job_id"].isin(ref["job_id"])]
    hist = epochs[epochs["job_id"].isin(ref["job_id"])]
    b_simple = b_simple_until(log, hist, target)
    table = pd.DataFrame(rows)
    if table.empty or b_simple.empty:
        why = (f"fewer than 3 batch sizes reached validation loss {target:g} for every seed: {', '.join(short)}"
               if table.empty and short else "no two-batch noise log at the reference batch")
        return _empty("C11", why), table
    table["b_simple"] = table["seed"].map(b_simple)
    table = table.dropna()
    effect, lo, hi, n = interval(table["b_simple"] / table["b_crit"], confidence, log=True)
    by_seed = ", ".join(f"{b:.0f}" for b in table["b_simple"])
    note = (f"two-batch B_simple by seed: {by_seed}; {negative_g2_share(log, hist, target):.0%} of the |G|^2 "
            f"estimates in those windows are negative, so their mean, the denominator, can lie close to zero")
    if short:
        note += (f"; left out, because fewer than 3 batch sizes reached validation loss {target:g} at any learning "
                 f"rate: {', '.join(short)}")
    v = Verdict("C11", decide_within(lo, hi, 1 / factor, factor, n), effect, lo, hi, n, STATEMENTS["C11"],
                f"B_simple / B_crit, per seed; B_simple from two-batch estimates along the batch-{reference_batch} runs "
                f"until validation loss {target:g}, B_crit fitted as S = S_min (1 + B_crit/B) to the fewest steps to "
                f"that loss (supported within a factor {factor:g})",
                f"B_simple {table['b_simple'].mean():.0f}, B_crit {table['b_crit'].mean():.0f}, S_min "
                f"{table['s_min'].mean():.0f} steps (means over {n} seed{'s' if n != 1 else ''})", MCCANDLISH, note)
    return v, table
