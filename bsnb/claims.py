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

    # C4: epoch of the minimum validation loss
    pairs = paired(runs, "epoch_of_min_val_loss", small, large)
    effect, lo, hi, n = interval(pairs["large"] - pairs["small"], confidence)
    last = paired(runs, "epochs_run", small, large)
    censored = int((pairs["large"] >= last.loc[pairs.index, "large"]).sum()) if n else 0
    note = base_note
    if censored:
        note = "; ".join(filter(None, [note, f"the large batch's minimum fell on the last epoch in {censored} of {n} "
                                             "seeds: it was still improving when the budget ended"]))
    out.append(Verdict("C4", decide(lo, hi, 0.0, "at_least", n), effect, lo, hi, n, STATEMENTS["C4"],
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
    return pd.DataFrame([asdict(v) for v in verdicts], columns=COLUMNS)


def save(verdicts: list[Verdict], path) -> pd.DataFrame:
    """Write ``claims.csv`` (atomically) and return the table."""
    from bsnb.results import write_atomic

    df = table(verdicts)
    write_atomic(path, df.to_csv(index=False))
    return df
