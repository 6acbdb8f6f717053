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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bsnb import data as data_mod
from bsnb import minima, models, noise, parameters, remedies, stacking
from bsnb.models import evaluate, sync  # noqa: F401 (train.evaluate: the models' own)
from bsnb.record import Member, SeedRun, chance_loss  # noqa: F401 (train.SeedRun, train.chance_loss)


@dataclass(frozen=True)
class TrainSpec:
    """What one training run needs besides the data and the seed."""

    batch_size: int
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    beta2: float = 0.999  # Adam's and AdamW's second-moment decay
    model: str = "cnn"
    width: int = 25
    batch_norm: bool = False
    accumulate: int = 1  # micro-batches per optimiser step, each of ceil(batch / accumulate) examples (1: none)
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
    target_loss: float = 0.0  # record when the validation loss is first at or below it (0: never) ...
    stop_at_target: bool = True  # ... and stop there (a search trained to its minimum goes on)
    checkpoint_val_loss: float = 0.0  # save the "target" checkpoint where the validation loss first reaches it (0: never)
    patience: int = 0  # stop once the validation loss has not improved for this many epochs (0: never)
    max_evals: int = 200  # long runs are evaluated every k epochs so that at most this many evaluations happen
    eval_train: bool = True  # evaluate the whole training split each epoch (the learning-rate search needs only val)
    stack: str = "auto"  # train the seeds (and a search's learning rates) as one stacked model: auto, on or off

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

    def lr_at(self, step: int, epoch: int, n_train: int = 0) -> float:
        """Learning rate of (1-based) optimiser ``step`` in ``epoch`` (``n_train`` caps a growing batch)."""
        lr = self.lr
        if self.schedule == "lr_decay":
            lr *= remedies.lr_factor_at(epoch, self.milestones, self.schedule_factor)
        elif self.schedule == "batch_growth" and n_train:  # the factor the capped batch cannot take goes to the rate
            lr *= remedies.growth_lr_factor(epoch, self.batch_size, self.milestones, self.schedule_factor, n_train)
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


def log_steps(total: int, points: int) -> set[int]:
    """Log-spaced step numbers from 1 to ``total`` (both included)."""
    return set(np.unique(np.geomspace(1, max(total, 1), num=points).round().astype(int)).tolist())


@dataclass
class _Plan:
    """When a training run measures and evaluates: its step budget, the log-spaced steps that sample the gradient
    norm and distance (and the two-batch noise), and every how many epochs it evaluates."""

    total: int
    sampled: set
    noisy: set
    eval_every: int
    varying_lr: bool

    @classmethod
    def of(cls, spec: TrainSpec, n: int) -> "_Plan":
        total = spec.total_steps(n)
        evaluate_every = 1 if spec.target_loss > 0 or spec.patience > 0 else max(1, math.ceil(spec.n_epochs(n)
                                                                                             / spec.max_evals))
        return cls(total, log_steps(total, spec.log_points),
                   log_steps(total, spec.noise_points) if spec.noise_points else set(), evaluate_every,
                   spec.warmup_steps > 0 or spec.schedule == "lr_decay")


def train(spec: TrainSpec, data: data_mod.Data, seed: int, progress=None) -> SeedRun:
    """Train one model from seed ``seed``; ``progress`` is a callable(epoch, row) or None."""
    return train_together(spec, data, [Member(seed, spec, f"seed{seed}")], stacked=False, progress=progress)[0]


