"""Gradient accumulation (``accumulate: k``) is the large batch without batch norm and ghost batch norm with it."""

import pytest
import torch

from bsnb import accumulation, data, train


@pytest.fixture(scope="module")
def small():
    return data.load("mnist1d", 200, 100, 100, data_seed=0)


def test_accumulation_is_the_large_batch_without_batch_norm_and_ghost_batch_norm_with_it(small):
    # batch 64 as 4 micro-batches of 16; 200 examples leave a last batch of 8 in each epoch
    pairs, arms = accumulation.compare(small, batch_size=64, accumulate=4, seeds=(0, 1), steps=12, width=8)
    checks = accumulation.checks(pairs).set_index(["arm", "against"])
    assert checks.loc[("accumulated", "plain"), "largest_difference"] < 1e-12
    assert checks.loc[("accumulated, batch norm", "ghost batch norm"), "largest_difference"] < 1e-12
    assert checks.loc[("accumulated, batch norm", "plain, batch norm"), "smallest_difference"] > 1e-3
    assert checks["as_expected"].all() and (checks["dtype"] == "float64").all()
    assert set(arms.loc[arms["arm"].str.startswith("accumulated"), "micro_batch"]) == {16}
    assert (arms["steps"] == 12).all() and torch.get_default_dtype() == torch.float32  # float64 only inside


def test_a_stacked_run_accumulates_like_one_run_alone(small):
    """The stacked path takes the micro-batches of every model at once; each model's step is its own."""
    spec = train.TrainSpec(batch_size=32, lr=0.05, width=8, epochs=2, accumulate=4, log_points=5)
    alone = [train.train(spec, small, seed) for seed in (0, 1)]
    members = [train.Member(s, spec, f"seed{s}") for s in (0, 1)]
    stacked = train.train_together(spec, small, members, stacked=True)
    for a, b in zip(alone, stacked):
        for name, value in a.states["final"].items():
            torch.testing.assert_close(b.states["final"][name], value, rtol=1e-4, atol=1e-5)
    plain = train.train(train.TrainSpec(batch_size=32, lr=0.05, width=8, epochs=2, log_points=5), small, 0)
    assert plain.summary["steps_run"] == alone[0].summary["steps_run"]  # accumulation takes no extra steps
