"""The order of a sweep's jobs: the cost model and longest first, in one place."""

import pytest

from bsnb import profiles, schedule


def _job(profile: str, notebook: str, **values) -> dict:
    return next(j.params for j in profiles.expand(profiles.load_profile(profile))
                if j.notebook.startswith(notebook) and all(j.params.get(k) == v for k, v in values.items()))


def test_longer_training_costs_more_and_a_reading_job_takes_its_sources_cost():
    small = {"n_train": 4000, "batch_size": 32, "epochs": 10, "seeds": [0, 1]}
    large = {**small, "batch_size": 256}
    assert schedule.estimated_work(small) > schedule.estimated_work(large)  # more steps, each with a fixed cost
    assert schedule.estimated_work({**small, "seeds": [0, 1, 2, 3]}) == 2 * schedule.estimated_work(small)
    sharpness = {"hessian_examples": 4096}
    assert schedule.cost(sharpness, small) == schedule.estimated_work(small)


def test_the_longest_ready_jobs_start_as_slots_free():
    jobs = [("a", 1.0), ("b", 5.0), ("c", 3.0), ("d", 4.0)]
    order = schedule.longest_first(jobs, lambda j: j[1])
    assert [j[0] for j in order] == ["b", "d", "c", "a"]
    ready = lambda j: j[0] != "d"  # noqa: E731 - d waits on the run it reads
    assert [j[0] for j in schedule.to_start(order, ready, slots=2, running=0)] == ["b", "c"]
    assert [j[0] for j in schedule.to_start(order, ready, slots=2, running=1)] == ["b"]
    assert schedule.to_start(order, ready, slots=2, running=2) == []


def test_a_remedy_s_budget_is_what_remedies_says_it_trains():
    """The cost model asks bsnb.remedies what each arm trains: no hand-kept list of remedies to fall behind (the
    one-pass large batch, as many steps as the small batch, was costed 8-fold too low)."""
    one_pass = _job("variants", "04", remedy="one_pass")
    longer = _job("variants", "04", remedy="one_pass_longer")
    same_steps = (longer["batch_size"] + 64) / (one_pass["batch_size"] + 64)  # per step, the larger batch's cost
    assert schedule.estimated_work(longer) == pytest.approx(schedule.estimated_work(one_pass) * same_steps)
    epochs = _job("quick", "04", remedy="sqrt_step")
    stretched = _job("quick", "04", remedy="sqrt_step_longer")  # epochs x 256 / 32: the small batch's steps
    ratio = stretched["batch_size"] / stretched["reference_batch"]
    assert schedule.estimated_work(stretched) == pytest.approx(schedule.estimated_work(epochs) * ratio, rel=0.01)
    search = _job("quick", "04", remedy="tuned")
    assert schedule.estimated_work(search) > schedule.estimated_work({**search, "lr_grid": search["lr_grid"][:1]})
