"""Remedies: learning-rate rules, warm-up, budgets, ghost batch norm and schedules."""

import math

import numpy as np
import pytest
import torch

from bsnb import data, models, parameters, remedies, train


@pytest.mark.parametrize("rule, b, expected", [
    ("none", 256, 0.01), ("linear", 256, 0.08), ("sqrt", 256, 0.01 * math.sqrt(8)),
    ("linear", 32, 0.01), ("sqrt", 8, 0.005),
])
def test_learning_rate_rules(rule, b, expected):
    assert remedies.scaled_lr(rule, lr0=0.01, b0=32, b=b) == pytest.approx(expected)


def test_warmup_ramps_linearly_from_the_reference_to_the_scaled_rate():
    values = [remedies.warmup_lr(t, 100, start=0.01, end=0.08) for t in (1, 50, 100, 150)]
    assert values == pytest.approx([0.01 + 0.07 / 100, 0.045, 0.08, 0.08])
    assert remedies.warmup_lr(5, 0, 0.01, 0.08) == 0.08


def test_the_training_loop_applies_warmup_step_by_step():
    spec = train.TrainSpec(batch_size=100, lr=0.08, warmup_steps=10, warmup_start_lr=0.01)
    assert [spec.lr_at(t, 1) for t in (1, 5, 10, 11)] == pytest.approx([0.017, 0.045, 0.08, 0.08])


def test_same_steps_budget_gives_the_reference_step_count():
    assert remedies.reference_steps(epochs=100, n_train=4000, b0=32) == 12500
    params = {**parameters.defaults("04_closing_the_gap"), "batch_size": 256, "remedy": "longer", "reference_batch": 32,
              "epochs": 100, "n_train": 4000}
    spec = train.TrainSpec.from_params(params, **remedies.options(params))
    assert spec.total_steps(4000) == 12500 and spec.n_epochs(4000) == math.ceil(12500 / 16)  # 16 steps per epoch
    # a profile's patience does not cut it short: with it, 'longer' is the plain large-batch run and stops where it does
    patient = {**params, "patience": 25}
    assert train.TrainSpec.from_params(patient, **remedies.options(patient)).patience == 0


def test_remedy_amounts_reach_the_loop_only_through_their_remedy():
    params = {**parameters.defaults("04_closing_the_gap"), "batch_size": 256, "remedy": "bn"}
    spec = train.TrainSpec.from_params(params, **remedies.options(params))
    assert spec.batch_norm and spec.ghost_batch == 0 and spec.target_loss == 0 and spec.warmup_steps == 0


@pytest.mark.parametrize("epoch, batch, lr_factor", [(1, 32, 1), (50, 32, 1), (51, 160, 1), (75, 160, 1),
                                                    (76, 400, 0.5), (100, 400, 0.5)])
def test_batch_growth_is_capped_at_a_tenth_of_the_training_set_and_gives_the_rest_to_the_rate(epoch, batch, lr_factor):
    # Smith et al.'s hybrid as docs/protocol.md fixes it: 32 -> 160 -> 800, capped at 4000 / 10 = 400, so the rate halves
    assert remedies.batch_at(epoch, 32, milestones=(50, 75), factor=5, n_train=4000) == batch
    assert remedies.growth_lr_factor(epoch, 32, (50, 75), 5, 4000) == pytest.approx(lr_factor)
    spec = train.TrainSpec(batch_size=32, lr=0.1, schedule="batch_growth", milestones=(50, 75), schedule_factor=5)
    assert spec.lr_at(1, epoch, 4000) == pytest.approx(0.1 * lr_factor)


def test_batch_growth_matches_lr_decay_milestones():
    assert remedies.batch_at(100, 1024, (50, 75), 5, n_train=4000) == 1024  # never below the starting batch
    assert [remedies.lr_factor_at(e, (50, 75), 5) for e in (50, 51, 76)] == pytest.approx([1, 0.2, 0.04])
    spec = train.TrainSpec(batch_size=8, schedule="batch_growth", milestones=(1,), schedule_factor=4, epochs=2)
    assert spec.total_steps(256) == 32 + 11  # 32 steps of 8, then 11 of 25 (a tenth of 256)


