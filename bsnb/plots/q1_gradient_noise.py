"""Question 1's figures, what batch size is: the batch gradient's error against the formula, the noise scale
along training, examples per second, and whether gradient accumulation is a bigger batch."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from bsnb.plots.style import by_batch_size, caption, log_y, palette, seed_count

CACHE_KEY = False  # figures only: editing them reruns no job (bsnb.sources.computing_modules)


def gradient_noise(variance: pd.DataFrame):
    """Measured |g_B - G|^2 (points) against the formula (lines), and cosine(g_B, G), against batch size."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
    order = [c for c in ("initial", "best", "final") if c in set(variance["checkpoint"])]
    pal = dict(zip(order, sns.color_palette("deep", len(order))))
    sns.lineplot(variance, x="drawn_batch", y="predicted", hue="checkpoint", hue_order=order, palette=pal, ax=axes[0],
                 errorbar=None, lw=1.2, legend=False)
    sns.scatterplot(variance, x="drawn_batch", y="measured", hue="checkpoint", hue_order=order, palette=pal,
                    ax=axes[0], s=40, zorder=5)
    for ax in axes:
        ax.set_xscale("log", base=2)
        sizes = sorted(variance["drawn_batch"].unique())
        ax.set_xticks(sizes, [str(int(s)) for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("batch size B")
    log_y(axes[0])
    axes[0].set_ylabel(r"$\|g_B - G\|^2$")
    axes[0].set_title("batch-gradient error: measured (points), formula (lines)")
    sns.lineplot(variance, x="drawn_batch", y="cosine_mean", hue="checkpoint", hue_order=order, palette=pal,
                 marker="o", errorbar=("pi", 100), ax=axes[1])
    axes[1].set_ylabel(r"cosine$(g_B, G)$")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_title("direction of the batch gradient")
    return caption(fig, f"Points: mean over random batches, then over {seed_count(variance)}; lines: tr(Sigma)/B "
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
    log_y(ax)
    ax.set_ylabel(r"$B_{simple}$")
    ax.set_xlabel("optimiser step")
    ax.legend(title="batch size", fontsize=8, ncols=2)
    ax.set_title("gradient noise scale over training")
    window = int(along["window"].iloc[0]) if len(along) else 0
    return caption(fig, f"Lines: ratio of moving means (window {window} log-spaced steps) of McCandlish's two-batch "
                         f"estimates of S and |G|^2; mean over {seed_count(data)}; negative or undefined windows are not "
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
    return caption(fig, f"Training time only, median over epochs, mean over {seed_count(runs)}; error bars +-1 sd. The "
                         "gap between the lines is the work that grows with the batch.")


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
    return caption(fig, f"Each point one seed ({seed_count(pairs)}), {int(pairs['steps'].iloc[0])} steps of the study's "
                         "training loop from the same initial weights and batch order. Left of the dashed line the two "
                         "arms follow one trajectory; float32 shows how far rounding alone carries one algorithm.")
