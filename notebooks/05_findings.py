# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Findings: what the measurements say about the article's claims
#
# This notebook reads every run in the results store, draws the article's figures, and computes
# a verdict for each claim from the data: **supported**, **not supported** or **inconclusive**,
# with the effect and its confidence interval over seeds. Nothing here is written by hand: if the
# data contradicts the article, the table says so.
#
# Every reading follows the study's pre-registered protocol (`docs/protocol.md`, version 4; its last
# section says which of its rules the code applies so far): minima come from the validation loss
# smoothed over 5 evaluated epochs (the raw minimum beside it), a run whose training loss never fell
# below 90% of the chance loss is dropped and named, a run that trained and then climbed back above
# chance is kept, named and sets no matched level, and each verdict is recomputed under the
# protocol's alternative readings; it is **robust** when every alternative gives the same label. A
# claim the profile ran nothing for is listed as **not run in this profile**.

# %% tags=["parameters"]
small_batch: int = 32  # the small batch of the article's comparison
large_batch: int = 256  # the large batch of the article's comparison
c1_level: float = 0.0  # training loss C1 counts the epochs to; 0 means the lowest of 1, 0.3, 0.1, 0.03 that every stable compared run reached
confidence: float = 0.95  # confidence level of the intervals over seeds
store_dir: str = "runs"  # folder holding the runs the findings read
report_dir: str = "reports/manual"  # folder the findings write claims.csv and figures to
workload: str = ""  # the workload whose runs the findings read (empty: every run of the store)

# %%
from bsnb import accumulation, analysis, claims, minima, noise, parameters, plots, results, summaries

params = parameters.from_namespace("05_findings", globals())
tables = results.load_tables(store_dir, workload)
figures = results.figures_dir(report_dir)
study = claims.Study(tables, small_batch, large_batch, confidence, c1_level=c1_level)
runs = study.runs()  # every run read by the protocol: smoothed minima, failed runs marked
if workload:
    print(f"Workload {workload}: the {len(tables.jobs)} jobs of the store it reads.")
print(summaries.store_note(tables.jobs) or "Every job of the store finished.")
tables.jobs.groupby(["notebook", "state"], dropna=False).size().rename("jobs").to_frame()

# %% [markdown] tags=["q1-what-is-batch-size"]
# ## What is batch size, and why does it matter? (claims C5, C11 and C14)
#
# **Method.** The first notebook computed, at the checkpoints of a trained run, the full
# gradient G and the per-example gradient covariance from per-example gradients. It then drew
# random batches of each size to measure ‖g_B − G‖². C5 compares the measured error with the
# formula tr(Σ)/B · (m−B)/(m−1). The training runs logged McCandlish's two-batch estimate of the
# noise scale B_simple along the way. C11 compares the exact B_simple where the reference run's
# validation loss first reached the learning-rate search's target with the critical batch size
# fitted to the search's steps to that target: McCandlish sets the two side by side at the same
# loss. C14 asks whether the exact B_simple grows as the training loss falls: its rank correlation
# with −log(level) over the levels 1, 0.3, 0.1, 0.03 down to the lowest every seed reached. At
# both, tr(Σ) and ‖G‖² are each summed over the weights of that epoch and of the next two
# evaluated epochs (a pre-registered window; windows of 1 and 5 epochs are its alternatives).

