"""Figures of the study, drawn with seaborn, one module per question of the article (as :mod:`bsnb.claims`), and
:mod:`bsnb.plots.style` for what they share. Plots only draw: no verdict depends on them.

Every figure carries a caption (``fig.bsnb_caption``) saying what is plotted, over how many seeds, and what its
bands or error bars mean; the report prints it under the figure.
"""

from bsnb.plots.q1_gradient_noise import accumulation, gradient_noise, noise_scale_over_training, throughput  # noqa: F401
from bsnb.plots.q2_comparison import gap_by_budget, loss_curves, minima, one_pass, setting_curves, speed  # noqa: F401
from bsnb.plots.q3_sharpness import (  # noqa: F401
    contours,
    distance_from_init,
    interpolation,
    sharpness_by_batch_size,
    sharpness_setting,
)
from bsnb.plots.q4_closing import min_loss_by_rule, rate_bands, remedies, steps_to_target  # noqa: F401
from bsnb.plots.style import by_batch_size, palette, save, show  # noqa: F401

CACHE_KEY = False  # figures only: editing them reruns no job (bsnb.sources.computing_modules)
