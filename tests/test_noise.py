"""Gradient noise against exact answers: per-example gradients, the variance formula, the two-batch estimator."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bsnb import models, noise


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    net = models.build("cnn", (40,), 10, width=6, batch_norm=True)
    x, y = torch.randn(300, 40), torch.randint(0, 10, (300,))
    net.train()
    net(x)  # running statistics that differ from a fresh model's
    return net, x, y


def test_per_example_gradients_equal_gradients_taken_one_at_a_time(small):
    net, x, y = small
    batched = torch.cat(list(noise.per_example_grads(net, x[:20], y[:20], chunk=7)))
    net.eval()
    for i in (0, 7, 19):
        loss = F.cross_entropy(net(x[i:i + 1]), y[i:i + 1])
        one = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(net.parameters()))])
        assert torch.allclose(batched[i], one, atol=1e-6)
    net.train()


def test_chunks_stay_bounded_and_do_not_change_the_statistics(small):
    net, x, y = small
    chunks = list(noise.per_example_grads(net, x, y, chunk=32))
    assert max(c.shape[0] for c in chunks) == 32 and sum(c.shape[0] for c in chunks) == 300
    a, b = noise.gradient_stats(net, x, y, chunk=32), noise.gradient_stats(net, x, y, chunk=300)
    assert a.tr_sigma == pytest.approx(b.tr_sigma, rel=1e-9) and a.g2 == pytest.approx(b.g2, rel=1e-9)
    # the full gradient is the gradient of the mean loss
    assert torch.allclose(a.full_gradient, noise.batch_gradient(net, x, y), atol=1e-6)


@pytest.mark.parametrize("b", [1, 4, noise.VECTORISED_UP_TO, 64])
def test_drawn_batch_gradients_equal_a_backward_pass_over_each_batch(small, b):
    """Small batches come from vectorised per-example gradients, large ones from a backward pass each: both are
    the gradient of the batch's mean loss (batch norm in eval mode)."""
    net, x, y = small
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randperm(len(y), generator=gen)[:b] for _ in range(21)]  # more than one vectorised pass
    drawn = noise.draw_gradients(net, x, y, batches, chunk=32)
    assert len(drawn) == len(batches)
    for idx, g in zip(batches, drawn):
        assert torch.allclose(g, noise.batch_gradient(net, x[idx], y[idx]), rtol=1e-5, atol=1e-7)


def test_loss_level_checkpoints_get_the_noise_scale_but_no_batch_draws(small):
    net, x, y = small
    state = {k: v.clone() for k, v in net.state_dict().items()}
    records, tables = noise.measure_seeds(net, {(0, "initial"): state, (0, "loss1"): state}, x, y, [4, 16], draws=3,
                                          progress=False)
    assert [r["checkpoint"] for r in records] == ["initial", "loss1"]
    assert records[0]["b_simple"] == pytest.approx(records[1]["b_simple"])  # the same weights
    assert {r["checkpoint"] for r in tables["variance"]} == {"initial"}


def test_measurements_leave_the_model_as_they_found_it(small):
    net, x, y = small
    before = {k: v.clone() for k, v in net.state_dict().items()}
    noise.gradient_stats(net, x, y)
    noise.variance_by_batch_size(net, x, y, noise.gradient_stats(net, x, y), [8], draws=3)
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def linear_regression(m=400, d=5, seed=0):
    """A linear model with squared loss: per-example gradients are known in closed form."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, d, generator=gen, dtype=torch.float64)
    w_true = torch.randn(d, generator=gen, dtype=torch.float64)
    y = x @ w_true + 0.5 * torch.randn(m, generator=gen, dtype=torch.float64)
    w = torch.zeros(d, dtype=torch.float64)
    per_example = 2 * (x @ w - y).unsqueeze(1) * x  # gradient of (x_i w - y_i)^2
    return x, y, per_example


def test_measured_variance_of_batch_gradients_matches_the_formula_within_sampling_error():
    x, y, g = linear_regression()
    m = len(y)
    full = g.mean(0)
    tr_sigma = float(((g - full) ** 2).sum(1).mean())
    rng = np.random.default_rng(0)
    for b in (1, 10, 100, 300):
        dev = np.array([float(((g[rng.choice(m, b, replace=False)].mean(0) - full) ** 2).sum()) for _ in range(4000)])
        se = dev.std(ddof=1) / math.sqrt(len(dev))
        assert abs(dev.mean() - noise.predicted_variance(tr_sigma, b, m)) <= 4 * se


def test_two_batch_estimator_agrees_with_the_exact_noise_scale():
    x, y, g = linear_regression(m=2000, d=5, seed=1)
    m = len(y)
    full = g.mean(0)
    exact = float(((g - full) ** 2).sum(1).mean()) / float(full @ full)
    rng = np.random.default_rng(1)
    g2s, ss = [], []
    for _ in range(3000):
        idx = rng.choice(m, 64, replace=False)
        big, small_ = g[idx].mean(0), g[idx[:16]].mean(0)
        g2, s = noise.two_batch(float(small_ @ small_), float(big @ big), 16, 64)
        g2s.append(g2)
        ss.append(s)
    # sampling without replacement from 2000 makes the estimate a little low (finite-population factor)
    assert noise.b_simple_from_estimates(g2s, ss) == pytest.approx(exact, rel=0.1)


def test_batch_draws_from_the_per_example_matrix_reach_the_protocols_standard_error(small):
    """the protocol's C5: enough draws for a 3% relative standard error of each measured mean; the matrix path gives
    the same batch gradients as the backward passes it replaces."""
    net, x, y = small
    grads = torch.cat(list(noise.per_example_grads(net, x, y))).double()
    stats = noise.gradient_stats(net, x, y, grads=grads)
    assert stats.g2 == pytest.approx(noise.gradient_stats(net, x, y).g2, rel=1e-6)
    summary, rows = noise.variance_by_batch_size(net, x, y, stats, [1, 16, 128], draws=20, grads=grads)
    for r in summary:
        assert r["rel_se"] <= noise.TARGET_SE and r["draws"] >= 20
        assert abs(r["measured"] - r["predicted"]) <= 4 * r["measured_se"]
    assert max(r["draw"] for r in rows) < noise.KEPT_DRAWS
    matrix = noise._Matrix(grads, stats.full_gradient)
    for b in (1, 16):  # a batch of one is a lookup of its example's own deviation; larger ones average rows
        idx = noise._batches(torch.Generator().manual_seed(0), len(y), b, 5)
        dev, cos = matrix.draws(idx)
        direct = [noise.batch_gradient(net, x[i], y[i]) for i in idx]
        g = stats.full_gradient
        assert np.allclose(dev, [float(((d - g) ** 2).sum()) for d in direct], rtol=1e-4)
        assert np.allclose(cos, [float(d @ g / (d.norm() * g.norm())) for d in direct], rtol=1e-4)
        assert all(len(set(i.tolist())) == b for i in idx)  # each batch drawn without replacement
