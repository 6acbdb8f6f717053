"""Curvature and loss landscapes: how sharp is a minimum?

Every measure is of the *training loss* on a stated set of examples, with the model in eval mode
(batch norm uses its running statistics, dropout is off), and leaves the model's parameters and
buffers exactly as it found them.

* Hessian-vector products by double backward, with the gradient's graph kept between products
  (see :class:`Hessian` for why not curvlinops), as a SciPy linear operator.
* Top-k eigenvalues: Lanczos (``scipy.sparse.linalg.eigsh``), each with its residual
  ||Hv - lambda v|| and the number of Hessian-vector products spent.
* Trace: Hutchinson's estimator with Rademacher probes, with its standard error.
* Keskar et al.'s epsilon-sharpness (their Metric 2.1), maximised by L-BFGS-B.
* Filter-normalised random directions (Li et al. 2018), 1-D and 2-D loss slices along them, and
  the 1-D linear interpolation between two solutions (Keskar Fig. 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, eigsh

from bsnb import models, results
from bsnb.models import frozen

# ------------------------------------------------------------------------------------------------
# helpers


def flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def set_flat_params(model, flat: torch.Tensor) -> None:
    i = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(flat[i:i + p.numel()].view_as(p))
            i += p.numel()


def subset(x, y, n: int, seed: int = 0):
    """A fixed subset of ``n`` examples (all of them when ``n >= len(y)``)."""
    if n >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n].to(y.device)
    return x[idx], y[idx]


def batches(x, y, size: int = models.EVAL_CHUNK):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


@torch.no_grad()
def loss_at(model, x, y, chunk: int = models.EVAL_CHUNK) -> float:
    total = 0.0
    for xb, yb in batches(x, y, chunk):
        total += F.cross_entropy(model(xb), yb, reduction="sum").item()
    return total / len(y)


def loss_and_grad(model, x, y, chunk: int = models.EVAL_CHUNK) -> tuple[float, torch.Tensor]:
    """Mean training loss and its gradient (flat), accumulated over chunks."""
    params = list(model.parameters())
    grads = [torch.zeros_like(p) for p in params]
    total = 0.0
    for xb, yb in batches(x, y, chunk):
        loss = F.cross_entropy(model(xb), yb, reduction="sum")
        for g, d in zip(grads, torch.autograd.grad(loss, params)):
            g += d
        total += loss.item()
    return total / len(y), torch.cat([g.reshape(-1) for g in grads]) / len(y)


# ------------------------------------------------------------------------------------------------
# the Hessian


class Hessian:
    """The Hessian of the mean cross-entropy of ``model`` on (x, y), as a SciPy linear operator.

    Each product is a double backward pass (reverse over reverse). The gradient's graph is built
    once and kept (the data is fixed), so each further product costs one backward pass of the
    gradient; past ``cache_examples`` examples the graph is rebuilt per product, chunk by chunk, to
    bound memory. On this project's CNN the kept graph measured faster than both rebuilding it and
    curvlinops' forward-over-reverse operator when this module was written, which is why
    this module does not use curvlinops.

    The model is in eval mode while the object is open; :meth:`close` (or a ``with`` block)
    restores its parameters, buffers and mode. ``matvecs`` counts Hessian-vector products.
    """

    def __init__(self, model, x, y, chunk: int = models.EVAL_CHUNK, cache_examples: int = 16384):
        self.model = model
        self._frozen = frozen(model)
        self._frozen.__enter__()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.n = sum(p.numel() for p in self.params)
        self.device, self.dtype = self.params[0].device, self.params[0].dtype
        self.chunks = batches(x, y, chunk)
        self.total = len(y)
        self._graphs = [self._grad(xb, yb) for xb, yb in self.chunks] if len(y) <= cache_examples else None
        self.matvecs = 0

    def _grad(self, xb, yb):
        loss = F.cross_entropy(self.model(xb), yb, reduction="sum") / self.total
        return torch.autograd.grad(loss, self.params, create_graph=True)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """H v for a flat vector ``v`` (a tensor on the model's device)."""
        parts = [t.view_as(p) for t, p in zip(v.split([p.numel() for p in self.params]), self.params)]
        out = torch.zeros(self.n, dtype=self.dtype, device=self.device)
        for i, (xb, yb) in enumerate(self.chunks):
            grads = self._graphs[i] if self._graphs is not None else self._grad(xb, yb)
            hv = torch.autograd.grad(grads, self.params, grad_outputs=parts, retain_graph=self._graphs is not None)
            out += torch.cat([h.reshape(-1) for h in hv])
        self.matvecs += 1
        return out

    def matmat(self, v: np.ndarray) -> np.ndarray:
        """H @ V for a vector or a matrix of column vectors (NumPy in, float64 NumPy out)."""
        arr = np.asarray(v)
        cols = arr.reshape(self.n, -1)
        out = np.empty(cols.shape, dtype=np.float64)
        for j in range(cols.shape[1]):
            t = torch.as_tensor(cols[:, j], dtype=self.dtype, device=self.device)
            out[:, j] = self.hvp(t).detach().cpu().double().numpy()
        return out.reshape(arr.shape)

    def scipy(self) -> LinearOperator:
        return LinearOperator((self.n, self.n), matvec=self.matmat, matmat=self.matmat, dtype=np.float64)

    def close(self):
        self._graphs = None
        self._frozen.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Eigen:
    values: np.ndarray  # descending
    vectors: np.ndarray  # columns
    residuals: np.ndarray  # ||Hv - lambda v|| per eigenpair (unit v)
    matvecs: int


def top_eigenvalues(hess: Hessian, k: int = 5, tol: float = 1e-4, ncv: int | None = None, seed: int = 0) -> Eigen:
    """The ``k`` largest (algebraic) Hessian eigenvalues by Lanczos, with residuals and the products spent."""
    start = hess.matvecs
    v0 = np.random.default_rng(seed).standard_normal(hess.n)
    ncv = ncv or min(hess.n, max(2 * k + 1, k + 8))
    values, vectors = eigsh(hess.scipy(), k=k, which="LA", tol=tol, v0=v0, ncv=ncv)
    spent = hess.matvecs - start
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    residuals = np.linalg.norm(hess.matmat(vectors) - vectors * values, axis=0)  # not counted as spent
    hess.matvecs = start + spent
    return Eigen(values, vectors, residuals, spent)


@dataclass
class Trace:
    estimate: float
    stderr: float
    samples: int
    matvecs: int


def hutchinson(hess: Hessian, samples: int = 64, seed: int = 0, block: int = 16) -> Trace:
    """Hutchinson's trace estimate with Rademacher probes and its standard error over probes."""
    rng = np.random.default_rng(seed)
    values = []
    start = hess.matvecs
    for i in range(0, samples, block):
        m = min(block, samples - i)
        probes = rng.choice([-1.0, 1.0], size=(hess.n, m))
        values.extend(np.einsum("ij,ij->j", probes, hess.matmat(probes)))
    values = np.asarray(values)
    return Trace(float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), len(values),
                 hess.matvecs - start)


