"""Figures drawn from small tables: each draws whatever a profile's store holds."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from bsnb import plots  # noqa: E402


def test_min_loss_by_rule_draws_a_single_remedy():
    """seaborn's dodge divides by the number of hues less one: one remedy made it divide by zero (found with an
    AdamW profile of one remedy)."""
    rows = [{"notebook": "02_empirical_comparison", "remedy": None, "batch_size": b, "seed": s, "min_val_loss": 0.3}
            for b in (32, 256) for s in (0, 1)]
    rows += [{"notebook": "04_closing_the_gap", "remedy": "sqrt", "batch_size": 256, "seed": s, "min_val_loss": 0.31}
             for s in (0, 1)]
    fig = plots.min_loss_by_rule(pd.DataFrame(rows))
    assert len(fig.axes[0].collections) + len(fig.axes[0].lines) >= 2 and "2 seeds" in fig.bsnb_caption
