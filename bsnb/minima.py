"""How the protocol reads a trained run: its smoothed minimum, whether it trained at all, and where it was.

The protocol (version 4, ``docs/protocol.md``) fixes these readings before the runs:

* **Smoothing.** Every minimum, epoch of the minimum and weights "at the minimum" come from the
  validation loss smoothed by a centred moving average over 5 evaluated epochs, shrinking at the
  ends (pandas' ``rolling(5, center=True, min_periods=1)``). The minimum of a noisy curve is biased
  low, most for the noisiest (smallest) batch; the raw minimum is kept beside it.
* **Failed to train.** A run whose training loss turns non-finite, or never falls below 90% of the
  chance loss (the entropy of the training labels' class frequencies), is dropped from every
  verdict and named, with its learning rate, in the notes.
* **Unstable.** A run whose training loss, after falling below 90% of chance, rises above chance or
  turns non-finite. It keeps its measured minimum (intention to treat), is counted in the notes, and
  never sets a matched training-loss level.
* **Censoring of a fixed schedule.** A run trained for a fixed number of epochs without patience
  (C9, C12) is censored only when its smoothed minimum lies in its last 10% of evaluated epochs and
  the smoothed loss still fell by more than 1% over them; a minimum followed by the study's patience
  in evaluated epochs without a lower value is confirmed. A run with patience is censored when the
  cap came before the patience ran out (the training loop's own flag).

:func:`read_runs` applies them all to the store's per-seed table, so that every claim reads the
same minimum. A claim's sensitivity analysis reads the runs again with another ``smoothing``
(1 is the raw curve).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bsnb import stats

SMOOTHING = 5  # evaluated epochs in the centred moving average every minimum is read from (docs/protocol.md)
HALF = SMOOTHING // 2  # its points on either side of its centre
FAILED_SHARE = 0.9  # a run that never gets below this share of the chance loss failed to train
FAILED = "failed to train"
SCHEDULE_TAIL, SCHEDULE_FALL = 0.1, 0.01  # a fixed schedule's minimum in its last 10%, still falling >1%: censored


def smooth(values, window: int = SMOOTHING) -> np.ndarray:
    """Centred moving average of ``values`` over ``window`` points, shrinking at the ends (NaN ignored)."""
    s = pd.Series(np.asarray(values, dtype=float))
    if window <= 1:
        return s.to_numpy()
    return s.rolling(window, center=True, min_periods=1).mean().to_numpy()


def smoothed_points(curve: list, final: bool = False) -> list[tuple[int, int, float]]:
    """:func:`smooth` read online, as the training loop evaluates (its patience and the weights "at the minimum"):
    the points of the moving average that the latest evaluation completed, (index, epoch, value) of the centre whose
    window is now whole; with ``final`` also the last ones, whose windows shrink at the end. ``curve`` holds (epoch,
    validation loss) of every evaluated epoch so far."""
    n = len(curve)
    ends = range(max(0, n - HALF), n) if final else []
    centres = ([n - 1 - HALF] if n > HALF else []) + [i for i in ends if i > n - 1 - HALF]
    if not centres:
        return []
    values = smooth([v for _, v in curve])
    return [(i, curve[i][0], float(values[i])) for i in centres]


def run_labels(runs: pd.DataFrame) -> pd.Series:
    """The label that joins a per-seed row to its rows of the epochs table (``run``; ``seed<k>`` by default)."""
    default = "seed" + runs["seed"].astype(int).astype(str)
    return runs["run"].where(runs["run"].notna(), default) if "run" in runs else default


def _curve_reading(g: pd.DataFrame, window: int) -> dict:
    """The reading of one run's curve (its evaluated epochs after the start, in order)."""
    g = g[g["epoch"] > 0].sort_values("epoch")
    out = {"min_val_loss_raw": math.nan, "epoch_of_min_raw": math.nan, "min_val_loss_smoothed": math.nan,
           "epoch_of_min_smoothed": math.nan, "step_of_min_smoothed": math.nan, "lowest_train_loss": math.nan,
           "still_falling": False, "evaluated_epochs": len(g)}
    if g.empty:
        return out
    val = g["val_loss"].to_numpy(float)
    if np.isfinite(val).any():
        raw = int(np.nanargmin(val))
        sm = smooth(val, window)
        best = int(np.nanargmin(sm))
        out.update(min_val_loss_raw=float(val[raw]), epoch_of_min_raw=int(g["epoch"].iloc[raw]),
                   min_val_loss_smoothed=float(sm[best]), epoch_of_min_smoothed=int(g["epoch"].iloc[best]),
                   step_of_min_smoothed=float(g["step"].iloc[best]))
        tail = g["epoch"].to_numpy() >= g["epoch"].iloc[-1] * (1 - SCHEDULE_TAIL)
        first, last = sm[np.argmax(tail)], sm[-1]
        out["still_falling"] = bool(np.isfinite(first) and np.isfinite(last) and last < first * (1 - SCHEDULE_FALL))
        out["min_in_tail"] = bool(tail[best])  # the smoothed minimum lies in the last 10% of evaluated epochs
        out["tail_fall"] = float(first - last) if np.isfinite(first) and np.isfinite(last) else math.nan
        out["epochs_after_min"] = int(len(g) - 1 - best)  # evaluated epochs after it, none of them lower
    train = g["train_loss"].to_numpy(float) if "train_loss" in g else np.full(len(g), np.nan)
    if "train_loss_running" in g:  # a search evaluates only the validation split: its epoch's running loss
        train = np.where(np.isfinite(train), train, g["train_loss_running"].to_numpy(float))
    if np.isfinite(train).any():
        out["lowest_train_loss"] = float(np.nanmin(train))
    # the epoch's running mean is the loss the optimiser saw: a blow-up inside an epoch shows there even when the
    # evaluation at the epoch's end has come back below chance (the v3 reference's batch 256 linear-rule seed 6 on
    # another CPU: running mean 3.00 at epoch 9, evaluated 2.17, chance 2.30)
    running = g["train_loss_running"].to_numpy(float) if "train_loss_running" in g else np.full(len(g), np.nan)
    out["train_curve"] = np.fmax(train, running) if np.isfinite(running).any() else train
    return out


