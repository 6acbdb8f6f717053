"""The study's parameters: what each one is, its type, allowed values and help, and how values are checked.

This is the one place that knows what a valid parameter is. Parameters come in three groups,
following the Deep Learning Tuning Playbook's vocabulary (plus ``system``: where things go):

* ``scientific``: what the study varies to answer its question (the batch size);
* ``nuisance``: what must be set well for a fair comparison (learning rate, seeds);
* ``fixed``: what is held constant (dataset, model, budget).

Choices that belong to another module are read from it: model names from :mod:`bsnb.choices`,
remedies from :mod:`bsnb.remedies`, datasets from :mod:`bsnb.data`. How a YAML profile becomes
jobs is :mod:`bsnb.profiles`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsnb import choices, remedies, results
from bsnb import data as data_mod

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
PARAMS_DIR = ROOT / "params"
REPORTS_DIR = ROOT / "reports"

GROUPS = ("scientific", "nuisance", "fixed")

# Training losses at which training saves a checkpoint the first time the loss falls to them, so that
# sharpness can be compared where different batch sizes reach the same loss (matched_loss picks one).


@dataclass(frozen=True)
class Param:
    """One notebook parameter: its type, default, allowed values and one-line help."""

    name: str
    type: type
    default: Any
    help: str
    kind: str
    choices: tuple | None = None
    low: float | None = None  # inclusive bounds
    high: float | None = None
    item_type: type | None = None  # for list parameters
    min_items: int = 0
    also: tuple[str, str] | None = None  # (regex, words): a string outside the choices it also accepts

    def allowed(self) -> str:
        """Say in words which values this parameter accepts."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices) + (f", or {self.also[1]}" if self.also else "")
        tname = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        if self.type is list:
            what = "a list of " + {int: "integers", float: "numbers", str: "strings"}[self.item_type]
            if self.min_items:
                what += f" with at least {self.min_items} item{'s' if self.min_items > 1 else ''}"
        else:
            what = tname[self.type]
        bounds = _bounds_text(self.low, self.high)
        return what + (f" {bounds}" if bounds else "")


def _bounds_text(low, high) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    if low is not None:
        return f">= {low:g}"
    if high is not None:
        return f"<= {high:g}"
    return ""


def _p(name, type_, default, help_, kind, **kw) -> Param:
    return Param(name, type_, default, help_, kind, **kw)