# %% tags=["verdicts"]
variance, noise_log = tables.table("variance"), tables.table("noise")
critical, critical_table = claims.critical_batch(runs, noise_log, tables.epochs, small_batch, confidence)
verdicts = claims.question(study, 1)
claims.table(verdicts)[["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "measure", "ours"]]

# %% [markdown]
# **The batch gradient as an estimate of the full gradient**, at initialisation, at the best
# weights and at the end of training.

# %%
if not variance.empty:
    plots.show(plots.gradient_noise(variance), figures, "gradient_noise")

# %% [markdown]
# **Is gradient accumulation a bigger batch?** Notebook 01 trains batch 256 as 8 micro-batches of 32
# beside the plain batch and beside ghost batch norm at 32, from the same weights and batch order.
# Without batch norm accumulation is the large batch (to float rounding); with batch norm it is
# ghost batch norm at the micro-batch size; the last column is its wall time per step against
# the plain batch's, in float32 on this machine.

# %%
accumulated = tables.table("accumulation")
if not accumulated.empty:
    plots.show(plots.accumulation(accumulated, accumulation.TOLERANCE), figures, "accumulation")
accumulation.summary(accumulated, tables.table("accumulation_time"))

# %% [markdown]
# **The noise scale over training**, for every batch size of the empirical comparison, and the
# **throughput** that makes batch size matter: with perfect parallelism a step would take the
# same time at any batch size (the dotted line).

# %%
if not noise_log.empty:
    along = noise.b_simple_along_training(noise_log[noise_log["notebook"] == "02_empirical_comparison"])
    plots.show(plots.noise_scale_over_training(along, noise.exact_b_simple_by_step(tables.runs, tables.epochs)),
               figures, "noise_scale")
comparison, note = claims.comparison_runs(runs)
if not comparison.empty:
    plots.show(plots.throughput(comparison), figures, "throughput")

# %% [markdown] tags=["q2-empirical-comparison"]
# ## How do small and large batches perform? (claims C1 to C4, C17 and C19)
#
# **Method.** Every batch size is trained with the same learning rate, optimiser and data, for
# the same seeds, until its validation loss has not improved for a stated patience (up to a cap
# of epochs), so each run reaches its minimum. The one learning rate is the small batch's best in
# the learning-rate search (checked below). Each claim compares the small batch with the large
# batch seed by seed; the effect is a ratio (C1 to C3) or a difference (C4), and its interval a
# Student-t interval over seeds. A minimum the cap cut off is censored, and a verdict that
# censoring could have produced is withdrawn. C1 counts the epochs each run took to first reach a
# training-loss level, the lowest of 1, 0.3, 0.1, 0.03 that every stable compared run reached: a count
# that a spike of one late epoch cannot move. C2 and C4 read the minimum of the smoothed
# validation loss, and C2 adds its rank correlation with the batch size over every batch size.

# %% tags=["verdicts"]
study.speed = analysis.timing_alone(store_dir, comparison, small_batch, large_batch)  # timed now, nothing else running
speed = study.speed
comparing = claims.question(study, 2)
verdicts += comparing
claims.table(comparing)[["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "measure", "ours"]]

# %% [markdown]
# **Is the learning rate fair to the small batch?** The comparison's one learning rate against
# the small batch's best in the learning-rate search of notebook 04.

# %%
print(claims.learning_rate_check(runs, small_batch))
unusable = minima.unusable(runs)
print(minima.unusable_note(unusable) or "Every run trained: none diverged, none stayed near the chance loss.")

# %% [markdown]
# **The gap as a function of the budget.** How the answer to C2 would change had training
# stopped earlier: a short budget measures how far each batch got, not how good its minimum is.

# %%
gap = claims.gap_by_budget(runs, tables.epochs, small_batch, large_batch, confidence)
if not gap.empty:
    plots.show(plots.gap_by_budget(gap, claims.ARTICLE["min_val_loss"][256] / claims.ARTICLE["min_val_loss"][32]),
               figures, "gap_by_budget")

# %% [markdown]
# **One pass over fresh data (C17).** Vyas et al. (2024) find that when no example is seen twice,
# small batches keep no advantage at the same number of steps. Notebook 04's `one_pass` arms
# train on fresh MNIST-1D examples every epoch: the small batch for its epochs, the large batch
# for as many steps. C17 reads each by its best smoothed validation loss within the steps the
# small batch's repeated-data run took to its minimum (the dotted lines), beside the same ratio
# with repeated data; C19 asks, seed by seed, whether one pass shrinks the large batch's deficit.

# %%
curves, one_pass_steps = claims.one_pass_curves(runs, tables.epochs, small_batch, large_batch)
if not curves.empty:
    plots.show(plots.one_pass(curves, one_pass_steps), figures, "one_pass")

# %% [markdown]
# **Training and validation loss per epoch.** Small batches take many more steps per epoch; at the
# same learning rate they drive the training loss down faster, and their validation loss turns
# up once they begin to overfit.

# %%
if not comparison.empty:
    epochs = tables.epochs[tables.epochs["job_id"].isin(comparison["job_id"])]
    plots.show(plots.loss_curves(epochs), figures, "loss_curves")

# %% [markdown]
# **Minimum validation loss, and the epoch where it is reached,** against batch size. Stars mark
# the article's published values (batch 32: 0.344, batch 256: 0.395).

# %%
if not comparison.empty:
    plots.show(plots.minima(comparison, claims.ARTICLE["min_val_loss"]), figures, "minima")

# %% [markdown]
# **Speed.** Seconds per epoch and examples per second against batch size, on this machine, one
# model at a time with nothing else running (the sweep's runs share the machine, and may train
# their seeds stacked).

# %%
if not speed.empty:
    plots.show(plots.speed(speed), figures, "speed")

# %% [markdown] tags=["q3-sharpness"]
# ## Why do large batches do worse? (claims C6, C7, C13 and C16)
#
# **Method.** The sharpness notebook measured the top eigenvalue of the Hessian of the training
# loss where each batch size's training loss first fell to each common level (matched loss), at
# its smoothed minimum and at its final weights, and at one level the trace and Keskar's
# ε-sharpness. The
# training runs sampled the distance from initialisation ‖w_t − w_0‖ at log-spaced steps. C6
# compares the top eigenvalues of the small and the large batch, seed by seed, where the training
# loss first fell to the lowest level every run of both reached (its slope over every batch size at the
# lowest level every size reached). C7 compares their distances at
# the smoothed minimum. C13 fits a + b·log(t) and a + b·√t to the first 70% of each run's logged
# steps from the end of the first epoch to its smoothed minimum, and asks which predicts the
# remaining 30% better, per batch size and on average.

# %% tags=["verdicts"]
sharp = tables.runs[tables.runs["notebook"] == "03_sharpness"]
fits = analysis.log_fits(study.comparison_steps())
sharpness_verdicts = claims.question(study, 3)
verdicts += sharpness_verdicts
claims.table(sharpness_verdicts)[["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "measure", "ours"]]

# %% [markdown]
# **Sharpness against batch size.** The top eigenvalue at each matched training loss (what C6
# decides on), at the smoothed minimum and at the final weights; the trace and the ε-sharpness at
# one matched level; for each batch size the sharpness notebook measured.

# %%
if not sharp.empty:
    plots.show(plots.sharpness_by_batch_size(sharp), figures, "sharpness")

# %% [markdown]
# **The loss surface around each minimum** (Li et al. 2018): contours of the training loss on a
# plane through the small-batch and the large-batch final weights.

# %%
surfaces = analysis.surfaces_of(tables.table("contours"), small_batch, large_batch)
if not surfaces.empty:
    plots.show(plots.contours(surfaces, small_batch, large_batch), figures, "contours")

# %% [markdown]
# **Keskar's parametric plot.** The loss along the straight line from the smallest-batch
# solution (α = 0) to the largest-batch solution (α = 1), for each seed the two share. A sharp
# minimum shows as a narrow valley around its end of the line.

# %%
if not comparison.empty and comparison["batch_size"].nunique() > 1:
    line, smallest, largest = analysis.extreme_interpolation(store_dir, comparison)
    plots.show(plots.interpolation(line, smallest, largest), figures, "interpolation")

# %% [markdown]
# **Distance from initialisation** against the optimiser step, on a log axis: a straight line
# here is growth like log(step).

# %%
if not fits.empty:
    plots.show(plots.distance_from_init(tables.steps[tables.steps["job_id"].isin(comparison["job_id"])], fits),
               figures, "distance")

# %% [markdown] tags=["q4-closing-the-gap"]
# ## How can the gap be closed? (claims C8 to C10, C12, C15 and C18)
#
# **Method.** The closing-the-gap notebook trained the large batch with one remedy at a time, for
# the same seeds. The gap is the article's: the large batch's minimum validation loss minus the
# small batch's, both at the small batch's learning rate and epochs. A remedy's share of the gap
# is computed seed by seed. C8 asks whether the linear rule with warm-up closes most of it
# (more than half), with the square-root rule beside it. C9 is Hoffer et al.'s regime
# adaptation: three arms under one step schedule (the rate divided by 10 at 50% and 75% of the
# epochs), the small batch for E epochs, the large batch with the square-root rule for E epochs
# and for as many steps as the small batch; does the same-steps arm close at least 90% of the
# same-epochs gap? C10 compares ghost and plain batch norm at the large batch, both with the
# square-root rule, with plain batch norm at the small batch beside it. C12 is Smith et al.'s
# protocol from the small batch: growing the batch (up to a tenth of the training set) instead of
# decaying the rate at 1/3 and 2/3 of the same epochs, within ±5%, once the decay has beaten the
# constant rate (the control). C15 sets each batch size at its own best learning rate from a
# factor-2 search, and C18 asks whether the band of good rates narrows as the batch grows.

# %% tags=["verdicts"]
closing_verdicts = claims.question(study, 4)
verdicts += closing_verdicts
claims.table(closing_verdicts)[["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "measure", "ours"]]

# %% [markdown]
# **Every remedy's share of the gap**, seed by seed against the article's setting (the 02 runs),
# with its cost in training time.

# %%
remedy_table = claims.remedy_table(runs, small_batch, confidence, analysis.log_fits(tables.steps))
remedy_table.round(3)

# %% [markdown]
# **The remedies side by side**: the minimum validation loss each reaches, and the share of the
# gap it closes.

# %%
if not remedy_table.empty:
    plots.show(plots.remedies(remedy_table), figures, "remedies")
    plots.show(plots.min_loss_by_rule(runs), figures, "min_loss_by_rule")

# %% [markdown]
# **Steps to a target with the learning rate tuned per batch size** (Shallue et al. 2019). Each
# batch size searched the learning-rate grid for the fewest steps to reach the target validation
# loss. Shallue et al. describe three regimes: perfect scaling, where doubling the batch halves
# the steps; diminishing returns; and a plateau, where more batch no longer cuts steps. Beside
# it is the wall time to the target on this machine: with the right learning rate, do large
# batches train faster?

# %%
curve = claims.steps_to_target(runs, confidence, speed)
if not curve.empty:
    plots.show(plots.steps_to_target(curve, critical_table), figures, "steps_to_target")
curve.round(3)

# %% [markdown]
# **How wide is the band of good learning rates?** (C18; Masters and Luschi 2018, Marek et al.
# 2025.) The same search, read differently: for each batch size and seed, the rates around the
# best whose smoothed minimum validation loss is within 5% of the best. If small batches are more
# robust to the rate, the band narrows as the batch grows.

# %%
bands = claims.rate_bands(runs)
if not bands.empty:
    plots.show(plots.rate_bands(claims.search_runs(runs), bands), figures, "rate_bands")
bands

# %% [markdown] tags=["all-verdicts"]
# ## All verdicts
#
# Each verdict is recomputed under the protocol's alternative readings (C1 and C6: the
# neighbouring loss levels; C2, C4, C7 to C10 and C12: raw minima and 3- and 9-epoch smoothing;
# C11 and C14: noise windows of 1 and 5 epochs; C13: fits on 50% and 85% of the steps). A verdict
# is **robust** when every alternative gives its label. The table below is written to
# `claims.csv` beside the report. Each line after it is generated from the table.

# %%
verdicts = claims.robustness(study, verdicts)
claims.save(verdicts, results.claims_path(report_dir), workload)
claims.table(verdicts)[["claim", "verdict", "robust", "effect", "ci_low", "ci_high", "seeds", "sensitivity"]]

# %%
print(claims.conclusions(verdicts))