def spectral_density(hess: Hessian, steps: int = 40, probes: int = 4, grid: int = 400, width: float | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019), Gaussian-smoothed."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    for _ in range(probes):
        v = rng.choice([-1.0, 1.0], size=hess.n)
        v /= np.linalg.norm(v)
        alphas, betas, basis = [], [], [v]
        w_prev, beta = np.zeros(hess.n), 0.0
        for j in range(steps):
            w = hess.matmat(basis[-1]) - beta * w_prev
            alpha = float(w @ basis[-1])
            w -= alpha * basis[-1]
            for b in basis:  # full reorthogonalisation: cheap at these sizes, and stable
                w -= (w @ b) * b
            alphas.append(alpha)
            beta = float(np.linalg.norm(w))
            if beta < 1e-10 or j == steps - 1:
                break
            betas.append(beta)
            w_prev = basis[-1]
            basis.append(w / beta)
        t = np.diag(alphas) + np.diag(betas[:len(alphas) - 1], 1) + np.diag(betas[:len(alphas) - 1], -1)
        evals, evecs = np.linalg.eigh(t)
        nodes.append(evals)
        weights.append(evecs[0] ** 2)
    nodes, weights = np.concatenate(nodes), np.concatenate(weights) / probes
    lo, hi = nodes.min(), nodes.max()
    pad = 0.05 * (hi - lo + 1e-12)
    xs = np.linspace(lo - pad, hi + pad, grid)
    sigma = width or (hi - lo + 1e-12) / 100
    density = (weights[None, :] * np.exp(-((xs[:, None] - nodes[None, :]) ** 2) / (2 * sigma ** 2))).sum(1)
    return xs, density / (sigma * math.sqrt(2 * math.pi))