# Every parameter any notebook of the study takes. Notebooks declare the same names, types and
# defaults in their `parameters` cell; tests/test_notebooks.py checks that they agree.
PARAMS: dict[str, Param] = {
    p.name: p
    for p in [
        # scientific
        _p("batch_size", int, 64, "examples per optimiser step", "scientific", low=1),
        # nuisance
        _p("optimizer", str, "sgd", "sgd (with momentum), adam, or adamw (decoupled weight decay)", "nuisance",
           choices=choices.OPTIMIZERS),
        _p("lr", float, 0.01, "learning rate, constant over training", "nuisance", low=1e-8, high=10.0),
        _p("momentum", float, 0.9, "SGD momentum (ignored by adam and adamw)", "nuisance", low=0.0, high=0.999),
        _p("weight_decay", float, 0.0, "weight decay: L2 for sgd and adam, decoupled for adamw", "nuisance", low=0.0,
           high=1.0),
        _p("beta2", float, 0.999, "second-moment decay of adam and adamw (ignored by sgd)", "nuisance", low=0.0,
           high=0.999999),
        _p("seeds", list, [0, 1, 2], "model-initialisation and batch-order seeds, all trained in one execution",
           "nuisance", item_type=int, low=0, min_items=1),
        # fixed
        _p("dataset", str, "mnist1d", "mnist1d (generated offline), digits (scikit-learn), mnist, fashion_mnist or "
           "cifar10 (torchvision, from data_path), or npz (your own file at data_path)", "fixed",
           choices=data_mod.DATASETS),
        _p("data_path", str, "", "folder of the torchvision datasets (empty means $BSNB_DATA or ~/.cache/bsnb/data), "
           "or the .npz file of dataset npz", "fixed"),
        _p("n_train", int, 4000, "training examples", "fixed", low=10),
        _p("n_val", int, 1000, "validation examples (curves and minima)", "fixed", low=10),
        _p("n_test", int, 1000, "test examples (reported once per run)", "fixed", low=10),
        _p("data_seed", int, 0, "seed of the data generation and of the split", "fixed", low=0),
        _p("model", str, "cnn", "cnn (1-D CNN of the MNIST-1D paper), mlp, or for images cnn2d or resnet (ResNet-20); "
           "or your own, module:function", "fixed", choices=choices.MODELS,
           also=(choices.IMPORT_PATH, choices.IMPORT_PATH_WORDS)),
        _p("width", int, 25, "channels of the cnn (first-stage channels of cnn2d and resnet), or hidden units of the "
           "mlp", "fixed", low=1, high=4096),
        _p("batch_norm", bool, False, "batch norm after each hidden layer", "fixed"),
        _p("accumulate", int, 1, "micro-batches per optimiser step: gradient accumulation, the loss averaged over "
           "the whole batch (1: none)", "fixed", low=1, high=1024),
        _p("one_pass", bool, False, "draw fresh training examples for every epoch, so that no example is seen twice "
           "(mnist1d; each epoch's examples generated once and cached)", "fixed"),
        _p("budget", str, "epochs", "train for a number of epochs or of optimiser steps", "fixed",
           choices=("epochs", "steps")),
        _p("epochs", int, 100, "epochs of training when budget is epochs", "fixed", low=1),
        _p("steps", int, 1000, "optimiser steps of training when budget is steps", "fixed", low=1),
        _p("patience", int, 0, "stop once the validation loss has not improved for this many epochs, epochs (or "
           "steps) being the cap; 0 trains the whole budget", "fixed", low=0),
        _p("log_points", int, 200, "steps at which gradient norm and distance from init are sampled (log-spaced)",
           "fixed", low=2),
        _p("noise_points", int, 100, "steps at which the two-batch gradient noise scale is estimated (log-spaced; "
           "0: never)", "fixed", low=0),
        _p("device", str, "auto", "auto (GPU when present), cpu, cuda or mps", "fixed",
           choices=("auto", "cpu", "cuda", "mps")),
        _p("stack", str, "auto", "train the seeds (and the tuned remedy's learning rates) as one stacked model: auto "
           "(where it measured faster), on or off", "fixed", choices=choices.STACK),
        # sharpness (03)
        _p("hessian_examples", int, 4096, "training examples the Hessian and sharpness are measured on (all, if fewer)",
           "fixed", low=1),
        _p("top_k", int, 5, "top Hessian eigenvalues computed by Lanczos", "fixed", low=1, high=100),
        _p("lanczos_tol", float, 1e-3, "relative tolerance of the Lanczos eigenvalues", "fixed", low=1e-12, high=0.1),
        _p("trace_samples", int, 32, "Rademacher probes of Hutchinson's trace estimate", "fixed", low=2),
        _p("epsilons", list, [1e-3, 5e-4], "box sizes of Keskar's epsilon-sharpness", "fixed", item_type=float,
           low=1e-8, high=1.0, min_items=1),
        _p("subspace_dim", int, 100, "dimension of the random subspace of epsilon-sharpness", "fixed", low=1),
        _p("lbfgs_iters", int, 10, "L-BFGS-B iterations maximising the loss in the box", "fixed", low=1),
        _p("contour_points", int, 11, "points per axis of the 2-D filter-normalised loss surface, from -1 to 1 "
           "(0: none)", "fixed", low=0, high=101),
        _p("slice_points", int, 25, "points of the 1-D filter-normalised loss slice, from -1 to 1", "fixed", low=3),
        _p("matched_loss", float, 0.3, "training loss at whose checkpoint (saved when the loss first fell to it) the "
           "trace, epsilon-sharpness and slices are measured: one of 1, 0.3, 0.1, 0.03, 0.01", "fixed", low=0.01,
           high=1.0),
        _p("full_measures", bool, True, "measure the trace, epsilon-sharpness and slices too (false: only the top "
           "eigenvalue at each level, for C6's trend over batch sizes)", "fixed"),
        _p("density", bool, False, "also estimate the eigenvalue density (stochastic Lanczos quadrature)", "fixed"),
        # what batch size is (01)
        _p("noise_batch_sizes", list, [1, 4, 16, 64, 256, 1024], "batch sizes whose gradients are compared with the "
           "full gradient", "fixed", item_type=int, low=1, min_items=1),
        _p("noise_draws", int, 50, "random batches drawn per batch size (more for small ones, so each sees at least "
           "2048 examples)", "fixed", low=2),
        _p("grad_chunk", int, 256, "examples per vectorised per-example-gradient pass (bounds memory)", "fixed", low=1),
        _p("accumulation_steps", int, 100, "steps of the gradient-accumulation check (batch 256 as 8 micro-batches "
           "of 32 beside the plain batch and ghost batch norm; 0: no check)", "fixed", low=0),
        # closing the gap (04)
        _p("remedy", str, "none", "none, linear, linear_warmup, sqrt, longer, bn, ghost_bn, lr_decay, batch_growth, "
           "tuned, confirm (new seeds at the rate the search in source_dir chose), Hoffer's arms step, sqrt_step and sqrt_step_longer, or the one-pass arms one_pass and one_pass_longer",
           "scientific",
           choices=tuple(remedies.PRESETS)),
        _p("reference_batch", int, 32, "the small batch whose learning rate (lr) and step count the rules start from",
           "fixed", low=1),
        _p("warmup_epochs", int, 5, "epochs of linear warm-up (linear_warmup)", "fixed", low=0),
        _p("ghost_batch", int, 32, "examples per ghost batch (ghost_bn)", "fixed", low=1),
        _p("beta2_rule", str, "none", "adam/adamw: none keeps beta2; half_life keeps its half-life fixed in examples, "
           "beta2 ** (batch_size / reference_batch) (Marek et al. 2025)", "fixed", choices=("none", "half_life")),
        _p("sharpness_at_levels", bool, False, "also measure the top Hessian eigenvalue where the training loss first "
           "fell to each of 1, 0.3, 0.1, 0.03 (C16: sharpness under a learning-rate rule)", "fixed"),
        _p("schedule_milestones", list, [0.3333, 0.6667], "fractions of the epochs at which lr_decay / batch_growth act",
           "fixed", item_type=float, low=0.0, high=1.0, min_items=1),
        _p("schedule_factor", float, 5.0, "learning-rate divisor / batch multiplier at each milestone", "fixed",
           low=1.0, high=1000.0),
        _p("lr_grid", list, [0.005, 0.01, 0.02, 0.05, 0.1, 0.2], "learning rates the tuned remedy tries", "nuisance",
           item_type=float, low=1e-8, high=10.0, min_items=1),
        _p("lr_grid_factors", list, [], "a profile's grid for the tuned remedy as factors of the linear rule's rate at "
           "each search's batch size, lr x batch_size / reference_batch: centred on the pinned lr (protocol v4); the "
           "sweep writes the rates into lr_grid, which it replaces (empty: lr_grid as given)", "nuisance",
           item_type=float, low=1e-6, high=1e6),
        _p("confirm_seeds", list, [], "seeds a profile trains at the rate each tuned search chose, in a job of remedy "
           "confirm that runs after the search (C15; none: C15 reads the search's own seeds)", "nuisance",
           item_type=int, low=0),
        _p("target_loss", float, 0.5, "validation loss the tuned remedy counts steps to; 02's runs save a checkpoint "
           "where they first reach it, at which 01 measures the noise scale C11 reads", "fixed", low=1e-6,
           high=100.0),
        # findings
        _p("small_batch", int, 32, "the small batch of the article's comparison", "fixed", low=1),
        _p("large_batch", int, 256, "the large batch of the article's comparison", "fixed", low=1),
        _p("c1_level", float, 0.0, "training loss C1 counts the epochs to; 0 means the lowest of 1, 0.3, 0.1, 0.03 "
           "that every stable compared run reached", "fixed", low=0.0, high=10.0),
        _p("confidence", float, 0.95, "confidence level of the intervals over seeds", "fixed", low=0.5, high=0.999),
        # system: where things go and how they run; not part of a run's identity
        _p("run_dir", str, "runs/manual", "folder this execution writes its results to", "system"),
        _p("source_dir", str, "runs/source", "folder of the run this execution reads: the empirical comparison's (01, 03), "
           "the learning-rate search's (04, remedy confirm)", "system"),
        _p("store_dir", str, "runs", "folder holding the runs the findings read", "system"),
        _p("report_dir", str, "reports/manual", "folder the findings write claims.csv and figures to", "system"),
        _p("workload", str, "", "the workload whose runs the findings read (empty: every run of the store)", "system"),
        _p("threads", int, 0, "torch CPU threads; 0 lets torch decide", "system", low=0),
    ]
}

