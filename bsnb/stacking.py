"""Several models trained as one: the seeds of a setting, or the learning rates of a search.

M models of one architecture, each built from its own seed exactly as :func:`bsnb.models.build`
builds it alone, have their parameters and buffers stacked along a new first axis of size M
(``torch.func.stack_module_state``). One forward pass takes a batch per model, ``[M, B, ...]``,
and returns ``[M, B, classes]``; one ``backward()`` of the summed per-model losses gives each model
the gradient of its own loss (the models share nothing, so the sum's gradient is each model's).

Two ways to run the forward pass:

* **batched** (the 1-D CNN without batch norm, the study's default model): each convolution becomes one
  batched matrix product over the M models, of their unfolded input windows (im2col) by their kernels,
  and the head another. On a CPU this took 0.35x the time of one model after another (3 models, batch
  16), where one convolution with ``groups=M`` took 0.58x: oneDNN's grouped kernels are slow at these sizes.
* **vmap** (every other model, batch norm and ghost batch norm included): ``torch.func.vmap`` over
  ``functional_call`` with the stacked parameters and buffers, so batch norm keeps per-model
  running statistics.

:class:`Optimizer` is SGD with momentum or Adam, as torch.optim computes them, with one learning
rate per model; a stopped model gets rate 0 and stays as it is. :class:`Separate` is the same
interface over ordinary modules and torch.optim, each model stepping on its own, so :mod:`bsnb.train`
has one loop for one model, for M stacked and for M side by side.

Evaluation takes each model as an ordinary module (``module_of``): the arithmetic of a model alone, and
on a CPU faster than the stacked forward pass at evaluation's large chunks.

Whether stacking pays depends on the batch size and the device, so ``stack: auto`` decides by a
rule measured with ``benchmarks/stacking.py`` (see :func:`use_stack`).
"""

from __future__ import annotations

import copy
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from bsnb import models
from bsnb.choices import OPTIMIZERS
from bsnb.choices import STACK as CHOICES

# ``stack: auto`` stacks on a CPU up to these batch sizes, per path. `python benchmarks/stacking.py
# --rounds 3` on a 2-core x86_64 (torch 2.14.1, one thread, the MNIST-1D CNN), stacked over one after
# another: batched, M = 3 0.37 at batch 16, 0.48 at 32, 0.66 at 64, 0.91 at 128, slower from 256 on
# (1.11, 1.74 at 1024); M = 12 0.25, 0.40, 0.60, 0.94, then 1.34 and 2.05. With batch norm (vmap, `--batch-norm`):
# M = 3 0.88 at 16, 0.91 at 32, 1.15 at 64; M = 12 0.46, 0.66, 0.91, 1.29 at 128. Batch 128 gains under
# 10% and may lose on another CPU, so the batched path stops at 64 and vmap at 32. A GPU is launch-bound
# for models this small, so stacking is expected to pay at every batch size there (HFTA); Apple's MPS is
# unmeasured.
CPU_MAX_BATCH = {"batched": 64, "vmap": 32}


def path(model: str, batch_norm: bool) -> str:
    """How :class:`Stacked` runs ``model``: ``batched`` (the 1-D CNN without batch norm) or ``vmap``."""
    return "batched" if model == "cnn" and not batch_norm else "vmap"


def use_stack(stack: str, m: int, batch_size: int, device: torch.device, way: str = "vmap") -> bool:
    """Whether ``m`` models of batch ``batch_size`` train stacked on ``device`` under ``stack``, stacked
    models running the ``way`` of :func:`path`."""
    if stack not in CHOICES:
        raise ValueError(f"stack = {stack!r} is not allowed: expected one of {', '.join(CHOICES)}")
    if m < 2 or stack == "off":
        return False
    if stack == "on":
        return True
    if device.type == "cuda":
        return True
    return device.type == "cpu" and batch_size <= CPU_MAX_BATCH[way]


def build(model: str, input_shape: tuple, n_classes: int, width: int, batch_norm: bool, ghost_batch: int,
          seeds, device) -> list[nn.Module]:
    """One module per seed, each initialised from ``torch.manual_seed(seed)`` as when it trains alone."""
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(models.build(model, input_shape, n_classes, width, batch_norm, ghost_batch).to(device))
    return out


