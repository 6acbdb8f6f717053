"""Question 3's figures, sharpness: one setting's slices and eigenvalues, sharpness against batch size, the
2-D loss surfaces, the interpolation between solutions, and the distance from the start."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from bsnb.plots.style import caption, log_y, palette, seed_count

CACHE_KEY = False  # figures only: editing them reruns no job (bsnb.sources.computing_modules)


def sharpness_setting(slices: pd.DataFrame, eigenvalues: pd.DataFrame, batch_size: int):
    """One setting: the loss along a filter-normalised direction per seed, and the top eigenvalues, where the full
    measures were taken (at the matched level; a store measured before they were taken once: the final weights)."""
    if "checkpoint" in slices:
        at = "matched" if (slices["checkpoint"] == "matched").any() else "final"
        slices, eigenvalues = slices[slices["checkpoint"] == at], eigenvalues[eigenvalues["checkpoint"] == at]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    sns.lineplot(slices, x="alpha", y="loss", hue="seed", palette="crest", ax=axes[0], lw=1.2)
    axes[0].set_xlabel("step along the direction (filter-normalised units)")
    axes[0].set_ylabel("training loss")
    axes[0].set_title(f"1-D loss slice, batch size {batch_size}")
    sns.stripplot(eigenvalues, x="rank", y="eigenvalue", hue="seed", palette="crest", ax=axes[1], size=7, jitter=0.15)
    axes[1].set_title("top Hessian eigenvalues")
    return caption(fig, f"One line or dot per seed ({seed_count(slices)}).")


def sharpness_by_batch_size(runs: pd.DataFrame, epsilon: float = 1e-3, keskar: dict | None = None):
    """Top eigenvalue, trace and epsilon-sharpness against batch size (mean over seeds, +-1 sd bars), at matched
    training loss (what C6 decides on); the top eigenvalue also at the smoothed minimum and the final weights (a
    store measured before 03 took its full measures once has the trace and epsilon-sharpness there too)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    parts = ([("matched", "at matched training loss", "C0"), ("final", "at the final weights", "C7")]
             if "checkpoint" in runs else [(None, "final weights", "C0")])
    # the top eigenvalue at every loss level, where C6 reads it (its pair's level and every size's)
    levels = [lv for lv in (1.0, 0.3, 0.1, 0.03) if "checkpoint" in runs and (runs["checkpoint"] == f"loss{lv:g}").any()]
    for k, lv in enumerate(levels):
        sns.lineplot(runs[runs["checkpoint"] == f"loss{lv:g}"], x="batch_size", y="lambda_max", marker="o",
                     errorbar="sd", err_style="bars", ax=axes[0], label=f"training loss first at {lv:g}",
                     color=plt.cm.viridis(k / max(1, len(levels))))
    at_minimum = runs[runs["checkpoint"] == "best"] if "checkpoint" in runs else runs.iloc[0:0]
    if len(at_minimum) and at_minimum["lambda_max"].notna().any():  # C6's and C16's reading beside the level
        sns.lineplot(at_minimum, x="batch_size", y="lambda_max", marker="s", errorbar="sd", err_style="bars",
                     ax=axes[0], label="at the smoothed minimum", color="black", ls=":")
    for which, label, color in parts:
        r = runs[runs["checkpoint"] == which] if which else runs
        if r.empty:
            continue
        for ax, col, ylabel in zip(axes, ("lambda_max", "trace", f"eps_full_{epsilon:g}"),
                                   ("top Hessian eigenvalue", "Hessian trace (Hutchinson)",
                                    f"epsilon-sharpness (eps {epsilon:g}, full space)")):
            if (levels and ax is axes[0] and which == "matched") or r[col].isna().all() if col in r else True:
                continue  # the levels draw the matched eigenvalue already; a measure this checkpoint lacks
            sns.lineplot(r, x="batch_size", y=col, marker="o", errorbar="sd", err_style="bars", ax=ax, label=label,
                         color=color, ls="-" if which != "final" else "--")
            ax.set_ylabel(ylabel)
    sizes = sorted(runs["batch_size"].unique())
    for ax, title in zip(axes, ("largest eigenvalue", "trace", "Keskar's epsilon-sharpness")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(int(x)) for x in sizes])
        ax.minorticks_off()
        log_y(ax)
        ax.set_xlabel("batch size")
        ax.set_title(title)
        ax.legend(fontsize=8)
    level = runs["matched_loss"].dropna().iloc[0] if "matched_loss" in runs and runs["matched_loss"].notna().any() \
        else None
    matched = (f" Left: the top eigenvalue where the training loss first fell to each level (C6's ratio reads the "
               f"lowest level both compared batch sizes reached, its slope the lowest every size reached), and dotted at the weights of the smoothed minimum (its "
               f"alternative reading); the trace and epsilon-sharpness, measured for the compared pair, "
               f"where it first fell to {level:g} (solid). Dashed: the top eigenvalue at the final weights." if level else "")
    return caption(fig, f"Sharpness of the training loss against batch size.{matched} Mean over {seed_count(runs)}; "
                         "error bars +-1 standard deviation.")