def instability(train, chance: float) -> tuple[bool, float]:
    """Whether a run became unstable: after its training loss fell below 90% of ``chance``, it rose above chance
    or turned non-finite. Returns (unstable, the highest training loss after that fall; inf where non-finite)."""
    train = np.asarray(train, dtype=float)
    if not np.isfinite(chance) or train.size == 0:
        return False, math.nan
    fell = np.flatnonzero(np.isfinite(train) & (train < FAILED_SHARE * chance))
    if fell.size == 0:
        return False, math.nan  # it never trained: 'failed to train', not unstable
    after = train[fell[0] + 1:]
    observed = after[~np.isnan(after)]  # epochs not evaluated on the training split are NaN, not non-finite
    if observed.size == 0:
        return False, math.nan
    peak = float(np.max(np.where(np.isfinite(observed), observed, np.inf)))
    return bool(peak > chance), peak


def read_runs(runs: pd.DataFrame, epochs: pd.DataFrame, window: int = SMOOTHING) -> pd.DataFrame:
    """The per-seed table with every minimum read as docs/protocol.md says (see the module's docstring).

    ``min_val_loss``, ``epoch_of_min_val_loss`` and ``step_of_min_val_loss`` become the smoothed
    curve's (``window`` evaluated epochs; 1 is the raw curve), the raw ones stay as
    ``min_val_loss_raw`` and ``epoch_of_min_raw``; ``status`` becomes ``failed to train`` where the
    run never trained; ``censored`` follows the protocol for runs without patience. Rows without
    a training curve (measurement notebooks) are returned as they are.
    """
    if runs.empty or epochs.empty or "job_id" not in epochs:
        return runs.copy()
    out = runs.copy()
    out["run"] = run_labels(out)
    ep = epochs.assign(run=run_labels(epochs)) if "run" not in epochs else epochs
    readings = {key: _curve_reading(g, window) for key, g in ep.groupby(["job_id", "run"], sort=False)}
    curves = {key: v.pop("train_curve", np.array([])) for key, v in readings.items()}
    table = pd.DataFrame([{"job_id": j, "run": r, **v} for (j, r), v in readings.items()])
    # the curve's reading wins over what the training loop recorded of it (newer runs record the raw minimum too)
    out = out.drop(columns=[c for c in table.columns if c in out.columns and c not in ("job_id", "run")])
    out = out.merge(table, on=["job_id", "run"], how="left")
    has = out["min_val_loss_smoothed"].notna()
    if "min_val_loss" in out:
        out.loc[has, "min_val_loss"] = out.loc[has, "min_val_loss_smoothed"]
        out.loc[has, "epoch_of_min_val_loss"] = out.loc[has, "epoch_of_min_smoothed"]
        out.loc[has, "step_of_min_val_loss"] = out.loc[has, "step_of_min_smoothed"]
    # failed to train: never below 90% of the chance loss (non-finite losses are already 'diverged')
    chance = out["chance_loss"] if "chance_loss" in out else pd.Series(math.nan, index=out.index)
    failed = has & (out["status"] == "ok") & chance.notna() & ~(out["lowest_train_loss"] < FAILED_SHARE * chance)
    out["failed_to_train"] = failed
    out.loc[failed, "status"] = FAILED
    # unstable: trained below 90% of chance, then rose above chance or turned non-finite (it keeps its measured
    # minimum, intention to treat; it never sets a matched level)
    peaks = [instability(curves.get((j, r), []), c) for j, r, c in zip(out["job_id"], out["run"], chance)]
    out["unstable"] = [u for u, _ in peaks]
    out["train_loss_peak_after_fall"] = [p for _, p in peaks]
    out.loc[out["status"] != "ok", "unstable"] = False  # diverged or failed to train: its own label
    # a fixed schedule (no patience, not a search) is censored only when its smoothed minimum lies in its last 10%
    # of evaluated epochs and the smoothed loss still fell by more than 1% over them; a minimum followed by a
    # patience's worth of evaluated epochs without a lower value is confirmed
    if "censored" in out and "patience" in out:
        fixed = has & (out["patience"].fillna(0) == 0) & ~out.get("remedy", pd.Series("", index=out.index)).eq("tuned")
        # the patience that confirms a minimum: the study's (its runs trained with patience), else none confirms
        patience = out.loc[out["patience"].fillna(0) > 0, "patience"]
        confirmed = out["epochs_after_min"].fillna(0) >= (patience.max() if len(patience) else math.inf)
        out.loc[fixed, "censored"] = (out.loc[fixed, "min_in_tail"].astype(bool)
                                      & out.loc[fixed, "still_falling"].astype(bool) & ~confirmed[fixed])
    return out


