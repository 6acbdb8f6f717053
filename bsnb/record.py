"""One model's record in a training run (:mod:`bsnb.train` runs the loop): what it records each evaluated epoch,
its smoothed minimum and the weights there, the checkpoints of the matched loss levels and of the target, why it
stops (diverged, target, patience), and the summary of the finished run (:class:`SeedRun`).

The smoothed minimum is :func:`bsnb.minima.smoothed_points` read as the epochs come in, the same moving average the
findings read from the stored curve (docs/protocol.md).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from bsnb import minima, models, results
from bsnb.models import evaluate


@dataclass
class SeedRun:
    """Everything one seed's training produced."""

    seed: int
    history: list[dict]  # one row per epoch (epoch 0 is the initial model)
    steps: list[dict]  # one row per sampled step
    summary: dict
    noise: list = field(default_factory=list)  # one row per two-batch noise estimate
    states: dict = field(repr=False, default_factory=dict)  # initial, best, final state dicts on the CPU
    label: str = ""  # names the run among others of the same seed (checkpoints/<label>/)

    def __post_init__(self):
        self.label = self.label or f"seed{self.seed}"


@dataclass
class Member:
    """One model of a group trained together: its seed, its spec (its own learning rate), what it records, and the
    bookkeeping of its epochs (:meth:`after_evaluation`) and of its end (:meth:`finish`)."""

    seed: int
    spec: object  # its bsnb.train.TrainSpec (in a search, with its own learning rate)
    label: str
    group: int = 0  # in a search, models of one group (one seed) prune each other
    history: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    noise: list = field(default_factory=list)
    states: dict = field(default_factory=dict)
    best_loss: float = math.inf  # the smoothed validation loss's minimum so far (docs/protocol.md: every minimum is smoothed)
    best_epoch: int = 0
    raw_best: tuple = (math.inf, 0)  # the raw curve's (minimum, epoch), reported beside it
    curve: list = field(default_factory=list)  # (epoch, validation loss) of every evaluated epoch after the start
    recent: deque = field(default_factory=lambda: deque(maxlen=minima.HALF + 1))  # (epoch, weights) of the latest
    reached: tuple | None = None  # (epoch, step, training seconds, interpolated step) when the target was reached
    stopped_by: str | None = None  # None while it trains
    pruned: bool = False
    trained_seconds: float = 0.0

    @property
    def active(self) -> bool:
        return self.stopped_by is None

    def start(self, weights: dict, row: dict) -> None:
        """Epoch 0: the initial weights (also the best so far) and their evaluation."""
        self.states = {"initial": weights, "best": weights}
        self.history = [row]

    def evaluated(self, epoch: int, val_loss: float, weights: dict, final: bool = False) -> None:
        """Record an evaluated epoch: the smoothed curve's new points, and the weights where it is lowest ("best")."""
        if not final:
            self.curve.append((epoch, val_loss))
            self.recent.append((epoch, weights))
            if val_loss < self.raw_best[0]:
                self.raw_best = (val_loss, epoch)
        states = dict(self.recent)
        for _, at, value in minima.smoothed_points(self.curve, final):
            if value < self.best_loss and at in states:
                self.best_loss, self.best_epoch = value, at
                self.states["best"] = states[at]

    @property
    def smoothed_until(self) -> int:
        """The epoch of the smoothed curve's latest point (its window complete)."""
        return self.curve[-1 - minima.HALF][0] if len(self.curve) > minima.HALF else 0

    def diverged_row(self, epoch: int, step: int, running: float, seconds: float, examples: int) -> None:
        """The row of an epoch whose running training loss turned non-finite (the run then stops, diverged)."""
        self.history.append({**self.history[0], "epoch": epoch, "step": step, "train_loss": math.nan,
                             "val_loss": math.nan, "train_acc": math.nan, "val_acc": math.nan,
                             "train_loss_running": running, "seconds": seconds,
                             "examples_per_second": examples / seconds})

    def after_evaluation(self, row: dict, weights, eval_train: bool, checkpoint_val_loss: float) -> str | None:
        """An evaluated epoch's bookkeeping: its row, the smoothed minimum, the checkpoints now due, the target and
        the patience. Returns why the model stops now (diverged, target, patience), or None. ``weights`` is a
        callable giving this model's weights (copied once, only when it did not diverge)."""
        self.history.append(row)
        if not (math.isfinite(row["val_loss"]) and (math.isfinite(row["train_loss"]) or not eval_train)):
            return "diverged"
        epoch, step, state = row["epoch"], row["step"], weights()
        self.evaluated(epoch, row["val_loss"], state)
        # matched-loss windows: from the first epoch at or below each training-loss level (C6, C14) and the
        # validation loss of the search's target (C11), the weights of WINDOW evaluated epochs
        reached = {results.level_checkpoint(lv): row["train_loss"] <= lv for lv in results.LOSS_LEVELS}
        if checkpoint_val_loss > 0:
            reached[results.TARGET] = row["val_loss"] <= checkpoint_val_loss
        due = []  # the next checkpoint of each window that has begun and is not full
        for first, now in reached.items():
            names = results.window(first)
            saved = sum(name in self.states for name in names)
            if (saved or now) and saved < len(names):
                due.append(names[saved])
        self.states.update(dict.fromkeys(due, state))
        target = self.spec.target_loss
        if target > 0 and self.reached is None and row["val_loss"] <= target:
            # between two checks the loss is taken as linear in the step: the crossing at step resolution
            prev = self.history[-2]
            frac = (prev["val_loss"] - target) / (prev["val_loss"] - row["val_loss"]) \
                if prev["val_loss"] > row["val_loss"] else 1.0
            self.reached = (epoch, step, self.trained_seconds, prev["step"] + frac * (step - prev["step"]))
            if self.spec.stop_at_target:
                return "target"
        if self.spec.patience > 0 and self.smoothed_until - self.best_epoch >= self.spec.patience:
            return "patience"  # the minimum is confirmed: the smoothed curve has not improved for `patience` epochs
        return None

    def finish(self, spec, data, model, total: int, stacked: int) -> SeedRun:
        """The seed run: the smoothed curve's last points (their windows shrunk at the end) and the summary."""
        self.evaluated(0, math.nan, {}, final=True)
        summary = _summarise(spec, data, self, model, total)
        # A minimum the budget ended before confirming is censored: the run might have gone lower.
        # Without patience that is a minimum on the last trained epoch (the protocol's rule).
        summary.update(stopped_by=self.stopped_by, patience=self.spec.patience,
                       checkpoint_val_loss=spec.checkpoint_val_loss or None,
                       censored=self.stopped_by == "budget"
                       and summary["epochs_run"] - self.best_epoch < max(self.spec.patience, 1), stacked=stacked)
        r = self.reached
        summary.update(lr_used=self.spec.lr, beta2_used=self.spec.beta2 if self.spec.optimizer != "sgd" else None,
                       target_loss=self.spec.target_loss or None, reached_target=r is not None,
                       epoch_to_target=r[0] if r else None, steps_to_target=r[3] if r else None,
                       steps_to_target_checked=r[1] if r else None, seconds_to_target=r[2] if r else None)
        return SeedRun(self.seed, self.history, self.steps, summary, states=self.states, noise=self.noise,
                       label=self.label)


