"""Question 4's figures, closing the gap: the remedies' gaps, the minima by rule, the steps to the target and
the critical batch, and the band of good learning rates."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bsnb.plots.style import caption, log_y, palette, seed_count

CACHE_KEY = False  # figures only: editing them reruns no job (bsnb.sources.computing_modules)


def remedies(table: pd.DataFrame):
    """Minimum validation loss with each remedy and the share of the gap it closes (with its interval)."""

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained")
    t = table.sort_values(["batch_size", "gap_closed"]).reset_index(drop=True)
    labels = [f"{r.remedy}\n(batch {r.batch_size})" for r in t.itertuples()]
    y = np.arange(len(t))
    axes[0].plot(t["min_val_loss"], y, "o", color="C0", ms=8)
    for r in t.drop_duplicates("batch_size").itertuples():
        axes[0].axvline(r.baseline_large, color="C3", ls="--", lw=1, label=f"batch {r.batch_size}, no remedy")
        axes[0].axvline(r.baseline_small, color="C2", ls="--", lw=1, label=f"batch {r.small_batch} (the baseline)")
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].set_xlabel("minimum validation loss")
    axes[0].legend(fontsize=8)
    axes[0].set_title("minimum validation loss")
    err = np.vstack([t["gap_closed"] - t["ci_low"], t["ci_high"] - t["gap_closed"]])
    axes[1].errorbar(t["gap_closed"], y, xerr=np.nan_to_num(err), fmt="o", color="C0", capsize=3)
    for x, style in ((0, "-"), (0.5, ":"), (1, "--")):
        axes[1].axvline(x, color="grey", ls=style, lw=1)
    axes[1].set_yticks(y, labels, fontsize=8)
    axes[1].set_xlabel("share of the gap closed (1: all of it, 0: none)")
    axes[1].set_title("share of the large-batch gap closed")
    n = int(t["seeds"].max()) if len(t) else 0
    return caption(fig, f"Gap: minimum validation loss of the large batch minus the small batch's, both at the small "
                         f"batch's learning rate and epochs. Points: mean share over {n} seeds; bars: 95% Student-t "
                         "interval over seeds.")


def min_loss_by_rule(runs: pd.DataFrame):
    """The article's figure with adjusted learning rates: min validation loss against batch size, per remedy."""
    fig, ax = plt.subplots(figsize=(7, 4.3), layout="constrained")
    base = runs[runs["notebook"] == "02_empirical_comparison"]
    sns.lineplot(base, x="batch_size", y="min_val_loss", marker="o", errorbar="sd", err_style="bars", ax=ax,
                 color="black", label="same learning rate and epochs (article)")
    rem = runs[(runs["notebook"] == "04_closing_the_gap") & (runs["remedy"] != "tuned")]
    if len(rem):
        sns.pointplot(rem, x="batch_size", y="min_val_loss", hue="remedy", native_scale=True, errorbar="sd",
                      linestyle="none", dodge=0.15 if rem["remedy"].nunique() > 1 else False, markers="D", ax=ax,
                      log_scale=(2, None))  # seaborn divides the dodge by the remedies less one
    ax.set_xscale("log", base=2)
    sizes = sorted(set(base["batch_size"]) | set(rem["batch_size"]))
    ax.set_xticks(sizes, [str(int(s)) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("minimum validation loss")
    ax.legend(fontsize=8)
    return caption(fig, f"Mean over {seed_count(runs)}; error bars +-1 standard deviation. Remedies at the batch sizes "
                         "the profile ran them.")


def steps_to_target(curve: pd.DataFrame, critical: pd.DataFrame | None = None):
    """Steps (log-log) and seconds to the target validation loss against batch size, learning rate tuned per batch.

    ``critical`` (per seed: s_min, b_crit, b_simple) adds McCandlish's fitted curve and the two batch sizes.
    """

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    b = curve["batch_size"].to_numpy(float)
    colours = {"perfect scaling": "C2", "diminishing returns": "C1", "plateau": "C3"}
    for i in range(len(curve) - 1):
        reg = curve["regime_to_next"].iloc[i]
        axes[0].plot(b[i:i + 2], curve["steps"].iloc[i:i + 2], color=colours.get(reg, "C0"), lw=3, alpha=0.6,
                     label=reg)
    axes[0].errorbar(b, curve["steps"], yerr=[curve["steps"] - curve["steps_low"], curve["steps_high"] - curve["steps"]],
                     fmt="o", color="C0", capsize=3, label="fewest steps (geometric mean over seeds)")
    axes[0].plot(b, curve["steps"].iloc[0] * b[0] / b, color="grey", ls=":", label="perfect scaling (steps x B constant)")
    if critical is not None and len(critical):
        s_min, b_crit = critical["s_min"].mean(), critical["b_crit"].mean()
        fine = np.geomspace(b.min(), b.max(), 100)
        axes[0].plot(fine, s_min * (1 + b_crit / fine), color="C4", lw=1, label="fit S_min (1 + B_crit / B)")
        axes[0].axvline(b_crit, color="C4", ls="--", lw=1, label=f"B_crit (fitted) = {b_crit:.0f}")
        if "b_simple" in critical:
            axes[0].axvline(critical["b_simple"].mean(), color="C5", ls="-.", lw=1,
                            label=f"B_simple (measured) = {critical['b_simple'].mean():.0f}")
    handles, labels = axes[0].get_legend_handles_labels()
    keep = dict(zip(labels, handles))
    axes[0].legend(keep.values(), keep.keys(), fontsize=8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(b, [str(int(x)) for x in b])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
    log_y(axes[0])
    axes[0].set_ylabel("optimiser steps to the target")
    axes[0].set_title(f"steps to validation loss {curve['target'].iloc[0]:g}")
    axes[1].errorbar(b, curve["seconds"], yerr=[curve["seconds"] - curve["seconds_low"],
                                                curve["seconds_high"] - curve["seconds"]], fmt="o-", capsize=3)
    log_y(axes[1])
    axes[1].set_ylabel("training seconds to the target")
    axes[1].set_title("wall time to the target (this machine)")
    for x, lr, y_ in zip(b, curve["best_lr"], curve["steps"]):
        axes[0].annotate(f"lr {lr:g}", (x, y_), textcoords="offset points", xytext=(4, 6), fontsize=7)
    n = int(curve["seeds"].min())
    alone = ("those steps times the seconds per step of that batch size timed alone by the findings (one model, one "
             "thread, nothing else running).")
    shared = "the runs' own training seconds, timed while other jobs shared the machine (stacked runs left out)."
    return caption(fig, f"For each batch size and seed, the fewest steps over the learning-rate grid to reach the "
                         f"target (evaluated once per epoch); points: geometric mean over {n}+ seeds, bars: 95% "
                         "interval. Segments are coloured by their log-log slope: <= -0.75 perfect scaling, >= -0.2 "
                         "plateau, diminishing returns between. Right: "
                         + (alone if curve.get("seconds_timed_alone", pd.Series([False])).all() else shared))


def rate_bands(search: pd.DataFrame, bands: pd.DataFrame, tolerance: float = 0.05):
    """C18: the smoothed minimum validation loss against the learning rate per batch size (the search trained to
    its minimum), and the width of each seed's band of rates within ``tolerance`` of its best, against batch size."""

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    colours = palette(search["batch_size"])
    ok = search[search["min_val_loss"].notna() & np.isfinite(search["min_val_loss"])]
    sns.lineplot(ok, x="lr_used", y="min_val_loss", hue="batch_size", palette=colours, marker="o", errorbar="sd",
                 err_style="bars", ax=axes[0])
    axes[0].set_xscale("log", base=2)
    rates = sorted(ok["lr_used"].unique())
    axes[0].set_xticks(rates, [f"{v:.3g}" for v in rates], rotation=45, ha="right")
    axes[0].minorticks_off()
    log_y(axes[0])
    axes[0].set_xlabel("learning rate")
    axes[0].set_ylabel("smoothed minimum validation loss")
    axes[0].set_title("the learning-rate search, each run to its minimum")
    axes[0].legend(title="batch size", fontsize=8)
    sizes = sorted(bands["batch_size"].unique())
    position = {b: i for i, b in enumerate(sizes)}
    jitter = (bands["seed"].rank(method="dense") - bands["seed"].nunique() / 2 - 0.5) * 0.06
    x = bands["batch_size"].map(position) + jitter
    axes[1].scatter(x[~bands["at_edge"]], bands.loc[~bands["at_edge"], "width"], color="C0", label="one seed")
    axes[1].scatter(x[bands["at_edge"]], bands.loc[bands["at_edge"], "width"], color="C0", marker="^",
                    label="one seed, band at the grid's end (a lower bound)")
    means = bands.groupby("batch_size")["width"].mean()
    axes[1].plot([position[b] for b in means.index], means.to_numpy(), color="black", lw=1, label="mean")
    axes[1].set_xticks(range(len(sizes)), [str(int(b)) for b in sizes])
    axes[1].set_xlabel("batch size")
    axes[1].set_ylabel("band width (factors of 2)")
    axes[1].set_title(f"rates within {tolerance:.0%} of the best")
    axes[1].legend(fontsize=8)
    return caption(fig, f"Left: mean over {seed_count(search)} of each rate's smoothed minimum validation loss, error "
                         f"bars +-1 standard deviation; runs that failed to train are left out. Right: per seed, the "
                         f"width log2(highest / lowest rate) of the contiguous band of grid rates around the best whose "
                         f"minimum is within {tolerance:.0%} of the best (0: only the best rate); on a factor-2 grid a "
                         f"width moves in steps of 1.")
