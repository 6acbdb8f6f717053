"""Ways to close the large-batch gap, each a training option the loop can combine.

* Learning-rate rules from a reference (B0, lr0): ``none``, ``linear`` (Goyal et al. 2017:
  lr = lr0 B / B0) and ``sqrt`` (Hoffer et al. 2017: lr = lr0 sqrt(B / B0)).
* Linear warm-up: over the first ``warmup`` steps the rate ramps from the reference lr0 to the
  scaled rate (Goyal et al.: 5 epochs).
* Budgets: the same epochs as the reference, or the same number of *steps* ("train longer",
  Hoffer et al.'s regime adaptation).
* Ghost batch norm (Hoffer et al.): each chunk of ``ghost`` examples is normalised with its own
  statistics; one optimiser step per full batch.
* Schedules (Smith et al. 2018): at each milestone, divide the learning rate by ``factor``
  (``lr_decay``) or multiply the batch size by it instead (``batch_growth``), which keeps the
  noise scale lr N / B of SGD the same while taking fewer steps. The batch grows up to a tenth of
  the training set; the factor it cannot take goes to the rate (Smith's hybrid).
* The learning-rate search (Shallue et al. 2019): ``tuned`` searches each batch size's rate (:mod:`bsnb.search`);
  ``confirm`` trains new seeds at the rate that search chose (C15 reads them).
* One pass (Vyas et al. 2024, the protocol's C17): ``one_pass`` trains on fresh examples every epoch for the whole
  budget; ``one_pass_longer`` for as many steps as the reference batch takes in that budget.
* Hoffer et al.'s regime adaptation (the protocol's C9), three arms with the rate divided by 10 at 50%
  and 75% of their epochs and no patience: ``step`` (the small batch, the reference rate),
  ``sqrt_step`` (the large batch, square-root rule, the same epochs) and ``sqrt_step_longer`` (the
  same, for epochs x B / B0: as many steps as the small batch, milestones stretched).

``PRESETS`` names the combinations the study compares; notebook 04 runs one per execution.
"""

from __future__ import annotations

import math

RULES = ("none", "linear", "sqrt")

# remedy name -> the options it turns on (the amounts come from the notebook's parameters)
PRESETS: dict[str, dict] = {
    "none": {},  # the article's setting: the same learning rate and epochs as the small batch
    "linear": {"lr_rule": "linear"},
    "linear_warmup": {"lr_rule": "linear", "warmup": True},  # Goyal et al. 2017
    "sqrt": {"lr_rule": "sqrt"},  # Hoffer et al. 2017
    "longer": {"budget": "reference_steps"},  # Hoffer et al.: as many steps as the small batch
    # ghost batch norm belongs with Hoffer et al.'s square-root rule: both arms of C10 take it
    "bn": {"batch_norm": True, "lr_rule": "sqrt"},  # plain batch norm: the baseline of ghost batch norm
    "ghost_bn": {"batch_norm": True, "ghost": True, "lr_rule": "sqrt"},  # Hoffer et al. 2017
    "lr_decay": {"schedule": "lr_decay"},  # Smith et al. 2018: the usual decay ...
    "batch_growth": {"schedule": "batch_growth"},  # ... and the batch growth that replaces it
    "tuned": {"tuned": True},  # Shallue et al. 2019: the learning rate searched per batch size
    # C15's confirmation: new seeds at the rate the search in source_dir chose (bsnb.search), trained to the minimum
    "confirm": {"confirm": True},
    # Hoffer et al. 2017's regime adaptation, three arms under one step schedule (C9)
    "step": {"step": True},
    "sqrt_step": {"lr_rule": "sqrt", "step": True},
    "sqrt_step_longer": {"lr_rule": "sqrt", "step": True, "stretch": True},
    # the one-pass regime (Vyas et al. 2024; C17): fresh examples every epoch, the whole budget, every epoch evaluated;
    # the small batch for its epochs, the large batch for as many steps
    "one_pass": {"one_pass": True, "whole_budget": True},
    "one_pass_longer": {"one_pass": True, "budget": "reference_steps"},
}

# C9's schedule, fixed by docs/protocol.md: the rate divided by 10 at 50% and 75% of the epochs
STEP_MILESTONES, STEP_FACTOR = (0.5, 0.75), 10.0
EVERY_EPOCH = 10**9  # max_evals that evaluates every epoch of any budget
GROWTH_CAP = 10  # the batch grows up to n_train / GROWTH_CAP (Smith et al.'s schedule, as docs/protocol.md fixes it)


def scaled_lr(rule: str, lr0: float, b0: int, b: int) -> float:
    """The learning rate of batch size ``b`` under ``rule`` from the reference (``b0``, ``lr0``)."""
    if rule == "none":
        return lr0
    if rule == "linear":
        return lr0 * b / b0
    if rule == "sqrt":
        return lr0 * math.sqrt(b / b0)
    raise ValueError(f"lr_rule = {rule!r} is not allowed: expected one of {', '.join(RULES)}")