class Replicas(Protocol):
    """What the training loop asks of M models trained together, whether :class:`Stacked` (one model, a leading
    model axis) or :class:`Separate` (M ordinary modules, one after another): the loop in :mod:`bsnb.train` is
    written once against this."""

    m: int  # how many models
    active: list[bool]  # a stopped model is left as it is

    def train(self, mode: bool = True): ...  # training or eval mode for every model

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...  # [M, B, ...] inputs -> [M, B, classes] logits

    def grads(self) -> list[torch.Tensor]: ...  # each parameter's gradient, a leading model axis

    def weights(self) -> list[torch.Tensor]: ...  # each parameter, a leading model axis

    def state(self, i: int) -> dict: ...  # model i's state dict, a copy on the CPU

    def module_of(self, i: int) -> nn.Module: ...  # model i as an ordinary module (evaluation, measurement)


class Separate:
    """M ordinary modules behind the stacked interface, each stepping on its own (one after another within a
    step): the same arithmetic as training each alone. A model marked inactive is skipped."""

    def __init__(self, modules: list[nn.Module]):
        self.m = len(modules)
        self.modules = modules
        self.active = [True] * self.m

    def train(self, mode: bool = True):
        for module in self.modules:
            module.train(mode)

    def _each(self, inputs) -> torch.Tensor:
        on = [j for j in range(self.m) if self.active[j]] or list(range(self.m))
        outs = {j: self.modules[j](inputs[j]) for j in on}
        blank = torch.zeros_like(outs[on[0]])
        return torch.stack([outs.get(j, blank) for j in range(self.m)])

    def __call__(self, x):
        """``x``: [M, B, ...] -> [M, B, classes] (zeros for an inactive model)."""
        return self._each(x)

    def grads(self) -> list[torch.Tensor]:
        """Each parameter's gradient with a leading model axis (zeros where a model has none)."""
        per_model = [[p.grad if p.grad is not None else torch.zeros_like(p) for p in m.parameters()]
                     for m in self.modules]
        return [torch.stack(g) for g in zip(*per_model)]

    def weights(self) -> list[torch.Tensor]:
        return [torch.stack([p.detach() for p in ps]) for ps in zip(*(m.parameters() for m in self.modules))]

    def state(self, i: int) -> dict:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.modules[i].state_dict().items()}

    def module_of(self, i: int) -> nn.Module:
        """An ordinary module holding model ``i``'s parameters and buffers (here, its own module)."""
        return self.modules[i]


