"""In which order a sweep's jobs run: the one home of the cost model and of the order.

The sweep (:mod:`bsnb.sweep`) plans the jobs and their cache keys; this module says which of the jobs ready to run
starts next. Longest first: with fewer workers than jobs, a long job started last runs alone at the end while the
other workers have nothing to do.
"""

from __future__ import annotations

from bsnb import remedies


def estimated_work(params: dict) -> float:
    """Rough work of a training job: steps x (batch + 64) x seeds (x rates, for a learning-rate search).

    The 64 stands for a step's fixed cost in examples (on 2 CPU cores, a step of 16 examples costs
    about a third of a step of 256). A notebook-04 job's budget is what its remedy trains
    (:func:`bsnb.remedies.options`): as many steps as the reference batch, stretched epochs, one pass.
    """
    n, b = params.get("n_train", 1), params.get("batch_size", 1)
    budget = {"epochs": params.get("epochs", 1)}
    if params.get("budget") == "steps":
        budget.update(budget="steps", steps=params["steps"])
    if params.get("remedy") in remedies.PRESETS and "reference_batch" in params:
        budget.update(remedies.options(params))
    steps = budget["steps"] if budget.get("budget") == "steps" else budget["epochs"] * -(-n // b)
    work = steps * (b + 64) * len(params.get("seeds", [0]))
    if params.get("remedy") == "tuned":  # every rate of the grid, each run stopping at its target or minimum, and
        # trained to the minimum, the two refinement rates (bsnb.search; an extension adds one more rate)
        work *= (len(params.get("lr_grid") or [1]) + 2 * (params.get("patience", 0) > 0)) / 2
    return work


# notebook 04's one-pass arms (C17, C19): they read the small batch's comparison run for their budget (its epochs)
ONE_PASS = tuple(name for name, preset in remedies.PRESETS.items() if preset.get("one_pass"))
# dependent jobs that train (a confirmation, new seeds; a one-pass arm, its own runs) rather than measure their source
TRAINS_ITS_OWN = ("confirm", *ONE_PASS)


def cost(params: dict, source_params: dict | None = None) -> float:
    """A job's rough relative cost. A job that reads another run (``source_params``) can start only once that run
    is done, and then takes its source's place in the order: measuring a run's checkpoints takes about as long as
    a training job (quick profile: 30 to 60 s), and left to the end such jobs ran alone on one worker while the
    other had nothing to do."""
    if source_params is None or params.get("remedy") in TRAINS_ITS_OWN:
        return estimated_work(params)
    return estimated_work(source_params)


def longest_first(jobs: list, cost_of) -> list:
    """``jobs`` in the order they start: by ``cost_of(job)``, the largest first (stable among equals)."""
    return sorted(jobs, key=lambda j: -cost_of(j))


def to_start(queue: list, is_ready, slots: int, running: int) -> list:
    """The jobs of ``queue`` (already longest first) to hand to the workers now: the ready ones, as many as the
    free ``slots`` take. Only as many jobs as there are worker threads are handed to Dask: it would otherwise
    spread all of them over the workers' own queues at once, by count rather than by cost, and a dependent job
    that becomes ready later would wait behind them (measured: the default profile took 1.10x the old pool's
    time that way)."""
    return [j for j in queue if is_ready(j)][:max(0, slots - running)]


# Seconds of one job per unit of :func:`cost`, on one thread of a 2-core CPU: the least-squares fit through 0 of
# the default profile's job seconds on their costs (`python benchmarks/cost_model.py --out reports/quick`, which
# prints the fit and each job's estimate beside what it took). Only the time-left estimates read it, before any
# job of the sweep has finished; from then on they scale by the seconds measured. Fitted again on 2026-12-07 over
# the v4 default profile's 35 jobs (2-core AMD EPYC): 3.174e-06, the sweep's first estimate 1,184 s against 1,181 s
# taken (the value before, 1.2e-5, fitted on an older cost model, made that first estimate 74 minutes).
SECONDS_PER_UNIT = 3.2e-6


def job_seconds(cost: float, rate: float = SECONDS_PER_UNIT) -> float:
    """A job's estimated seconds from its cost."""
    return cost * rate


class Clock:
    """The time left in a sweep: the cost model, scaled by the seconds its finished jobs took.

    ``costs`` maps each job still to run to its cost; ``workers`` run at once. The estimate is the larger of the
    remaining work shared among the workers and the longest job left (it runs on one worker whatever the rest do).
    """

    def __init__(self, costs: dict, workers: int):
        self.left = dict(costs)
        self.workers = max(1, workers)
        self.measured_cost = self.measured_seconds = 0.0
        self.at_start = self.seconds_left({})

    @property
    def rate(self) -> float:
        """Seconds per unit of cost: measured once a job has finished, else :data:`SECONDS_PER_UNIT`."""
        return self.measured_seconds / self.measured_cost if self.measured_cost > 0 else SECONDS_PER_UNIT

    def finished(self, job, seconds: float, ran: bool = True):
        """``job`` is done; a job that ran (not cached, not failed at once) teaches the rate."""
        cost = self.left.pop(job, 0.0)
        if ran and cost > 0 and seconds > 0:
            self.measured_cost += cost
            self.measured_seconds += seconds

    def seconds_left(self, running: dict) -> float:
        """Estimated seconds until the last job ends; ``running`` maps each running job to its seconds so far."""
        each = {job: job_seconds(cost, self.rate) for job, cost in self.left.items()}
        for job, elapsed in running.items():
            if job in each:
                each[job] = max(0.0, each[job] - elapsed)
        return max(max(each.values(), default=0.0), sum(each.values()) / self.workers)


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: 45 s, 12 min, 1 h 20 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"
