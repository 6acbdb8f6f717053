"""What a smaller patience would save, and what it would cost: the training loop's stopping rule replayed over the
validation curves of a finished study (no training).

    python benchmarks/patience.py [--out reports/quick] [--patience 5 8 10 12 15 20]

Every run of the store that a patience stopped (the comparison, the remedies with patience, the learning-rate
search) is replayed as the loop stops it: after each evaluated epoch the smoothed curve's latest complete point
(a centred 5-epoch average, docs/protocol.md) is compared with the best so far, and the run stops once the best is
``patience`` epochs old; the minimum it then confirms includes the end points, as the loop's last reading does.
That minimum is set against the one the store's own patience confirmed (the smoothed minimum of the whole
recorded curve, :func:`bsnb.minima.read_runs`' reading). A run whose confirmed minimum lies more than the
smoothing's half-window from the store's, and is more than 1% higher, confirmed a false minimum. The table gives,
per patience, the false minima, the worst relative excess, and the share of the store's training seconds (each
run's recorded ``seconds`` per epoch up to where it would stop). Patience at or above the store's own cannot be
judged from its curves: they end where that patience stopped them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bsnb import minima, results

HALF = minima.HALF  # the smoothed curve's latest complete point lags the last evaluation by this


def replay(val: np.ndarray, epochs: np.ndarray, patience: int) -> int | None:
    """Index of the evaluation after which the loop stops the run with ``patience`` (None: it never stops early)."""
    sm = minima.smooth(val)  # a complete point of the running curve equals the whole curve's point
    best, at = np.inf, 0
    for t in range(HALF, len(val)):
        k = t - HALF
        if sm[k] < best:
            best, at = sm[k], k
        if epochs[k] - epochs[at] >= patience:
            return t
    return None


def runs_with_patience(out: Path):
    """(job, run label, batch size, patience, evaluated epochs, validation losses, seconds) of each run that trained
    with a patience (its summary's own ``patience``: a fixed schedule has none) and stopped by it."""
    for job in sorted(results.store_dir(out).iterdir()):
        summary_path, history_path = job / "summary.json", job / "history.csv"
        if not (summary_path.exists() and history_path.exists()):
            continue
        own = {r.get("run") or f"seed{r['seed']}": r for r in json.loads(summary_path.read_text()).get("seeds", [])}
        h = pd.read_csv(history_path)
        if "run" not in h:
            h = h.assign(run="seed" + h["seed"].astype(str))
        for label, g in h.groupby("run"):
            r = own.get(label, {})
            if int(r.get("patience") or 0) <= 0 or r.get("stopped_by") != "patience":
                continue
            g = g[g["epoch"] > 0].sort_values("epoch")
            val = g["val_loss"].to_numpy(float)
            if len(val) > 2 * HALF and np.isfinite(val).all():
                yield (job.name, label, int(g["batch_size"].iloc[0]), int(r["patience"]), g["epoch"].to_numpy(), val,
                       g["seconds"].fillna(0).to_numpy(float))


def table(out: Path, patiences) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, faithful = [], []
    for job, label, batch, own, epochs, val, seconds in runs_with_patience(out):
        stop = replay(val, epochs, own)  # the replay at the store's own patience must stop where the run stopped
        faithful.append(stop is not None and int(epochs[stop]) == int(epochs[-1]))
        full = minima.smooth(val)
        ref_at, ref = int(np.argmin(full)), float(np.min(full))
        for p in [p for p in patiences if p < own]:
            t = replay(val, epochs, p)
            end = len(val) if t is None else t + 1
            sm = minima.smooth(val[:end])  # the loop's last reading: the end points' shrinking windows too
            at = int(np.argmin(sm))
            excess = float(sm[at]) / ref - 1
            rows.append({"job": job, "run": label, "batch_size": batch, "patience": p, "epochs": int(epochs[end - 1]),
                         "epochs_recorded": int(epochs[-1]), "seconds": seconds[:end].sum(),
                         "seconds_recorded": seconds.sum(), "confirmed_epoch": int(epochs[at]),
                         "store_epoch": int(epochs[ref_at]), "excess": excess,
                         "false": abs(int(epochs[at]) - int(epochs[ref_at])) > HALF and excess > 0.01})
    r = pd.DataFrame(rows).assign(faithful=f"{sum(faithful)} of {len(faithful)}")
    if r.empty:
        return r, r
    s = r.groupby("patience").agg(runs=("false", "size"), false_minima=("false", "sum"),
                                  worst_excess=("excess", "max"), epochs=("epochs", "sum"),
                                  epochs_recorded=("epochs_recorded", "sum"), seconds=("seconds", "sum"),
                                  seconds_recorded=("seconds_recorded", "sum"))
    s["training_share"] = s["seconds"] / s["seconds_recorded"]
    return s, r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/quick", help="a finished study's folder")
    ap.add_argument("--patience", type=int, nargs="+", default=[5, 8, 10, 12, 15, 20])
    args = ap.parse_args(argv)
    summary, runs = table(Path(args.out), args.patience)
    if summary.empty:
        raise SystemExit(f"no run trained with a patience in {args.out}")
    pd.set_option("display.width", 160)
    print(f"{args.out}: {runs.groupby(['job', 'run']).ngroups} runs stopped by their patience, replayed; at the "
          f"store's own patience the replay stops {runs['faithful'].iloc[0]} where they stopped\n")
    print(summary.to_string(float_format=lambda x: f"{x:.3g}"))
    worst = runs[runs["false"]].sort_values(["patience", "excess"], ascending=[False, False])
    if len(worst):
        print("\nfalse minima at the largest patience that has any:")
        top = worst[worst["patience"] == worst["patience"].iloc[0]]
        print(top[["job", "run", "patience", "confirmed_epoch", "store_epoch", "excess"]].to_string(index=False))


if __name__ == "__main__":
    main()
