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
# # How can the gap be closed?
#
# At a fixed learning rate and number of epochs, large batches do worse. The literature offers
# remedies. Goyal et al. (2017) scale the learning rate linearly with the batch size and warm it
# up over the first 5 epochs. Hoffer et al. (2017) scale it with the square root, train for as
# many *steps* as the small batch ("regime adaptation"), and normalise batch-norm statistics over
# small "ghost" batches. Smith et al. (2018) grow the batch where one would decay the learning
# rate. Shallue et al. (2019) tune the learning rate for every batch size and count the steps
# to a target validation loss.
#
# This notebook trains **one batch size with one remedy** for every seed (claims C8 to C10 of
# the study). With the remedy `tuned` it searches the learning rate over a grid instead, counting
# each run's steps to the target validation loss (C11) and, with a patience, training it to its
# minimum; the grid is then extended past an edge that holds the best rate and refined by a
# factor √2 around it (`bsnb.search`). With the remedy `confirm` it trains new seeds at the rate
# the search in `source_dir` chose: C15, each batch size at its own best rate, reads those seeds.

# %% tags=["parameters"]
batch_size: int = 64  # examples per optimiser step
optimizer: str = "sgd"  # sgd (with momentum), adam, or adamw (decoupled weight decay)
lr: float = 0.01  # learning rate, constant over training
momentum: float = 0.9  # SGD momentum (ignored by adam and adamw)
weight_decay: float = 0.0  # weight decay: L2 for sgd and adam, decoupled for adamw
beta2: float = 0.999  # second-moment decay of adam and adamw (ignored by sgd)
seeds: list = [0, 1, 2]  # model-initialisation and batch-order seeds, all trained in one execution
dataset: str = "mnist1d"  # mnist1d (generated offline), digits (scikit-learn), mnist, fashion_mnist or cifar10 (torchvision, from data_path), or npz (your own file at data_path)
data_path: str = ""  # folder of the torchvision datasets (empty means $BSNB_DATA or ~/.cache/bsnb/data), or the .npz file of dataset npz
n_train: int = 4000  # training examples
n_val: int = 1000  # validation examples (curves and minima)
n_test: int = 1000  # test examples (reported once per run)
data_seed: int = 0  # seed of the data generation and of the split
model: str = "cnn"  # cnn (1-D CNN of the MNIST-1D paper), mlp, or for images cnn2d or resnet (ResNet-20); or your own, module:function
width: int = 25  # channels of the cnn (first-stage channels of cnn2d and resnet), or hidden units of the mlp
batch_norm: bool = False  # batch norm after each hidden layer
accumulate: int = 1  # micro-batches per optimiser step: gradient accumulation, the loss averaged over the whole batch (1: none)
one_pass: bool = False  # draw fresh training examples for every epoch, so that no example is seen twice (mnist1d; each epoch's examples generated once and cached)
budget: str = "epochs"  # train for a number of epochs or of optimiser steps
epochs: int = 100  # epochs of training when budget is epochs
steps: int = 1000  # optimiser steps of training when budget is steps
patience: int = 0  # stop once the validation loss has not improved for this many epochs, epochs (or steps) being the cap; 0 trains the whole budget
log_points: int = 200  # steps at which gradient norm and distance from init are sampled (log-spaced)
noise_points: int = 100  # steps at which the two-batch gradient noise scale is estimated (log-spaced; 0: never)
device: str = "auto"  # auto (GPU when present), cpu, cuda or mps
stack: str = "auto"  # train the seeds (and the tuned remedy's learning rates) as one stacked model: auto (where it measured faster), on or off
remedy: str = "none"  # none, linear, linear_warmup, sqrt, longer, bn, ghost_bn, lr_decay, batch_growth, tuned, confirm (new seeds at the rate the search in source_dir chose), Hoffer's arms step, sqrt_step and sqrt_step_longer, or the one-pass arms one_pass and one_pass_longer
reference_batch: int = 32  # the small batch whose learning rate (lr) and step count the rules start from
warmup_epochs: int = 5  # epochs of linear warm-up (linear_warmup)
ghost_batch: int = 32  # examples per ghost batch (ghost_bn)
beta2_rule: str = "none"  # adam/adamw: none keeps beta2; half_life keeps its half-life fixed in examples, beta2 ** (batch_size / reference_batch) (Marek et al. 2025)
schedule_milestones: list = [0.3333, 0.6667]  # fractions of the epochs at which lr_decay / batch_growth act
schedule_factor: float = 5.0  # learning-rate divisor / batch multiplier at each milestone
lr_grid: list = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]  # learning rates the tuned remedy tries
confirm_seeds: list = []  # seeds a profile trains at the rate each tuned search chose, in a job of remedy confirm that runs after the search (C15; none: C15 reads the search's own seeds)
target_loss: float = 0.5  # validation loss the tuned remedy counts steps to; 02's runs save a checkpoint where they first reach it, at which 01 measures the noise scale C11 reads
sharpness_at_levels: bool = False  # also measure the top Hessian eigenvalue where the training loss first fell to each of 1, 0.3, 0.1, 0.03 (C16: sharpness under a learning-rate rule)
source_dir: str = "runs/source"  # folder of the run this execution reads: the empirical comparison's (01, 03), the learning-rate search's (04, remedy confirm)
run_dir: str = "runs/manual"  # folder this execution writes its results to
threads: int = 0  # torch CPU threads; 0 lets torch decide

