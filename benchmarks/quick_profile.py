"""Where the quick profile's wall time goes: training, papermill overhead, findings and report.

    python benchmarks/quick_profile.py [--out reports/quick] [--run]

With ``--run`` it first runs ``bsnb run quick --out OUT --force`` (minutes); otherwise it reads
the timings of the last run in OUT. The papermill overhead per execution (kernel start, imports
of torch and bsnb) is measured here by executing a notebook that only does those imports.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from bsnb import parameters, results


def papermill_overhead(repeats: int = 3) -> float:
    """Median seconds to execute, with papermill, a notebook that imports what the study's notebooks import."""
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch\nfrom bsnb import data, parameters, plots, results, train")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            start = time.perf_counter()
            papermill.execute_notebook(nb, str(Path(tmp) / "out.ipynb"), progress_bar=False, kernel_name="python3")
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(parameters.REPORTS_DIR / "quick"))
    ap.add_argument("--run", action="store_true", help="run the quick profile first (with --force)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.run:
        subprocess.run([sys.executable, "-m", "bsnb.cli", "run", "quick", "--out", str(out), "--force", "--quiet"],
                       check=True)
    timings = results.read_json(out / "logs" / "timings.json")
    ran = set(timings["ran"])
    jobs = [r for r in results.jobs_in(results.store_dir(out)) if r.job_id in ran and r.complete]
    if not jobs:
        sys.exit(f"no job of {out} ran in its last sweep: rerun with --run to measure")
    job_seconds = sum(r.status()["seconds"] for r in jobs)
    train_seconds = sum(s["train_seconds"] for r in jobs for s in r.summary()["seeds"])
    overhead = papermill_overhead()
    workers = timings["workers"]
    print(f"quick profile, {len(jobs)} executions on {workers} worker(s); wall time {timings['total']:.0f} s")
    print(f"  jobs phase (wall)                 {timings['jobs']:7.1f} s")
    print(f"    summed over workers:            {job_seconds:7.1f} s of notebook execution, of which")
    print(f"      training epochs               {train_seconds:7.1f} s ({train_seconds / job_seconds:.0%})")
    pm = overhead * len(jobs)
    print(f"      papermill + kernel + imports  {pm:7.1f} s ({pm / job_seconds:.0%}; {overhead:.1f} s per execution, "
          f"measured now)")
    rest = job_seconds - train_seconds - pm
    print(f"      evaluation, data, saving, figures {rest:5.1f} s ({rest / job_seconds:.0%})")
    print(f"  findings notebook                 {timings['findings']:7.1f} s")
    print(f"  report (nbconvert + index)        {timings['report']:7.1f} s")


if __name__ == "__main__":
    main()