def train_together(spec: TrainSpec, data: data_mod.Data, members: list[Member], stacked: bool,
                   progress=None, prune: bool = False) -> list[SeedRun]:
    """Train ``members`` in lockstep: stacked as one model, or side by side, each taking its own step in turn
    (:mod:`bsnb.stacking`; both implement :class:`bsnb.stacking.Replicas`).

    Every member has its own initialisation and batch order (from its seed) and its own learning
    rate; one that diverges, reaches its target or runs out of patience stops changing while the
    others go on. With ``prune`` (the learning-rate search), once a member reaches the target the
    members of its group that have not reached it by the same step stop: they cannot need fewer steps.
    """
    plan = _Plan.of(spec, len(data.y_train))
    # the models: each from its own seed, with its own batch order drawn on the CPU
    net = stacking.replicas(stacking.build(spec.model, data.input_shape, data.n_classes, spec.width, spec.batch_norm,
                                           spec.ghost_batch, [m.seed for m in members], data.device), stacked)
    opt = stacking.optimizer(net, spec.optimizer, [m.spec.lr for m in members], spec.momentum, spec.weight_decay,
                             spec.beta2)
    orders = [torch.Generator().manual_seed(m.seed) for m in members]
    w0 = [w.clone() for w in net.weights()]

    def stop(j, why):
        members[j].stopped_by = why
        net.active[j] = False
        members[j].states["final"] = net.state(j)

    lrs = [m.spec.lr for m in members]
    for j, row in enumerate(_evaluate(net, data, spec, members, 0, 0, math.nan, 0, [math.nan] * len(members), lrs)):
        members[j].start(net.state(j), row)  # epoch 0: the initial models
    step, epoch = 0, 0
    while step < plan.total and any(m.active for m in members):
        epoch += 1
        # data, forward, backward and step: one epoch of every active model, each on its own batch order
        step, seconds, examples, running, lrs = _train_epoch(net, opt, spec, data, members, orders, plan, epoch, step,
                                                             w0)
        # divergence: a running training loss that is not finite stops its model
        for j in [j for j, m in enumerate(members) if m.active and not math.isfinite(running[j])]:
            members[j].diverged_row(epoch, step, running[j], seconds, examples)
            stop(j, "diverged")
        active = [j for j, m in enumerate(members) if m.active]
        for j in active:
            members[j].trained_seconds += seconds
        if not active or (epoch % plan.eval_every and step < plan.total):
            continue
        # evaluate, checkpoint and stop: each model's bookkeeping of the epoch
        rows = _evaluate(net, data, spec, members, epoch, step, seconds, examples, running, lrs)
        for j in active:
            why = members[j].after_evaluation(rows[j], lambda j=j: net.state(j), spec.eval_train,
                                              spec.checkpoint_val_loss)
            if why:
                stop(j, why)
        for j in _pruned(members, active) if prune else []:  # a search: group-mates of a model at the target
            stop(j, "budget")
        # log
        if progress is not None:
            progress(epoch, rows[active[0]])
    for j, m in enumerate(members):
        if m.active:
            stop(j, "budget")
    return [m.finish(spec, data, net.module_of(j), plan.total, len(members) if stacked else 1)
            for j, m in enumerate(members)]


def _pruned(members: list[Member], active: list[int]) -> list[int]:
    """In a search, the models of a group one of whose models reached the target this epoch: those that have not
    reached it by the same step cannot need fewer steps. Marks them pruned; returns their indices."""
    groups = {members[j].group for j in active if members[j].stopped_by == "target"}
    out = [j for j, m in enumerate(members) if m.group in groups and m.active]
    for j in out:
        members[j].pruned = True
    return out


def _evaluate(net, data, spec: TrainSpec, members, epoch, step, seconds, examples, running, lrs) -> list[dict]:
    """Each model's row of an evaluated epoch: training (when ``spec.eval_train``) and validation loss and
    accuracy, the running training loss of the epoch, its seconds and throughput, the rate of its last step."""
    n = len(data.y_train)
    train_eval = evaluate_all(net, data.x_train, data.y_train) if spec.eval_train else None
    val_loss, val_acc = evaluate_all(net, data.x_val, data.y_val)
    return [{"seed": m.seed, "epoch": epoch, "step": step,
             "train_loss": train_eval[0][j] if train_eval else math.nan,
             "train_acc": train_eval[1][j] if train_eval else math.nan,
             "val_loss": val_loss[j], "val_acc": val_acc[j], "train_loss_running": running[j],
             "seconds": seconds, "examples_per_second": examples / seconds if seconds else math.nan,
             "lr": lrs[j],
             "epoch_batch": spec.batch_at(max(epoch, 1), n)} for j, m in enumerate(members)]


