"""Gradient noise: the batch gradient as an estimate of the full gradient.

The training loss is L(w) = (1/m) sum_i l_i(w); its gradient is G = (1/m) sum_i g_i. A batch of B
examples drawn without replacement gives g_B, an unbiased estimate of G with

    E |g_B - G|^2 = tr(Sigma) / B * (m - B) / (m - 1),

where tr(Sigma) = (1/m) sum_i |g_i - G|^2 is the trace of the per-example gradient covariance
(McCandlish et al. 2018 use it to define the simple noise scale B_simple = tr(Sigma) / |G|^2).
Per-example gradients come from ``torch.func`` (``vmap`` over ``grad``) in chunks, so memory is
bounded by the chunk size, not by the data. The model is in eval mode for all of it (batch norm
with running statistics couples no examples) and is left as it was found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from bsnb.models import frozen as _eval
from bsnb.results import CHECKPOINTS, LOSS_LEVELS, TARGET, level_checkpoint, window_start


def per_example_grads(model, x, y, chunk: int = 256):
    """Yield the flat per-example gradients of the cross-entropy, ``chunk`` examples at a time ([c, P] each)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss_one(p, xi, yi):
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))
    with _eval(model):
        for i in range(0, len(y), chunk):
            grads = per_example(params, x[i:i + chunk], y[i:i + chunk])
            yield torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)


@dataclass
class GradientStats:
    full_gradient: torch.Tensor  # G, flat
    g2: float  # |G|^2
    tr_sigma: float  # (1/m) sum |g_i - G|^2
    examples: int

    @property
    def b_simple(self) -> float:
        return self.tr_sigma / self.g2 if self.g2 > 0 else math.inf


def gradient_stats(model, x, y, chunk: int = 256, grads: torch.Tensor | None = None) -> GradientStats:
    """G, |G|^2, tr(Sigma) and B_simple from per-example gradients, streamed in chunks (float64 sums), or from
    ``grads`` ([m, P]) when they were computed already."""
    total, sq, m = None, 0.0, 0
    for g in (grads.split(chunk) if grads is not None else per_example_grads(model, x, y, chunk)):
        g = g.double()
        total = g.sum(0) if total is None else total + g.sum(0)
        sq += float((g * g).sum())
        m += g.shape[0]
    mean = total / m
    g2 = float(mean @ mean)
    return GradientStats(mean, g2, sq / m - g2, m)


def batch_gradient(model, x, y) -> torch.Tensor:
    """The flat gradient of the mean cross-entropy over (x, y), model in eval mode."""
    with _eval(model):
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, [p for p in model.parameters()])
    return torch.cat([g.reshape(-1) for g in grads]).double()


def predicted_variance(tr_sigma: float, b: int, m: int) -> float:
    """E |g_B - G|^2 for B examples drawn without replacement from m."""
    return tr_sigma / b * (m - b) / (m - 1) if m > 1 else 0.0


VECTORISED_UP_TO = 16  # batch sizes whose draws are taken from vectorised per-example gradients (see below)


