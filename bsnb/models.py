"""Models of the study: an MLP and the small 1-D CNN of the MNIST-1D paper; for images, a small
2-D CNN and the CIFAR-10 residual network of He et al. (2016).

With ``width=25`` and no batch norm, the CNN on 40-sample MNIST-1D inputs has 5,210
parameters, the size used in the MNIST-1D paper and in the protocol's measurements. ``resnet`` is
ResNet-20 (three stages of three basic blocks, batch norm throughout); at ``width=16`` it has
the 0.27 M parameters of He et al.'s CIFAR-10 ResNet-20, the family (ResNet-20 to -56) that
Hoffer et al. 2017 used for CIFAR-10.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import sys
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from bsnb import choices
from bsnb.choices import IMAGE_MODELS, MODELS, image_shape, input_problem  # noqa: F401 (the models' choices)

# Examples per forward pass when a model is evaluated on a whole split (losses, Hessian-vector
# products). A chunk that stays in the CPU's cache is the fastest: the 1-D CNN on 4,000 examples, one
# thread, took 8 ms per pass in chunks of 1,024 or 2,048 against 23 ms in one chunk of 4,000
# (Hessian-vector products 62 against 85 ms). The results differ only in the order of summation.
EVAL_CHUNK = 1024



class _Ghost:
    """Batch norm that, in training, normalises each chunk of ``ghost`` examples with its own statistics.

    The running statistics are updated once per chunk, as if each chunk were a batch; in eval
    mode it is plain batch norm. With ``ghost`` at least the batch size it is plain batch norm.
    """

    def __init__(self, num_features: int, ghost: int = 32, **kw):
        super().__init__(num_features, **kw)
        self.ghost = ghost

    def forward(self, x):
        if not self.training or x.shape[0] <= self.ghost:
            return super().forward(x)
        return torch.cat([super(_Ghost, self).forward(chunk) for chunk in x.split(self.ghost)])

    def extra_repr(self):
        return super().extra_repr() + f", ghost={self.ghost}"


class GhostBatchNorm1d(_Ghost, nn.BatchNorm1d):
    __doc__ = _Ghost.__doc__ + "\n    For [N, C] and [N, C, L] inputs.\n"


class GhostBatchNorm2d(_Ghost, nn.BatchNorm2d):
    __doc__ = _Ghost.__doc__ + "\n    For [N, C, H, W] inputs (images).\n"

def _norm(width: int, ghost_batch: int) -> nn.Module:
    return GhostBatchNorm1d(width, ghost=ghost_batch) if ghost_batch else nn.BatchNorm1d(width)


def _norm2d(width: int, ghost_batch: int) -> nn.Module:
    return GhostBatchNorm2d(width, ghost=ghost_batch) if ghost_batch else nn.BatchNorm2d(width)


class CNN1d(nn.Module):
    """Three strided 1-D convolutions (kernel 5, 3, 3; stride 2) with ReLU, then a linear layer."""

    def __init__(self, input_shape: tuple, n_classes: int, width: int = 25, batch_norm: bool = False,
                 ghost_batch: int = 0):
        super().__init__()
        length = math.prod(input_shape)
        layers, channels = [], 1
        for kernel in (5, 3, 3):
            layers.append(nn.Conv1d(channels, width, kernel, stride=2, padding=1))
            if batch_norm:
                layers.append(_norm(width, ghost_batch))
            layers.append(nn.ReLU())
            channels = width
            length = (length + 2 - kernel) // 2 + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width * length, n_classes)

    def forward(self, x):
        x = x.reshape(x.shape[0], 1, -1)
        return self.head(self.features(x).flatten(1))


class MLP(nn.Module):
    """Two hidden layers of ``width`` units with ReLU (the MNIST-1D paper's MLP at width 100)."""

    def __init__(self, input_shape: tuple, n_classes: int, width: int = 100, batch_norm: bool = False,
                 ghost_batch: int = 0):
        super().__init__()
        layers, fan_in = [], math.prod(input_shape)
        for _ in range(2):
            layers.append(nn.Linear(fan_in, width))
            if batch_norm:
                layers.append(_norm(width, ghost_batch))
            layers.append(nn.ReLU())
            fan_in = width
        layers.append(nn.Linear(fan_in, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x.flatten(1))


class CNN2d(nn.Module):
    """Three 3x3 convolution blocks of ``width``, 2 ``width`` and 4 ``width`` channels, each with ReLU and
    2x2 max pooling (batch norm optional), then global average pooling and a linear layer."""

    def __init__(self, input_shape: tuple, n_classes: int, width: int = 16, batch_norm: bool = False,
                 ghost_batch: int = 0):
        super().__init__()
        self.shape = image_shape(input_shape)
        layers, channels = [], self.shape[0]
        for out in (width, 2 * width, 4 * width):
            layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(_norm2d(out, ghost_batch))
            layers += [nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x):
        x = self.features(x.reshape(x.shape[0], *self.shape))
        return self.head(x.mean(dim=(2, 3)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (a 1x1 convolution where the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int, ghost_batch: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm2d(c_out, ghost_batch)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = _norm2d(c_out, ghost_batch)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          _norm2d(c_out, ghost_batch))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet (6n + 2 layers; n = 3 gives ResNet-20): a 3x3 stem of ``width`` channels, three
    stages of ``n`` basic blocks with ``width``, 2 ``width`` and 4 ``width`` channels (stride 2 between
    stages), global average pooling and a linear layer. Batch norm is always on: ``batch_norm`` is ignored."""

    def __init__(self, input_shape: tuple, n_classes: int, width: int = 16, batch_norm: bool = True,
                 ghost_batch: int = 0, blocks: int = 3):
        super().__init__()
        self.shape = image_shape(input_shape)
        self.stem = nn.Sequential(nn.Conv2d(self.shape[0], width, 3, padding=1, bias=False),
                                  _norm2d(width, ghost_batch), nn.ReLU())
        stages, channels = [], width
        for i, out in enumerate((width, 2 * width, 4 * width)):
            for j in range(blocks):
                stages.append(BasicBlock(channels, out, 2 if (i > 0 and j == 0) else 1, ghost_batch))
                channels = out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(channels, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.stages(self.stem(x.reshape(x.shape[0], *self.shape)))
        return self.head(x.mean(dim=(2, 3)))


def resolve(model: str):
    """The function (or class) that builds ``model``: a study's name, or an import path ``module:function`` of your
    own, imported from the installed packages, the folder bsnb runs in, or ``PYTHONPATH``."""
    path = choices.model_path(model)
    if not choices.is_import_path(path):
        raise ValueError(f"model = {model!r} is not allowed: expected one of {', '.join(choices.MODELS)}, or "
                         f"{choices.IMPORT_PATH_WORDS}")
    module_name, attr = path.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # a kernel runs in the project's folder: a module there imports as from a shell
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model = {model!r}: module {module_name!r} cannot be imported ({exc}); it must be installed, "
                         "in the folder bsnb runs in, or on PYTHONPATH") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"model = {model!r}: module {module_name!r} has no function {attr!r}")
    return fn


# What build() passes a model's function besides the input shape and the classes, where its signature takes them.
OPTIONS = ("width", "batch_norm", "ghost_batch")


def build(model: str, input_shape: tuple, n_classes: int, width: int, batch_norm: bool = False,
          ghost_batch: int = 0) -> nn.Module:
    """A fresh model; initialisation follows torch's global seed. ``ghost_batch`` > 0 makes its
    batch norm ghost batch norm over chunks of that many examples. ``model`` is a study's name or an import path
    (:func:`resolve`): the function is called with the data's input shape and number of classes, and with
    ``width``, ``batch_norm`` and ``ghost_batch`` where its signature names them."""
    problem = input_problem(model, input_shape)
    if problem:
        raise ValueError(problem)
    fn = resolve(model)
    given = {"width": width, "batch_norm": batch_norm, "ghost_batch": ghost_batch}
    try:
        takes = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: give it the shape and the classes only
        takes = {}
    wide = any(t.kind is inspect.Parameter.VAR_KEYWORD for t in takes.values())
    net = fn(tuple(input_shape), n_classes, **{k: v for k, v in given.items() if wide or k in takes})
    if not isinstance(net, nn.Module):
        raise TypeError(f"model = {model!r} returned {type(net).__name__}, not a torch.nn.Module")
    return net


def problems_of(model: str, input_shape: tuple, n_classes: int, width: int, batch_norm: bool = False) -> list[str]:
    """Why ``model`` cannot train on inputs of ``input_shape`` (empty when it can): it is imported, built, maps a
    batch of two examples to [2, n_classes] logits, and takes one finite SGD step. Checked before any job runs."""
    try:
        torch.manual_seed(0)
        net = build(model, input_shape, n_classes, width, batch_norm)
        x, y = torch.randn(2, *input_shape), torch.arange(2) % n_classes
        out = net(x)
        if tuple(out.shape) != (2, n_classes):
            return [f"model = {model!r} maps a batch of 2 examples of shape {tuple(input_shape)} to outputs of shape "
                    f"{tuple(out.shape)}: expected (2, {n_classes}), one logit per class"]
        loss = F.cross_entropy(out, y)
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                if p.grad is not None:
                    p -= 0.01 * p.grad
        if not torch.isfinite(loss) or not all(torch.isfinite(p).all() for p in net.parameters()):
            return [f"model = {model!r} gives a non-finite loss or weights after one SGD step"]
    except Exception as exc:  # noqa: BLE001 - whatever the user's code raises, named before any job runs
        return [str(exc) if isinstance(exc, ValueError) and str(exc).startswith("model = ")
                else f"model = {model!r} does not train one step: {type(exc).__name__}: {exc}"]
    return []


def of_job(params: dict, data, ghost_batch: int = 0) -> nn.Module:
    """The model of a job (its ``model``, ``width`` and ``batch_norm``) for ``data``, on the data's device, its
    initialisation from torch's global seed: the one way the analysis, the timing and the measurements build it."""
    return build(params["model"], data.input_shape, data.n_classes, params["width"], params["batch_norm"],
                 ghost_batch).to(data.device)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextmanager
def frozen(model: nn.Module):
    """Eval mode inside; afterwards the parameters, buffers and train/eval flag are as they were."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.load_state_dict(saved)
        model.train(was_training)


@torch.no_grad()
def evaluate(model, x, y, chunk: int = EVAL_CHUNK) -> tuple[float, float]:
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


def sync(device):
    """Wait for the device to finish its queued work (a GPU runs asynchronously), so a timer reads its time."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