def _train_epoch(net, opt, spec: TrainSpec, data, members, orders, plan: _Plan, epoch: int, step: int, w0):
    """One epoch of every active model: each its own batches (its own batch order), its own learning rate, the
    measurements at log-spaced steps. Returns the step reached, each active model's share of the seconds, the
    examples, each model's running training loss over the epoch and the rates of its last step."""
    n, device = len(data.y_train), data.device
    x_train, y_train = data.epoch_examples(epoch)  # one pass: this epoch's fresh examples
    net.train()
    perms = torch.stack([torch.randperm(n, generator=g) for g in orders]).to(device)
    batch = spec.batch_at(epoch, n)
    micro = math.ceil(batch / spec.accumulate) if spec.accumulate > 1 else 0  # examples per micro-batch
    n_steps = min(math.ceil(n / batch), plan.total - step)
    loss_sum = torch.zeros(len(members), device=device)
    examples = 0
    sync(device)
    start = time.perf_counter()
    for i in range(n_steps):
        # the learning rate of this step, per model; a stopped model's is 0, so it stays as it is
        if plan.varying_lr or i == 0:
            lrs = [m.spec.lr_at(step + 1, epoch, n) if m.active else 0.0 for m in members]
            opt.set_lr(lrs)
        # forward and backward: each model its own batch; the gradient of the summed losses is each model's own
        idx = perms[:, i * batch:(i + 1) * batch]
        opt.zero_grad()
        losses = _forward_backward(net, x_train, y_train, idx, micro)
        step += 1
        # measurements at log-spaced steps: the two-batch noise, the gradient norm, the distance from init
        if step in plan.noisy and idx.shape[1] >= 2:
            for j, m in enumerate(members):
                if m.active:
                    m.noise.append({"seed": m.seed, "step": step, "epoch": epoch,
                                    **noise.two_batch_at_step(net.module_of(j), [g[j] for g in net.grads()],
                                                              x_train[idx[j]], y_train[idx[j]])})
        if step in plan.sampled:
            grad_norm = _norms(net.grads())
        opt.step()
        if step in plan.sampled:
            dist = _norms([w - w_0 for w, w_0 in zip(net.weights(), w0)])
            batch_loss = losses.tolist()
            for j, m in enumerate(members):
                if m.active:
                    m.steps.append({"seed": m.seed, "step": step, "epoch": epoch, "batch_loss": batch_loss[j],
                                    "grad_norm": grad_norm[j], "distance": dist[j], "lr": lrs[j]})
        loss_sum += losses.detach() * idx.shape[1]
        examples += idx.shape[1]
    sync(device)
    seconds = (time.perf_counter() - start) / sum(m.active for m in members)  # a stacked model's share of the time
    return step, seconds, examples, (loss_sum / examples).tolist(), lrs


def _forward_backward(net, x, y, idx, micro: int = 0) -> torch.Tensor:
    """Each model's mean loss over its batch (``idx``: [models, batch]), its gradient left in ``.grad``.

    With ``micro`` > 0 smaller than the batch, the batch is taken in micro-batches of ``micro`` examples, each a
    forward and backward pass of its share of the batch's mean loss, so the gradient is the whole batch's: gradient
    accumulation. Without batch norm it is the plain batch's step up to float rounding; with batch norm each
    micro-batch is normalised by its own statistics (ghost batch norm in chunks of ``micro``)."""
    models_, batch = idx.shape
    if not 0 < micro < batch:
        losses = F.cross_entropy(net(x[idx]).flatten(0, 1), y[idx].flatten(), reduction="none").view(models_, -1).mean(1)
        losses.sum().backward()
        return losses
    losses = torch.zeros(models_, device=idx.device)
    for part in idx.split(micro, dim=1):
        share = F.cross_entropy(net(x[part]).flatten(0, 1), y[part].flatten(), reduction="none").view(models_, -1)
        share = share.sum(1) / batch
        share.sum().backward()
        losses += share.detach()
    return losses


def _norms(tensors) -> list[float]:
    """Per model, the norm over all ``tensors`` (each with a leading model axis)."""
    per = torch.stack([torch.linalg.vector_norm(t.flatten(1), dim=1) for t in tensors])
    return torch.linalg.vector_norm(per, dim=0).tolist()


def evaluate_all(net, x, y, chunk: int = models.EVAL_CHUNK) -> tuple[list[float], list[float]]:
    """Per model of ``net`` (:mod:`bsnb.stacking`), mean cross-entropy and accuracy over (x, y), in eval mode:
    each active model as an ordinary module, as :func:`evaluate` takes it alone (NaN for a stopped one)."""
    out = [evaluate(net.module_of(j), x, y, chunk) if net.active[j] else (math.nan, math.nan) for j in range(net.m)]
    return [o[0] for o in out], [o[1] for o in out]


def _progress_bar(spec: TrainSpec, n_train: int, desc: str):
    from tqdm.std import tqdm  # text, not a widget: it stays readable in the HTML report

    bar = tqdm(total=spec.n_epochs(n_train), desc=desc, unit="epoch", mininterval=2.0, leave=True)

    def tick(epoch, row):
        bar.update(epoch - bar.n)
        bar.set_postfix(val_loss=f"{row['val_loss']:.3f}", refresh=False)

    return bar, tick


def _run(spec, data, members, stacked, desc, progress, prune=False) -> list[SeedRun]:
    bar, tick = _progress_bar(spec, len(data.y_train), desc) if progress else (None, None)
    try:
        return train_together(spec, data, members, stacked, progress=tick, prune=prune)
    finally:
        if bar is not None:
            bar.close()