# ------------------------------------------------------------------------------------------------
# Keskar's epsilon-sharpness


@dataclass
class EpsSharpness:
    value: float  # phi = 100 * (max f - f) / (1 + f)
    loss: float  # f(x)
    max_loss: float
    epsilon: float
    dim: int  # p, the dimension of the box (n for A = I)
    evaluations: int


def maximise_in_box(objective, w: np.ndarray, epsilon: float, a: np.ndarray | None = None, iters: int = 10):
    """Keskar's inner problem: max f(w + A y) over |y_i| <= epsilon (|(A^+ w)_i| + 1), by L-BFGS-B from y = 0.

    ``objective(w) -> (f, grad)`` works on flat float64 arrays; ``a`` is None for the full space
    (A = I). Returns (f(w), max f found, number of evaluations, box dimension).
    """
    center = w if a is None else np.linalg.pinv(a) @ w
    bound = epsilon * (np.abs(center) + 1.0)
    f0 = objective(w)[0]
    calls = 0

    def negative(y):
        nonlocal calls
        calls += 1
        f, g = objective(w + (y if a is None else a @ y))
        return -f, -(g if a is None else a.T @ g)

    res = minimize(negative, np.zeros(len(bound)), jac=True, method="L-BFGS-B", bounds=list(zip(-bound, bound)),
                   options={"maxiter": iters})
    return f0, max(-float(res.fun), f0), calls, len(bound)