def half_life_beta2(beta2_ref: float, b0: int, b: int) -> float:
    """Adam's beta2 at batch ``b`` that keeps the half-life of its average fixed in examples: a step of ``b``
    examples decays it as ``b / b0`` steps of ``b0`` would, beta2 = beta2_ref ** (b / b0) (Marek et al. 2025)."""
    return beta2_ref ** (b / b0)


def warmup_lr(step: int, warmup_steps: int, start: float, end: float) -> float:
    """Linear warm-up: the rate of optimiser step ``step`` (1-based), from ``start`` to ``end`` at ``warmup_steps``."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps


def reference_steps(epochs: int, n_train: int, b0: int) -> int:
    """The optimiser steps the reference batch takes in ``epochs`` epochs (the "train longer" budget)."""
    return epochs * math.ceil(n_train / b0)


def passed(epoch: int, milestones) -> int:
    """How many milestones (epochs) the 1-based ``epoch`` has passed."""
    return sum(epoch > m for m in milestones)


def batch_at(epoch: int, b: int, milestones, factor: float, n_train: int) -> int:
    """Batch size in ``epoch`` under batch growth: ``b`` times ``factor`` per milestone passed, at most a tenth of
    the training set (never below ``b``)."""
    return int(min(max(b, n_train // GROWTH_CAP), round(b * factor ** passed(epoch, milestones))))


def growth_lr_factor(epoch: int, b: int, milestones, factor: float, n_train: int) -> float:
    """Learning-rate multiplier in ``epoch`` under batch growth: 1 while the batch takes the whole factor, then the
    part of the factor the capped batch could not take divides the rate (Smith et al.'s hybrid)."""
    wanted = b * factor ** passed(epoch, milestones)
    return batch_at(epoch, b, milestones, factor, n_train) / wanted


def lr_factor_at(epoch: int, milestones, factor: float) -> float:
    """Learning-rate multiplier in ``epoch`` under decay: divided by ``factor`` per milestone passed."""
    return factor ** -passed(epoch, milestones)


def data_params(params: dict) -> dict:
    """The parameters a notebook-04 job loads its data with: ``one_pass`` where its remedy trains on fresh data."""
    return {**params, "one_pass": bool(params.get("one_pass") or PRESETS[params["remedy"]].get("one_pass"))}


def options(params: dict) -> dict:
    """The training options of a notebook-04 parameter set: its remedy's switches with the parameters' amounts.

    Returns the keyword arguments of :class:`bsnb.train.TrainSpec` that the remedy changes.
    """
    remedy = PRESETS[params["remedy"]]
    b, b0, lr0 = params["batch_size"], params["reference_batch"], params["lr"]
    out: dict = {"batch_norm": params["batch_norm"] or remedy.get("batch_norm", False)}
    out["lr"] = scaled_lr(remedy.get("lr_rule", "none"), lr0, b0, b)
    if params.get("beta2_rule", "none") == "half_life":  # Marek et al. 2025: beta2's half-life fixed in examples
        out["beta2"] = half_life_beta2(params.get("beta2", 0.999), b0, b)
    if remedy.get("warmup"):
        out["warmup_steps"] = params["warmup_epochs"] * math.ceil(params["n_train"] / b)
        out["warmup_start_lr"] = lr0
    # A fixed budget of steps, no early stop: with a patience, 'longer' would be the plain large-batch run (same seeds,
    # rate and batch order) and stop where it stops, which is no test of training for as many steps (measured:
    # 1,584 of 6,250 steps in the default profile, a share of the gap of exactly 0 for every seed).
    if remedy.get("budget") == "reference_steps":
        out["budget"] = "steps"
        out["steps"] = reference_steps(params["epochs"], params["n_train"], b0)
        out["patience"] = 0
    if remedy.get("whole_budget"):
        out["patience"] = 0
    if remedy.get("one_pass"):  # every epoch evaluated: C17 reads the smoothed curve at a given step
        out["max_evals"] = EVERY_EPOCH
    if remedy.get("step"):  # Hoffer's arms: the whole budget, every epoch evaluated, milestones stretched with it
        epochs = round(params["epochs"] * b / b0) if remedy.get("stretch") else params["epochs"]
        out.update(epochs=epochs, patience=0, schedule="lr_decay", schedule_factor=STEP_FACTOR, max_evals=epochs,
                   milestones=tuple(round(f * epochs) for f in STEP_MILESTONES))
    if remedy.get("step") or "schedule" in remedy:
        # a fixed schedule's claims (C9, C12) read its validation loss alone; the training loss that the
        # failed-to-train rule needs is the epoch's running mean (docs/protocol.md: evaluation that costs what it must)
        out["eval_train"] = False
    if remedy.get("ghost"):
        out["ghost_batch"] = params["ghost_batch"]
    if "schedule" in remedy:  # milestones are fractions of the epochs: the whole budget is trained
        out["patience"] = 0
        out["schedule"] = remedy["schedule"]
        out["milestones"] = tuple(round(f * params["epochs"]) for f in params["schedule_milestones"])
        out["schedule_factor"] = params["schedule_factor"]
    return out