class Stacked:
    """M modules of one architecture as stacked tensors (see the module's docstring)."""

    def __init__(self, modules: list[nn.Module]):
        self.m = len(modules)
        self.scratch = modules[0]  # an ordinary module that module_of() loads one model into
        self.base = copy.deepcopy(modules[0]).to("meta")  # structure only: functional_call supplies the tensors
        self.params, self.buffers = stack_module_state(modules)  # leaves of shape [M, ...]
        self.names = list(self.params)
        self.keys = list(modules[0].state_dict())  # a model's state dict, in its module's order
        self.batched = isinstance(modules[0], models.CNN1d) and not self.buffers  # path() == "batched"
        self.active = [True] * self.m  # every model is computed; a stopped one's learning rate is 0
        self._call = vmap(self._one, in_dims=(0, 0, 0))

    def _one(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def train(self, mode: bool = True):
        self.base.train(mode)

    def __call__(self, x):
        """``x``: [M, B, ...] (one batch per model) -> [M, B, classes], zeros for a stopped model.

        Only the active models are computed: once some have stopped (a search's runs stop at their own epochs),
        the others' parameters and buffers are gathered into a smaller stack, and batch norm's running statistics
        written back. On the batched path each model's arithmetic is its own whatever the stack's size (one matrix
        product per model), so its numbers do not depend on when the others stopped; on vmap's they do up to
        rounding (batch norm's batched reductions sum in another order)."""
        on = [j for j in range(self.m) if self.active[j]]
        if len(on) in (0, self.m):
            return self._forward(self.params, self.buffers, x)
        idx = torch.tensor(on, device=x.device)
        params = {k: v.index_select(0, idx) for k, v in self.params.items()}
        buffers = {k: v.index_select(0, idx) for k, v in self.buffers.items()}
        out = self._forward(params, buffers, x.index_select(0, idx))
        with torch.no_grad():
            for k, v in buffers.items():  # batch norm updated the gathered copies of its running statistics
                self.buffers[k].index_copy_(0, idx, v)
        return out.new_zeros((self.m, *out.shape[1:])).index_copy(0, idx, out)

    def _forward(self, params: dict, buffers: dict, x):
        if self.batched:
            return self._batched(x.reshape(x.shape[0], x.shape[1], -1, 1), params)
        return self._call(params, buffers, x)

    def _batched(self, h, p: dict):
        """The 1-D CNN's forward pass for stacked models at once; ``h`` is [M, B, length, channels], ``p`` their
        parameters."""
        m, b = h.shape[:2]
        for name, layer in self.base.features.named_children():
            if isinstance(layer, nn.Conv1d):
                w, bias = p[f"features.{name}.weight"], p[f"features.{name}.bias"]  # [M, out, in, k], [M, out]
                (k,), (stride,), (pad,) = layer.kernel_size, layer.stride, layer.padding
                windows = F.pad(h, (0, 0, pad, pad)).unfold(2, k, stride)  # [M, B, L_out, in, k]
                length = windows.shape[2]
                h = torch.baddbmm(bias[:, None, :], windows.reshape(m, b * length, -1),
                                  w.reshape(m, w.shape[1], -1).transpose(1, 2)).view(m, b, length, -1)
            else:
                h = layer(h)  # ReLU
        h = h.transpose(2, 3).reshape(m, b, -1)  # channels first, as the module flattens them
        return torch.baddbmm(p["head.bias"][:, None, :], h, p["head.weight"].transpose(1, 2))

    def parameters(self) -> list[torch.Tensor]:
        return [self.params[k] for k in self.names]

    def grads(self) -> list[torch.Tensor]:
        return [self.params[k].grad for k in self.names]

    def weights(self) -> list[torch.Tensor]:
        return [self.params[k].detach() for k in self.names]

    def state(self, i: int) -> dict:
        """Model ``i``'s state dict, as its own module would give it, on the CPU."""
        tensors = {**self.params, **self.buffers}
        return {k: tensors[k][i].detach().to("cpu", copy=True) for k in self.keys}

    def module_of(self, i: int) -> nn.Module:
        """An ordinary module holding a copy of model ``i``'s parameters and buffers (one module, reused)."""
        tensors = {**self.params, **self.buffers}
        with torch.no_grad():
            for k, v in self.scratch.state_dict(keep_vars=True).items():
                v.copy_(tensors[k][i])
        return self.scratch


def stack_problem(model: str, input_shape: tuple, n_classes: int, width: int, batch_norm: bool) -> str | None:
    """Why two seeds of ``model`` cannot train as one stacked model (vmap over its module), or None: a forward and a
    backward pass of a stack of two, checked before any job of a profile that stacks a model of its own."""
    try:
        stack = Stacked(build(model, input_shape, n_classes, width, batch_norm, 0, [0, 1], "cpu"))
        stack(torch.randn(2, 3, *input_shape)).logsumexp(-1).sum().backward()
        if any(g is None for g in stack.grads()):
            return f"model = {model!r}: some of its parameters get no gradient when two seeds train stacked"
    except Exception as exc:  # noqa: BLE001 - whatever vmap refuses in the user's module
        return (f"model = {model!r} does not train stacked ({type(exc).__name__}: {exc}): set stack: off to train "
                "its seeds one by one")
    return None


def replicas(modules: list[nn.Module], stacked: bool) -> Replicas:
    """The ``modules`` trained together: stacked as one model, or side by side."""
    return Stacked(modules) if stacked else Separate(modules)


class Optimizer:
    """SGD with momentum (and weight decay) or Adam over stacked parameters, one learning rate per model.

    The updates are torch.optim's: SGD ``buf = momentum * buf + (g + wd * p)``, ``p -= lr * buf``; Adam with
    bias correction, betas (0.9, ``beta2``), eps 1e-8 and L2 weight decay; AdamW the same with decoupled weight
    decay (``p *= 1 - lr * wd`` before the step, Loshchilov and Hutter 2019). ``set_lr`` takes M rates; a rate of 0
    leaves its model unchanged.
    """

    def __init__(self, params: list[torch.Tensor], kind: str, lr, momentum: float = 0.9,
                 weight_decay: float = 0.0, beta2: float = 0.999, eps: float = 1e-8):
        _check(kind)
        betas = (0.9, beta2)
        self.params, self.kind = params, kind
        self.momentum, self.weight_decay, self.betas, self.eps = momentum, weight_decay, betas, eps
        self.state = [None] * len(params)
        self.steps = 0
        self.set_lr(lr)

    def set_lr(self, lrs):
        self.lr = torch.as_tensor(lrs, dtype=self.params[0].dtype, device=self.params[0].device)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.steps += 1
        for j, p in enumerate(self.params):
            lr = self.lr.view(-1, *[1] * (p.dim() - 1))
            if self.kind == "adamw" and self.weight_decay:
                p.mul_(1 - lr * self.weight_decay)
            g = p.grad if not self.weight_decay or self.kind == "adamw" else p.grad.add(p, alpha=self.weight_decay)
            if self.kind == "sgd":
                if self.momentum:
                    if self.state[j] is None:
                        self.state[j] = g.detach().clone()
                    else:
                        self.state[j].mul_(self.momentum).add_(g)
                    g = self.state[j]
                p.sub_(lr * g)
                continue
            if self.state[j] is None:
                self.state[j] = (torch.zeros_like(p), torch.zeros_like(p))
            m, v = self.state[j]
            b1, b2 = self.betas
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2 ** self.steps)).sqrt_().add_(self.eps)
            p.sub_(lr / (1 - b1 ** self.steps) * m / denom)