# What defines a training run's setting: the findings group runs that differ only in batch size by
# these, and results carries them on every row. TrainSpec takes every TRAINING name it has a field for.
SETTING = ("batch_size", "optimizer", "lr", "momentum", "weight_decay", "beta2", "dataset", "model", "width", "batch_norm",
           "accumulate", "one_pass", "budget", "epochs", "steps", "patience")

TRAINING = ["batch_size", "optimizer", "lr", "momentum", "weight_decay", "beta2", "seeds", "dataset", "data_path", "n_train",
            "n_val", "n_test", "data_seed", "model", "width", "batch_norm", "accumulate", "one_pass", "budget", "epochs", "steps",
            "patience", "log_points", "noise_points", "device", "stack"]

# options of bsnb.sharpness.measure, and the size of the subset it measures on
SHARPNESS_OPTIONS = ["top_k", "lanczos_tol", "trace_samples", "epsilons", "subspace_dim", "lbfgs_iters", "slice_points",
                     "contour_points",
                     "density"]
SHARPNESS = ["hessian_examples", "matched_loss", "full_measures", *SHARPNESS_OPTIONS]

REMEDY = ["remedy", "reference_batch", "warmup_epochs", "ghost_batch", "beta2_rule", "schedule_milestones", "schedule_factor",
          "lr_grid", "confirm_seeds", "target_loss", "sharpness_at_levels"]