def contours(surfaces: pd.DataFrame, small: int, large: int):
    """Li et al.'s 2-D loss surfaces around the small- and the large-batch final weights, one seed, same levels."""

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained", sharey=True)
    levels = np.geomspace(max(surfaces["loss"].min(), 1e-4), surfaces["loss"].quantile(0.95), 14)
    for ax, batch in zip(axes, (small, large)):
        g = surfaces[surfaces["batch_size"] == batch]
        grid = g.pivot_table(index="beta", columns="alpha", values="loss")
        cs = ax.contour(grid.columns, grid.index, grid.to_numpy(), levels=levels, cmap="viridis",
                        norm=mpl.colors.LogNorm())
        ax.clabel(cs, fontsize=6, fmt=lambda v: f"{v:.2g}")
        ax.plot(0, 0, "k+", ms=10)
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("direction 1 (filter-normalised)")
    axes[0].set_ylabel("direction 2 (filter-normalised)")
    seed = int(surfaces["seed"].iloc[0])
    return caption(fig, f"Training loss on a plane through the final weights (+) of seed {seed}, spanned by two random "
                         "filter-normalised directions (Li et al. 2018); the same contour levels on both panels. "
                         "Wider basins read as flatter minima.")


def interpolation(rows: pd.DataFrame, small: int, large: int):
    """Keskar's parametric plot: loss and accuracy along (1 - alpha) w_small + alpha w_large."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for split, style in (("train", "-"), ("val", "--")):
        sns.lineplot(rows, x="alpha", y=f"{split}_loss", ax=ax, color="C0", ls=style, label=f"{split} loss",
                     errorbar=("pi", 100))
    log_y(ax)
    ax.set_ylabel("cross-entropy")
    ax.set_xlabel(f"alpha (0: batch {small} solution, 1: batch {large} solution)")
    acc = ax.twinx()
    for split, style in (("train", "-"), ("val", "--")):
        sns.lineplot(rows, x="alpha", y=f"{split}_acc", ax=acc, color="C3", ls=style, label=f"{split} accuracy",
                     errorbar=None, legend=False)
    acc.set_ylabel("accuracy", color="C3")
    acc.grid(False)
    for a in (0, 1):
        ax.axvline(a, color="grey", lw=0.8, ls=":")
    lines = ax.get_legend_handles_labels()
    ax.legend(lines[0] + acc.get_lines()[:2], lines[1] + ["train accuracy", "val accuracy"], fontsize=8,
              loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=4)
    ax.set_title("linear interpolation between a small-batch and a large-batch solution")
    return caption(fig, f"Blue: loss (mean over {seed_count(rows)}, band from lowest to highest seed); red: accuracy "
                         "(mean). Both solutions trained from the same seed.")


def distance_from_init(steps: pd.DataFrame, fits: pd.DataFrame | None = None):
    """||w_t - w_0|| against the step (log axis) for every batch size, with the fitted a + b log t."""

    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    pal = palette(steps["batch_size"])
    sns.lineplot(steps, x="step", y="distance", hue="batch_size", palette=pal, errorbar=("pi", 100), ax=ax, lw=1.3)
    if fits is not None and len(fits):
        for bs, f in fits.groupby("batch_size"):
            t = np.geomspace(max(f["t_min"].min(), 1), f["t_max"].max(), 50)
            ax.plot(t, f["a"].mean() + f["b"].mean() * np.log(t), color=pal[int(bs)], ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_ylabel(r"distance from initialisation $\|w_t - w_0\|$")
    ax.set_xlabel("optimiser step")
    ax.legend(title="batch size", fontsize=8, ncols=2)
    return caption(fig, f"Mean over {seed_count(steps)}, band from lowest to highest seed; dotted: least-squares fit "
                         "a + b log(step) over the second half of each run's sampled steps.")
