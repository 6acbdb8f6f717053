"""``bsnb``: run, check and report the study from the command line.

    bsnb run PROFILE [--out DIR] [--workers N] [--threads N] [--scheduler ADDRESS | --cluster FILE] [--force]
                                                            sweep (on Dask), findings, report; prints the report path last
    bsnb cluster-script FILE                                the batch script --cluster FILE would submit
    bsnb validate PROFILE                                   check a profile, list its jobs; runs nothing
    bsnb report PROFILE [--out DIR]                         rebuild findings and report from stored runs
    bsnb readme PROFILE [--out DIR]                         the reference run: README's and docs/findings.md's tables
    bsnb compare STUDY_A STUDY_B                            two finished studies claim by claim (labels, effects)

Exit status: 0 success, 1 some job or the findings failed, 2 invalid profile (nothing ran),
130 interrupted (completed jobs are kept; rerun to finish).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bsnb import parameters, profiles

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def _out_dir(profile: profiles.Profile, out: str | None) -> Path:
    return Path(out) if out else parameters.REPORTS_DIR / profile.name


def _load(spec: str, out: str | None, force: bool = False):
    from bsnb import sweep

    profile = profiles.load_profile(spec)
    out_dir = _out_dir(profile, out)
    return profile, out_dir, sweep.plan(profile, out_dir, force=force)


def cmd_validate(args) -> int:
    from bsnb import schedule

    profile, out_dir, planned = _load(args.profile, args.out)
    seconds = {p.job.job_id: schedule.job_seconds(p.cost) for p in planned}
    to_run = [p for p in planned if not p.cached]
    print(f"profile {profile.name} ({profile.path}): {len(planned)} jobs, "
          f"{len(planned) - len(to_run)} already done in {out_dir}")
    by_id = {p.job.job_id: p for p in planned}
    groups = profiles.workload_jobs(profile) or {None: list(by_id)}
    owners = {job: [w for w, ids in groups.items() if job in ids] for job in by_id}
    shown: set[str] = set()
    for workload, ids in groups.items():
        if workload is not None:
            print(f"workload {workload}: {len(ids)} jobs, about {_job_seconds(ids, seconds)} job-seconds")
        for job in ids:
            if job in shown:
                continue  # a job two workloads share runs once, and is listed once
            shown.add(job)
            p = by_id[job]
            axes = ", ".join(f"{a}={p.job.params[a]}" for a in p.job.axes)
            shared = [w for w in owners[job] if w != workload]
            print(f"  {'cached' if p.cached else 'to run':7s} {job}  {axes}  ~{seconds[job]:.0f} s"
                  + (f"  (shared with {', '.join(shared)})" if shared else ""))
    workers = profile.workers or engine_workers()
    left = schedule.Clock({p.job.job_id: p.cost for p in to_run}, workers).at_start
    print(f"in all: {len(to_run)} of {len(planned)} jobs to run, about {_job_seconds([p.job.job_id for p in to_run], seconds)} "
          f"job-seconds, about {schedule.duration(left)} on {workers} worker(s) (the cost model, fitted on 2 CPU cores; "
          "a run refines it as its jobs finish)")
    print("valid: nothing was run")
    return EXIT_OK


def _job_seconds(ids, seconds: dict) -> str:
    return f"{sum(seconds[j] for j in ids):,.0f}"


def engine_workers() -> int:
    from bsnb import engine

    return engine.default_workers()


def cmd_run(args) -> int:
    from bsnb import jobs, report, sweep
    from bsnb.engine import Engine

    profile = profiles.load_profile(args.profile)
    out_dir = _out_dir(profile, args.out)
    engine = Engine(workers=args.workers or profile.workers, threads=args.threads or profile.threads,
                    scheduler=args.scheduler, cluster_file=args.cluster, log_directory=out_dir / "logs" / "cluster")
    done = sweep.run(profile, out_dir, engine, force=args.force, progress=not args.quiet,
                     say=_say, build_report=report.build,
                     reuse_kernels=not args.fresh_kernels, findings=not args.jobs_only)
    result, planned = done.result, done.planned
    complete = result.count("ok") + result.count("cached")
    if result.unwritable:
        print(f"error: cannot write in {out_dir} ({result.unwritable}); {complete} of {len(planned)} jobs complete and "
              f"kept: free space or fix the folder, then run the same command again to finish the rest", file=sys.stderr)
        return EXIT_FAILED
    if result.lost:  # what is kept is what the store holds: a job may have finished as the scheduler went
        complete = sum(jobs.is_done(p.run_dir, p.key) for p in planned)
        elsewhere = "start it again (or run without --scheduler, on a local cluster)" if args.scheduler else \
            "check that the cluster is up"
        print(f"error: {result.lost}; {complete} of {len(planned)} jobs complete and kept: {elsewhere}, "
              f"then run the same command again to finish the rest", file=sys.stderr)
        return EXIT_FAILED
    if result.interrupted:
        print(f"interrupted after {result.seconds:.0f} s of jobs: {complete} of {len(planned)} jobs complete; "
              f"run the same command again to finish the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    t = done.timings
    ran = result.count("ok") + result.count("failed")
    findings = ("not run (--jobs-only): `bsnb report` builds them from the stored runs" if args.jobs_only else
                "FAILED: " + done.findings_error if done.findings_error else "ok")
    _say(f"{len(planned)} jobs: {ran} ran, {result.count('cached')} cached, {len(result.failed)} failed; "
          f"findings {findings}; "
          f"{t['total']:.0f} s in all (jobs {t['jobs']:.0f} s"
         + (f", estimated {result.estimated:.0f} s at the start" if result.estimated is not None and ran else "")
         + f", findings {t['findings']:.0f} s, report {t['report']:.0f} s)")
    for o in result.failed:
        _say(f"  failed: {o.job_id}: {o.error} (notebook kept in {out_dir / 'runs' / o.job_id})")
    if done.index is not None:
        _say(str(done.index.resolve()))
    return EXIT_FAILED if result.failed or done.findings_error else EXIT_OK


def cmd_cluster_script(args) -> int:
    from bsnb import engine

    print(engine.cluster_script(args.file), end="")
    return EXIT_OK


def cmd_report(args) -> int:
    from bsnb import report, results, sweep

    start = time.time()
    profile = profiles.load_profile(args.profile)
    profiles.expand(profile)  # the findings' parameters are checked too
    out_dir = _out_dir(profile, args.out)
    if not results.jobs_in(results.store_dir(out_dir)):
        print(f"no runs in {results.store_dir(out_dir)}: run `bsnb run {args.profile}` first", file=sys.stderr)
        return EXIT_FAILED
    findings_error = sweep.run_findings(profile, out_dir)
    index = report.build(out_dir, profile, meta={"report built in": f"{time.time() - start:.0f} s"})
    if findings_error:
        print(f"findings FAILED: {findings_error}", file=sys.stderr)
    print(index.resolve())
    return EXIT_FAILED if findings_error else EXIT_OK


def cmd_readme(args) -> int:
    from bsnb import readme, results

    profile = profiles.load_profile(args.profile)
    out_dir = _out_dir(profile, args.out)
    if not results.claims_path(out_dir).exists():
        print(f"no claims.csv in {out_dir}: run `bsnb run {args.profile}` first", file=sys.stderr)
        return EXIT_FAILED
    ref = readme.write_reference(out_dir, profile.name)
    written = readme.update(profile.name)
    print(f"{' and '.join(str(w.relative_to(parameters.ROOT)) for w in written)} written from {ref}")
    return EXIT_OK


def cmd_compare(args) -> int:
    from bsnb import compare

    try:
        a, b = compare.read_claims(args.a), compare.read_claims(args.b)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    table = compare.compare(a, b)
    print(compare.summary(table, str(args.a), str(args.b)))
    return EXIT_OK


def cmd_rates(args) -> int:
    from bsnb import search

    out = args.out or parameters.REPORTS_DIR / args.profile
    table = search.chosen_rates(out)
    if table.empty:
        print(f"error: {out} holds no finished learning-rate search trained to its minimum (remedy tuned, "
              "patience > 0)", file=sys.stderr)
        return EXIT_INVALID
    for r in table.itertuples():
        edge = "; still on an edge of its grid" if r.on_edge else ""
        _say(f"{r.workload or 'study'}: batch {r.batch_size} chooses lr {r.chosen_lr:.4g} ({r.seeds} seeds, "
             f"{r.extensions} extension(s), {'refined' if r.refined else 'not refined'}{edge}; rates {r.rates})")
    return EXIT_OK


def _quiet_stdout():
    """Point stdout at /dev/null: its reader has gone, and Python's own flush at exit would fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _say(line: str):
    """A progress line on stdout. A reader that has gone (`bsnb run quick | head`) does not stop the sweep."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        _quiet_stdout()


def cmd_cells(args) -> int:
    from bsnb import sources

    changed = sources.write_parameter_cells()
    _say(f"rewrote the parameters cell of {', '.join(changed)}" if changed else "every parameters cell is current")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bsnb", description="Effect of batch size on neural-net training: "
                                 "a parameterised notebook study.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a profile's sweep, the findings and the report")
    run.add_argument("profile", help="profile name in params/ (quick, smoke, full) or a YAML path")
    run.add_argument("--out", help="output folder (default reports/<profile name>)")
    run.add_argument("--workers", type=int, help="jobs at once on the local cluster (default: one per GPU, "
                     "else one per core)")
    run.add_argument("--threads", type=int, help="torch threads per job (default: the cores shared among the workers)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="run the jobs on a running Dask cluster "
                       "(e.g. tcp://host:8786); starts nothing")
    where.add_argument("--cluster", metavar="FILE", help="run the jobs on a SLURM or PBS cluster described by FILE "
                       "(dask-jobqueue); see `bsnb cluster-script`")
    run.add_argument("--force", action="store_true", help="rerun jobs even when their cached result is current")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--fresh-kernels", action="store_true",
                     help="start a new Jupyter kernel for every job instead of reusing each worker's (slower, "
                          "the same results)")
    run.add_argument("--jobs-only", action="store_true",
                     help="run the jobs and stop: no findings, no report (`bsnb report` builds them later, "
                          "e.g. once several sweeps have filled the store)")
    run.set_defaults(func=cmd_run)
    val = sub.add_parser("validate", help="check a profile and list its jobs; runs nothing")
    val.add_argument("profile")
    val.add_argument("--out", help="output folder to check for cached jobs")
    val.set_defaults(func=cmd_validate)
    rep = sub.add_parser("report", help="rebuild the findings and the report from stored runs")
    rep.add_argument("profile")
    rep.add_argument("--out", help="output folder (default reports/<profile name>)")
    rep.set_defaults(func=cmd_report)
    cls = sub.add_parser("cluster-script", help="print the batch script that --cluster FILE would submit")
    cls.add_argument("file", help="a cluster file (YAML): kind, jobs, cores, gpus, memory, walltime, queue, ...")
    cls.set_defaults(func=cmd_cluster_script)
    rdm = sub.add_parser("readme", help="make a finished run the reference: README.md's verdicts and docs/findings.md's "
                         "tables written from its claims.csv")
    rdm.add_argument("profile")
    rdm.add_argument("--out", help="output folder of the run (default reports/<profile name>)")
    rdm.set_defaults(func=cmd_readme)
    cel = sub.add_parser("cells", help="write each notebook's parameters cell from bsnb/parameters.py (after adding "
                         "a parameter or a choice)")
    cel.set_defaults(func=cmd_cells)
    rts = sub.add_parser("rates", help="the rate each learning-rate search of a finished study chose, by the "
                         "protocol's rule (what a pilot search pins in params/workloads.yaml)")
    rts.add_argument("profile")
    rts.add_argument("--out", help="output folder of the run (default reports/<profile name>)")
    rts.set_defaults(func=cmd_rates)
    cmp = sub.add_parser("compare", help="set two finished studies side by side, claim by claim")
    cmp.add_argument("a", help="the first study's folder (its --out) or its claims.csv")
    cmp.add_argument("b", help="the second study's folder or claims.csv")
    cmp.set_defaults(func=cmd_compare)
    return ap


def main(argv=None) -> int:
    import signal

    # SIGPIPE keeps Python's setting (ignored): a write to a socket whose peer has gone (a browser tab on the Dask
    # dashboard closed, a lost worker) then raises an error that Tornado, bokeh and distributed handle. Restoring
    # the default action, the usual trick for `cmd | head`, killed the whole sweep the moment a dashboard page
    # closed (exit 141). A closed pipe on our own stdout is handled below instead.
    # Ctrl-C stops a sweep cleanly even when the process started with SIGINT ignored (a parent that ignores it
    # passes that on, and Python then installs no KeyboardInterrupt): the sweep would not stop at all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parser().parse_args(argv)
    for name in ("workers", "threads"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            print(f"error: --{name} = {getattr(args, name)} is not allowed: expected an integer >= 1", file=sys.stderr)
            return EXIT_INVALID
    try:
        return args.func(args)
    except BrokenPipeError:  # `bsnb validate quick | head`: the reader has gone; end quietly
        _quiet_stdout()
        return EXIT_OK
    except parameters.ProfileError as exc:
        print(f"error: {exc}\nnothing was run.", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:  # the output folder is full or cannot be written: say what and where, in one line
        from bsnb import jobs

        problem = jobs.storage_problem(exc)
        if problem is None:
            raise
        print(f"error: cannot write ({problem}); completed jobs are kept: free space or fix the folder, "
              "then run the same command again to finish the rest", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
