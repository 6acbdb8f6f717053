"""Where a profile's wall time goes: per job, the kernel start, imports, training steps, the rest of
the training cell (evaluation, logging, checkpoints, saving), measurements, figures; then the
findings and the report.

    python benchmarks/quick_profile.py [--out reports/quick] [--run] [--profile quick] [--then DIR]

With ``--run`` it first runs ``bsnb run PROFILE --out OUT --force`` (minutes); otherwise it reads
the last sweep in OUT. The split comes from papermill's own record of each cell's duration in the
executed notebooks (``metadata.papermill.duration``) and the training seconds each run recorded:
the kernel start (with papermill's own work) is the job's time minus the sum of its cells.

Then two lines of the issue "eight seeds for the price of three": what one more seed costs at each batch size
of the comparison (its job's training and evaluation seconds per seed, and the measurement seconds per seed of
the sharpness job that reads it), and the training's GFLOP/s (torch's flop counter on one example's forward and
backward, times the examples every seed run trained, over their training seconds) against a 2048 x 2048 float32
matmul on as many threads as the jobs had, and on all cores, measured here and now.

With ``--then DIR`` (a finished study of another commit, run on the same machine: the 3-seed study of 4feae72 that
``benchmarks/protocol_cost.py`` runs), the phases then and now side by side, the seed-epochs each trained per
notebook, and the floor: the training steps and the measurements of today's study alone, against the whole of the
other's job seconds. Those two phases run at what this CPU's kernels give (stacking, other layouts of the
convolutions, vectorised Hessian-vector products and torch.compile were measured not to pay here: the issue "eight
seeds for the price of three"); if they alone exceed twice the other study, no lever but less work reaches 2.0.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from bsnb import parameters, results

PARTS = ("kernel", "imports", "training", "evaluation+logging", "measurement", "figures", "other")


def _part(source: str) -> str:
    """The phase a code cell belongs to, from what it calls."""
    if "train.train_seeds" in source or "train.tune" in source:
        return "training cell"
    if "measure" in source:
        return "measurement"
    if "from bsnb import" in source:
        return "imports"
    if "plots." in source:
        return "figures"
    return "other"


def breakdown(job: results.JobStore) -> dict:
    """Seconds per phase of one executed job."""
    nb = json.loads(job.path("notebook.ipynb").read_text())
    parts = dict.fromkeys(PARTS, 0.0)
    cells = 0.0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0
        cells += seconds
        part = _part("".join(cell["source"]))
        if part == "training cell":
            steps = sum(s.get("train_seconds") or 0.0 for s in job.summary().get("seeds", []))
            parts["training"] += steps
            parts["evaluation+logging"] += seconds - steps
        else:
            parts[part] += seconds
    total = job.status()["seconds"]
    parts["kernel"] = total - cells
    return {"total": total, **parts}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(parameters.REPORTS_DIR / "quick"))
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--run", action="store_true", help="run the profile first (with --force)")
    ap.add_argument("--then", type=Path, help="a finished study of another commit, to set beside OUT")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.run:
        subprocess.run([sys.executable, "-m", "bsnb.cli", "run", args.profile, "--out", str(out), "--force",
                        "--quiet"], check=True)
    timings, jobs, rows = _last_sweep(out)
    width = max(len(j) for j in rows)
    print(f"{out}: {len(jobs)} jobs on {timings['workers']} worker(s); wall time {timings['total']:.0f} s "
          f"(jobs {timings['jobs']:.0f} s, findings {timings['findings']:.0f} s, report {timings['report']:.0f} s)")
    print(f"{'job':<{width}} {'total':>6} " + " ".join(f"{p[:10]:>10}" for p in PARTS))
    for job, row in sorted(rows.items(), key=lambda kv: kv[0]):
        print(f"{job:<{width}} {row['total']:6.1f} " + " ".join(f"{row[p]:10.1f}" for p in PARTS))
    sums = {k: sum(r[k] for r in rows.values()) for k in ("total", *PARTS)}
    print(f"{'sum':<{width}} {sums['total']:6.1f} " + " ".join(f"{sums[p]:10.1f}" for p in PARTS))
    print(f"{'share':<{width}} {'':6} " + " ".join(f"{sums[p] / sums['total']:10.0%}" for p in PARTS))
    big = [j for j in rows if j.startswith("02-bs1024-")]
    if big:
        row = rows[big[0]]
        per_epoch = row["evaluation+logging"]
        print(f"fixed cost of {big[0]} (its time minus its training steps): {row['total'] - row['training']:.1f} s "
              f"of {row['total']:.1f} s; of it, {per_epoch:.1f} s evaluation and logging, which grow with the "
              f"{_epochs(results.JobStore(results.store_dir(out) / big[0]))} epochs its seeds trained, and "
              f"{row['total'] - row['training'] - per_epoch:.1f} s once per job (kernel, imports, figures, the rest)")
    print("\nwhat one more seed costs:")
    print("\n".join(seed_costs(rows, out)))
    gflop, seconds, peak_job, peak_all = training_flops(out, jobs)
    print(f"\ntraining: {gflop:,.0f} GFLOP in {seconds:,.0f} s of training steps, {gflop / seconds:.1f} GFLOP/s per "
          f"job; a 2048 x 2048 float32 matmul here: {peak_job:.0f} GFLOP/s on one job's threads, {peak_all:.0f} on all "
          f"cores ({gflop / seconds / peak_job:.0%} of the first)")
    if args.then:
        print("\n" + "\n".join(then_and_now(args.then, out)))


def _last_sweep(out: Path):
    """(timings, the jobs that ran in OUT's last sweep, each one's phases)."""
    timings = results.read_json(out / "logs" / "timings.json")
    ran = set(timings["ran"])
    jobs = [r for r in results.jobs_in(results.store_dir(out)) if r.job_id in ran and r.complete]
    if not jobs:
        sys.exit(f"no job of {out} ran in its last sweep: rerun with --run to measure")
    return timings, jobs, {r.job_id: breakdown(r) for r in jobs}


def then_and_now(then: Path, now: Path) -> list[str]:
    """The phases in job-seconds, the seed-epochs per notebook, and the floor, of two finished studies."""
    (t_then, jobs_then, then_rows), (t_now, jobs_now, now_rows) = _last_sweep(then), _last_sweep(now)
    lines = [f"then: {then} ({len(jobs_then)} jobs, wall {t_then['total']:.0f} s); now: {now} ({len(jobs_now)} jobs, "
             f"wall {t_now['total']:.0f} s)", f"{'phase, job-seconds':<20} {'then':>8} {'now':>8} {'now/then':>9}"]
    sums = [{k: sum(r[k] for r in rows.values()) for k in ("total", *PARTS)} for rows in (then_rows, now_rows)]
    for part in (*PARTS, "total"):
        a, b = sums[0][part], sums[1][part]
        lines.append(f"{part:<20} {a:8.1f} {b:8.1f} {b / a if a else math.nan:9.2f}")
    lines.append(f"{'seed-epochs trained':<20} {'then':>8} {'now':>8} {'now/then':>9}")
    epochs = [{}, {}]
    for k, jobs in enumerate((jobs_then, jobs_now)):
        for job in jobs:
            notebook = job.job_id.split("-")[0]
            epochs[k][notebook] = epochs[k].get(notebook, 0) + _epochs(job)
    for notebook in sorted(set(epochs[0]) | set(epochs[1])):
        a, b = epochs[0].get(notebook, 0), epochs[1].get(notebook, 0)
        if a or b:
            lines.append(f"notebook {notebook:<11} {a:8d} {b:8d} {b / a if a else math.nan:9.2f}")
    a, b = sum(epochs[0].values()), sum(epochs[1].values())
    lines.append(f"{'all':<20} {a:8d} {b:8d} {b / a:9.2f}")
    floor = sums[1]["training"] + sums[1]["measurement"]
    lines.append(f"floor: now's training steps and measurements alone, {floor:.0f} job-s, are "
                 f"{floor / sums[0]['total']:.2f}x then's whole {sums[0]['total']:.0f} job-s")
    return lines


def seed_costs(rows: dict, out: Path) -> list[str]:
    """Seconds one more seed costs at each batch size of the comparison (02), and in the sharpness job (03)."""
    lines = []
    for job_id, row in sorted(rows.items(), key=lambda kv: int(kv[0].split("-bs")[1].split("-")[0])
                              if kv[0].startswith("02-") else 0):
        if not job_id.startswith("02-"):
            continue
        batch = job_id.split("-bs")[1].split("-")[0]
        n = len(results.JobStore(results.store_dir(out) / job_id).summary()["seeds"])
        sharp = [r for j, r in rows.items() if j.startswith(f"03-bs{batch}-")]
        measured = sharp[0]["measurement"] / n if sharp else 0.0
        lines.append(f"batch {batch:>5}: {(row['training'] + row['evaluation+logging']) / n:5.1f} s per seed "
                     f"(training {row['training'] / n:.1f}, evaluation {row['evaluation+logging'] / n:.1f}) "
                     f"+ {measured:.1f} s of sharpness measurement")
    return lines


def training_flops(out: Path, jobs: list) -> tuple[float, float, float, float]:
    """(GFLOP the seed runs trained, their training seconds, matmul GFLOP/s on the jobs' threads, on all cores)."""
    import time

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bsnb import data as data_mod
    from bsnb import models

    flops, seconds, threads, per_example = 0.0, 0.0, 1, {}
    for job in jobs:
        setting = job.setting()
        if "model" not in setting or not (job.dir / results.HISTORY).exists():
            continue
        threads = int(setting.get("threads") or threads)
        key = (setting["model"], setting.get("dataset"), int(setting.get("width", 0)), bool(setting.get("batch_norm")))
        if key not in per_example:
            net = models.build(setting["model"], data_mod.input_shape(setting), 10, int(setting["width"]),
                               bool(setting.get("batch_norm")))
            x = torch.randn(64, *data_mod.input_shape(setting))
            with FlopCounterMode(display=False) as counter:
                torch.nn.functional.cross_entropy(net(x), torch.zeros(64, dtype=torch.long)).backward()
            per_example[key] = counter.get_total_flops() / 64
        for s in job.summary()["seeds"]:
            flops += per_example[key] * (s.get("epochs_run") or 0) * int(setting.get("n_train", 0))
            seconds += s.get("train_seconds") or 0.0

    def peak(n: int) -> float:
        torch.set_num_threads(n)
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        a @ b
        start, reps = time.perf_counter(), 10
        for _ in range(reps):
            a @ b
        return 2 * 2048 ** 3 * reps / (time.perf_counter() - start) / 1e9

    import os

    return flops / 1e9, seconds, peak(threads), peak(os.cpu_count() or 1)


def _epochs(job: results.JobStore) -> int:
    return sum(s.get("epochs_run") or 0 for s in job.summary().get("seeds", []))


if __name__ == "__main__":
    main()