def eps_sharpness(model, x, y, epsilon: float = 1e-3, dim: int | None = None, iters: int = 10, seed: int = 0,
                  chunk: int = models.EVAL_CHUNK) -> EpsSharpness:
    """Keskar et al.'s Metric 2.1 of the training loss on (x, y): phi = 100 (max f - f) / (1 + f).

    ``dim=None`` searches the full parameter space (A = I); ``dim=p`` the span of a random n x p
    matrix A with standard normal entries (seeded by ``seed``).
    """
    with frozen(model):
        w = flat_params(model)

        def objective(z):
            set_flat_params(model, torch.as_tensor(z, dtype=w.dtype, device=w.device))
            loss, grad = loss_and_grad(model, x, y, chunk)
            return loss, grad.double().cpu().numpy()

        a = None
        if dim is not None:
            a = torch.randn(w.numel(), dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
        f0, fmax, calls, p = maximise_in_box(objective, w.double().cpu().numpy(), epsilon, a, iters)
    return EpsSharpness(100.0 * (fmax - f0) / (1.0 + f0), f0, fmax, epsilon, p, calls)


# ------------------------------------------------------------------------------------------------
# directions, slices, interpolation


def filter_normalized_direction(model, seed: int = 0) -> list[torch.Tensor]:
    """A random direction with each output filter (row) rescaled to the norm of the matching weight filter.

    Biases, batch-norm parameters and any other 1-D parameter get a zero direction (Li et al. 2018).
    """
    gen = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        if p.dim() <= 1:
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
        d_rows, p_rows = d.reshape(p.shape[0], -1), p.detach().reshape(p.shape[0], -1)
        scale = p_rows.norm(dim=1, keepdim=True) / (d_rows.norm(dim=1, keepdim=True) + 1e-10)
        direction.append((d_rows * scale).reshape(p.shape))
    return direction


def slice_1d(model, direction, x, y, alphas) -> list[dict]:
    """Loss and accuracy at w + alpha d for each alpha."""
    rows = []
    with frozen(model):
        base = [p.detach().clone() for p in model.parameters()]
        for alpha in alphas:
            with torch.no_grad():
                for p, b, d in zip(model.parameters(), base, direction):
                    p.copy_(b + alpha * d)
            loss, acc = models.evaluate(model, x, y)
            rows.append({"alpha": float(alpha), "loss": loss, "acc": acc})
    return rows


def slice_2d(model, d1, d2, x, y, alphas, betas) -> list[dict]:
    """Loss and accuracy at w + alpha d1 + beta d2 on a grid."""
    rows = []
    with frozen(model):
        base = [p.detach().clone() for p in model.parameters()]
        for alpha in alphas:
            for beta in betas:
                with torch.no_grad():
                    for p, b, u, v in zip(model.parameters(), base, d1, d2):
                        p.copy_(b + alpha * u + beta * v)
                loss, acc = models.evaluate(model, x, y)
                rows.append({"alpha": float(alpha), "beta": float(beta), "loss": loss, "acc": acc})
    return rows


def interpolate(model, state_a: dict, state_b: dict, splits: dict, alphas) -> list[dict]:
    """Keskar's parametric plot: loss and accuracy of (1 - alpha) w_a + alpha w_b on each split.

    Floating-point buffers (batch-norm running statistics) are interpolated too; ``splits`` maps a
    name (train, val) to (x, y).
    """
    rows = []
    with frozen(model):
        for alpha in alphas:
            mixed = {k: ((1 - alpha) * v + alpha * state_b[k]) if v.is_floating_point() else v
                     for k, v in state_a.items()}
            model.load_state_dict(mixed)
            row = {"alpha": float(alpha)}
            for name, (x, y) in splits.items():
                row[f"{name}_loss"], row[f"{name}_acc"] = models.evaluate(model, x, y)
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# everything, for one model and for every seed of a run


def measure(model, x, y, top_k: int = 5, lanczos_tol: float = 1e-3, trace_samples: int = 32,
            epsilons=(1e-3, 5e-4), subspace_dim: int = 100, lbfgs_iters: int = 10, slice_points: int = 25,
            contour_points: int = 0, density: bool = False, seed: int = 0) -> tuple[dict, dict]:
    """All sharpness measures of ``model`` on (x, y): one record of scalars and tidy tables (lists of rows)."""
    import time

    record, tables = {"examples": len(y), "n_params": sum(p.numel() for p in model.parameters())}, {}
    start = time.perf_counter()
    with Hessian(model, x, y) as h:
        eig = top_eigenvalues(h, k=min(top_k, h.n - 1), tol=lanczos_tol, seed=seed)
        record.update(lambda_max=float(eig.values[0]), lambda_residual=float(eig.residuals[0]),
                      lanczos_matvecs=eig.matvecs, lanczos_seconds=time.perf_counter() - start)
        tables["eigenvalues"] = [{"rank": i + 1, "eigenvalue": float(v), "residual": float(r)}
                                 for i, (v, r) in enumerate(zip(eig.values, eig.residuals))]
        start = time.perf_counter()
        tr = hutchinson(h, samples=trace_samples, seed=seed)
        record.update(trace=tr.estimate, trace_stderr=tr.stderr, trace_matvecs=tr.matvecs,
                      trace_seconds=time.perf_counter() - start)
        if density:
            xs, dens = spectral_density(h, seed=seed)
            tables["density"] = [{"eigenvalue": float(a), "density": float(b)} for a, b in zip(xs, dens)]
    start = time.perf_counter()
    tables["eps_sharpness"] = []
    for eps in epsilons:
        for space, dim in (("full", None), (f"random {subspace_dim}-d", subspace_dim)):
            if dim is not None and dim >= record["n_params"]:
                continue
            r = eps_sharpness(model, x, y, epsilon=eps, dim=dim, iters=lbfgs_iters, seed=seed)
            tables["eps_sharpness"].append({"space": space, "epsilon": eps, "sharpness": r.value, "loss": r.loss,
                                            "max_loss": r.max_loss, "evaluations": r.evaluations})
            record[f"eps_{'full' if dim is None else 'sub'}_{eps:g}"] = r.value
    record["eps_seconds"] = time.perf_counter() - start
    record["train_loss"] = tables["eps_sharpness"][0]["loss"]
    alphas = np.linspace(-1.0, 1.0, slice_points)
    tables["slices"] = slice_1d(model, filter_normalized_direction(model, seed=seed), x, y, alphas)
    if contour_points:
        tables["contours"] = _surface(model, x, y, contour_points, seed)
    return record, tables


def _surface(model, x, y, points: int, seed: int) -> list[dict]:
    """Li et al.'s 2-D picture: the loss over two filter-normalised directions (another seed for the second)."""
    grid = np.linspace(-1.0, 1.0, points)
    d1, d2 = (filter_normalized_direction(model, seed=seed), filter_normalized_direction(model, seed=seed + 10_000))
    return slice_2d(model, d1, d2, x, y, grid, grid)


def surface(model, states: dict, x, y, points: int, checkpoint: str = "final") -> list[dict]:
    """The 2-D loss surface (``points`` per axis, points squared loss evaluations: the costliest picture) around the
    first seed's weights of ``states`` (seed -> state dict), the one the findings draw; rows carry the seed and
    ``checkpoint``."""
    seed = min(states)
    with frozen(model):
        model.load_state_dict(states[seed])
        return [{"checkpoint": checkpoint, "seed": seed, **row} for row in _surface(model, x, y, points, seed)]


def measure_seeds(model, states: dict, x, y, progress: bool = True, **options) -> tuple[list[dict], dict]:
    """:func:`measure` for each seed's weights (``states``: seed -> state dict); rows carry their seed."""
    records, tables = [], {}
    items = sorted(states.items())
    if progress:
        from tqdm.std import tqdm  # text, not a widget: it stays readable in the HTML report

        items = tqdm(items, desc="sharpness", unit="seed")
    for seed, state in items:
        model.load_state_dict(state)
        record, found = measure(model, x, y, seed=seed, **options)
        records.append({"seed": seed, **record})
        for name, rows in found.items():
            tables.setdefault(name, []).extend({"seed": seed, **row} for row in rows)
    return records, tables


def measure_checkpoints(model, checkpoints: dict, x, y, progress: bool = True,
                        **options) -> tuple[list[dict], dict]:
    """:func:`measure_seeds` at several checkpoints (``checkpoints``: name -> seed -> state dict); every record and
    row carries its ``checkpoint``. No 2-D surface (:func:`surface` takes the one the findings draw)."""
    records, tables = [], {}
    for name, states in checkpoints.items():
        found_records, found = measure_seeds(model, states, x, y, progress=progress, **options)
        records += [{"checkpoint": name, **r} for r in found_records]
        for table, rows in found.items():
            tables.setdefault(table, []).extend({"checkpoint": name, **row} for row in rows)
    return records, tables


def top_eigenvalue_at(model, checkpoints: dict, x, y, tol: float = 1e-3, progress: bool = True) -> list[dict]:
    """The top Hessian eigenvalue (Lanczos, k = 1) and the training loss at each checkpoint (``checkpoints``:
    name -> seed -> state dict): C6 compares batch sizes at the lowest loss level every run reached, so every
    level's checkpoint is measured, at a fraction of :func:`measure`'s cost. One record per (checkpoint, seed)."""
    items = [(name, seed, state) for name, states in checkpoints.items() for seed, state in sorted(states.items())]
    if progress:
        from tqdm.std import tqdm  # text, not a widget: it stays readable in the HTML report

        items = tqdm(items, desc="top eigenvalue at each level", unit="checkpoint")
    records = []
    for name, seed, state in items:
        model.load_state_dict(state)
        with Hessian(model, x, y) as h:
            eig = top_eigenvalues(h, k=1, tol=tol, seed=seed)
        records.append({"checkpoint": name, "seed": seed, "lambda_max": float(eig.values[0]),
                        "lambda_residual": float(eig.residuals[0]), "lanczos_matvecs": eig.matvecs,
                        "train_loss": loss_at(model, x, y), "examples": len(y)})
    return records


def of_seed_runs(runs, data, spec, data_seed: int = 0, examples: int = 4096) -> list[dict]:
    """:func:`top_eigenvalue_at` every loss level of trained seed runs (:class:`bsnb.train.SeedRun`, their weights
    in memory), and at the smoothed minimum ("best"), on ``examples`` training examples as notebook 03 takes them:
    C16 compares the top eigenvalue of a learning-rate rule's runs with the comparison's, at the same training
    loss (and at the minimum beside it)."""

    x, y = subset(data.x_train, data.y_train, examples, seed=data_seed)
    net = models.of_job({"model": spec.model, "width": spec.width, "batch_norm": spec.batch_norm}, data)
    names = [*map(results.level_checkpoint, results.MATCHED_LEVELS), "best"]  # "best": the smoothed minimum's
    levels = {name: {r.seed: r.states[name] for r in runs if name in r.states} for name in names}
    return top_eigenvalue_at(net, levels, x, y)

