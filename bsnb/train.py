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
from bsnb import models, noise, parameters, remedies


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
    noise_points: int = 0  # log-spaced steps with a two-batch estimate of the gradient noise scale
    # remedies (bsnb.remedies): warm-up, schedules, ghost batch norm; and stopping at a target
    warmup_steps: int = 0
    warmup_start_lr: float = 0.0
    schedule: str = "constant"
    milestones: tuple = ()
    schedule_factor: float = 1.0
    ghost_batch: int = 0
    target_loss: float = 0.0  # stop once the validation loss is at or below it (0: never)
    patience: int = 0  # stop once the validation loss has not improved for this many epochs (0: never)
    max_evals: int = 200  # long runs are evaluated every k epochs so that at most this many evaluations happen
    eval_train: bool = True  # evaluate the whole training split each epoch (the learning-rate search needs only val)

    @classmethod
    def from_params(cls, params: dict, **overrides) -> "TrainSpec":
        """The spec of a notebook's parameters: every training parameter it has a field for (the remedy options
        come only from :func:`bsnb.remedies.options`, as ``overrides``)."""
        from dataclasses import fields

        names = {f.name for f in fields(cls)} & set(parameters.TRAINING)
        return cls(**{**{k: params[k] for k in names if k in params}, **overrides})

    def batch_at(self, epoch: int, n_train: int) -> int:
        """Batch size in (1-based) ``epoch``."""
        if self.schedule == "batch_growth":
            return remedies.batch_at(epoch, self.batch_size, self.milestones, self.schedule_factor, n_train)
        return self.batch_size

    def lr_at(self, step: int, epoch: int) -> float:
        """Learning rate of (1-based) optimiser ``step`` in ``epoch``."""
        lr = self.lr
        if self.schedule == "lr_decay":
            lr *= remedies.lr_factor_at(epoch, self.milestones, self.schedule_factor)
        return remedies.warmup_lr(step, self.warmup_steps, self.warmup_start_lr, lr)

    def steps_per_epoch(self, n_train: int, epoch: int = 1) -> int:
        return math.ceil(n_train / self.batch_at(epoch, n_train))

    def total_steps(self, n_train: int) -> int:
        if self.budget == "steps":
            return self.steps
        return sum(self.steps_per_epoch(n_train, e) for e in range(1, self.epochs + 1))

    def n_epochs(self, n_train: int) -> int:
        """Epochs the budget spans (the last one may be partial under a step budget)."""
        total, steps, epoch = self.total_steps(n_train), 0, 0
        while steps < total:
            epoch += 1
            steps += self.steps_per_epoch(n_train, epoch)
        return epoch


