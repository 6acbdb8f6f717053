"""In which order a sweep's jobs run: the one home of the cost model and of the order.

The sweep (:mod:`bsnb.sweep`) plans the jobs and their cache keys; this module says which of the jobs ready to run
starts next. Longest first: with fewer workers than jobs, a long job started last runs alone at the end while the
other workers have nothing to do.
"""

from __future__ import annotations


def estimated_work(params: dict) -> float:
    """Rough work of a training job: steps x (batch + 64) x seeds.

    The 64 stands for a step's fixed cost in examples (on 2 CPU cores, a step of 16 examples costs
    about a third of a step of 256).
    """
    n, b = params.get("n_train", 1), params.get("batch_size", 1)
    if params.get("remedy") in ("longer", "sqrt_step_longer"):  # as many steps as the reference batch
        steps = params["epochs"] * -(-n // params["reference_batch"])
    elif params.get("budget") == "steps":
        steps = params["steps"]
    else:
        steps = params.get("epochs", 1) * -(-n // b)
    work = steps * (b + 64) * len(params.get("seeds", [0]))
    return work / 2 if params.get("remedy") == "tuned" else work  # runs stop at the target


def cost(params: dict, source_params: dict | None = None) -> float:
    """A job's rough relative cost. A job that reads another run (``source_params``) can start only once that run
    is done, and then takes its source's place in the order: measuring a run's checkpoints takes about as long as
    a training job (quick profile: 30 to 60 s), and left to the end such jobs ran alone on one worker while the
    other had nothing to do."""
    return estimated_work(source_params if source_params is not None else params)


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