def _summarise(spec, data, m: Member, model, total) -> dict:
    history, diverged = m.history, m.stopped_by == "diverged"
    trained = [r for r in history[1:] if math.isfinite(r["seconds"])]
    final = history[-1]
    best = next(r for r in history if r["epoch"] == m.best_epoch)  # rows are evaluated epochs, not every epoch
    model.load_state_dict(m.states["final"])
    final_test = evaluate(model, data.x_test, data.y_test) if not diverged else (float("nan"), float("nan"))
    model.load_state_dict(m.states["best"])
    best_test = evaluate(model, data.x_test, data.y_test)
    model.load_state_dict(m.states["final"])
    return {
        "seed": m.seed,
        "status": "diverged" if diverged else "ok",
        "epochs_run": final["epoch"],
        "steps_run": final["step"],
        "steps_budget": total,
        "diverged_epoch": final["epoch"] if diverged else None,
        "min_val_loss": m.best_loss if math.isfinite(m.best_loss) else best["val_loss"],
        "epoch_of_min_val_loss": m.best_epoch,
        "min_val_loss_raw": m.raw_best[0] if math.isfinite(m.raw_best[0]) else math.nan,
        "epoch_of_min_raw": m.raw_best[1],
        "step_of_min_val_loss": best["step"],
        "val_acc_at_min": best["val_acc"],
        "final_train_loss": final["train_loss"],
        "final_val_loss": final["val_loss"],
        "test_loss": best_test[0],
        "test_acc": best_test[1],
        "final_test_loss": final_test[0],
        "final_test_acc": final_test[1],
        "seconds_per_epoch": float(np.median([r["seconds"] for r in trained])) if trained else float("nan"),
        "examples_per_second": float(np.median([r["examples_per_second"] for r in trained])) if trained else float("nan"),
        "train_seconds": m.trained_seconds,
        "n_params": models.n_params(model),
        "chance_loss": chance_loss(data.y_train),
        "device": str(data.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def chance_loss(y) -> float:
    """The loss of predicting the training labels' class frequencies: their entropy (ln k for k balanced classes).
    A run whose training loss never falls below 90% of it failed to train (:mod:`bsnb.minima`)."""
    p = torch.bincount(y.cpu()).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())