def draw_gradients(model, x, y, batches: list[torch.Tensor], chunk: int = 256) -> list[torch.Tensor]:
    """The flat float64 gradient of the mean loss over each index set in ``batches`` (all of one size b).

    A small batch's gradient is the mean of its examples' gradients, which one vectorised pass gives
    for many batches at once (in eval mode the loss couples no examples, so it is the batch gradient,
    up to rounding); larger batches take one backward pass each. On the default CNN (one thread),
    2,048 single examples took 1.42 s one backward pass at a time and 0.24 s vectorised, 128 batches
    of 16 0.17 against 0.08 s, but 50 batches of 64 0.08 against 0.14 s: a backward pass costs about
    1 ms plus 10 us an example, a vectorised example about 40 us.
    """
    b = len(batches[0])
    if b > min(chunk, VECTORISED_UP_TO):
        return [batch_gradient(model, x[idx], y[idx]) for idx in batches]
    per_pass = max(1, chunk // b)
    out = []
    for i in range(0, len(batches), per_pass):
        idx = torch.cat(batches[i:i + per_pass])
        g = torch.cat(list(per_example_grads(model, x[idx], y[idx], chunk=len(idx)))).double()
        out.extend(g.view(-1, b, g.shape[1]).mean(1))
    return out


TARGET_SE = 0.03  # docs/protocol.md: C5's measured variance with enough draws for a 3% relative standard error
MAX_GATHERED = 1 << 22  # at most this many example gradients summed per batch size (4M: 4,096 draws of 1,024)
MATRIX_BYTES = 1 << 30  # per-example gradients kept as one matrix up to this size, else drawn by backward passes
KEPT_DRAWS = 200  # draws per batch size kept in the per-draw table (the cosine figure)


def _batches(gen: torch.Generator, m: int, b: int, n: int) -> torch.Tensor:
    """``n`` batches of ``b`` indices out of ``m`` ([n, b]), each drawn without replacement: consecutive slices of
    random permutations (each slice is a uniform sample; slices of one permutation do not overlap)."""
    per = m // b
    perms = torch.stack([torch.randperm(m, generator=gen)[:per * b] for _ in range(-(-n // per))])
    return perms.view(-1, b)[:n]


class _Matrix:
    """The per-example gradients ([m, P], float64) arranged for drawing batches from them: a float32 copy that
    ``embedding_bag`` averages rows of (half the memory traffic; the mean of up to 1,024 rows keeps a relative
    error near 1e-7, against the 3% the check needs), and each example's own |g_i - G|^2 and cosine, in float64:
    a batch of one is a lookup."""

    def __init__(self, grads: torch.Tensor, g_full: torch.Tensor):
        self.rows = grads.float()
        self.g_full, self.g2 = g_full, float(g_full @ g_full)
        dot = grads @ g_full
        sq = torch.linalg.vector_norm(grads, dim=1) ** 2
        self.dev_each = (sq - 2 * dot + self.g2).clamp_min(0).cpu().numpy()
        self.cos_each = (dot / (sq.sqrt() * math.sqrt(self.g2) + 1e-30)).cpu().numpy()

    def draws(self, idx: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """|g_B - G|^2 and cosine(g_B, G) of each batch of ``idx`` ([n, b]), g_B the mean of its rows."""
        n, b = idx.shape
        if b == 1:
            first = idx[:, 0].cpu().numpy()
            return self.dev_each[first], self.cos_each[first]
        block = max(1, 4096 // b)
        dev, cos = [], []
        for i in range(0, n, block):  # embedding_bag averages the rows without copying them out
            g = F.embedding_bag(idx[i:i + block], self.rows, mode="mean").double()
            dot = g @ self.g_full
            sq = torch.linalg.vector_norm(g, dim=1) ** 2  # |g_B - G|^2 = |g_B|^2 - 2 g_B.G + |G|^2: no [n, P] temporaries
            dev.append((sq - 2 * dot + self.g2).clamp_min(0))
            cos.append(dot / (sq.sqrt() * math.sqrt(self.g2) + 1e-30))
        return torch.cat(dev).cpu().numpy(), torch.cat(cos).cpu().numpy()


def variance_by_batch_size(model, x, y, stats: GradientStats, batch_sizes, draws: int = 50, seed: int = 0,
                           min_examples: int = 2048, chunk: int = 256, grads: torch.Tensor | None = None,
                           target_se: float = TARGET_SE):
    """For each batch size, random batches: |g_B - G|^2 and cosine(g_B, G) beside the prediction.

    Each batch size gets ``draws`` batches, or more, so that it sees at least ``min_examples``
    examples in all: at trained weights a few examples carry most of the gradient, and 50 draws of
    one example would mostly miss them. With the per-example gradients at hand (``grads``, [m, P],
    float64) a batch gradient is the mean of its rows, and more batches are drawn until the measured
    mean has a relative standard error of at most ``target_se`` (the protocol's 3%) or
    :data:`MAX_GATHERED` example gradients were summed; ``rel_se`` says what was reached. Returns
    (summary rows, per-draw rows: the first :data:`KEPT_DRAWS` of each batch size).
    """
    gen = torch.Generator().manual_seed(seed)
    m = len(y)
    g_full = stats.full_gradient
    matrix = _Matrix(grads, g_full.to(grads.device)) if grads is not None else None
    summary, draws_rows = [], []
    for b in batch_sizes:
        if b > m:
            continue
        n_new = max(draws, math.ceil(min_examples / b))
        if grads is None:  # one backward pass (or vectorised pass) per batch: the fixed number of draws
            dev, cos = [], []
            for g in draw_gradients(model, x, y, list(_batches(gen, m, b, n_new).to(y.device)), chunk):
                g = g.to(g_full.device)
                dev.append(float((g - g_full) @ (g - g_full)))
                cos.append(float(g @ g_full / (g.norm() * g_full.norm() + 1e-30)))
            dev, cos = np.asarray(dev), np.asarray(cos)
        else:
            dev, cos = np.empty(0), np.empty(0)
            while n_new > 0:
                d, c = matrix.draws(_batches(gen, m, b, n_new).to(grads.device))
                dev, cos = np.r_[dev, d], np.r_[cos, c]
                rel_se = dev.std(ddof=1) / math.sqrt(len(dev)) / dev.mean() if dev.mean() > 0 else math.inf
                wanted = math.ceil(len(dev) * ((rel_se / target_se) ** 2 - 1) * 1.1) if rel_se > target_se else 0
                n_new = max(0, min(wanted, MAX_GATHERED // b - len(dev)))
        draws_rows += [{"drawn_batch": b, "draw": i, "deviation": float(d), "cosine": float(c)}
                       for i, (d, c) in enumerate(zip(dev[:KEPT_DRAWS], cos[:KEPT_DRAWS]))]
        se = dev.std(ddof=1) / math.sqrt(len(dev))
        summary.append({"drawn_batch": b, "measured": dev.mean(), "measured_se": se,
                        "predicted": predicted_variance(stats.tr_sigma, b, m), "cosine_mean": float(np.mean(cos)),
                        "cosine_sd": float(np.std(cos, ddof=1)), "draws": len(dev), "rel_se": float(se / dev.mean())})
    return summary, draws_rows


def two_batch(g2_small: float, g2_big: float, b_small: int, b_big: int) -> tuple[float, float]:
    """McCandlish et al.'s unbiased estimates (App. A.1) of |G|^2 and S = tr(Sigma) from the squared norms of
    two batch gradients, of ``b_small`` and ``b_big`` examples."""
    g2 = (b_big * g2_big - b_small * g2_small) / (b_big - b_small)
    s = (g2_small - g2_big) / (1 / b_small - 1 / b_big)
    return g2, s


def two_batch_at_step(model, big_grads: list, x, y) -> dict:
    """McCandlish's two-batch estimate during training, at one step of one model: |g|^2 of its batch (``big_grads``,
    the gradient the optimiser is about to use) and of the batch's first quarter.

    A quarter rather than a half gives the estimator more contrast between the two batch sizes. The small batch's
    gradient is taken with autograd.grad on ``model`` (the .grad the optimiser will use is not touched), and batch
    norm's running statistics are restored after its forward pass.
    """
    g2_big = float(sum((g.double() ** 2).sum() for g in big_grads))
    quarter = max(1, len(y) // 4)
    buffers = [b.detach().clone() for b in model.buffers()]
    grads = torch.autograd.grad(F.cross_entropy(model(x[:quarter]), y[:quarter]), list(model.parameters()))
    with torch.no_grad():
        for b, saved in zip(model.buffers(), buffers):
            b.copy_(saved)
    g2_small = float(sum((g.double() ** 2).sum() for g in grads))
    g2_est, s_est = two_batch(g2_small, g2_big, quarter, len(y))
    return {"b_small": quarter, "b_big": len(y), "g2_small": g2_small, "g2_big": g2_big, "g2_est": g2_est,
            "s_est": s_est}


def b_simple_from_estimates(g2: np.ndarray, s: np.ndarray) -> float:
    """B_simple from many two-batch estimates: the ratio of their means (each estimate alone is too noisy)."""
    g2, s = np.asarray(g2, float), np.asarray(s, float)
    return float(s.mean() / g2.mean()) if g2.mean() > 0 else math.inf


def measure_seeds(model, states: dict, x, y, batch_sizes, draws: int = 50, chunk: int = 256,
                  progress: bool = True, draws_at=CHECKPOINTS) -> tuple[list[dict], dict]:
    """Gradient statistics at each checkpoint of each seed, and the batch-gradient variance at the checkpoints
    named in ``draws_at`` (the loss-level checkpoints only need B_simple).

    ``states`` maps (seed, checkpoint name) to a state dict. Returns per-(seed, checkpoint) records
    and tables ``variance`` and ``cosines``.
    """
    items = list(states.items())
    if progress:
        from tqdm.std import tqdm  # text, not a widget: it stays readable in the HTML report

        items = tqdm(items, desc="gradient noise", unit="checkpoint")
    records, tables = [], {"variance": [], "cosines": []}
    n_params = sum(p.numel() for p in model.parameters())
    for (seed, checkpoint), state in items:
        model.load_state_dict(state)
        keep = checkpoint in draws_at and len(y) * n_params * 4 <= MATRIX_BYTES
        grads = torch.cat(list(per_example_grads(model, x, y, chunk))).double() if keep else None
        stats = gradient_stats(model, x, y, chunk, grads)
        with _eval(model), torch.no_grad():
            loss = float(F.cross_entropy(model(x), y))
        record = {"seed": seed, "checkpoint": checkpoint, "examples": stats.examples, "g2": stats.g2,
                  "tr_sigma": stats.tr_sigma, "b_simple": stats.b_simple, "train_loss": loss}
        records.append(record)
        if checkpoint not in draws_at:
            continue
        summary, rows = variance_by_batch_size(model, x, y, stats, batch_sizes, draws, seed, chunk=chunk, grads=grads)
        tables["variance"] += [{"seed": seed, "checkpoint": checkpoint, **r} for r in summary]
        tables["cosines"] += [{"seed": seed, "checkpoint": checkpoint, **r} for r in rows]
    return records, tables


def b_simple_along_training(noise_log: pd.DataFrame, window: int = 8) -> pd.DataFrame:
    """B_simple from the two-batch estimates logged along training: the ratio of moving means (``window`` logged
    steps) of S and |G|^2, per (batch size, seed). Negative where the mean |G|^2 estimate is."""
    rows = []
    for (bs, seed), g in noise_log.groupby(["batch_size", "seed"]):
        g = g.sort_values("step")
        s = g["s_est"].rolling(window, min_periods=window).mean()
        g2 = g["g2_est"].rolling(window, min_periods=window).mean()
        rows.append(pd.DataFrame({"batch_size": bs, "seed": seed, "step": g["step"], "b_simple": s / g2,
                                  "window": window}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["batch_size", "seed", "step", "b_simple", "window"])


def exact_b_simple_by_step(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Notebook 01's exact B_simple per (seed, checkpoint), placed at the optimiser step of its checkpoint in the
    run it measured (initial: step 0; best: the epoch of minimum validation loss; final: the last step; loss<level>:
    the first evaluated epoch whose training loss was at or below the level; target: the first whose validation
    loss was at or below the search's target; ``+i``: the i-th evaluated epoch after those)."""
    r = runs[runs["notebook"] == "01_what_is_batch_size"] if "notebook" in runs else runs.iloc[0:0]
    if r.empty or "checkpoint" not in r:
        return pd.DataFrame()
    source = runs[(runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == r["batch_size"].iloc[0])]
    levels = {level_checkpoint(lv): lv for lv in LOSS_LEVELS}
    rows = []
    for rec in r.itertuples():
        src = source[source["seed"] == rec.seed]
        if src.empty:
            continue
        s = src.iloc[0]
        step = {"initial": 0, "best": s.get("step_of_min_val_loss"), "final": s.get("steps_run")}.get(rec.checkpoint)
        first, i = window_start(rec.checkpoint)
        crossing = ("train_loss", levels[first]) if first in levels else \
            ("val_loss", s.get("checkpoint_val_loss")) if first == TARGET else None
        if crossing and pd.notna(crossing[1]) and "job_id" in epochs:
            hist = epochs[(epochs["job_id"] == s["job_id"]) & (epochs["seed"] == rec.seed)]
            fell = hist.loc[hist[crossing[0]] <= crossing[1], "step"]
            after = hist.loc[hist["step"] >= fell.min(), "step"].sort_values() if len(fell) else []
            step = after.iloc[i] if len(after) > i else None  # the i-th evaluated epoch of the window
        if step is not None and pd.notna(step):
            rows.append({"seed": rec.seed, "checkpoint": rec.checkpoint, "batch_size": rec.batch_size,
                         "step": float(step), "b_simple": rec.b_simple})
    return pd.DataFrame(rows)
