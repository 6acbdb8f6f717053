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
# # What is batch size, and why does it matter?
#
# The training loss is an average over the m training examples, L(w) = (1/m) Σᵢ lᵢ(w), and so
# is its gradient, G = (1/m) Σᵢ gᵢ. **Full-batch gradient descent** computes G exactly at
# every step. **Stochastic gradient descent** estimates it from one example, and **mini-batch
# gradient descent** from a batch of B examples: g_B = (1/B) Σ_{i∈batch} gᵢ. The batch size is
# that B.
#
# g_B is an unbiased estimate of G. Its error shrinks as the batch grows. Drawing B of m examples
# without replacement gives
#
#     E ‖g_B − G‖² = tr(Σ) / B · (m − B) / (m − 1),
#
# where tr(Σ) = (1/m) Σᵢ ‖gᵢ − G‖² is the total variance of the per-example gradients (claim C5).
# Past the point where this noise is small next to ‖G‖², a larger batch barely improves the
# step. McCandlish et al. (2018) call the ratio B_simple = tr(Σ) / ‖G‖² the *simple noise
# scale*, and argue that it predicts the *critical batch size*: beyond it, more batch no longer
# cuts the number of steps (claim C11).
#
# This notebook measures all of it on the real training problem, at initialisation and at the
# checkpoints of a trained run. Why it matters in practice, throughput and steps to a target
# against batch size, is in the findings.

# %% tags=["parameters"]
noise_batch_sizes: list = [1, 4, 16, 64, 256, 1024]  # batch sizes whose gradients are compared with the full gradient
noise_draws: int = 50  # random batches drawn per batch size (more for small ones, so each sees at least 2048 examples)
grad_chunk: int = 256  # examples per vectorised per-example-gradient pass (bounds memory)
accumulation_steps: int = 100  # steps of the gradient-accumulation check (batch 256 as 8 micro-batches of 32 beside the plain batch and ghost batch norm; 0: no check)
device: str = "auto"  # auto (GPU when present), cpu, cuda or mps
source_dir: str = "runs/source"  # folder of the run this execution reads: the empirical comparison's (01, 03), the learning-rate search's (04, remedy confirm)
run_dir: str = "runs/manual"  # folder this execution writes its results to
threads: int = 0  # torch CPU threads; 0 lets torch decide

# %% [markdown]
# ## Method
#
# The trained run is the empirical-comparison run in `source_dir`. Its checkpoints are the
# initial weights, the weights of minimum validation loss and the final weights, for every seed,
# and the weights where its training loss first fell to 1, 0.3, 0.1, 0.03 and 0.01 (those it
# reached): checkpoints of falling training loss, at which seeds can be compared at the same loss;
# and the weights where its validation loss first reached the learning-rate search's target
# (`target_loss`), where C11 sets the noise scale beside the critical batch size for that target.
# Each of these last two kinds comes with the weights of the next two evaluated epochs: near a
# minimum ‖G‖² follows where SGD's iterate happens to be, so the findings sum tr(Σ) and ‖G‖² over
# the three, as McCandlish et al. average them over training steps.
# At each checkpoint, with the model in eval mode:
#
# - per-example gradients over the whole training set (`torch.func.vmap` over `grad`, in chunks
#   of `grad_chunk` examples) give G, tr(Σ) and B_simple;
# - at the initial, best and final weights, for each batch size in `noise_batch_sizes`, random batches give the measured ‖g_B − G‖²,
#   set beside the formula, and the cosine between g_B and G. There are `noise_draws` batches,
#   or more, so that every batch size sees at least 2048 examples: at trained weights a few
#   examples carry most of the gradient, and a few single-example draws would miss them.

# %%
from bsnb import accumulation, analysis, noise, parameters, plots, results, summaries, train

params = parameters.from_namespace("01_what_is_batch_size", globals())
source = analysis.open_job(source_dir, train.setup(threads, device))
states = source.store.load_checkpoints(levels=results.LOSS_LEVELS)
source.params

# %% [markdown]
# ## Experiment

# %%
ds = source.data
records, tables = noise.measure_seeds(source.model, states, ds.x_train, ds.y_train, noise_batch_sizes, noise_draws,
                                     grad_chunk)
# the check of the section "Is gradient accumulation a bigger batch?" below
pairs, arms = accumulation.measure(ds, source.params, steps=accumulation_steps)
tables |= {"accumulation": pairs.to_dict("records"), "accumulation_time": arms.to_dict("records")}
store = results.JobStore(run_dir)
store.save("01_what_is_batch_size", {**params, "source": source.params}, records, tables)

# %% [markdown]
# ## Figure
#
# Left: the measured ‖g_B − G‖² (points, mean over draws) against the formula (lines), at each
# checkpoint. Right: how well a batch gradient points along the full gradient.

# %%
plots.show(plots.gradient_noise(store.table("variance")))

# %% [markdown]
# ## Is gradient accumulation a bigger batch?
#
# The question users ask most about batch size (in the issue trackers of the Tuning Playbook,
# YOLOv5 and fastai). With `accumulate: k`, each optimiser step takes the batch as k micro-batches,
# one forward and backward pass each, the loss averaged over the whole batch. Without batch norm
# its gradient is the plain batch's, so it should follow the plain large batch's trajectory to float
# rounding; with batch norm each micro-batch is normalised by its own statistics, so it should
# follow ghost batch norm at the micro-batch size, not the plain large batch. From the same initial
# weights and batch order (the study's own training loop, this run's learning rate and model),
# batch 256 as 8 micro-batches of 32, 100 steps: the final weights side by side, in float64 (where
# one algorithm stays near 1e-15) and in float32 (the study's type), and the wall time per step.

# %%
if accumulation_steps:
    plots.show(plots.accumulation(store.table("accumulation"), accumulation.TOLERANCE))
    check = accumulation.summary(store.table("accumulation"), store.table("accumulation_time"))
else:
    check = "accumulation_steps = 0: no check"
check

# %% [markdown]
# ## Result
#
# At each checkpoint and seed: ‖G‖², tr(Σ) and the noise scale B_simple = tr(Σ)/‖G‖². Re-running
# this notebook on the same machine reproduces the table.

# %%
# NBVAL_CHECK_OUTPUT
print(summaries.seed_table(store, digits=6).to_string())
