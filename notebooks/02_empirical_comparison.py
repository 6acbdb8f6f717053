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
# # How do small and large batches perform empirically?
#
# The article trains one network with different batch sizes, everything else held fixed, and
# reports that batch size 256 reaches a minimum validation loss of 0.395 against 0.344 for batch
# size 32. It also finds that larger batches lower the training loss more slowly per epoch, take
# less time per epoch, and do not reach their minimum validation loss in fewer epochs
# (claims C1 to C4 of the study).
#
# This notebook trains **one batch size** for every seed and stores the results. The sweep
# (`bsnb run`) executes it once per batch size of a profile; the findings notebook sets the runs
# side by side and computes the verdicts.

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
target_loss: float = 0.5  # validation loss the tuned remedy counts steps to; 02's runs save a checkpoint where they first reach it, at which 01 measures the noise scale C11 reads
run_dir: str = "runs/manual"  # folder this execution writes its results to
threads: int = 0  # torch CPU threads; 0 lets torch decide

# %% [markdown]
# ## Method
#
# The parameters are checked first (an unknown name or a value out of range stops here, before
# any training). The data is split into training, validation and test sets fixed by `data_seed`
# and kept on the device as tensors. Each seed initialises the model and orders the batches; every
# seed sees the same data, learning rate and number of epochs. After every epoch the model is
# evaluated on the full training and validation sets; the test set is evaluated once, with the
# weights of the epoch of minimum validation loss. Each seed saves its initial, best and final
# weights; the weights where its training loss first fell to 1, 0.3, 0.1, 0.03 and 0.01, and
# where its validation loss first reached `target_loss`, each with those of the next two evaluated
# epochs: notebooks 01 and 03 measure them.
# Where `stack` says so (`auto`: the batch sizes at which it measured faster on this device), the
# seeds train at once as one stacked model, each with its own initialisation and batch order; the
# numbers agree with training them one after another up to float rounding, and each run records
# `stacked`. A stacked run's seconds are its share of the stack's; the findings time the batch
# sizes alone.

# %%
from bsnb import data, parameters, plots, results, summaries, train

params = parameters.from_namespace("02_empirical_comparison", globals())
device = train.setup(params["threads"], params["device"])
ds = data.of_job(params, device)
ds

# %% [markdown]
# ## Experiment

# %%
runs = train.train_seeds(params, ds, checkpoint_val_loss=target_loss)
store = results.JobStore(run_dir)
store.save_training(params, runs, extra={"data_fingerprint": ds.fingerprint()})

# %% [markdown]
# ## Figure
#
# Loss and accuracy per epoch for each seed, and how far the weights travel from their
# initialisation as training proceeds.

# %%
plots.show(plots.setting_curves(store.history(), store.steps(), title=f"batch size {batch_size}"))

# %% [markdown]
# ## Result
#
# Per seed: the minimum validation loss and its epoch, the final training loss, and the test loss
# and accuracy at the epoch of minimum validation loss. Re-running this notebook with the same
# parameters on the same machine reproduces this table exactly (the test suite checks it).

# %%
# NBVAL_CHECK_OUTPUT
print(summaries.seed_table(store).to_string())

# %%
print(summaries.describe(store))