NOISE = ["noise_batch_sizes", "noise_draws", "grad_chunk", "accumulation_steps"]

# The notebooks the sweep runs per setting, and the parameters each declares (in order).
NOTEBOOKS: dict[str, list[str]] = {
    "01_what_is_batch_size": NOISE + ["device", "source_dir", "run_dir", "threads"],
    "02_empirical_comparison": TRAINING + ["target_loss", "run_dir", "threads"],
    "03_sharpness": SHARPNESS + ["device", "source_dir", "run_dir", "threads"],
    "04_closing_the_gap": TRAINING + REMEDY + ["source_dir", "run_dir", "threads"],
}
# A notebook that reads another's run. It declares only its own parameters and reads the training
# setting from the run in ``source_dir``; in a profile, its jobs still take the training values,
# which pick the run it reads. The sweep adds that run when the profile lacks it and runs it first.
NEEDS: dict[str, str] = {"01_what_is_batch_size": "02_empirical_comparison", "03_sharpness": "02_empirical_comparison"}


def job_params(notebook: str) -> list[str]:
    """The parameters of a job of ``notebook``: what it declares, and for a reading notebook the training
    setting of the run it reads."""
    own = NOTEBOOKS[notebook]
    if notebook not in NEEDS:
        return own
    return own + [p for p in NOTEBOOKS[NEEDS[notebook]] if p not in own and PARAMS[p].kind != "system"]
# The notebook that gathers every run, executed once after the sweep.
FINDINGS = "05_findings"
FINDINGS_PARAMS = ["small_batch", "large_batch", "c1_level", "confidence", "store_dir", "report_dir", "workload"]
ALL_NOTEBOOKS = {**NOTEBOOKS, FINDINGS: FINDINGS_PARAMS}
JOBS = {**{nb: job_params(nb) for nb in NOTEBOOKS}, FINDINGS: FINDINGS_PARAMS}

