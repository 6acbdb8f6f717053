"""Training several models as one (bsnb.stacking): the same gradients, losses and records as one at a time."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from bsnb import data, stacking, train

# (model, batch_norm, ghost_batch): the batched-matmul path (cnn) and the vmap path (the rest)
ARCHITECTURES = [("cnn", False, 0), ("cnn", True, 0), ("cnn", True, 8), ("mlp", False, 0), ("cnn2d", True, 0)]


@pytest.fixture(scope="module")
def small():
    return data.load("mnist1d", 240, 100, 100)


def _modules(model, bn, ghost, seeds, shape=(40,)):
    return stacking.build(model, shape, 10, 6, bn, ghost, seeds, torch.device("cpu"))


@pytest.mark.parametrize("model,bn,ghost", ARCHITECTURES)
def test_first_step_gradients_equal_those_of_each_model_alone(model, bn, ghost):
    shape = (8, 8) if model == "cnn2d" else (40,)
    seeds = [0, 1, 2]
    alone = _modules(model, bn, ghost, seeds, shape)
    net = stacking.Stacked(_modules(model, bn, ghost, seeds, shape))
    assert net.batched == (model == "cnn" and not bn)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 32, *shape, generator=g), torch.randint(0, 10, (3, 32), generator=g)
    losses = F.cross_entropy(net(x).flatten(0, 1), y.flatten(), reduction="none").view(3, -1).mean(1)
    losses.sum().backward()
    for j, module in enumerate(alone):
        loss = F.cross_entropy(module(x[j]), y[j])
        loss.backward()
        assert losses[j].item() == pytest.approx(loss.item(), rel=1e-5)
        for name, p in module.named_parameters():
            torch.testing.assert_close(net.params[name].grad[j], p.grad, rtol=1e-5, atol=1e-6)  # zero-mean bias grads before BN


def test_batch_norm_keeps_running_statistics_per_model():
    seeds = [0, 1, 2]
    alone = _modules("cnn", True, 8, seeds)
    net = stacking.Stacked(_modules("cnn", True, 8, seeds))
    x = torch.randn(3, 32, 40, generator=torch.Generator().manual_seed(1))
    net.train()
    net(x)
    for j, module in enumerate(alone):
        module.train()
        module(x[j])
        for name, b in module.named_buffers():
            torch.testing.assert_close(net.buffers[name][j], b)
    means = net.buffers["features.1.running_mean"]
    assert not torch.allclose(means[0], means[1]) and not torch.allclose(means[1], means[2])
    # evaluation takes each model as an ordinary module, with its own running statistics
    for j, module in enumerate(alone):
        module.eval()
        torch.testing.assert_close(net.module_of(j).eval()(x[0]), module(x[0]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind,wd", [("sgd", 0.0), ("sgd", 1e-3), ("adam", 0.0), ("adam", 1e-3), ("adamw", 1e-2)])
def test_optimizer_is_torch_optim_per_model_and_a_zero_rate_freezes(kind, wd):
    seeds = [0, 1]
    alone = _modules("cnn", False, 0, seeds)
    net = stacking.Stacked(_modules("cnn", False, 0, seeds))
    lrs = [0.05, 0.01]
    opt = stacking.Optimizer(net.parameters(), kind, lrs, momentum=0.9, weight_decay=wd, beta2=0.99)
    refs = stacking.SeparateOptimizer(alone, kind, lrs, momentum=0.9, weight_decay=wd, beta2=0.99)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):  # the same gradients for both, so only the update rules are compared
        x, y = torch.randn(2, 16, 40, generator=g), torch.randint(0, 10, (2, 16), generator=g)
        refs.zero_grad()
        for j, m in enumerate(alone):
            F.cross_entropy(m(x[j]), y[j]).backward()
        for name, p in net.params.items():
            p.grad = torch.stack([dict(m.named_parameters())[name].grad for m in alone])
        opt.step()
        refs.step()
    for j, m in enumerate(alone):
        for name, p in m.named_parameters():
            torch.testing.assert_close(net.params[name][j], p.detach(), rtol=1e-6, atol=1e-7)
    # rate 0 for model 0: it stays exactly as it is while model 1 moves
    before = copy.deepcopy(net.state(0)), copy.deepcopy(net.state(1))
    opt.set_lr([0.0, 0.05])
    opt.zero_grad()
    F.cross_entropy(net(x).flatten(0, 1), y.flatten(), reduction="none").view(2, -1).mean(1).sum().backward()
    opt.step()
    assert all(torch.equal(before[0][k], v) for k, v in net.state(0).items())
    assert not all(torch.equal(before[1][k], v) for k, v in net.state(1).items())


def _close_runs(a, b, rtol):
    assert [r["epoch"] for r in a.history] == [r["epoch"] for r in b.history]
    for key in ("train_loss", "val_loss", "train_loss_running"):
        assert [r[key] for r in a.history] == pytest.approx([r[key] for r in b.history], rel=rtol, nan_ok=True)
    assert [r["distance"] for r in a.steps] == pytest.approx([r["distance"] for r in b.steps], rel=max(rtol, 1e-4))
    assert [r["g2_big"] for r in a.noise] == pytest.approx([r["g2_big"] for r in b.noise], rel=max(rtol, 1e-4))
    assert a.states.keys() == b.states.keys()


def test_one_model_stacked_equals_the_single_path(small):
    spec = train.TrainSpec(batch_size=24, width=6, epochs=3, lr=0.05, log_points=20, noise_points=5)
    alone = train.train(spec, small, seed=4)
    stacked, = train.train_together(spec, small, [train.Member(4, spec, "seed4")], stacked=True)
    _close_runs(stacked, alone, 1e-5)
    assert stacked.summary["stacked"] == 1 and alone.summary["stacked"] == 1


@pytest.mark.parametrize("bn", [False, True])
def test_seeds_stacked_agree_with_seeds_one_after_another(small, bn):
    params = {"seeds": [0, 1, 2]}
    base = dict(batch_size=24, width=6, epochs=2, lr=0.05, log_points=20, noise_points=5, batch_norm=bn)
    one_by_one = train.train_seeds(params, small, progress=False, spec=train.TrainSpec(**base, stack="off"))
    stacked = train.train_seeds(params, small, progress=False, spec=train.TrainSpec(**base, stack="on"))
    assert [r.summary["stacked"] for r in stacked] == [3, 3, 3]
    assert [r.summary["stacked"] for r in one_by_one] == [1, 1, 1]
    for a, b in zip(stacked, one_by_one):
        assert a.seed == b.seed and a.label == b.label
        _close_runs(a, b, 1e-3)
        for k, v in b.states["final"].items():
            torch.testing.assert_close(a.states["final"][k], v, rtol=1e-3, atol=1e-5)


def test_a_stopped_model_stays_as_it_was_when_it_stopped(small):
    """Two learning rates stacked, with a target only the fast one reaches early: the fast one's record ends
    there, exactly as when it trains alone, while the slow one goes on."""
    fast = train.TrainSpec(batch_size=24, width=6, epochs=8, lr=0.1, target_loss=2.2)
    slow = train.TrainSpec(batch_size=24, width=6, epochs=8, lr=0.001, target_loss=2.2)
    runs = train.train_together(fast, small, [train.Member(0, fast, "fast"), train.Member(0, slow, "slow")],
                                stacked=True)
    alone = train.train(fast, small, seed=0)
    assert runs[0].summary["stopped_by"] == "target" and runs[0].summary["steps_run"] < runs[1].summary["steps_run"]
    _close_runs(runs[0], alone, 1e-4)
    for k, v in alone.states["final"].items():
        torch.testing.assert_close(runs[0].states["final"][k], v, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bn", [False, True])
def test_stopped_models_are_not_computed_and_the_others_numbers_do_not_change(small, bn, monkeypatch):
    """A search's runs stop at their own epochs: from then on the stack computes only the active models (here it
    shrinks from 3 to 1 once two diverge in the first epoch), and the model that goes on has the same record and
    weights as beside two models that never stop: to the bit on the batched path (one matrix product per model),
    up to rounding on vmap's (batch norm's batched reductions sum in another order), running statistics
    included."""
    sizes = []
    forward = stacking.Stacked._forward
    monkeypatch.setattr(stacking.Stacked, "_forward", lambda self, p, b, x: sizes.append(x.shape[0]) or
                        forward(self, p, b, x))
    spec = train.TrainSpec(batch_size=24, width=6, epochs=4, lr=0.05, batch_norm=bn)

    def beside(lr: float):
        mate = train.TrainSpec(batch_size=24, width=6, epochs=4, lr=lr, batch_norm=bn)
        members = [train.Member(0, spec, "goes on"), train.Member(1, mate, "a"), train.Member(2, mate, "b")]
        return train.train_together(spec, small, members, stacked=True)

    stopping = beside(1e6)
    assert [r.summary["status"] for r in stopping] == ["ok", "diverged", "diverged"]
    assert set(sizes) == {3, 1} and sizes.count(1) > sizes.count(3)
    sizes.clear()
    going_on = beside(0.05)
    assert set(sizes) == {3}
    exact = stacking.path("cnn", bn) == "batched"
    for a, b in ((stopping[0].history, going_on[0].history), (stopping[0].steps, going_on[0].steps)):
        pd.testing.assert_frame_equal(pd.DataFrame(a).drop(columns=["seconds", "examples_per_second"], errors="ignore"),
                                      pd.DataFrame(b).drop(columns=["seconds", "examples_per_second"], errors="ignore"),
                                      check_exact=exact, rtol=1e-5)
    for k, v in going_on[0].states["final"].items():
        torch.testing.assert_close(stopping[0].states["final"][k], v, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)


def test_a_diverging_model_does_not_disturb_the_others(small):
    good = train.TrainSpec(batch_size=24, width=6, epochs=3, lr=0.05)
    bad = train.TrainSpec(batch_size=24, width=6, epochs=3, lr=1e6)
    runs = train.train_together(good, small, [train.Member(0, good, "good"), train.Member(1, bad, "bad")],
                                stacked=True)
    assert runs[1].summary["status"] == "diverged" and runs[0].summary["status"] == "ok"
    _close_runs(runs[0], train.train(good, small, seed=0), 1e-4)


def test_auto_stacks_by_the_measured_rule_and_names_bad_choices():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    for way in ("batched", "vmap"):
        assert stacking.use_stack("auto", 3, stacking.CPU_MAX_BATCH[way], cpu, way)
        assert not stacking.use_stack("auto", 3, stacking.CPU_MAX_BATCH[way] * 2, cpu, way)
    assert stacking.path("cnn", False) == "batched" and stacking.path("cnn", True) == stacking.path("mlp", False)
    assert stacking.CPU_MAX_BATCH["batched"] > stacking.CPU_MAX_BATCH["vmap"]  # as benchmarks/stacking.py measured
    assert stacking.use_stack("auto", 3, 1024, gpu)
    assert not stacking.use_stack("auto", 1, 16, cpu) and not stacking.use_stack("on", 1, 16, cpu)
    assert stacking.use_stack("on", 3, 1024, cpu) and not stacking.use_stack("off", 3, 16, gpu)
    with pytest.raises(ValueError, match="stack = 'yes' is not allowed: expected one of auto, on, off"):
        stacking.use_stack("yes", 3, 16, cpu)


def test_stacked_and_separate_both_implement_the_one_protocol_the_loop_is_written_against():
    import inspect

    wanted = {n: f for n, f in vars(stacking.Replicas).items() if callable(f) and (not n.startswith("_") or n == "__call__")}
    assert {"train", "__call__", "grads", "weights", "state", "module_of"} <= set(wanted)
    for cls in (stacking.Stacked, stacking.Separate):
        for name, f in wanted.items():
            assert list(inspect.signature(getattr(cls, name)).parameters) == list(inspect.signature(f).parameters), \
                (cls.__name__, name)
        net = cls(_modules("cnn", False, 0, [0, 1]))
        assert net.m == 2 and net.active == [True, True]