# %% [markdown]
# ## Method
#
# The remedy switches options of the training loop on (`bsnb.remedies`). The learning-rate
# rules start from the reference: `lr` is the rate of `reference_batch`, and the linear rule
# gives lr · B / B₀. `longer` trains for the number of steps `reference_batch` takes in `epochs`
# epochs. `bn` adds plain batch norm (the baseline for `ghost_bn`), and `ghost_bn` normalises
# chunks of `ghost_batch` examples. `lr_decay` divides the rate by `schedule_factor` at each
# milestone, and `batch_growth` multiplies the batch by the same factor there instead, up to a
# tenth of the training set, the rest of the factor going to the rate (Smith et al.'s hybrid).
# Hoffer et al.'s regime adaptation is three arms under one step schedule, the rate divided by 10
# at 50% and 75% of the epochs: `step` (the small batch at `lr`), `sqrt_step` (the square-root
# rule, the same epochs) and `sqrt_step_longer` (the same, for as many steps as `reference_batch`
# takes in `epochs` epochs, the milestones stretched with them). Every other parameter is the
# empirical comparison's.

# %%
from bsnb import data, parameters, plots, remedies, results, search, sharpness, summaries, train

params = parameters.from_namespace("04_closing_the_gap", globals())
if remedy == "confirm":  # new seeds at the rate the learning-rate search in source_dir chose
    params = search.confirmed(params, source_dir)
device = train.setup(threads, device)
ds = data.of_job(remedies.data_params(params), device)
spec = train.TrainSpec.from_params(params, **remedies.options(params))
spec

# %% [markdown]
# ## Experiment

# %%
if remedy == "tuned":
    runs = train.tune(spec, ds, lr_grid, seeds, target_loss)
else:
    runs = train.train_seeds(params, ds, spec=spec)
measured = {"level_sharpness": sharpness.of_seed_runs(runs, ds, spec, data_seed)} if sharpness_at_levels else {}
store = results.JobStore(run_dir)
store.save_training(params, runs, notebook="04_closing_the_gap", extra={"data_fingerprint": ds.fingerprint()},
                    tables=measured)

# %% [markdown]
# ## Figure

# %%
plots.show(plots.setting_curves(store.history(), store.steps(), title=f"batch size {batch_size}, remedy {remedy}"))

# %% [markdown]
# ## Result
#
# Per run (one per seed, or per learning rate and seed for `tuned`): the learning rate, the
# minimum validation loss and its epoch, and the steps to the target when one was set.

# %%
# NBVAL_CHECK_OUTPUT
print(summaries.seed_table(store).to_string())
