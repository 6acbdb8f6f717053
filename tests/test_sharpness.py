"""Curvature measures against exact answers on problems small enough to solve densely."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

from bsnb import models, sharpness


@pytest.fixture(scope="module")
def tiny():
    """A float64 MLP with 10 inputs and 3 classes (~190 parameters) on 64 examples."""
    torch.manual_seed(0)
    model = models.build("mlp", (10,), 3, width=8).double()
    x = torch.randn(64, 10, dtype=torch.float64)
    y = torch.randint(0, 3, (64,))
    for _ in range(200):  # move near a minimum so the spectrum looks like a trained net's
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= 0.5 * g
    return model, x, y


def dense_hessian(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def f(flat):
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return hessian(f)(sharpness.flat_params(model)).numpy()


def test_top_eigenvalues_match_the_dense_hessian(tiny):
    model, x, y = tiny
    exact = np.sort(np.linalg.eigvalsh(dense_hessian(model, x, y)))[::-1][:5]
    with sharpness.Hessian(model, x, y) as h:
        eig = sharpness.top_eigenvalues(h, k=5, tol=1e-12)
    assert np.max(np.abs(eig.values - exact) / np.abs(exact)) <= 1e-6
    assert np.all(eig.residuals < 1e-6 * np.abs(eig.values).max())
    assert eig.matvecs > 0


def test_hutchinson_trace_is_within_three_standard_errors_of_the_exact_trace(tiny):
    model, x, y = tiny
    exact = np.trace(dense_hessian(model, x, y))
    with sharpness.Hessian(model, x, y) as h:
        tr = sharpness.hutchinson(h, samples=100, seed=1)
    assert tr.stderr > 0 and tr.samples == 100 and tr.matvecs == 100
    assert abs(tr.estimate - exact) <= 3 * tr.stderr


def test_spectral_density_integrates_to_one_and_covers_the_top_eigenvalue(tiny):
    model, x, y = tiny
    top = np.linalg.eigvalsh(dense_hessian(model, x, y)).max()
    with sharpness.Hessian(model, x, y) as h:
        xs, dens = sharpness.spectral_density(h, steps=30, probes=3)
    assert np.trapezoid(dens, xs) == pytest.approx(1.0, abs=0.02)
    assert xs.max() >= top * 0.99


def test_eps_sharpness_finds_the_closed_form_maximum_of_a_quadratic():
    rng = np.random.default_rng(0)
    n = 30
    d, b, w = rng.uniform(0.5, 3, n), rng.normal(size=n), rng.normal(size=n)
    objective = lambda z: (0.5 * np.sum(d * z * z) + b @ z, d * z + b)  # noqa: E731
    eps = 1e-2
    r = eps * (np.abs(w) + 1)
    # a convex separable quadratic peaks, per coordinate, at the end of the box its gradient points to
    best = w + r * np.sign(d * w + b)
    f0, fmax, calls, dim = sharpness.maximise_in_box(objective, w, eps, iters=10)
    assert dim == n and calls >= 1
    assert fmax == pytest.approx(objective(best)[0], rel=1e-9)
    assert f0 == pytest.approx(objective(w)[0])


def test_eps_sharpness_of_a_model_in_full_space_and_a_random_subspace(tiny):
    model, x, y = tiny
    full = sharpness.eps_sharpness(model, x, y, epsilon=1e-3)
    sub = sharpness.eps_sharpness(model, x, y, epsilon=1e-3, dim=20, seed=0)
    assert full.value >= 0 and sub.value >= 0  # a maximum over a box that holds the start
    assert sub.dim == 20 and full.dim == sum(p.numel() for p in model.parameters())
    assert full.value == pytest.approx(100 * (full.max_loss - full.loss) / (1 + full.loss))


def test_filter_normalised_direction_has_the_norm_of_each_filter_and_zero_bias_and_bn():
    torch.manual_seed(0)
    net = models.build("cnn", (40,), 10, width=6, batch_norm=True)
    direction = sharpness.filter_normalized_direction(net, seed=3)
    for p, d in zip(net.parameters(), direction):
        if p.dim() <= 1:
            assert torch.count_nonzero(d) == 0
        else:
            assert torch.allclose(d.reshape(p.shape[0], -1).norm(dim=1), p.reshape(p.shape[0], -1).norm(dim=1),
                                  rtol=1e-5)


def test_interpolation_at_zero_and_one_gives_each_models_own_loss():
    torch.manual_seed(0)
    x, y = torch.randn(50, 40), torch.randint(0, 10, (50,))
    a, b = models.build("cnn", (40,), 10, 6), models.build("cnn", (40,), 10, 6)
    rows = sharpness.interpolate(a, a.state_dict(), b.state_dict(), {"train": (x, y)}, [0.0, 0.5, 1.0])
    assert rows[0]["train_loss"] == pytest.approx(sharpness.loss_at(a, x, y), rel=1e-6)
    assert rows[-1]["train_loss"] == pytest.approx(sharpness.loss_at(b, x, y), rel=1e-6)


def test_one_d_slice_at_zero_is_the_models_loss():
    torch.manual_seed(0)
    x, y = torch.randn(50, 40), torch.randint(0, 10, (50,))
    net = models.build("cnn", (40,), 10, 6)
    rows = sharpness.slice_1d(net, sharpness.filter_normalized_direction(net), x, y, [-0.5, 0.0, 0.5])
    assert rows[1]["loss"] == pytest.approx(sharpness.loss_at(net, x, y), rel=1e-6)
    grid = sharpness.slice_2d(net, sharpness.filter_normalized_direction(net, 1),
                              sharpness.filter_normalized_direction(net, 2), x, y, [0.0, 1.0], [0.0, 1.0])
    assert len(grid) == 4 and grid[0]["loss"] == pytest.approx(rows[1]["loss"], rel=1e-6)


def test_measurements_leave_parameters_buffers_and_mode_unchanged():
    torch.manual_seed(0)
    net = models.build("cnn", (40,), 10, width=6, batch_norm=True)
    x, y = torch.randn(80, 40), torch.randint(0, 10, (80,))
    net.train()
    net(x)  # non-trivial running statistics
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with sharpness.Hessian(net, x, y) as h:
        sharpness.top_eigenvalues(h, k=2, tol=1e-3)
        sharpness.hutchinson(h, samples=4)
    sharpness.eps_sharpness(net, x, y, iters=3)
    sharpness.eps_sharpness(net, x, y, dim=5, iters=3)
    sharpness.slice_1d(net, sharpness.filter_normalized_direction(net), x, y, [0.5])
    sharpness.interpolate(net, net.state_dict(), before, {"train": (x, y)}, [0.3])
    assert net.training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_2d_surface_is_a_grid_around_the_weights_and_its_centre_is_the_loss(tiny):
    model, x, y = tiny
    record, tables = sharpness.measure(model, x, y, top_k=2, trace_samples=4, epsilons=[1e-3], subspace_dim=5,
                                       lbfgs_iters=1, slice_points=3, contour_points=3)
    grid = tables["contours"]
    assert len(grid) == 9 and {r["alpha"] for r in grid} == {-1.0, 0.0, 1.0}
    centre = next(r for r in grid if r["alpha"] == 0 and r["beta"] == 0)
    assert centre["loss"] == pytest.approx(record["train_loss"], rel=1e-6)


def test_contours_draw_the_small_and_the_large_batch_on_the_same_levels():
    import pandas as pd

    from bsnb import plots

    rows = [{"batch_size": b, "seed": 0, "alpha": a, "beta": c, "loss": (1 + (b / 32) * (a * a + c * c)) / 10}
            for b in (32, 256) for a in np.linspace(-1, 1, 5) for c in np.linspace(-1, 1, 5)]
    fig = plots.contours(pd.DataFrame(rows), 32, 256)
    assert len(fig.axes) == 2 and "seed 0" in fig.bsnb_caption


def test_the_2d_surface_is_taken_once_for_the_first_seed_and_the_checkpoints_take_none(tiny):
    model, x, y = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoints = {"matched": {1: state, 0: state}}
    records, tables = sharpness.measure_checkpoints(model, checkpoints, x, y, progress=False, top_k=2, trace_samples=2,
                                                    epsilons=[1e-3], subspace_dim=5, lbfgs_iters=1, slice_points=3)
    assert len(records) == 2 and len(tables["slices"]) == 2 * 3 and "contours" not in tables
    rows = sharpness.surface(model, {1: state, 0: state}, x, y, 3)
    assert {(r["checkpoint"], r["seed"]) for r in rows} == {("final", 0)} and len(rows) == 9
    _, alone = sharpness.measure(model, x, y, top_k=2, trace_samples=2, epsilons=[1e-3], subspace_dim=5,
                                 lbfgs_iters=1, slice_points=3, contour_points=3, seed=0)
    assert [r["loss"] for r in rows] == [r["loss"] for r in alone["contours"]]  # the same surface as measure's
    assert all(torch.equal(state[k], model.state_dict()[k]) for k in state)  # the weights as they were
