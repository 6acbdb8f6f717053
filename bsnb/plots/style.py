"""The figures' shared look: the theme, one colour per batch size, log axes labelled plainly, captions, and
showing or saving a figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

CACHE_KEY = False  # figures only: editing them reruns no job (bsnb.sources.computing_modules)

sns.set_theme(context="notebook", style="whitegrid")


def palette(batch_sizes) -> dict:
    """One colour per batch size, dark for small and light for large batches."""
    sizes = sorted(set(int(b) for b in batch_sizes))
    colours = sns.color_palette("viridis", n_colors=max(len(sizes), 2))
    return {b: colours[i] for i, b in enumerate(sizes)}


def log_y(ax):
    """A log y-axis labelled with plain numbers (0.3, 1, 2) rather than powers of ten."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())


def caption(fig, text: str):
    fig.bsnb_caption = text
    return fig


def seed_count(df) -> str:
    n = df["seed"].nunique() if "seed" in df else 0
    return f"{n} seed{'s' if n != 1 else ''}"


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
        log_y(ax)
    ax.set_xlabel("batch size")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if own:
        return caption(fig, f"Mean over {seed_count(runs)}; error bars show +-1 standard deviation.")
    return ax


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