def train_seeds(params: dict, data: data_mod.Data | None = None, progress: bool = True,
                spec: TrainSpec | None = None, checkpoint_val_loss: float = 0.0) -> list[SeedRun]:
    """Train every seed of one setting (``params`` as validated by :mod:`bsnb.parameters`; ``spec`` overrides):
    stacked as one model when ``spec.stack`` says so (:func:`bsnb.stacking.use_stack`), else one after another.
    With ``checkpoint_val_loss`` each seed also saves the ``target`` checkpoint where its validation loss first
    reaches it."""
    if data is None:
        data = data_mod.of_job(params, resolve_device(params.get("device", "auto")))
    spec = spec or TrainSpec.from_params(params, checkpoint_val_loss=checkpoint_val_loss)
    members = [Member(seed, spec, f"seed{seed}") for seed in params["seeds"]]
    stacked = stacking.use_stack(spec.stack, len(members), spec.batch_size, data.device,
                                 stacking.path(spec.model, spec.batch_norm))
    seeds = ", ".join(str(m.seed) for m in members)
    return _run(spec, data, members, stacked, f"batch {spec.batch_size}, seed{'s' * (len(members) > 1)} {seeds}"
                f"{' (stacked)' if stacked else ''}", progress)


def tune(spec: TrainSpec, data: data_mod.Data, lrs, seeds, target_loss: float, progress: bool = True
         ) -> list[SeedRun]:
    """The learning-rate search: every (learning rate, seed) over ``lrs``, with the steps each took to first reach
    ``target_loss`` (Shallue et al.'s steps-to-result, C11) and, with ``spec.patience``, trained on to its smoothed
    minimum, then extended past an edge and refined by sqrt 2 as :mod:`bsnb.search` rules (each batch size at its own
    best rate, C15; the band of good rates, C18).

    Every (learning rate, seed) of a round trains at once, in lockstep (stacked where ``spec.stack`` says so).
    Without patience each stops once its validation loss reaches the target, and only each seed's fewest steps
    matter, so at the first check that sees one of a seed's runs reach the target, the seed's other runs stop:
    they cannot need fewer steps (the answer is exact, and the losers cost no more than the winner); such a search
    is its grid alone. Each run's summary carries its ``lr_used``, ``pruned`` and ``search_step`` (grid, extension
    or refinement). Only the validation loss decides, so the training split is not evaluated (its loss is NaN in
    the history; the running mean over the epoch's batches is there): at large batches that evaluation costs
    almost as much as the epoch's training.
    """
    from dataclasses import replace

    from bsnb import search

    to_minimum = spec.patience > 0
    one = replace(spec, target_loss=target_loss, warmup_steps=0, eval_train=False, stop_at_target=not to_minimum)

    def round_of(rates, step: str) -> list[SeedRun]:
        members = [Member(seed, replace(one, lr=lr), f"lr{lr:g}-seed{seed}", group=k)
                   for k, seed in enumerate(seeds) for lr in rates]
        stacked = stacking.use_stack(spec.stack, len(members), spec.batch_size, data.device,
                                     stacking.path(spec.model, spec.batch_norm))
        what = f"{len(rates)} lrs" if step == search.GRID else f"{step} lr{'s' * (len(rates) > 1)} " + ", ".join(
            f"{r:.4g}" for r in rates)
        done = _run(one, data, members, stacked, f"batch {spec.batch_size}, {what} x {len(seeds)} seeds"
                    f"{' (stacked)' if stacked else ''}", progress, prune=not to_minimum)
        for m, run in zip(members, done):
            run.summary.update(run=m.label, pruned=m.pruned, search_step=step,
                               failed_to_train=_never_trained(run))
        return done

    runs = round_of(list(lrs), search.GRID)
    while to_minimum and (todo := search.next_rates(search.table_of(pd.DataFrame([r.summary for r in runs])))):
        runs += round_of(*todo)
    return runs


def _never_trained(run: SeedRun) -> bool:
    """A run whose training loss (the epoch's running mean where the split was not evaluated) never fell below 90%
    of chance, or that diverged: it failed to train (:mod:`bsnb.minima` reads the stored curve the same way)."""
    if run.summary.get("status") != "ok":
        return True
    def seen(row) -> float:  # the evaluated training loss, else the epoch's running mean
        value = row.get("train_loss")
        return value if value is not None and math.isfinite(value) else row.get("train_loss_running", math.nan)

    lowest = min((v for v in map(seen, run.history[1:]) if v is not None and math.isfinite(v)), default=math.inf)
    return not lowest < minima.FAILED_SHARE * run.summary["chance_loss"]
