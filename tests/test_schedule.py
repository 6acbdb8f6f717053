"""The order of a sweep's jobs: the cost model and longest first, in one place."""

from bsnb import schedule


def test_longer_training_costs_more_and_a_reading_job_takes_its_sources_cost():
    small = {"n_train": 4000, "batch_size": 32, "epochs": 10, "seeds": [0, 1]}
    large = {**small, "batch_size": 256}
    assert schedule.estimated_work(small) > schedule.estimated_work(large)  # more steps, each with a fixed cost
    assert schedule.estimated_work({**small, "seeds": [0, 1, 2, 3]}) == 2 * schedule.estimated_work(small)
    longer = {**large, "remedy": "sqrt_step_longer", "reference_batch": 32}
    assert schedule.estimated_work(longer) > schedule.estimated_work(small)  # the small batch's steps at 256
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
