"""Figures of the study, drawn with seaborn. Plots only draw: no verdict depends on them.

Every figure carries a caption (``fig.bsnb_caption``) saying what is plotted, over how many
seeds, and what its bands or error bars mean; the report prints it under the figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

CACHE_KEY = False  # figures only: editing them reruns no job (bsnb.sweep.computing_modules)

sns.set_theme(context="notebook", style="whitegrid")


def palette(batch_sizes) -> dict:
    """One colour per batch size, dark for small and light for large batches."""
    sizes = sorted(set(int(b) for b in batch_sizes))
    colours = sns.color_palette("viridis", n_colors=max(len(sizes), 2))
    return {b: colours[i] for i, b in enumerate(sizes)}


def _log_y(ax):
    """A log y-axis labelled with plain numbers (0.3, 1, 2) rather than powers of ten."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())


def _caption(fig, text: str):
    fig.bsnb_caption = text
    return fig


def _seeds(df) -> str:
    n = df["seed"].nunique() if "seed" in df else 0
    return f"{n} seed{'s' if n != 1 else ''}"


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
    _log_y(axes[0])
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
    return _caption(fig, f"One line per run ({runs} run{'s' if runs != 1 else ''}, {_seeds(history)}).{only_val}")


def loss_curves(epochs: pd.DataFrame):
    """Train and validation loss per epoch for every batch size: mean over seeds, band from min to max seed.

    The band is the range over seeds rather than +-1 sd: on a log axis a symmetric band around a
    noisy loss crosses zero and cannot be drawn.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained", sharey=True)
    pal = palette(epochs["batch_size"])
    for ax, col, name in zip(axes, ("train_loss", "val_loss"), ("training", "validation")):
        sns.lineplot(epochs, x="epoch", y=col, hue="batch_size", palette=pal, errorbar=("pi", 100), ax=ax, lw=1.3)
        _log_y(ax)
        ax.set_title(f"{name} loss")
        ax.set_ylabel("cross-entropy")
        ax.legend(title="batch size", fontsize=8, ncols=2)
    return _caption(fig, f"Mean over {_seeds(epochs)}; bands span the lowest to the highest seed. The same learning "
                         "rate for every batch size; a run ends once its minimum is confirmed (patience) or at the cap, "
                         "so the curves end at different epochs.")


def by_batch_size(runs: pd.DataFrame, y: str, ylabel: str, ax=None, logy: bool = False, marks: dict | None = None,
                  marks_label: str = "article", label: str = "this study"):
    """``y`` against batch size (log2 axis): mean over seeds with +-1 sd error bars; ``marks`` adds reference points."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
    sns.lineplot(runs, x="batch_size", y=y, marker="o", errorbar="sd", err_style="bars", ax=ax, label=label,
                 color="C0")
    if marks:
        ax.scatter(list(marks), list(marks.values()), marker="*", s=160, color="C3", zorder=5, label=marks_label)
    ax.set_xscale("log", base=2)
    sizes = sorted(runs["batch_size"].unique())
    ax.set_xticks(sizes, [str(int(s)) for s in sizes])
    ax.minorticks_off()
    if logy:
        _log_y(ax)
    ax.set_xlabel("batch size")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if own:
        return _caption(fig, f"Mean over {_seeds(runs)}; error bars show +-1 standard deviation.")
    return ax


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
    return _caption(fig, f"Mean over {_seeds(runs)}; error bars show +-1 standard deviation; stars: the article's "
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
    return _caption(fig, f"Training time only (evaluation excluded), one model at a time with nothing else running, "
                         f"the batch sizes in turn; mean over {t['seed'].nunique()} repeats, error bars +-1 sd. "
                         f"Device: {device}; torch threads: {threads}.")


def save(fig, directory: str | Path, name: str) -> Path:
    """Save ``fig`` as ``<directory>/<name>.png`` and ``.svg`` (atomically), its caption as ``.txt``; return the PNG."""
    import io

    from bsnb.results import write_atomic

    for fmt in ("svg", "png"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=110)
        path = write_atomic(Path(directory) / f"{name}.{fmt}", buf.getvalue())
    caption = getattr(fig, "bsnb_caption", "")
    if caption:
        write_atomic(Path(directory) / f"{name}.txt", caption + "\n")
    return path


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
    return _caption(fig, "How much the answer to C2 depends on the budget: at each epoch, the minimum validation "
                         "loss reached so far by the large batch over the small batch's, geometric mean over seeds "
                         "with its 95% interval. A run that stopped (patience) keeps its minimum.")


def show(fig, directory: str | Path | None = None, name: str | None = None):
    """Save the figure beside the report (when asked), show it with an anchor the report links to, and
    print its caption under it."""
    if directory is not None and name is not None:
        save(fig, directory, name)
        from IPython.display import HTML, display

        display(HTML(f'<a id="fig-{name}"></a>'))
    plt.show()
    caption = getattr(fig, "bsnb_caption", "")
    if caption:
        print(caption)
    plt.close(fig)



def sharpness_setting(slices: pd.DataFrame, eigenvalues: pd.DataFrame, batch_size: int):
    """One setting: the loss along a filter-normalised direction per seed, and the top eigenvalues (final weights)."""
    if "checkpoint" in slices:
        slices, eigenvalues = slices[slices["checkpoint"] == "final"], eigenvalues[eigenvalues["checkpoint"] == "final"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    sns.lineplot(slices, x="alpha", y="loss", hue="seed", palette="crest", ax=axes[0], lw=1.2)
    axes[0].set_xlabel("step along the direction (filter-normalised units)")
    axes[0].set_ylabel("training loss")
    axes[0].set_title(f"1-D loss slice, batch size {batch_size}")
    sns.stripplot(eigenvalues, x="rank", y="eigenvalue", hue="seed", palette="crest", ax=axes[1], size=7, jitter=0.15)
    axes[1].set_title("top Hessian eigenvalues")
    return _caption(fig, f"One line or dot per seed ({_seeds(slices)}).")


def sharpness_by_batch_size(runs: pd.DataFrame, epsilon: float = 1e-3, keskar: dict | None = None):
    """Top eigenvalue, trace and epsilon-sharpness against batch size (mean over seeds, +-1 sd bars), at matched
    training loss (what C6 decides on) and at the final weights."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    parts = ([("matched", "at matched training loss", "C0"), ("final", "at the final weights", "C7")]
             if "checkpoint" in runs else [(None, "final weights", "C0")])
    # the top eigenvalue at every loss level, where C6 reads it (the lowest level every run reached)
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
        _log_y(ax)
        ax.set_xlabel("batch size")
        ax.set_title(title)
        ax.legend(fontsize=8)
    level = runs["matched_loss"].dropna().iloc[0] if "matched_loss" in runs and runs["matched_loss"].notna().any() \
        else None
    matched = (f" Left: the top eigenvalue where the training loss first fell to each level (C6 compares the "
               f"lowest level every run reached), and dotted at the weights of the smoothed minimum (its "
               f"alternative reading); the trace and epsilon-sharpness, measured for the compared pair, "
               f"where it first fell to {level:g} (solid). Dashed: the final weights." if level else "")
    return _caption(fig, f"Sharpness of the training loss against batch size.{matched} Mean over {_seeds(runs)}; "
                         "error bars +-1 standard deviation.")


def contours(surfaces: pd.DataFrame, small: int, large: int):
    """Li et al.'s 2-D loss surfaces around the small- and the large-batch final weights, one seed, same levels."""
    import numpy as np

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
    return _caption(fig, f"Training loss on a plane through the final weights (+) of seed {seed}, spanned by two random "
                         "filter-normalised directions (Li et al. 2018); the same contour levels on both panels. "
                         "Wider basins read as flatter minima.")


def interpolation(rows: pd.DataFrame, small: int, large: int):
    """Keskar's parametric plot: loss and accuracy along (1 - alpha) w_small + alpha w_large."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for split, style in (("train", "-"), ("val", "--")):
        sns.lineplot(rows, x="alpha", y=f"{split}_loss", ax=ax, color="C0", ls=style, label=f"{split} loss",
                     errorbar=("pi", 100))
    _log_y(ax)
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
    return _caption(fig, f"Blue: loss (mean over {_seeds(rows)}, band from lowest to highest seed); red: accuracy "
                         "(mean). Both solutions trained from the same seed.")


def distance_from_init(steps: pd.DataFrame, fits: pd.DataFrame | None = None):
    """||w_t - w_0|| against the step (log axis) for every batch size, with the fitted a + b log t."""
    import numpy as np

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
    return _caption(fig, f"Mean over {_seeds(steps)}, band from lowest to highest seed; dotted: least-squares fit "
                         "a + b log(step) over the second half of each run's sampled steps.")


def remedies(table: pd.DataFrame):
    """Minimum validation loss with each remedy and the share of the gap it closes (with its interval)."""
    import numpy as np

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
    return _caption(fig, f"Gap: minimum validation loss of the large batch minus the small batch's, both at the small "
                         f"batch's learning rate and epochs. Points: mean share over {n} seeds; bars: 95% Student-t "
                         "interval over seeds.")


def steps_to_target(curve: pd.DataFrame, critical: pd.DataFrame | None = None):
    """Steps (log-log) and seconds to the target validation loss against batch size, learning rate tuned per batch.

    ``critical`` (per seed: s_min, b_crit, b_simple) adds McCandlish's fitted curve and the two batch sizes.
    """
    import numpy as np

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
    _log_y(axes[0])
    axes[0].set_ylabel("optimiser steps to the target")
    axes[0].set_title(f"steps to validation loss {curve['target'].iloc[0]:g}")
    axes[1].errorbar(b, curve["seconds"], yerr=[curve["seconds"] - curve["seconds_low"],
                                                curve["seconds_high"] - curve["seconds"]], fmt="o-", capsize=3)
    _log_y(axes[1])
    axes[1].set_ylabel("training seconds to the target")
    axes[1].set_title("wall time to the target (this machine)")
    for x, lr, y_ in zip(b, curve["best_lr"], curve["steps"]):
        axes[0].annotate(f"lr {lr:g}", (x, y_), textcoords="offset points", xytext=(4, 6), fontsize=7)
    n = int(curve["seeds"].min())
    alone = ("those steps times the seconds per step of that batch size timed alone by the findings (one model, one "
             "thread, nothing else running).")
    shared = "the runs' own training seconds, timed while other jobs shared the machine (stacked runs left out)."
    return _caption(fig, f"For each batch size and seed, the fewest steps over the learning-rate grid to reach the "
                         f"target (evaluated once per epoch); points: geometric mean over {n}+ seeds, bars: 95% "
                         "interval. Segments are coloured by their log-log slope: <= -0.75 perfect scaling, >= -0.2 "
                         "plateau, diminishing returns between. Right: "
                         + (alone if curve.get("seconds_timed_alone", pd.Series([False])).all() else shared))


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
    return _caption(fig, f"Mean over {_seeds(runs)}; error bars +-1 standard deviation. Remedies at the batch sizes "
                         "the profile ran them.")


def gradient_noise(variance: pd.DataFrame):
    """Measured |g_B - G|^2 (points) against the formula (lines), and cosine(g_B, G), against batch size."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
    order = [c for c in ("initial", "best", "final") if c in set(variance["checkpoint"])]
    pal = dict(zip(order, sns.color_palette("deep", len(order))))
    sns.lineplot(variance, x="batch_size", y="predicted", hue="checkpoint", hue_order=order, palette=pal, ax=axes[0],
                 errorbar=None, lw=1.2, legend=False)
    sns.scatterplot(variance, x="batch_size", y="measured", hue="checkpoint", hue_order=order, palette=pal,
                    ax=axes[0], s=40, zorder=5)
    for ax in axes:
        ax.set_xscale("log", base=2)
        sizes = sorted(variance["batch_size"].unique())
        ax.set_xticks(sizes, [str(int(s)) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("batch size B")
    _log_y(axes[0])
    axes[0].set_ylabel(r"$\|g_B - G\|^2$")
    axes[0].set_title("batch-gradient error: measured (points), formula (lines)")
    sns.lineplot(variance, x="batch_size", y="cosine_mean", hue="checkpoint", hue_order=order, palette=pal,
                 marker="o", errorbar=("pi", 100), ax=axes[1])
    axes[1].set_ylabel(r"cosine$(g_B, G)$")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("direction of the batch gradient")
    return _caption(fig, f"Points: mean over random batches, then over {_seeds(variance)}; lines: tr(Sigma)/B "
                         "(m-B)/(m-1) with tr(Sigma) from per-example gradients. Right: mean cosine, band from lowest "
                         "to highest seed.")


def noise_scale_over_training(along: pd.DataFrame, exact: pd.DataFrame | None = None):
    """B_simple along training (:func:`bsnb.noise.b_simple_along_training`), per batch size, with the exact values
    from per-example gradients (notebook 01's checkpoints, the estimate C11 and C14 decide with) as points."""
    data = along[along["b_simple"] > 0]
    fig, ax = plt.subplots(figsize=(7.5, 4.4), layout="constrained")
    sns.lineplot(data, x="step", y="b_simple", hue="batch_size", palette=palette(data["batch_size"]), ax=ax,
                 errorbar=None, lw=1.2)
    if exact is not None and len(exact):
        ax.scatter(exact["step"].clip(lower=1), exact["b_simple"], marker="D", s=40, color="k", zorder=5,
                   label=f"exact, batch {int(exact['batch_size'].iloc[0])} (per-example gradients)")
    ax.set_xscale("log")
    _log_y(ax)
    ax.set_ylabel(r"$B_{simple}$")
    ax.set_xlabel("optimiser step")
    ax.legend(title="batch size", fontsize=8, ncols=2)
    ax.set_title("gradient noise scale over training")
    window = int(along["window"].iloc[0]) if len(along) else 0
    return _caption(fig, f"Lines: ratio of moving means (window {window} log-spaced steps) of McCandlish's two-batch "
                         f"estimates of S and |G|^2; mean over {_seeds(data)}; negative or undefined windows are not "
                         "drawn. Diamonds: the exact B_simple at the checkpoints notebook 01 measured.")


def throughput(runs: pd.DataFrame):
    """Examples per second against batch size, beside the ideal linear speed-up from the smallest batch."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
    by_batch_size(runs, "examples_per_second", "training examples per second", ax=ax, logy=True, label="measured")
    means = runs.groupby("batch_size")["examples_per_second"].mean().sort_index()
    b = means.index.to_numpy(float)
    ax.plot(b, means.iloc[0] * b / b[0], ls=":", color="grey", label="ideal: steps take the same time at any batch")
    ax.legend(fontsize=8)
    ax.set_title("why batch size matters: throughput")
    return _caption(fig, f"Training time only, median over epochs, mean over {_seeds(runs)}; error bars +-1 sd. The "
                         "gap between the lines is the work that grows with the batch.")


def rate_bands(search: pd.DataFrame, bands: pd.DataFrame, tolerance: float = 0.05):
    """C18: the smoothed minimum validation loss against the learning rate per batch size (the search trained to
    its minimum), and the width of each seed's band of rates within ``tolerance`` of its best, against batch size."""
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    colours = palette(search["batch_size"])
    ok = search[search["min_val_loss"].notna() & np.isfinite(search["min_val_loss"])]
    sns.lineplot(ok, x="lr_used", y="min_val_loss", hue="batch_size", palette=colours, marker="o", errorbar="sd",
                 err_style="bars", ax=axes[0])
    axes[0].set_xscale("log", base=2)
    rates = sorted(ok["lr_used"].unique())
    axes[0].set_xticks(rates, [f"{v:g}" for v in rates], rotation=45, ha="right")
    axes[0].minorticks_off()
    _log_y(axes[0])
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
    return _caption(fig, f"Left: mean over {_seeds(search)} of each rate's smoothed minimum validation loss, error "
                         f"bars +-1 standard deviation; runs that failed to train are left out. Right: per seed, the "
                         f"width log2(highest / lowest rate) of the contiguous band of grid rates around the best whose "
                         f"minimum is within {tolerance:.0%} of the best (0: only the best rate); on a factor-2 grid a "
                         f"width moves in steps of 1.")


def accumulation(pairs: pd.DataFrame, tolerance: float):
    """Is gradient accumulation a bigger batch? Each pair's final-weight difference, relative to the distance the
    weights travelled, per seed, in float64 and float32, against the tolerance."""
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    label = pairs["arm"] + "\nvs " + pairs["against"]
    sns.stripplot(pairs.assign(pair=label), x="relative_difference", y="pair", hue="dtype", dodge=True, size=7,
                  jitter=False, ax=ax, log_scale=True)
    ax.axvline(tolerance, color="grey", ls="--", lw=1, label=f"tolerance {tolerance:g}")
    ax.set_xlabel("|w_a - w_b| / |w_b - w_0| after the last step")
    ax.set_ylabel("")
    ax.legend(fontsize=8, loc="lower right")
    return _caption(fig, f"Each point one seed ({_seeds(pairs)}), {int(pairs['steps'].iloc[0])} steps of the study's "
                         "training loop from the same initial weights and batch order. Left of the dashed line the two "
                         "arms follow one trajectory; float32 shows how far rounding alone carries one algorithm.")


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
    return _caption(fig, f"Mean over seeds ({_seeds(curves)}). Dotted: the steps where the small batch's repeated-data "
                         "runs reached their smoothed minimum, at which C17 compares the batches in one pass.")