def unusable(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that no verdict uses: diverged, or failed to train (with their batch size, rate and seed)."""
    if runs.empty or "status" not in runs:
        return runs.iloc[0:0]
    return runs[runs["status"].notna() & (runs["status"] != "ok")]


def _describe(r) -> str:
    remedy = f" {r['remedy']}" if isinstance(r.get("remedy"), str) and r["remedy"] not in ("", "none") else ""
    lr = r.get("lr_used", r.get("lr", math.nan))
    return f"batch {int(r['batch_size'])}{remedy} lr {lr:.3g} seed {int(r['seed'])}"


def unstable(runs: pd.DataFrame) -> pd.DataFrame:
    """The unstable runs: kept with their measured minimum, never setting a matched level."""
    if runs.empty or "unstable" not in runs:
        return runs.iloc[0:0]
    return runs[runs["unstable"].fillna(False).astype(bool)]


def unusable_note(runs: pd.DataFrame, kept: bool = False) -> str:
    """Names the runs left out as unusable, and counts the unstable runs kept: '2 run(s) left out: batch 256
    linear_warmup lr 0.24 seed 1 failed to train (training loss never below 90% of chance) ...; 1 unstable run kept
    ...' (empty when none). ``kept``: a remedy's arm, whose failed runs are kept by intention to treat (they are named
    as kept, not left out)."""
    bad, shaky = unusable(runs), unstable(runs)
    parts = []
    if len(bad):
        named = []
        for _, r in bad.sort_values(["batch_size", "seed"]).iterrows():
            why = ("failed to train (training loss never below 90% of the chance loss "
                   f"{r.get('chance_loss', math.nan):.3g})" if r["status"] == FAILED else str(r["status"]))
            named.append(f"{_describe(r)} {why}")
        parts.append(f"{len(bad)} run(s) kept with their measured minimum (intention to treat: a remedy that fails to "
                     "train has not closed the gap; a non-finite minimum counts as the chance loss): " + "; ".join(named)
                     if kept else f"{len(bad)} run(s) left out: " + "; ".join(named))
    if len(shaky):
        named = [f"{_describe(r)} (training loss back up to {r['train_loss_peak_after_fall']:.3g}, chance "
                 f"{r.get('chance_loss', math.nan):.3g})" for _, r in shaky.sort_values(["batch_size", "seed"]).iterrows()]
        parts.append(f"{len(shaky)} unstable run(s) kept with their measured minimum (intention to treat; they set no "
                     "matched level): " + "; ".join(named))
    return "; ".join(parts)


def value_at_step(steps: pd.DataFrame, column: str, at: pd.Series) -> pd.Series:
    """Per (job_id, run) of ``at`` (a Series indexed by them), ``column`` of the sampled steps linearly
    interpolated at that step (NaN beyond the last sampled step)."""
    out = {}
    st = steps.assign(run=run_labels(steps)) if "run" not in steps else steps
    groups = dict(tuple(st.groupby(["job_id", "run"], sort=False)))
    for key, step in at.items():
        g = groups.get(key)
        if g is None or not np.isfinite(step):
            out[key] = math.nan
            continue
        g = g.sort_values("step")
        x, y = g["step"].to_numpy(float), g[column].to_numpy(float)
        out[key] = float(np.interp(step, x, y)) if x[0] <= step <= x[-1] else math.nan
    return pd.Series(out, dtype=float)


def distance_laws(steps: pd.DataFrame, epochs: pd.DataFrame, train_share: float = 0.7,
                  until: pd.Series | None = None) -> pd.DataFrame:
    """Per (run, seed): a + b log(t) and a + b sqrt(t) fitted to ||w_t - w_0|| over the logged steps after the first
    epoch (and up to the step in ``until``, indexed by (job_id, run): the run's smoothed minimum), on the first
    ``train_share`` of them, scored on the rest (Hoffer et al.'s law, out of sample); and the exponent c of
    a + b t^c. ``rmse_diff`` is the log law's held-out error minus the sqrt law's, over the last fitted distance."""
    rows = []
    keys = ["job_id", "run"] if "run" in steps else ["job_id", "seed"]
    # each run's first epoch, by run where the epochs name it: the runs of a search share their seed (one per rate)
    by_run = keys[1] == "run" and "run" in epochs
    first = epochs[epochs["epoch"] == 1] if len(epochs) else epochs
    first_epoch = (first.groupby(["job_id", "run" if by_run else "seed"])["step"].min() if len(first)
                   else pd.Series(dtype=float))
    until = until[~until.index.duplicated()] if until is not None else None
    for key, g in steps.groupby(keys):
        job, seed = g["job_id"].iloc[0], g["seed"].iloc[0]
        after = first_epoch.get(key if by_run else (job, seed), 1)
        last = until.get(key, np.inf) if until is not None else np.inf
        g = g[(g["step"] > after) & (g["step"] <= last)].sort_values("step")
        if len(g) < 6:
            continue
        t, d = g["step"].to_numpy(float), g["distance"].to_numpy(float)
        fits = {law: stats.fit_law(t, d, law, train_share) for law in stats.LAWS}
        rows.append({"job_id": job, "seed": seed, "batch_size": g["batch_size"].iloc[0], "points": len(g),
                     "rmse_log": fits["log"].rmse_out, "rmse_sqrt": fits["sqrt"].rmse_out,
                     "rmse_diff": (fits["log"].rmse_out - fits["sqrt"].rmse_out) / d[-1],
                     "exponent": stats.power_exponent(t, d)})
    return pd.DataFrame(rows)
