"""How well the cost model (bsnb.schedule) predicts a finished study's job seconds, and the seconds per unit of cost
that ``bsnb validate`` and a sweep's first time-left estimate use (``schedule.SECONDS_PER_UNIT``).

    python benchmarks/cost_model.py [--out reports/quick]

Reads the jobs of a finished study (each job's status records the seconds it took), costs each with today's cost
model (a job that reads another run costs what its source does), fits seconds = rate x cost (total seconds over
total cost), and prints each job's estimate beside what it took, the fitted rate, and the study's job-seconds and wall time
on its workers against the estimate. The rate belongs to the machine the study ran on: say which.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bsnb import results, schedule


def jobs_of(out: Path) -> list[dict]:
    """Each finished job of the study in ``out``: its id, its seconds and its cost."""
    store = results.store_dir(out)
    params = {}
    for job in results.jobs_in(store):
        status = job.status() or {}
        if status.get("status") == "ok" and status.get("seconds"):
            params[job.job_id] = (status, job.params())
    rows = []
    for job_id, (status, p) in params.items():
        source = p.get("source")
        source_params = None
        if isinstance(source, dict):  # a job that measures another run costs what its source does
            source_params = source
        rows.append({"job": job_id, "seconds": float(status["seconds"]),
                     "cost": schedule.cost(p, source_params)})
    return rows


def fit(rows: list[dict]) -> float:
    """Seconds per unit of cost: the study's job-seconds over its cost, so that the total is right (what the time left
    adds up); the sweep refines its estimate the same way, from the jobs it has finished."""
    return sum(r["seconds"] for r in rows) / sum(r["cost"] for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/quick", help="a finished study's folder")
    args = ap.parse_args(argv)
    rows = jobs_of(Path(args.out))
    if not rows:
        print(f"no finished jobs in {args.out}")
        return 1
    rate = fit(rows)
    print(f"{'job':48s} {'took s':>8s} {'estimate s':>11s} {'ratio':>6s}")
    for r in sorted(rows, key=lambda r: -r["seconds"]):
        est = schedule.job_seconds(r["cost"], rate)
        print(f"{r['job']:48s} {r['seconds']:8.1f} {est:11.1f} {est / r['seconds']:6.2f}")
    total = sum(r["seconds"] for r in rows)
    timings = Path(args.out) / "logs" / "timings.json"
    workers = json.loads(timings.read_text()).get("workers", 2) if timings.exists() else 2
    wall = json.loads(timings.read_text()).get("jobs") if timings.exists() else None
    clock = schedule.Clock({r["job"]: r["cost"] for r in rows}, workers)
    at_start = clock.seconds_left({}) * rate / schedule.SECONDS_PER_UNIT
    print(f"fitted: {rate:.3e} seconds per unit of cost over {len(rows)} jobs (schedule.SECONDS_PER_UNIT = "
          f"{schedule.SECONDS_PER_UNIT:.3e})")
    print(f"job-seconds: {total:.0f} taken, {sum(r['cost'] for r in rows) * rate:.0f} estimated; jobs' wall time on "
          f"{workers} workers: {wall if wall is None else round(wall)} s taken, {at_start:.0f} s estimated at the start")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
