import math

import pytest
import torch

from bsnb import data, minima, results, train


@pytest.fixture(scope="module")
def small():
    return data.load("mnist1d", 200, 100, 100, data_seed=0)


SPEC = train.TrainSpec(batch_size=32, lr=0.05, width=8, epochs=3, log_points=30)


def test_same_seed_gives_the_same_numbers_and_another_seed_does_not(small):
    a, b, c = (train.train(SPEC, small, seed=s) for s in (0, 0, 1))
    assert _same(a.history, b.history)
    assert a.steps == b.steps
    assert [r["val_loss"] for r in a.history] != [r["val_loss"] for r in c.history]


def _same(h1, h2):
    """Equal in every recorded number except the timings."""
    keys = [k for k in h1[0] if k not in ("seconds", "examples_per_second", "train_loss_running")]
    return len(h1) == len(h2) and all(r1[k] == r2[k] for r1, r2 in zip(h1, h2) for k in keys)


def test_history_has_every_epoch_and_the_summary_its_minimum(small):
    run = train.train(SPEC, small, seed=0)
    assert [r["epoch"] for r in run.history] == [0, 1, 2, 3]
    assert run.history[-1]["step"] == 3 * math.ceil(200 / 32)
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "seconds", "examples_per_second"):
        assert all(math.isfinite(r[key]) for r in run.history[1:]), key
    s = run.summary
    raw = min(run.history[1:], key=lambda r: r["val_loss"])
    assert s["min_val_loss_raw"] == raw["val_loss"] and s["epoch_of_min_raw"] == raw["epoch"]
    # the minimum is the smoothed curve's (a centred average over 5 evaluated epochs, shrinking at the ends),
    # as bsnb.minima reads it from the history
    smooth = minima.smooth([r["val_loss"] for r in run.history[1:]])
    assert s["min_val_loss"] == pytest.approx(smooth.min()) and s["epoch_of_min_val_loss"] == 1 + int(smooth.argmin())
    assert s["status"] == "ok" and 0 <= s["test_acc"] <= 1 and math.isfinite(s["test_loss"])


def test_patience_confirms_the_smoothed_minimum_and_best_holds_its_weights(small):
    from dataclasses import replace

    run = train.train(replace(SPEC, epochs=60, patience=4, lr=0.05), small, seed=0)
    s, val = run.summary, [r["val_loss"] for r in run.history[1:]]
    smooth = minima.smooth(val)
    assert s["stopped_by"] == "patience" and s["epoch_of_min_val_loss"] == 1 + int(smooth.argmin())
    # stopped once the smoothed curve's latest whole point (two epochs back) was 4 epochs past its minimum
    assert s["epochs_run"] - 2 - s["epoch_of_min_val_loss"] == 4
    from bsnb import models

    net = models.build("cnn", small.input_shape, 10, 8)
    net.load_state_dict(run.states["best"])
    at = run.history[s["epoch_of_min_val_loss"]]
    assert train.evaluate(net, small.x_val, small.y_val)[0] == pytest.approx(at["val_loss"], rel=1e-6)


def test_checkpoints_are_the_initial_best_and_final_weights(small):
    run = train.train(SPEC, small, seed=0)
    from bsnb import models

    net = models.build("cnn", small.input_shape, 10, 8)
    net.load_state_dict(run.states["best"])  # the weights at the smoothed minimum's epoch
    at = run.history[run.summary["epoch_of_min_val_loss"]]
    assert train.evaluate(net, small.x_val, small.y_val)[0] == pytest.approx(at["val_loss"], rel=1e-6)
    torch.manual_seed(0)
    fresh = models.build("cnn", small.input_shape, 10, 8)
    assert all(torch.equal(v, run.states["initial"][k]) for k, v in fresh.state_dict().items())
    # the last sampled step is the last step: its distance is ||w_final - w_0||
    w_final = torch.cat([v.flatten() for v in run.states["final"].values()])
    w_0 = torch.cat([v.flatten() for v in run.states["initial"].values()])
    assert run.steps[-1]["step"] == run.summary["steps_run"]
    assert run.steps[-1]["distance"] == pytest.approx((w_final - w_0).norm().item(), rel=1e-5)


def test_the_target_checkpoint_is_where_the_validation_loss_first_reached_it(small):
    from dataclasses import replace

    from bsnb import models

    losses = [r["val_loss"] for r in train.train(SPEC, small, seed=0).history]
    target = (losses[0] + min(losses[1:])) / 2  # between the start and the minimum: reached
    run = train.train(replace(SPEC, checkpoint_val_loss=target), small, seed=0)
    first = next(r for r in run.history if r["val_loss"] <= target)
    net = models.build("cnn", small.input_shape, 10, 8)
    net.load_state_dict(run.states["target"])
    assert train.evaluate(net, small.x_val, small.y_val)[0] == pytest.approx(first["val_loss"], rel=1e-6)
    assert run.summary["checkpoint_val_loss"] == target and run.summary["stopped_by"] == "budget"  # it did not stop
    # the window: the weights of that epoch and of the next evaluated ones, as far as training went
    after = [r for r in run.history if r["epoch"] > first["epoch"]][:results.WINDOW - 1]
    assert [k for k in run.states if k.startswith("target")] == results.window("target")[:1 + len(after)]
    for name, row in zip(results.window("target")[1:], after):
        net.load_state_dict(run.states[name])
        assert train.evaluate(net, small.x_val, small.y_val)[0] == pytest.approx(row["val_loss"], rel=1e-6)
    assert "target" not in train.train(replace(SPEC, checkpoint_val_loss=min(losses) / 2), small, seed=0).states