def centred_grid(params: dict, factors: list[float]) -> list[float]:
    """The tuned remedy's grid centred on the linear rule's rate at the job's batch size: lr x batch_size /
    reference_batch x each factor, to 4 significant digits (0.03 at batch 256 with factors 0.25 to 4: 0.06 to 0.96)."""
    centre = params["lr"] * params["batch_size"] / params["reference_batch"]
    return [float(f"{centre * f:.4g}") for f in factors]


# Number of examples each dataset can provide: one pool, or (train and validation pool, test pool).
DATASET_SIZES = {"mnist1d": None, "digits": 1797,
                 **{name: (train, test) for name, (_, train, test) in data_mod.IMAGE_DATASETS.items()}}

class ProfileError(ValueError):
    """A profile or parameter set that cannot run; ``problems`` lists each bad parameter."""

    def __init__(self, problems: list[str], source: str = ""):
        self.problems = problems
        head = f"invalid parameters in {source}" if source else "invalid parameters"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in problems))


def defaults(notebook: str) -> dict:
    """The default parameter set of a job of one notebook."""
    return {name: _copy(PARAMS[name].default) for name in JOBS[notebook]}


def _copy(v):
    return list(v) if isinstance(v, list) else v


# ---------------------------------------------------------------------------------------------
# checking values


def check_value(name: str, value) -> tuple[Any, str | None]:
    """Coerce ``value`` to the parameter's type; return (value, problem or None)."""
    if name not in PARAMS:
        return value, f"unknown parameter {name!r} (value {value!r}); known parameters: {', '.join(sorted(PARAMS))}"
    p = PARAMS[name]
    original = value

    def bad(extra=""):
        return original, f"{name} = {original!r} is not allowed: expected {p.allowed()}{extra} ({p.help})"

    if p.type is bool:
        if not isinstance(value, bool):
            return bad()
        return value, None
    if p.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return bad()
        return value, _range_problem(p, value)
    if p.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad()
        value = float(value)
        if not math.isfinite(value):
            return bad()
        return value, _range_problem(p, value)
    if p.type is str:
        if not isinstance(value, str):
            return bad()
        if p.choices is not None and value not in p.choices and not (p.also and re.fullmatch(p.also[0], value)):
            return bad()
        return value, None
    if p.type is list:
        if not isinstance(value, list) or len(value) < p.min_items:
            return bad()
        if p.item_type is float:
            value = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        for item in value:
            if isinstance(item, bool) or not isinstance(item, p.item_type):
                return bad()
            if _range_problem(p, item):
                return bad()
        if len(set(value)) != len(value):
            return bad(", without repeats")
        return list(value), None
    raise TypeError(f"parameter {name} has unsupported type {p.type}")


def _range_problem(p: Param, v) -> str | None:
    if (p.low is not None and v < p.low) or (p.high is not None and v > p.high):
        return f"{p.name} = {v!r} is out of range: expected {p.allowed()} ({p.help})"
    return None


def check_params(notebook: str, params: dict) -> tuple[dict, list[str]]:
    """Validate one complete parameter set for ``notebook``; return (coerced params, problems)."""
    problems: list[str] = []
    allowed = JOBS.get(notebook)
    if allowed is None:
        return params, [f"unknown notebook {notebook!r}; the study's notebooks are {', '.join(ALL_NOTEBOOKS)}"]
    out = {}
    for name, value in params.items():
        if name in PARAMS and name not in allowed:
            problems.append(f"parameter {name!r} is not used by notebook {notebook}; it takes {', '.join(allowed)}")
            continue
        value, problem = check_value(name, value)
        if problem:
            problems.append(problem)
        out[name] = value
    if not problems:
        problems += _cross_checks(out)
    return out, problems