@pytest.mark.parametrize("remedy, epochs, lr", [("step", 60, 0.03), ("sqrt_step", 60, 0.03 * 8 ** 0.5),
                                                ("sqrt_step_longer", 480, 0.03 * 8 ** 0.5)])
def test_hoffers_arms_share_one_step_schedule_stretched_with_their_epochs(remedy, epochs, lr):
    batch = 32 if remedy == "step" else 256
    params = {**parameters.defaults("04_closing_the_gap"), "batch_size": batch, "remedy": remedy, "reference_batch": 32,
              "lr": 0.03, "epochs": 60, "patience": 25}
    spec = train.TrainSpec.from_params(params, **remedies.options(params))
    assert spec.epochs == epochs and spec.patience == 0 and spec.lr == pytest.approx(lr)
    assert spec.milestones == (epochs // 2, epochs * 3 // 4) and spec.max_evals >= epochs  # every epoch evaluated
    assert [spec.lr_at(1, e) / spec.lr for e in (epochs // 2, epochs // 2 + 1, epochs)] == pytest.approx([1, 0.1, 0.01])


def test_ghost_batch_norm_is_plain_batch_norm_when_the_chunk_is_the_whole_batch():
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    plain, ghost = torch.nn.BatchNorm1d(5), models.GhostBatchNorm1d(5, ghost=64)
    assert torch.allclose(plain(x), ghost(x))
    assert torch.allclose(plain.running_mean, ghost.running_mean)


def test_ghost_batch_norm_normalises_each_chunk_and_updates_running_statistics_per_chunk():
    torch.manual_seed(0)
    x = torch.randn(64, 5) + torch.arange(64).unsqueeze(1) / 10  # chunks with different means
    plain, ghost = torch.nn.BatchNorm1d(5), models.GhostBatchNorm1d(5, ghost=16)
    out = ghost(x)
    assert not torch.allclose(plain(x), out)
    for chunk in out.split(16):  # each chunk normalised by its own statistics
        assert torch.allclose(chunk.mean(0), torch.zeros(5), atol=1e-5)
    assert int(ghost.num_batches_tracked) == 4
    expected = torch.zeros(5)
    for chunk in x.split(16):
        expected = 0.9 * expected + 0.1 * chunk.mean(0)
    assert torch.allclose(ghost.running_mean, expected, atol=1e-6)
    ghost.eval()
    assert torch.allclose(ghost(x), torch.nn.functional.batch_norm(
        x, ghost.running_mean, ghost.running_var, ghost.weight, ghost.bias, False, 0.0, ghost.eps))


def test_every_preset_gives_valid_training_options():
    base = parameters.defaults("04_closing_the_gap")
    for name in remedies.PRESETS:
        params = {**base, "remedy": name, "batch_size": 256}
        spec = train.TrainSpec.from_params(params, **remedies.options(params))
        assert spec.total_steps(params["n_train"]) > 0
    ghost = {**base, "remedy": "ghost_bn", "batch_size": 256}
    assert remedies.options(ghost)["batch_norm"] and remedies.options(ghost)["ghost_batch"] == base["ghost_batch"]


def test_a_diverging_learning_rate_is_recorded_as_diverged():
    d = data.load("mnist1d", 200, 100, 100)
    runs = train.tune(train.TrainSpec(batch_size=50, width=8, epochs=3), d, lrs=[1e4, 0.05], seeds=[0],
                      target_loss=0.01, progress=False)
    assert [r.summary["status"] for r in runs] == ["diverged", "ok"]
    assert not runs[0].summary["reached_target"] and runs[1].summary["lr_used"] == 0.05


def test_pruned_search_finds_the_same_fewest_steps_as_the_full_search():
    d = data.load("mnist1d", 300, 100, 100)
    spec = train.TrainSpec(batch_size=30, width=8, epochs=15, stack="off")
    lrs = [0.01, 0.03, 0.1]
    full = [train.train(train.TrainSpec(batch_size=30, width=8, epochs=15, lr=lr, target_loss=2.0), d, seed=0)
            for lr in lrs]
    best = min(r.summary["steps_to_target"] for r in full if r.summary["reached_target"])
    pruned = train.tune(spec, d, lrs, [0], target_loss=2.0, progress=False)
    assert min(r.summary["steps_to_target"] for r in pruned if r.summary["reached_target"]) == best
    assert [r.summary["lr_used"] for r in pruned] == lrs and {r.summary["stacked"] for r in pruned} == {1}
    assert sum(r.summary["steps_run"] for r in pruned) <= sum(r.summary["steps_run"] for r in full)
    assert len({r.label for r in pruned}) == 3
    winner = next(k for k, r in enumerate(pruned) if r.summary["steps_to_target"] == best)
    stop = pruned[winner].summary["steps_run"]
    assert all(r.summary["steps_run"] == stop for r in pruned)  # the others stop at the winner's check ...
    assert all(r.summary["pruned"] for k, r in enumerate(pruned) if not r.summary["reached_target"])
    # ... and side by side each run is the same arithmetic as alone; the search skips the training split's
    # evaluation, and the validation losses that decide are unchanged
    assert all(np.isnan(r["train_loss"]) for r in pruned[winner].history)
    assert [r["val_loss"] for r in pruned[winner].history] == [r["val_loss"] for r in full[winner].history]
    assert not any(np.isnan(r["train_loss"]) for r in full[winner].history)


def test_a_search_with_patience_trains_every_rate_to_its_minimum_and_still_counts_steps_to_the_target():
    d = data.load("mnist1d", 300, 100, 100)
    lrs = [0.01, 0.03, 0.1]
    pruned = train.tune(train.TrainSpec(batch_size=30, width=8, epochs=15, stack="off"), d, lrs, [0], target_loss=2.0,
                        progress=False)
    full = train.tune(train.TrainSpec(batch_size=30, width=8, epochs=15, stack="off", patience=3), d, lrs, [0],
                      target_loss=2.0, progress=False)
    # over the grid, the same fewest steps to the target (no run is pruned, none stops there: a slower rate gets
    # there later; the rates the rule adds after the grid are the patient search's own) ...
    grid = [r for r in full if r.summary["search_step"] == "grid"]
    assert [r.summary["lr_used"] for r in grid] == lrs and {r.summary["search_step"] for r in pruned} == {"grid"}
    fewest = [min(r.summary["steps_to_target"] for r in runs if r.summary["reached_target"]) for runs in (grid, pruned)]
    assert fewest[0] == fewest[1]
    assert sum(r.summary["reached_target"] for r in full) >= sum(r.summary["reached_target"] for r in pruned)
    assert not any(r.summary["pruned"] for r in full) and all(r.summary["stopped_by"] != "target" for r in full)
    # ... and each run goes on to its smoothed minimum, confirmed by the patience or cut by the cap
    assert all(r.summary["stopped_by"] in ("patience", "budget") for r in full)
    assert sum(r.summary["steps_run"] for r in full) > sum(r.summary["steps_run"] for r in pruned)


def test_stacked_search_finds_the_fewest_steps_of_its_grid():
    """Every (learning rate, seed) at once: each seed's fewest steps are those of its learning rates trained
    one after another (up to the stacked kernels' rounding), and the others stop at that check."""
    d = data.load("mnist1d", 300, 100, 100)
    lrs, seeds = [0.01, 0.03, 0.1], [0, 1]
    alone = {(lr, s): train.train(train.TrainSpec(batch_size=30, width=8, epochs=15, lr=lr, target_loss=2.0), d, s)
             for lr in lrs for s in seeds}
    runs = train.tune(train.TrainSpec(batch_size=30, width=8, epochs=15, stack="on"), d, lrs, seeds,
                      target_loss=2.0, progress=False)
    assert {r.summary["stacked"] for r in runs} == {6}
    for s in seeds:
        mine = [r for r in runs if r.seed == s]
        reached = [r.summary["steps_to_target"] for r in mine if r.summary["reached_target"]]
        best = min(r.summary["steps_to_target"] for (lr, t), r in alone.items() if t == s and r.summary["reached_target"])
        assert min(reached) == pytest.approx(best, rel=1e-3)
        stop = min(r.summary["steps_to_target_checked"] for r in mine if r.summary["reached_target"])
        assert all(r.summary["steps_run"] == stop for r in mine)  # the whole seed stops at the winning check
        assert any(r.summary["pruned"] for r in mine) or len(reached) == len(lrs)


def test_training_stops_once_the_target_is_reached():
    d = data.load("mnist1d", 200, 100, 100)
    first = train.train(train.TrainSpec(batch_size=50, lr=0.05, width=8, epochs=10), d, seed=0)
    target = first.history[3]["val_loss"] + 1e-9
    run = train.train(train.TrainSpec(batch_size=50, lr=0.05, width=8, epochs=10, target_loss=target), d, seed=0)
    reached = min(r["epoch"] for r in first.history if r["val_loss"] <= target)
    assert run.summary["reached_target"] and run.summary["epoch_to_target"] == reached
    assert run.summary["steps_to_target_checked"] == reached * 4 and run.summary["epochs_run"] == reached
    # at step resolution: the crossing interpolated between the check before and the one that saw it
    h = {r["epoch"]: r for r in first.history}
    before, after = h[reached - 1], h[reached]
    expected = before["step"] + (before["val_loss"] - target) / (before["val_loss"] - after["val_loss"]) * 4
    assert (reached - 1) * 4 < run.summary["steps_to_target"] <= reached * 4
    assert run.summary["steps_to_target"] == pytest.approx(expected)


def test_patience_stops_a_run_once_its_minimum_is_confirmed_and_a_cap_censors_it():
    d = data.load("mnist1d", 200, 100, 100)
    spec = train.TrainSpec(batch_size=50, lr=0.3, width=8, epochs=60, noise_points=0)
    full = train.train(spec, d, seed=0)
    best = full.summary["epoch_of_min_val_loss"]
    assert best + 3 <= 60, "the setting must overfit within the cap for this test"
    stopped = train.train(train.TrainSpec(**{**spec.__dict__, "patience": 3}), d, seed=0)
    assert stopped.summary["stopped_by"] == "patience" and not stopped.summary["censored"]
    # the smoothed curve's latest whole point lies two epochs back: it is 3 epochs past the smoothed minimum
    assert stopped.summary["epochs_run"] == stopped.summary["epoch_of_min_val_loss"] + 3 + 2
    capped = train.train(train.TrainSpec(**{**spec.__dict__, "patience": 3, "epochs": 2}), d, seed=0)
    assert capped.summary["stopped_by"] == "budget"
    assert capped.summary["censored"] == (capped.summary["epoch_of_min_val_loss"] > 2 - 3)


def test_the_half_life_rule_scales_adams_beta2_with_the_batch():
    """Marek et al. 2025: beta2 ** (B / B0) keeps the average's half-life fixed in examples."""
    base = {"remedy": "sqrt", "batch_size": 256, "reference_batch": 32, "lr": 1e-3, "batch_norm": False,
            "warmup_epochs": 5, "n_train": 4000, "epochs": 10, "ghost_batch": 32, "beta2": 0.99}
    opts = remedies.options({**base, "beta2_rule": "half_life"})
    assert opts["beta2"] == pytest.approx(0.99 ** 8)
    # the half-life in examples: steps to halve, times the batch, is the same at both batch sizes
    half = lambda beta, b: math.log(0.5) / math.log(beta) * b  # noqa: E731
    assert half(opts["beta2"], 256) == pytest.approx(half(0.99, 32))
    assert "beta2" not in remedies.options({**base, "beta2_rule": "none"})
    spec = train.TrainSpec.from_params({**base, "optimizer": "adamw"}, **opts)
    assert spec.beta2 == pytest.approx(0.99 ** 8) and spec.lr == pytest.approx(1e-3 * 8 ** 0.5)
