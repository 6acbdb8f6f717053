"""Verdicts on the article's claims, computed from the results tables, never written by hand.

Each claim compares a small and a large batch (by default the article's 32 and 256) trained
with the same seeds, so the per-seed effects are paired. The effect's confidence interval is a
Student-t interval over seeds (on the log scale for ratios). The verdict follows from the
interval alone:

* ``supported``: the whole interval lies on the side the claim predicts;
* ``not supported``: the whole interval lies on the other side;
* ``inconclusive``: the interval straddles the null value, or fewer than two seeds are usable.

The package has one module per question of the article (``q1_gradient_noise``, ``q2_comparison``,
``q3_sharpness``, ``q4_closing``), each holding its claims' functions and their registry entries;
``protocol`` says how a store is read (docs/protocol.md), ``verdict`` how a verdict is formed and written,
and ``registry`` collects the claims. The names below are the package's interface: what the notebooks, the
report and the tests call; a new claim's own helpers stay in its question's module.
"""

from bsnb.claims.protocol import (  # noqa: F401
                                  PROTOCOL,
                                  Reading,
                                  Study,
                                  comparison_runs,
                                  epochs_to_level,
                                  search_runs,
)
from bsnb.claims.q1_gradient_noise import (  # noqa: F401
                                  b_simple_until,
                                  critical_batch,
                                  fit_critical_batch,
                                  negative_g2_share,
                                  noise_growth,
                                  noise_variance,
                                  steps_to_target,
)
from bsnb.claims.q2_comparison import (  # noqa: F401
                                  ARTICLE,
                                  empirical,
                                  gap_by_budget,
                                  learning_rate_check,
                                  one_pass,
                                  one_pass_curves,
                                  one_pass_interaction,
)
from bsnb.claims.q3_sharpness import distance, distance_law, edge_of_stability, sharpness  # noqa: F401
from bsnb.claims.q4_closing import closing, remedy_table  # noqa: F401
from bsnb.claims.q4_tuning import rate_bands, rate_robustness, stable_range, tuned_rates  # noqa: F401
from bsnb.claims.registry import CLAIMS, FIGURES, QUESTIONS, STATEMENTS, question, robustness  # noqa: F401
from bsnb.claims.verdict import (  # noqa: F401
                                  HOLDS,
                                  Verdict,
                                  across_workloads,
                                  conclusions,
                                  empty,
                                  evidence_note,
                                  save,
                                  statement,
                                  table,
)
from bsnb.stats import INCONCLUSIVE, NOT_RUN, NOT_SUPPORTED, SUPPORTED, decide, fieller, interval  # noqa: F401
