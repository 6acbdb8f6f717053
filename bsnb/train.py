"""The training loop: one function, readable top to bottom.

Data lives on the device and batches are drawn by index from a seeded permutation, so the same
seed gives the same numbers on the CPU. Per epoch it records train and validation loss and
accuracy, the seconds spent training and the examples per second; at log-spaced steps it samples
the gradient norm and the distance from initialisation ||w_t - w_0||; at the end the test loss
and accuracy. A non-finite loss stops the run and marks it ``diverged``; it does not raise.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from bsnb import data as data_mod
from bsnb import models


@dataclass(frozen=True)
class TrainSpec:
    """What one training run needs besides the data and the seed."""

    batch_size: int
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    model: str = "cnn"
    width: int = 25
    batch_norm: bool = False
    budget: str = "epochs"
    epochs: int = 100
    steps: int = 1000
    log_points: int = 200

    @classmethod
    def from_params(cls, params: dict) -> "TrainSpec":
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.batch_size)

    def total_steps(self, n_train: int) -> int:
        return self.epochs * self.steps_per_epoch(n_train) if self.budget == "epochs" else self.steps


@dataclass
class SeedRun:
    """Everything one seed's training produced."""

    seed: int
    history: list[dict]  # one row per epoch (epoch 0 is the initial model)
    steps: list[dict]  # one row per sampled step
    summary: dict
    states: dict = field(repr=False, default_factory=dict)  # initial, best, final state dicts on the CPU


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device = 'cuda' but torch sees no CUDA GPU: expected auto or cpu on this machine")
    mps = getattr(torch.backends, "mps", None)
    if name == "mps" and not (mps is not None and mps.is_available()):
        raise ValueError("device = 'mps' but torch sees no Apple GPU: expected auto or cpu on this machine")
    return torch.device(name)


def setup(threads: int = 0, device: str = "auto") -> torch.device:
    """Pin torch's CPU threads (0 leaves torch's choice) and resolve the device."""
    if threads > 0:
        torch.set_num_threads(threads)
    return resolve_device(device)


def make_optimizer(spec: TrainSpec, params) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    raise ValueError(f"optimizer = {spec.optimizer!r} is not allowed: expected sgd or adam")


@torch.no_grad()
def evaluate(model, x, y, chunk: int = 8192) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over (x, y), model in eval mode."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), chunk):
        out = model(x[i:i + chunk])
        loss += F.cross_entropy(out, y[i:i + chunk], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + chunk]).sum().item()
    model.train(was_training)
    return loss / len(y), correct / len(y)


def log_steps(total: int, points: int) -> set[int]:
    """Log-spaced step numbers from 1 to ``total`` (both included)."""
    return set(np.unique(np.geomspace(1, max(total, 1), num=points).round().astype(int)).tolist())


