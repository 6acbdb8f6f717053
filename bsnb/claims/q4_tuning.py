"""Question 4, the learning-rate search (notebook 04, remedies tuned and confirm): each batch size at its own
chosen rate (C15, the article's conclusion, read on confirmation seeds) and how wide the band of good rates is at
each batch size, with the stable range beside it (C18). The search's rule is :mod:`bsnb.search`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from bsnb import minima, search
from bsnb.claims.protocol import (
    MINIMA_AND_TEST,
    Claim,
    best_rates,
    choose_pair,
    confirmation_runs,
    paired,
    ran,
    search_runs,
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
    seed_slope,
    statement,
)
from bsnb.stats import (
    INCONCLUSIVE,
    MIN_SEEDS,
    NOT_SUPPORTED,
    SUPPORTED,
    censoring_bias,
    decide_within,
    interval,
    withdraw_if_censored,
)


def tuned_rates(runs: pd.DataFrame, small_batch: int = 32, large_batch: int = 256, confidence: float = 0.95,
                band: tuple = (0.95, 1.05)) -> Verdict:
    """C15, the article's conclusion and the Tuning Playbook's null: each batch size at its own best learning rate,
    the smoothed minimum validation loss large over small, paired by seed; supported when its interval lies within
    ``band`` (an equivalence), not supported when wholly outside. Read on the confirmation seeds (04, remedy
    confirm: new seeds at the rate each batch size's search chose, :mod:`bsnb.search`), the search's own reading at
    the chosen rates beside it; a profile without confirmation runs is read on the search's seeds and says so. A
    chosen rate on the edge of its grid after extension means the grid was too narrow: inconclusive."""
    best = best_rates(runs)
    if best.empty:
        return empty("C15", "needs the learning-rate search (04, tuned) trained to its minimum (a profile patience "
                             "for the search): a search that stops at the target says nothing about the best minimum")
    small, large, notes = choose_pair(best, small_batch, large_batch)
    chosen = best.groupby("batch_size")["best_lr"].first()
    confirm = confirmation_runs(runs)  # every confirmed batch size: the pair decides, the slope reads them all
    on_confirmation = set(confirm["batch_size"]) >= {small, large} if len(confirm) else False
    search_pairs = paired(best, "min_val_loss", small, large)
    s_eff, s_lo, s_hi, s_n = interval(search_pairs["large"] / search_pairs["small"], confidence, log=True)
    search_text = (f"the search's own reading at the chosen rates ({s_n} search seeds): {fmt(s_eff)} "
                   f"[{fmt(s_lo)}, {fmt(s_hi)}]")
    if on_confirmation:
        read = confirm
        for b in (small, large):
            used = confirm.loc[confirm["batch_size"] == b, "lr"].astype(float)
            if b in chosen and not np.isclose(used, chosen[b], rtol=1e-6).all():
                notes.append(f"batch {b}'s confirmation ran at lr {used.iloc[0]:g}, not the {chosen[b]:.4g} its "
                             "stored search chooses now: rerun the confirmation")
        seeds_text = f"{confirm['seed'].nunique()} confirmation seeds the search did not use"
    else:
        read = best
        seeds_text = f"the search's {best['seed'].nunique()} seeds (no confirmation runs in this profile: weaker)"
        notes.append("read on the search's own seeds: the chosen rate was selected on the same seeds, so the reading "
                     "favours each batch size (the protocol reads C15 on confirmation seeds)")
    pairs = paired(read, "min_val_loss", small, large)
    ratio = pairs["large"] / pairs["small"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    verdict = decide_within(lo, hi, *band, n)
    edges = best[best["on_edge"] & best["batch_size"].isin([small, large])].drop_duplicates("batch_size")
    if len(edges):
        verdict = INCONCLUSIVE
        notes.append("chosen learning rate on the edge of the searched grid after its extensions, so the grid was too "
                     "narrow: " + "; ".join(f"batch {r.batch_size} (lr {r.best_lr:.4g} of {r.grid})"
                                            for r in edges.itertuples()))
    rho, tlo, thi, _ = seed_slope(read, "min_val_loss", confidence)
    by_batch = read.groupby("batch_size")["min_val_loss"].mean()
    if on_confirmation and (text := minima.unusable_note(confirm)):
        notes.append("confirmation: " + text)
    if text := minima.unusable_note(search_runs(runs)):
        notes.append("search: " + text)
    v = Verdict("C15", verdict, effect, lo, hi, n, statement("C15"),
                f"smoothed minimum validation loss at each batch size's chosen learning rate (the search's lowest mean "
                f"minimum, a factor-2 grid extended at an edge and refined by sqrt 2), ratio batch {large} / batch "
                f"{small} on {seeds_text} (supported within [{band[0]:g}, {band[1]:g}])",
                "per batch size, chosen rate and mean minimum: " + "; ".join(
                    f"batch {b} lr {chosen.get(b, math.nan):.4g}: {loss:.3f}" for b, loss in by_batch.items())
                + f"; per-seed slope of log minimum on log2(batch) {fmt(rho)} [{fmt(tlo)}, {fmt(thi)}]; "
                + search_text,
                "the article: with the rate adjusted, large batches train faster at little or no loss; Shallue et "
                "al. 2019 and the Tuning Playbook: no evidence that larger batches degrade the best result",
                join_notes(*notes, evidence_note(ratio, lo, hi, n, log=True)))
    censored = {f"batch {b}": sorted(int(x) for x in read.loc[(read["batch_size"] == b)
                                                             & read["censored"].fillna(False).astype(bool), "seed"])
                for b in (small, large)} if "censored" in read else {}
    return censor(v, "greater", censored, "both" if any(censored.values()) else None)


RATE_BAND = 0.05  # C18: a rate is in the band when its smoothed minimum validation loss is within 5% of the best


def rate_bands(runs: pd.DataFrame, tolerance: float = RATE_BAND) -> pd.DataFrame:
    """C18's band per (batch size, seed) of the learning-rate search trained to its minimum: the range of log2(rate)
    around the best where the smoothed minimum validation loss, interpolated linearly in log2(rate) between the
    searched rates, is within ``tolerance`` of the best (docs/protocol.md). Each end is where the interpolated curve
    crosses (1 + tolerance) x best; a rate that failed to train, diverged or has no minimum ends the band at the last
    good rate, as does an end of the grid (``at_edge``: that width is a lower bound). ``width`` is in factors of 2;
    ``grid_width`` is v3's reading, the grid rates inside the band (0: only the best rate)."""
    tuned = search_runs(runs)
    rows = []
    for (batch, seed), g in tuned.groupby(["batch_size", "seed"]):
        grid = sorted(g["lr_used"].unique())
        loss = usable_runs(g).groupby("lr_used")["min_val_loss"].min().reindex(grid)
        if len(grid) < 2 or loss.isna().all():
            continue
        x, y = np.log2(np.asarray(grid, dtype=float)), loss.to_numpy(float)
        best = int(np.nanargmin(y))
        limit = (1 + tolerance) * y[best]
        inside = y <= limit  # NaN (a failed rate) is outside and ends the band
        lo = hi = best
        while lo > 0 and inside[lo - 1]:
            lo -= 1
        while hi < len(grid) - 1 and inside[hi + 1]:
            hi += 1
        left, right = x[lo], x[hi]
        edge_low = lo == 0 or not np.isfinite(y[lo - 1])
        edge_high = hi == len(grid) - 1 or not np.isfinite(y[hi + 1])
        if not edge_low:  # the crossing between the last rate outside and the first inside
            left = x[lo - 1] + (limit - y[lo - 1]) / (y[lo] - y[lo - 1]) * (x[lo] - x[lo - 1])
        if not edge_high:
            right = x[hi] + (limit - y[hi]) / (y[hi + 1] - y[hi]) * (x[hi + 1] - x[hi])
        rows.append({"batch_size": int(batch), "seed": int(seed), "best_lr": float(grid[best]),
                     "band_low": float(2 ** left), "band_high": float(2 ** right), "width": float(right - left),
                     "grid_width": math.log2(grid[hi] / grid[lo]), "at_edge": bool(edge_low or edge_high),
                     "rates": len(grid)})
    return pd.DataFrame(rows, columns=["batch_size", "seed", "best_lr", "band_low", "band_high", "width", "grid_width",
                                       "at_edge", "rates"])


def stable_range(runs: pd.DataFrame) -> pd.DataFrame:
    """C18's stable range per batch size: log2 of the largest searched rate that trained stably in every search seed
    (trained, not unstable, :mod:`bsnb.minima`), every rate between it and the chosen rate too, over the batch
    size's chosen rate (:func:`bsnb.search.choose`)."""
    tuned = search_runs(runs)
    rows = []
    for batch, g in tuned.groupby("batch_size"):
        choice = search.choose(search.table_of(g))
        if choice is None:
            continue
        unstable = g.get("unstable", pd.Series(False, index=g.index)).fillna(False).astype(bool)
        fine = (g["status"].fillna("ok") == "ok") & ~unstable
        everywhere = fine.groupby(g["lr_used"]).all().sort_index()
        above = everywhere[everywhere.index >= choice.rate * (1 - 1e-9)]
        run = above.cumprod().astype(bool)  # contiguous from the chosen rate up: the first unstable rate ends it
        top = float(above.index[run].max()) if run.any() else math.nan
        rows.append({"batch_size": int(batch), "chosen_lr": choice.rate, "largest_stable_lr": top,
                     "stable_range": math.log2(top / choice.rate) if math.isfinite(top) else math.nan,
                     "at_top": bool(math.isfinite(top) and top >= g["lr_used"].max())})
    return pd.DataFrame(rows, columns=["batch_size", "chosen_lr", "largest_stable_lr", "stable_range", "at_top"])


def rate_robustness(runs: pd.DataFrame, confidence: float = 0.95, tolerance: float = RATE_BAND) -> Verdict:
    """C18 (Masters and Luschi 2018; Marek et al. 2025): small batches are more robust to the learning rate. The
    width of each (batch size, seed)'s band of good rates (:func:`rate_bands`, interpolated in log2 of the rate) on
    log2 of the batch size, a least-squares slope per seed with a t-interval over seeds (the pooled rank correlation
    only beside it): supported when the interval lies below 0 (the band narrows as the batch grows), not supported
    when above. It reads the search of C15; no
    training of its own. Bands that reach an end of their grid are named in the note (their widths are lower
    bounds)."""
    bands = rate_bands(runs, tolerance)
    if bands.empty or bands["batch_size"].nunique() < 3:
        return empty("C18", "needs the learning-rate search (04, tuned) trained to its minimum at 3 or more batch "
                             "sizes")
    slope, lo, hi, n = seed_slope(bands, "width", confidence, log_y=False)
    rho, rlo, rhi, _ = rank_trend(bands, "width", confidence)
    n_seeds = int(bands.groupby("batch_size")["seed"].nunique().min())
    verdict = INCONCLUSIVE if not (math.isfinite(lo) and math.isfinite(hi)) or n < MIN_SEEDS else (
        SUPPORTED if hi < 0 else NOT_SUPPORTED if lo > 0 else INCONCLUSIVE)
    # a verdict resting on bounds that point the wrong way is withdrawn: a band at its grid's end may be wider
    if len(bands[bands["at_edge"]]) and verdict != INCONCLUSIVE:
        wider_small = bool(bands[bands["at_edge"] & (bands["batch_size"] <= bands["batch_size"].median())].shape[0])
        wider_large = bool(bands[bands["at_edge"] & (bands["batch_size"] > bands["batch_size"].median())].shape[0])
        verdict = withdraw_if_censored(verdict, "less", censoring_bias(wider_small, wider_large))
    by_batch = bands.groupby("batch_size").agg(width=("width", "mean"), low=("band_low", "median"),
                                               high=("band_high", "median"))
    edges = bands[bands["at_edge"]]
    searched = search_runs(runs)
    censored = searched[searched["censored"].fillna(False).astype(bool)] if "censored" in searched else searched.iloc[0:0]
    notes = [f"only {n_seeds} seeds at some batch size: a verdict needs at least {MIN_SEEDS}"
             if n_seeds < MIN_SEEDS else "",
             f"{len(edges)} of {len(bands)} bands reach an end of their grid, so their widths are lower bounds: "
             + "; ".join(f"batch {r.batch_size} seed {r.seed} ({r.band_low:g} to {r.band_high:g})"
                         for r in edges.itertuples()) if len(edges) else "",
             f"{len(censored)} of {len(searched)} search runs are censored (the cap came before their minimum was "
             f"confirmed), so their minima only bound the bands: " + "; ".join(
                 f"batch {r.batch_size} seed {r.seed} lr {r.lr_used:g}" for r in censored.itertuples())
             if len(censored) else "",
             "search: " + minima.unusable_note(searched) if minima.unusable_note(searched) else ""]
    ranges = stable_range(runs)
    return Verdict("C18", verdict, slope, lo, hi, n, statement("C18"),
                   f"per-seed least-squares slope of the band's width on log2(batch), t interval over {n} seeds; the "
                   f"band: the range of log2(rate) where the smoothed minimum validation loss, interpolated linearly "
                   f"between the searched rates, is within {tolerance:.0%} of the best",
                   "mean width in factors of 2 (median band): " + "; ".join(
                       f"batch {b} {r.width:.2f} ({r.low:.3g} to {r.high:.3g})" for b, r in by_batch.iterrows())
                   + f"; on the grid's rates alone (v3) {bands['grid_width'].eq(0).sum()} of {len(bands)} widths are 0"
                   + f"; rank correlation beside it (pooled) {fmt(rho)} [{fmt(rlo)}, {fmt(rhi)}]"
                   + "; stable range, log2(largest rate stable in every seed / chosen rate): " + "; ".join(
                       (f"batch {r.batch_size} {r.stable_range:.2f}{' (the top of its grid: a lower bound)' * r.at_top}"
                        if math.isfinite(r.stable_range) else
                        f"batch {r.batch_size} none (its chosen rate {r.chosen_lr:.4g} was unstable or failed in a seed)")
                       for r in ranges.itertuples()),
                   "Masters and Luschi 2018: the range of stable rates narrows as the batch grows, best results at "
                   "batch 2 to 32; Marek et al. 2025: small batches are more robust to hyperparameters",
                   join_notes(*notes))


def _c15_runs(study, reading):
    """C15's runs under ``reading``. The test-loss reading scores the runs on the test set at the weights their
    validation loss chose: the confirmation runs' minima, and the search's at its chosen rates (``read_loss``, which
    :func:`bsnb.claims.protocol.best_rates` reports); the rates stay chosen on the validation loss (selection never
    looks at the test set)."""
    runs = study.runs(reading)
    if not reading.test_loss:
        return runs
    validation = study.runs(dataclasses.replace(reading, test_loss=False))
    scored = validation.index.isin(confirmation_runs(validation).index)
    return validation.assign(min_val_loss=runs["min_val_loss"].where(scored, validation["min_val_loss"]),
                             read_loss=runs["min_val_loss"])


# this question's search claims, in the registry (bsnb.claims.registry)
CLAIMS = [
    Claim("C15", "With the learning rate tuned for each batch size, large batches reach the small batch's minimum "
                 "validation loss", "ratio large/small of the smoothed minimum validation loss on the confirmation seeds, "
          "each batch size at the rate its search chose: within [0.95, 1.05] / wholly outside; a chosen rate on the "
          "grid's edge after extension is inconclusive",
          "steps_to_target", lambda st, rd: tuned_rates(_c15_runs(st, rd), st.small_batch, st.large_batch, st.confidence),
          4, MINIMA_AND_TEST, needs=ran("04_closing_the_gap", "tuned"), at_comparison_rate=False,
          reads_confirmation=True),
    Claim("C18", "Small batches are more robust to the learning rate: the band of good rates narrows as the batch "
                 "grows", "per-seed slope of the band's width (log2 rates within 5% of the best smoothed minimum, "
          "interpolated) on log2(batch): interval below 0 / above 0; bounds pointing the wrong way withdraw",
          "rate_bands",
          lambda st, rd: rate_robustness(st.runs(rd), st.confidence), 4, needs=ran("04_closing_the_gap", "tuned"),
          at_comparison_rate=False),
]