def test_steps_are_sampled_log_spaced_from_the_first_to_the_last():
    steps = sorted(train.log_steps(1000, 20))
    assert steps[0] == 1 and steps[-1] == 1000 and len(steps) <= 20
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[-1] > gaps[0]


def test_step_budget_stops_at_the_asked_step_within_an_epoch(small):
    spec = train.TrainSpec(batch_size=32, lr=0.05, width=8, budget="steps", steps=10, log_points=5)
    run = train.train(spec, small, seed=0)
    assert run.summary["steps_run"] == 10
    assert [r["step"] for r in run.history] == [0, 7, 10]  # 7 steps per epoch, then a partial epoch


def test_a_diverging_run_is_recorded_not_raised(small):
    spec = train.TrainSpec(batch_size=32, lr=1e5, width=8, epochs=5)
    run = train.train(spec, small, seed=0)
    assert run.summary["status"] == "diverged"
    assert run.summary["epochs_run"] < 5 or not math.isfinite(run.history[-1]["val_loss"])


def test_adam_and_mlp_with_batch_norm_train(small):
    spec = train.TrainSpec(batch_size=50, optimizer="adam", lr=1e-3, model="mlp", width=16, batch_norm=True, epochs=2)
    run = train.train(spec, small, seed=0)
    assert run.summary["status"] == "ok"
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]


def test_train_seeds_trains_every_seed(small):
    params = {"seeds": [0, 1], "batch_size": 64, "lr": 0.05, "width": 8, "epochs": 1}
    runs = train.train_seeds(params, small, progress=False)
    assert [r.seed for r in runs] == [0, 1]
    # each seed's run is that seed's own training, whether the seeds were trained together or alone
    alone = train.train(train.TrainSpec(batch_size=64, lr=0.05, width=8, epochs=1), small, seed=1)
    for key in ("train_loss", "val_loss"):
        assert runs[1].history[-1][key] == pytest.approx(alone.history[-1][key], rel=1e-4)
        assert runs[0].history[-1][key] != runs[1].history[-1][key]


def test_auto_device_is_the_cpu_without_a_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert train.resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device = 'cuda'"):
            train.resolve_device("cuda")


def test_long_runs_are_evaluated_sparsely_and_the_minimum_is_still_the_minimum(small):
    spec = train.TrainSpec(batch_size=64, lr=0.05, width=8, epochs=12, max_evals=4)
    run = train.train(spec, small, seed=0)
    assert [r["epoch"] for r in run.history] == [0, 3, 6, 9, 12]
    best = min(run.history[1:], key=lambda r: r["val_loss"])
    assert run.summary["min_val_loss_raw"] == best["val_loss"] and run.summary["epoch_of_min_raw"] == best["epoch"]
    assert run.summary["train_seconds"] >= sum(r["seconds"] for r in run.history[1:])


def test_two_batch_noise_is_logged_without_disturbing_training(small):
    plain = train.train(train.TrainSpec(batch_size=32, lr=0.05, width=8, epochs=2, batch_norm=True), small, seed=0)
    spec = train.TrainSpec(batch_size=32, lr=0.05, width=8, epochs=2, batch_norm=True, noise_points=10)
    logged = train.train(spec, small, seed=0)
    assert _same(plain.history, logged.history)  # the extra half-batch pass changes nothing
    assert 2 <= len(logged.noise) <= 10 and logged.noise[0]["step"] == 1
    row = next(r for r in logged.noise if r["b_big"] == 32)  # the epoch's last batch is partial (200 = 6 x 32 + 8)
    assert row["b_small"] == 8 and row["g2_small"] > 0
    from bsnb import noise

    assert (row["g2_est"], row["s_est"]) == noise.two_batch(row["g2_small"], row["g2_big"], 8, 32)


def test_the_interleaved_timing_times_each_batch_size_in_turn_and_restores_threads():
    from bsnb import parameters, timing

    params = {**parameters.defaults("02_empirical_comparison"), "n_train": 256, "n_val": 64, "n_test": 64, "width": 4}
    threads = torch.get_num_threads()
    t = timing.interleaved_epochs(params, [16, 64], repeats=3)
    assert list(t["batch_size"]) == [16, 64, 64, 16, 16, 64]  # the order alternates
    assert (t["seconds_per_epoch"] > 0).all() and (t["threads"] == 1).all()
    assert torch.get_num_threads() == threads


def test_the_patience_benchmark_replays_the_loops_stopping_rule(small):
    """benchmarks/patience.py judges a smaller patience by replaying the loop's rule over recorded curves: over a
    run's own curve, at the run's patience, the replay stops at the epoch the loop stopped, and not before."""
    import sys
    from dataclasses import replace
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import patience as bench

    for p in (3, 6):
        run = train.train(replace(SPEC, epochs=80, patience=p, lr=0.05), small, seed=1)
        assert run.summary["stopped_by"] == "patience"
        epochs = np.array([r["epoch"] for r in run.history[1:]])
        val = np.array([r["val_loss"] for r in run.history[1:]])
        stop = bench.replay(val, epochs, p)
        assert stop == len(val) - 1 and epochs[stop] == run.summary["epochs_run"]
        assert bench.replay(val[:-1], epochs[:-1], p) is None