def _state(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(spec: TrainSpec, data: data_mod.Data, seed: int, progress=None) -> SeedRun:
    """Train one model from seed ``seed``; ``progress`` is a callable(epoch, row) or None."""
    device = data.device
    torch.manual_seed(seed)
    model = models.build(spec.model, data.input_shape, data.n_classes, spec.width, spec.batch_norm).to(device)
    opt = make_optimizer(spec, model.parameters())
    order = torch.Generator().manual_seed(seed)  # batch order, drawn on the CPU for reproducibility
    w0 = [p.detach().clone() for p in model.parameters()]

    n = len(data.y_train)
    per_epoch = spec.steps_per_epoch(n)
    total = spec.total_steps(n)
    sampled = log_steps(total, spec.log_points)
    states = {"initial": _state(model)}

    def eval_row(epoch, step, seconds, examples, running):
        tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train)
        va_loss, va_acc = evaluate(model, data.x_val, data.y_val)
        return {"seed": seed, "epoch": epoch, "step": step, "train_loss": tr_loss, "train_acc": tr_acc,
                "val_loss": va_loss, "val_acc": va_acc, "train_loss_running": running,
                "seconds": seconds, "examples_per_second": examples / seconds if seconds else float("nan"),
                "lr": opt.param_groups[0]["lr"]}

    history = [eval_row(0, 0, float("nan"), 0, float("nan"))]
    step_log: list[dict] = []
    best_loss, best_epoch = history[0]["val_loss"], 0
    states["best"] = states["initial"]
    step, epoch, diverged = 0, 0, False

    while step < total and not diverged:
        epoch += 1
        model.train()
        perm = torch.randperm(n, generator=order).to(device)
        n_steps = min(per_epoch, total - step)
        loss_sum = torch.zeros((), device=device)
        examples = 0
        _sync(device)
        start = time.perf_counter()
        for i in range(n_steps):
            idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            step += 1
            if step in sampled:
                grad_norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()])).item()
            opt.step()
            if step in sampled:
                dist = torch.linalg.vector_norm(torch.stack(
                    [torch.linalg.vector_norm(p.detach() - p0) for p, p0 in zip(model.parameters(), w0)])).item()
                step_log.append({"seed": seed, "step": step, "epoch": epoch, "batch_loss": loss.item(),
                                 "grad_norm": grad_norm, "distance": dist, "lr": opt.param_groups[0]["lr"]})
            loss_sum += loss.detach() * len(idx)
            examples += len(idx)
        _sync(device)
        seconds = time.perf_counter() - start
        running = loss_sum.item() / examples
        if not math.isfinite(running):
            diverged = True
            history.append({**history[0], "epoch": epoch, "step": step, "train_loss": float("nan"),
                            "val_loss": float("nan"), "train_acc": float("nan"), "val_acc": float("nan"),
                            "train_loss_running": running, "seconds": seconds,
                            "examples_per_second": examples / seconds})
            break
        row = eval_row(epoch, step, seconds, examples, running)
        history.append(row)
        if not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])):
            diverged = True
            break
        if row["val_loss"] < best_loss:
            best_loss, best_epoch = row["val_loss"], epoch
            states["best"] = _state(model)
        if progress is not None:
            progress(epoch, row)

    states["final"] = _state(model)
    summary = _summarise(spec, data, seed, model, states, history, best_epoch, diverged, total)
    return SeedRun(seed, history, step_log, summary, states)


def _summarise(spec, data, seed, model, states, history, best_epoch, diverged, total) -> dict:
    trained = [r for r in history[1:] if math.isfinite(r["seconds"])]
    final = history[-1]
    best = history[best_epoch]
    final_test = evaluate(model, data.x_test, data.y_test) if not diverged else (float("nan"), float("nan"))
    model.load_state_dict(states["best"])
    best_test = evaluate(model, data.x_test, data.y_test)
    model.load_state_dict(states["final"])
    return {
        "seed": seed,
        "status": "diverged" if diverged else "ok",
        "epochs_run": final["epoch"],
        "steps_run": final["step"],
        "steps_budget": total,
        "diverged_epoch": final["epoch"] if diverged else None,
        "min_val_loss": best["val_loss"],
        "epoch_of_min_val_loss": best_epoch,
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
        "train_seconds": float(sum(r["seconds"] for r in trained)),
        "n_params": models.n_params(model),
        "device": str(data.device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def train_seeds(params: dict, data: data_mod.Data | None = None, progress: bool = True) -> list[SeedRun]:
    """Train every seed of one setting (``params`` as validated by :mod:`bsnb.config`)."""
    if data is None:
        device = resolve_device(params.get("device", "auto"))
        data = data_mod.load(params["dataset"], params["n_train"], params["n_val"], params["n_test"],
                             params["data_seed"], device)
    spec = TrainSpec.from_params(params)
    runs = []
    for seed in params["seeds"]:
        bar = None
        if progress:
            from tqdm.std import tqdm  # text, not a widget: it stays readable in the HTML report

            n_epochs = math.ceil(spec.total_steps(len(data.y_train)) / spec.steps_per_epoch(len(data.y_train)))
            bar = tqdm(total=n_epochs, desc=f"batch {spec.batch_size}, seed {seed}", unit="epoch",
                       mininterval=2.0, leave=True)

        def tick(epoch, row, bar=bar):
            if bar is not None:
                bar.update(1)
                bar.set_postfix(val_loss=f"{row['val_loss']:.3f}", refresh=False)

        runs.append(train(spec, data, seed, progress=tick))
        if bar is not None:
            bar.close()
    return runs
