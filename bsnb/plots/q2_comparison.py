"""Question 2's figures, small against large batches: each job's curves, the loss curves by batch size, the
minima, the speed, C2's ratio against the budget, and one pass over fresh data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from bsnb.plots.style import by_batch_size, caption, log_y, palette, seed_count

CACHE_KEY = False  # figures only: editing them reruns no job (bsnb.sources.computing_modules)


def setting_curves(history: pd.DataFrame, steps: pd.DataFrame | None = None, title: str = ""):
    """One setting: loss and accuracy per epoch for each seed, and distance from initialisation per step."""
    ncols = 3 if steps is not None and len(steps) else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.8), layout="constrained")
    unit = "run" if "run" in history else "seed"
    h = history.melt(id_vars=[unit, "epoch"], value_vars=["train_loss", "val_loss"], var_name="split",
                     value_name="loss")
    h["split"] = h["split"].str.replace("_loss", "")
    h = h.dropna(subset=["loss"])  # the learning-rate search evaluates only the validation split
    sns.lineplot(h, x="epoch", y="loss", hue="split", units=unit, estimator=None, ax=axes[0], lw=1)
    log_y(axes[0])
    axes[0].set_title("cross-entropy loss")
    a = history.melt(id_vars=[unit, "epoch"], value_vars=["train_acc", "val_acc"], var_name="split",
                     value_name="accuracy")
    a["split"] = a["split"].str.replace("_acc", "")
    a = a.dropna(subset=["accuracy"])
    sns.lineplot(a, x="epoch", y="accuracy", hue="split", units=unit, estimator=None, ax=axes[1], lw=1)
    axes[1].set_title("accuracy")
    if ncols == 3:
        sns.lineplot(steps, x="step", y="distance", units=unit if unit in steps else "seed", estimator=None,
                     ax=axes[2], lw=1)
        axes[2].set_xscale("log")
        axes[2].set_ylabel(r"$\|w_t - w_0\|$")
        axes[2].set_title("distance from initialisation")
    if title:
        fig.suptitle(title)
    runs = history[unit].nunique()
    only_val = " The training split was not evaluated (a learning-rate search needs only validation)." \
        if history["train_loss"].isna().all() else ""
    return caption(fig, f"One line per run ({runs} run{'s' if runs != 1 else ''}, {seed_count(history)}).{only_val}")


def loss_curves(epochs: pd.DataFrame):
    """Train and validation loss per epoch for every batch size: mean over seeds, band from min to max seed.

    The band is the range over seeds rather than +-1 sd: on a log axis a symmetric band around a
    noisy loss crosses zero and cannot be drawn.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained", sharey=True)
    pal = palette(epochs["batch_size"])
    for ax, col, name in zip(axes, ("train_loss", "val_loss"), ("training", "validation")):
        sns.lineplot(epochs, x="epoch", y=col, hue="batch_size", palette=pal, errorbar=("pi", 100), ax=ax, lw=1.3)
        log_y(ax)
        ax.set_title(f"{name} loss")
        ax.set_ylabel("cross-entropy")
        ax.legend(title="batch size", fontsize=8, ncols=2)
    return caption(fig, f"Mean over {seed_count(epochs)}; bands span the lowest to the highest seed. The same learning "
                         "rate for every batch size; a run ends once its minimum is confirmed (patience) or at the cap, "
                         "so the curves end at different epochs.")


def minima(runs: pd.DataFrame, article: dict | None = None):
    """Minimum of the smoothed validation loss (:mod:`bsnb.minima`) and the epoch it was reached, against batch
    size; runs that diverged or failed to train are left out."""
    runs = runs[runs["status"] == "ok"] if "status" in runs else runs
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    by_batch_size(runs, "min_val_loss", "minimum validation loss", ax=axes[0], marks=article)
    axes[0].set_title("minimum of the smoothed validation loss")
    by_batch_size(runs, "epoch_of_min_val_loss", "epoch of minimum validation loss", ax=axes[1])
    cap = runs["epochs"].max() if "epochs" in runs else runs["epochs_run"].max()
    axes[1].axhline(cap, ls=":", color="grey", label=f"cap of the budget ({cap:g} epochs)")
    axes[1].legend(fontsize=8)
    axes[1].set_title("epoch of the smoothed minimum")
    return caption(fig, f"Mean over {seed_count(runs)}; error bars show +-1 standard deviation; stars: the article's "
                         "published values.")


def speed(timing: pd.DataFrame):
    """Seconds per epoch and examples per second against batch size, timed alone (:func:`bsnb.analysis.timing_alone`)."""
    t = timing.rename(columns={"repeat": "seed"})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    by_batch_size(t, "seconds_per_epoch", "seconds per epoch", ax=axes[0], logy=True)
    axes[0].set_title("wall time per epoch")
    by_batch_size(t, "examples_per_second", "examples per second", ax=axes[1], logy=True)
    axes[1].set_title("throughput")
    device = ", ".join(sorted(t["device"].astype(str).unique()))
    threads = ", ".join(str(x) for x in sorted(t["threads"].unique()))
    return caption(fig, f"Training time only (evaluation excluded), one model at a time with nothing else running, "
                         f"the batch sizes in turn; mean over {t['seed'].nunique()} repeats, error bars +-1 sd. "
                         f"Device: {device}; torch threads: {threads}.")


def gap_by_budget(gap: pd.DataFrame, article: float | None = None):
    """C2's ratio against the budget: the large batch's best validation loss so far over the small batch's."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    small, large = int(gap["small_batch"].iloc[0]), int(gap["large_batch"].iloc[0])
    ax.plot(gap["epoch"], gap["ratio"], color="C0", lw=1.5, label=f"batch {large} / batch {small}")
    ax.fill_between(gap["epoch"], gap["ci_low"], gap["ci_high"], color="C0", alpha=0.2, lw=0)
    ax.axhline(1, color="grey", lw=0.8)
    if article:
        ax.axhline(article, color="k", ls=":", lw=1, label=f"article ({article:.2f})")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("budget (epochs)")
    ax.set_ylabel("ratio of the best validation loss so far")
    ax.legend(fontsize=8)
    return caption(fig, "How much the answer to C2 depends on the budget: at each epoch, the minimum validation "
                         "loss reached so far by the large batch over the small batch's, geometric mean over seeds "
                         "with its 95% interval. A run that stopped (patience) keeps its minimum.")


def one_pass(curves: pd.DataFrame, steps: pd.Series):
    """C17: the smoothed validation loss against the step, one pass over fresh data (solid) and repeated data (dashed),
    small and large batch, mean over seeds; the dotted line the step of the small batch's repeated-data minimum."""
    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    colours = palette(sorted(curves["batch_size"].unique()))
    for (regime, batch), g in curves.groupby(["regime", "batch_size"]):
        mean = g.groupby("step")["val_loss"].mean()
        ax.plot(mean.index, mean.to_numpy(), color=colours[batch], ls="-" if regime == "one pass" else "--",
                label=f"batch {batch}, {regime}")
    for s in pd.Series(steps).dropna():
        ax.axvline(s, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("validation loss (smoothed)")
    ax.legend(fontsize=8)
    return caption(fig, f"Mean over seeds ({seed_count(curves)}). Dotted: the steps where the small batch's repeated-data "
                         "runs reached their smoothed minimum, at which C17 compares the batches in one pass.")