def _check(kind: str) -> None:
    if kind not in OPTIMIZERS:
        raise ValueError(f"optimizer = {kind!r} is not allowed: expected one of {', '.join(OPTIMIZERS)}")


def torch_optimizer(kind: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                    beta2: float = 0.999) -> torch.optim.Optimizer:
    """torch.optim's SGD (with momentum), Adam or AdamW for one model."""
    _check(kind)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind](params, lr=lr, betas=(0.9, beta2),
                                                                      weight_decay=weight_decay)


class SeparateOptimizer:
    """torch.optim's SGD, Adam or AdamW, one per module of a :class:`Separate`, behind :class:`Optimizer`'s
    interface."""

    def __init__(self, modules, kind: str, lrs, momentum: float = 0.9, weight_decay: float = 0.0,
                 beta2: float = 0.999):
        self.opts = [torch_optimizer(kind, m.parameters(), float(lr), momentum, weight_decay, beta2)
                     for m, lr in zip(modules, lrs)]
        self.lrs = [float(lr) for lr in lrs]

    def set_lr(self, lrs):
        self.lrs = [float(lr) for lr in lrs]
        for opt, lr in zip(self.opts, self.lrs):
            for group in opt.param_groups:
                group["lr"] = lr

    def zero_grad(self):
        for opt in self.opts:
            opt.zero_grad(set_to_none=True)

    def step(self):
        for opt, lr in zip(self.opts, self.lrs):
            if lr:  # a stopped model (rate 0) is left as it is
                opt.step()


def optimizer(net, kind: str, lrs, momentum: float, weight_decay: float, beta2: float = 0.999):
    """The optimiser of ``net`` (a :class:`Separate` or :class:`Stacked`), ``lrs`` one rate per model."""
    if isinstance(net, Stacked):
        return Optimizer(net.parameters(), kind, lrs, momentum, weight_decay, beta2)
    return SeparateOptimizer(net.modules, kind, lrs, momentum, weight_decay, beta2)