def level_checkpoint(level: float) -> str:
    return f"loss{level:g}"


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
    model = models.build(spec.model, data.input_shape, data.n_classes, spec.width, spec.batch_norm,
                         spec.ghost_batch).to(device)
    opt = make_optimizer(spec, model.parameters())
    order = torch.Generator().manual_seed(seed)  # batch order, drawn on the CPU for reproducibility
    w0 = [p.detach().clone() for p in model.parameters()]

    n = len(data.y_train)
    total = spec.total_steps(n)
    sampled = log_steps(total, spec.log_points)
    noisy = log_steps(total, spec.noise_points) if spec.noise_points else set()
    noise_log: list[dict] = []
    states = {"initial": _state(model)}

    def eval_row(epoch, step, seconds, examples, running):
        tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train) if spec.eval_train else (math.nan, math.nan)
        va_loss, va_acc = evaluate(model, data.x_val, data.y_val)
        return {"seed": seed, "epoch": epoch, "step": step, "train_loss": tr_loss, "train_acc": tr_acc,
                "val_loss": va_loss, "val_acc": va_acc, "train_loss_running": running,
                "seconds": seconds, "examples_per_second": examples / seconds if seconds else float("nan"),
                "lr": opt.param_groups[0]["lr"], "batch_size": spec.batch_at(max(epoch, 1), n)}

    history = [eval_row(0, 0, float("nan"), 0, float("nan"))]
    step_log: list[dict] = []
    best_loss, best_epoch = history[0]["val_loss"], 0
    states["best"] = states["initial"]
    step, epoch, diverged = 0, 0, False
    reached = None  # (epoch, step, training seconds, interpolated step) when the validation loss first reached the target
    trained_seconds = 0.0
    varying_lr = spec.warmup_steps > 0 or spec.schedule == "lr_decay"
    n_epochs = spec.n_epochs(n)
    eval_every = 1 if spec.target_loss > 0 or spec.patience > 0 else max(1, math.ceil(n_epochs / spec.max_evals))
    stopped_by = "budget"

    while step < total and not diverged and reached is None:
        epoch += 1
        model.train()
        perm = torch.randperm(n, generator=order).to(device)
        batch = spec.batch_at(epoch, n)
        n_steps = min(math.ceil(n / batch), total - step)
        loss_sum = torch.zeros((), device=device)
        examples = 0
        _sync(device)
        start = time.perf_counter()
        for i in range(n_steps):
            if varying_lr or step == 0:
                for group in opt.param_groups:
                    group["lr"] = spec.lr_at(step + 1, epoch)
            idx = perm[i * batch:(i + 1) * batch]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            step += 1
            if step in noisy and len(idx) >= 2:
                noise_log.append({"seed": seed, "step": step, "epoch": epoch,
                                  **_two_batch(model, data.x_train[idx], data.y_train[idx])})
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
        trained_seconds += seconds
        if epoch % eval_every and step < total:
            continue
        row = eval_row(epoch, step, seconds, examples, running)
        history.append(row)
        if not (math.isfinite(row["val_loss"]) and (math.isfinite(row["train_loss"]) or not spec.eval_train)):
            diverged = True
            break
        if spec.target_loss > 0 and row["val_loss"] <= spec.target_loss:
            # between two checks the loss is taken as linear in the step: the crossing at step resolution
            prev = history[-2]
            frac = ((prev["val_loss"] - spec.target_loss) / (prev["val_loss"] - row["val_loss"])
                    if prev["val_loss"] > row["val_loss"] else 1.0)
            reached = (epoch, step, trained_seconds, prev["step"] + frac * (step - prev["step"]))
        if row["val_loss"] < best_loss:
            best_loss, best_epoch = row["val_loss"], epoch
            states["best"] = _state(model)
        for level in parameters.LOSS_LEVELS:  # first time the training loss is at or below a level: matched-loss checkpoint
            if row["train_loss"] <= level and level_checkpoint(level) not in states:
                states[level_checkpoint(level)] = _state(model)
        if progress is not None:
            progress(epoch, row)
        if spec.patience > 0 and epoch - best_epoch >= spec.patience:
            stopped_by = "patience"  # the minimum is confirmed: no improvement for `patience` epochs
            break

    stopped_by = "diverged" if diverged else "target" if reached else stopped_by
    states["final"] = _state(model)
    summary = _summarise(spec, data, seed, model, states, history, best_epoch, diverged, total)
    # A minimum the budget ended before confirming is censored: the run might have gone lower.
    # Without patience that is a minimum on the last trained epoch (STUDY.md's rule).
    summary.update(stopped_by=stopped_by, patience=spec.patience,
                   censored=stopped_by == "budget" and summary["epochs_run"] - best_epoch < max(spec.patience, 1))
    summary.update(train_seconds=trained_seconds, lr_used=spec.lr, target_loss=spec.target_loss or None, reached_target=reached is not None,
                   epoch_to_target=reached[0] if reached else None, steps_to_target=reached[3] if reached else None,
                   steps_to_target_checked=reached[1] if reached else None,
                   seconds_to_target=reached[2] if reached else None)
    return SeedRun(seed, history, step_log, summary, states=states, noise=noise_log)


