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
# # Why do large batches do worse? The sharpness of their minima
#
# Keskar et al. (2017) argue that large batches converge to *sharp* minima, where the training
# loss rises steeply in some directions, and small batches to *flat* ones, and that flat minima
# generalise better. Hoffer et al. (2017) add that large batches take fewer steps, so their
# weights end closer to where they started.
#
# This notebook measures how sharp the weights of **one empirical-comparison run** are, for
# every seed (claim C6 of the study). The run is the one in `source_dir`, and its data, model and
# batch size come from there. The sweep runs this notebook once per batch size, after the run
# it reads. The findings notebook sets the batch sizes side by side, adds the
# distance from initialisation (C7) and draws Keskar's interpolation between a small-batch and a
# large-batch solution.

# %% tags=["parameters"]
hessian_examples: int = 4096  # training examples the Hessian and sharpness are measured on (all, if fewer)
matched_loss: float = 0.3  # training loss at whose checkpoint (saved when the loss first fell to it) the trace, epsilon-sharpness and slices are measured: one of 1, 0.3, 0.1, 0.03, 0.01
full_measures: bool = True  # measure the trace, epsilon-sharpness and slices too (false: only the top eigenvalue at each level, for C6's trend over batch sizes)
top_k: int = 5  # top Hessian eigenvalues computed by Lanczos
lanczos_tol: float = 0.001  # relative tolerance of the Lanczos eigenvalues
trace_samples: int = 32  # Rademacher probes of Hutchinson's trace estimate
epsilons: list = [0.001, 0.0005]  # box sizes of Keskar's epsilon-sharpness
subspace_dim: int = 100  # dimension of the random subspace of epsilon-sharpness
lbfgs_iters: int = 10  # L-BFGS-B iterations maximising the loss in the box
slice_points: int = 25  # points of the 1-D filter-normalised loss slice, from -1 to 1
contour_points: int = 11  # points per axis of the 2-D filter-normalised loss surface, from -1 to 1 (0: none)
density: bool = False  # also estimate the eigenvalue density (stochastic Lanczos quadrature)
device: str = "auto"  # auto (GPU when present), cpu, cuda or mps
source_dir: str = "runs/source"  # folder of the run this execution reads: the empirical comparison's (01, 03), the learning-rate search's (04, remedy confirm)
run_dir: str = "runs/manual"  # folder this execution writes its results to
threads: int = 0  # torch CPU threads; 0 lets torch decide

# %% [markdown]
# ## Method
#
# Every measure is of the **training loss** on `hessian_examples` training examples (all of
# them when the training set is smaller), with the model in eval mode. The measurement leaves
# the weights as it found them. The Hessian of cross-entropy shrinks as the loss goes to zero, so
# batch sizes are compared fairly only at the same training loss: the **top eigenvalue** is
# measured where the training loss first fell to each of 1, 0.3, 0.1 and 0.03 (checkpoints saved
# during training), and the findings compare the batch sizes at the lowest level that every
# measured run reached, and also at the smoothed minimum and the final weights. With
# `full_measures`, every measure below is taken once, where the training loss first fell to
# `matched_loss` (C6 reports them beside its verdict; a seed that never reached it, at its final
# weights), and the 2-D surface around the final weights.
#
# - **Top Hessian eigenvalues** by Lanczos (SciPy's `eigsh` on a Hessian-vector product
#   operator), each with its residual ‖Hv − λv‖ and the number of products spent.
# - **Hessian trace** by Hutchinson's estimator (Rademacher probes), with its standard error.
# - **Keskar's ε-sharpness** (Metric 2.1): the largest relative rise of the loss,
#   100 · (max f − f) / (1 + f), over a box of half-width ε(|wᵢ| + 1) around the weights. It is
#   searched in the full space and in a random 100-dimensional subspace, with 10 iterations of
#   L-BFGS-B.
# - A **1-D slice** of the loss along a filter-normalised random direction, and a **2-D surface**
#   over two such directions (Li et al. 2018), drawn as contours by the findings.

# %%
from bsnb import analysis, parameters, plots, results, sharpness, summaries, train

params = parameters.from_namespace("03_sharpness", globals())
source = analysis.open_job(source_dir, train.setup(threads, device))
x, y = sharpness.subset(source.data.x_train, source.data.y_train, hessian_examples, seed=source.params["data_seed"])
levels = {name: source.store.load_states(name) for name in map(results.level_checkpoint, results.MATCHED_LEVELS)}
final = source.store.load_states("final")
matched = source.store.load_states(results.level_checkpoint(matched_loss))
# the full measures once: at the matched level (C6 quotes them), at the final weights for a seed that never reached it
checkpoints = {"matched": matched, "final": {s: w for s, w in final.items() if s not in matched}} if full_measures else {}
checkpoints = {name: states for name, states in checkpoints.items() if states}
source.params

# %% [markdown]
# ## Experiment

# %%
options = {k: params[k] for k in parameters.SHARPNESS_OPTIONS if k != "contour_points"}
records, tables = sharpness.measure_checkpoints(source.model, checkpoints, x, y, **options)
if full_measures and contour_points:  # the 2-D surface around the final weights, drawn by the findings
    tables["contours"] = sharpness.surface(source.model, final, x, y, contour_points)
# the top eigenvalue at every loss level, at the smoothed minimum ("best") and at the final weights (docs/protocol.md)
at_levels = {**levels, "best": source.store.load_states("best"),
             "final": {s: w for s, w in final.items() if s not in checkpoints.get("final", {})}}
records += sharpness.top_eigenvalue_at(source.model, at_levels, x, y, lanczos_tol)
store = results.JobStore(run_dir)
store.save("03_sharpness", {**params, "source": source.params}, records, tables)

# %% [markdown]
# ## Figure
#
# The loss along a filter-normalised random direction through each seed's weights where the
# training loss first fell to `matched_loss`, and the top eigenvalues of the Hessian there.

# %%
if checkpoints:
    plots.show(plots.sharpness_setting(store.table("slices"), store.table("eigenvalues"), source.params["batch_size"]))

# %% [markdown]
# ## Result
#
# Per seed: the top eigenvalue, the trace with its standard error, and the ε-sharpness in the
# full space and in the random subspace. Re-running this notebook on the same machine reproduces
# the table exactly.

# %%
# NBVAL_CHECK_OUTPUT
print(summaries.seed_table(store).to_string())