def _cross_checks(p: dict) -> list[str]:
    """Checks that involve more than one parameter."""
    problems = []
    if "batch_size" in p and "n_train" in p and p["batch_size"] > p["n_train"]:
        problems.append(f"batch_size = {p['batch_size']} is larger than n_train = {p['n_train']}: "
                        f"expected a batch size from 1 to {p['n_train']}")
    if p.get("one_pass") and p.get("dataset") not in data_mod.FRESH:
        problems.append(f"one_pass = true needs a dataset whose generator draws fresh examples ({', '.join(data_mod.FRESH)}), "
                        f"not dataset = {p.get('dataset')!r}: set one_pass: false, or limit the grid to such workloads")
    if "batch_size" in p and p.get("accumulate", 1) > p["batch_size"]:
        problems.append(f"accumulate = {p['accumulate']} exceeds batch_size = {p['batch_size']}: expected at most "
                        f"{p['batch_size']} micro-batches, each of at least one example")
    size = DATASET_SIZES.get(p.get("dataset"))
    sizes = {"n_train", "n_val", "n_test"} <= p.keys()
    if isinstance(size, int) and sizes:
        total = p["n_train"] + p["n_val"] + p["n_test"]
        if total > size:
            problems.append(f"n_train + n_val + n_test = {total} exceeds the {size} examples of dataset "
                            f"{p['dataset']!r}: expected a total of at most {size}")
    elif isinstance(size, tuple) and sizes:
        if p["n_train"] + p["n_val"] > size[0]:
            problems.append(f"n_train + n_val = {p['n_train'] + p['n_val']} exceeds the {size[0]} training images "
                            f"of dataset {p['dataset']!r}: expected a total of at most {size[0]}")
        if p["n_test"] > size[1]:
            problems.append(f"n_test = {p['n_test']} exceeds the {size[1]} test images of dataset "
                            f"{p['dataset']!r}: expected at most {size[1]}")
    if p.get("dataset") == "npz" and sizes:
        problems += data_mod.npz_problems(p.get("data_path", ""), p["n_train"], p["n_val"], p["n_test"],
                                          p.get("batch_size"))
    if "model" in p and "dataset" in p and not problems:
        shape = data_mod.input_shape(p)
        problem = choices.input_problem(p["model"], shape) if shape is not None else None
        if problem:
            problems.append(problem.replace("the data's", f"dataset {p['dataset']!r}'s"))
    if "matched_loss" in p:
        if p["matched_loss"] not in results.LOSS_LEVELS:
            problems.append(f"matched_loss = {p['matched_loss']!r} is not allowed: expected one of "
                            f"{', '.join(f'{x:g}' for x in results.LOSS_LEVELS)} (the levels training saves a checkpoint at)")
    if "small_batch" in p and "large_batch" in p and p["small_batch"] >= p["large_batch"]:
        problems.append(f"small_batch = {p['small_batch']} must be smaller than large_batch = {p['large_batch']}")
    return problems


IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def from_namespace(notebook: str, namespace: dict) -> dict:
    """Inside a notebook: collect its parameters from ``globals()`` and check them.

    papermill injects whatever it is given and checks nothing, so a misspelt ``-p`` name would
    otherwise be ignored in silence. Any other plain value in the namespace is refused, and every
    value is checked; :class:`ProfileError` names each problem before any work starts.
    """
    import types

    takes = ALL_NOTEBOOKS.get(notebook)
    if takes is None:
        raise ProfileError([f"unknown notebook {notebook!r}; the study's notebooks are {', '.join(ALL_NOTEBOOKS)}"])
    problems = []
    for name, value in namespace.items():
        if (name.startswith("_") or name in IPYTHON_NAMES or name in takes or callable(value)
                or isinstance(value, types.ModuleType)):
            continue
        problems.append(f"unknown parameter {name!r} (value {value!r}); notebook {notebook} takes: {', '.join(takes)}")
    params = {k: _copy(PARAMS[k].default) for k in takes}
    params.update({k: namespace[k] for k in takes if k in namespace})
    params, found = check_params(notebook, params)
    problems += found
    if problems:
        raise ProfileError(problems, f"notebook {notebook}")
    return params


# ---------------------------------------------------------------------------------------------


def parameter_cell(notebook: str) -> str:
    """The parameters cell of ``notebook`` as this module defines it: one annotated literal per parameter, its help
    as the comment (papermill reads the help from there). `bsnb cells` writes it into the notebooks."""
    def literal(value) -> str:
        return json.dumps(value) if isinstance(value, str) else repr(value)

    return "\n".join(f"{name}: {PARAMS[name].type.__name__} = {literal(PARAMS[name].default)}  # {PARAMS[name].help}"
                     for name in ALL_NOTEBOOKS[notebook])