def _two_batch(model, x, y) -> dict:
    """McCandlish's two-batch estimate at this step: |g|^2 of the batch (its .grad) and of its first quarter.

    A quarter rather than a half gives the estimator more contrast between the two batch sizes.
    The small batch's gradient is taken with autograd.grad (the .grad the optimiser will use is not
    touched) and batch-norm running statistics are restored after its forward pass.
    """
    params = [p for p in model.parameters()]
    g2_big = float(sum((p.grad.double() ** 2).sum() for p in params))
    half = max(1, len(y) // 4)
    buffers = [b.detach().clone() for b in model.buffers()]
    grads = torch.autograd.grad(F.cross_entropy(model(x[:half]), y[:half]), params)
    with torch.no_grad():
        for b, saved in zip(model.buffers(), buffers):
            b.copy_(saved)
    g2_small = float(sum((g.double() ** 2).sum() for g in grads))
    g2_est, s_est = noise.two_batch(g2_small, g2_big, half, len(y))
    return {"b_small": half, "b_big": len(y), "g2_small": g2_small, "g2_big": g2_big, "g2_est": g2_est, "s_est": s_est}


def _summarise(spec, data, seed, model, states, history, best_epoch, diverged, total) -> dict:
    trained = [r for r in history[1:] if math.isfinite(r["seconds"])]
    final = history[-1]
    best = next(r for r in history if r["epoch"] == best_epoch)  # rows are evaluated epochs, not every epoch
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


def _progress_bar(spec: TrainSpec, n_train: int, desc: str):
    from tqdm.std import tqdm  # text, not a widget: it stays readable in the HTML report

    bar = tqdm(total=spec.n_epochs(n_train), desc=desc, unit="epoch", mininterval=2.0, leave=True)

    def tick(epoch, row):
        bar.update(1)
        bar.set_postfix(val_loss=f"{row['val_loss']:.3f}", refresh=False)

    return bar, tick


def train_seeds(params: dict, data: data_mod.Data | None = None, progress: bool = True,
                spec: TrainSpec | None = None) -> list[SeedRun]:
    """Train every seed of one setting (``params`` as validated by :mod:`bsnb.parameters`; ``spec`` overrides)."""
    if data is None:
        device = resolve_device(params.get("device", "auto"))
        data = data_mod.load(params["dataset"], params["n_train"], params["n_val"], params["n_test"],
                             params["data_seed"], device, params.get("data_path", ""))
    spec = spec or TrainSpec.from_params(params)
    runs = []
    for seed in params["seeds"]:
        bar, tick = _progress_bar(spec, len(data.y_train), f"batch {spec.batch_size}, seed {seed}") if progress \
            else (None, None)
        runs.append(train(spec, data, seed, progress=tick))
        if bar is not None:
            bar.close()
    return runs


def tune(spec: TrainSpec, data: data_mod.Data, lrs, seeds, target_loss: float, progress: bool = True,
         guess: float | None = None) -> list[SeedRun]:
    """Shallue et al.'s steps-to-result: for each seed, the fewest steps over ``lrs`` to reach ``target_loss``.

    Every run stops once its validation loss reaches the target. Only each seed's fewest steps
    matter, so once a learning rate has reached the target in S steps, the later ones are given
    at most S steps: a run that has not reached the target by then cannot do better (the answer
    is exact, and the losers cost little). The learning rates are tried nearest to ``guess``
    first, so the bound tightens early. Each run's summary carries its ``lr_used`` and ``pruned``.
    Only the validation loss decides, so the training split is not evaluated (its loss is NaN in
    the history; the running mean over the epoch's batches is there): at large batches that
    evaluation costs almost as much as the epoch's training.
    """
    from dataclasses import replace

    order = sorted(lrs, key=lambda lr: abs(math.log(lr / guess))) if guess else list(lrs)
    runs = []
    for seed in seeds:
        best = None
        for lr in order:
            one = replace(spec, lr=lr, target_loss=target_loss, warmup_steps=0, eval_train=False, patience=0)
            full = one.total_steps(len(data.y_train))
            if best is not None and best < full:
                one = replace(one, budget="steps", steps=best)
            label = f"batch {spec.batch_size}, lr {lr:g}, seed {seed}"
            bar, tick = _progress_bar(one, len(data.y_train), label) if progress else (None, None)
            run = train(one, data, seed, progress=tick)
            if bar is not None:
                bar.close()
            run.label = f"lr{lr:g}-seed{seed}"
            run.summary.update(run=run.label, pruned=best is not None and best < full
                               and not run.summary["reached_target"])
            if run.summary["reached_target"]:  # the bound is the step of the check that saw the target
                best = min(best or full, run.summary["steps_to_target_checked"])
            runs.append(run)
    return runs
