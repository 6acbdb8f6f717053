"""``bsnb``: run, check and report the study from the command line.

    bsnb run PROFILE [--out DIR] [--workers N] [--force]   sweep, findings, report; prints the report path last
    bsnb validate PROFILE                                   check a profile, list its jobs; runs nothing
    bsnb report PROFILE [--out DIR]                         rebuild findings and report from stored runs
    bsnb readme PROFILE [--out DIR]                         README.md's results from the run's claims.csv

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
    profile, out_dir, planned = _load(args.profile, args.out)
    print(f"profile {profile.name} ({profile.path}): {len(planned)} jobs, "
          f"{sum(p.cached for p in planned)} already done in {out_dir}")
    for p in planned:
        axes = ", ".join(f"{a}={p.job.params[a]}" for a in p.job.axes)
        print(f"  {'cached' if p.cached else 'to run':7s} {p.job.job_id}  {axes}")
    print("valid: nothing was run")
    return EXIT_OK


def cmd_run(args) -> int:
    from bsnb import report, results, sweep

    start = time.time()
    profile, out_dir, planned = _load(args.profile, args.out, force=args.force)
    workers = args.workers or profile.workers or sweep.default_workers()
    print(f"profile {profile.name}: {len(planned)} jobs ({sum(p.cached for p in planned)} cached), "
          f"{workers} worker(s), output in {out_dir}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile.yaml").write_text(profile.path.read_text())
    store = results.store_dir(out_dir)
    results.write_plan(store, profile.name, [p.job.job_id for p in planned])
    old = results.superseded(store)
    if old:
        print(f"{len(old)} run folder(s) in {store} are not jobs of this profile (an earlier version of it?): "
              f"kept on disk, left out of the findings and the report: {', '.join(old)}", flush=True)
    for p in planned:
        if p.damaged:
            print(f"{p.job.job_id}: cannot read {', '.join(p.damaged)} in {p.run_dir} (damaged): running it again",
                  flush=True)
    result = sweep.execute(planned, workers, force=args.force, progress=not args.quiet, log=sweep.log_path(out_dir))
    if result.unwritable:
        done = result.count("ok") + result.count("cached")
        print(f"error: cannot write in {out_dir} ({result.unwritable}); {done} of {len(planned)} jobs complete and kept: "
              f"free space or fix the folder, then run the same command again to finish the rest", file=sys.stderr)
        return EXIT_FAILED
    if result.interrupted:
        done = result.count("ok") + result.count("cached")
        print(f"interrupted after {time.time() - start:.0f} s: {done} of {len(planned)} jobs complete; "
              f"run the same command again to finish the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    t_findings = time.time()
    findings_error = sweep.run_findings(profile, out_dir)
    t_report = time.time()
    index = report.build(out_dir, profile, meta={
        "wall time": f"{time.time() - start:.0f} s (jobs {result.seconds:.0f} s, findings {t_report - t_findings:.0f} s)"})
    timings = {"total": time.time() - start, "jobs": result.seconds, "findings": t_report - t_findings,
               "report": time.time() - t_report, "workers": workers,
               "ran": [o.job_id for o in result.outcomes if o.state in ("ok", "failed")]}
    results.write_json(out_dir / "logs" / "timings.json", timings)
    ran = result.count("ok") + result.count("failed")
    print(f"{len(planned)} jobs: {ran} ran, {result.count('cached')} cached, {len(result.failed)} failed; "
          f"findings {'FAILED: ' + findings_error if findings_error else 'ok'}; "
          f"{timings['total']:.0f} s in all (jobs {result.seconds:.0f} s, findings {timings['findings']:.0f} s, "
          f"report {timings['report']:.0f} s)")
    for o in result.failed:
        print(f"  failed: {o.job_id}: {o.error} (notebook kept in {out_dir / 'runs' / o.job_id})")
    print(index.resolve())
    return EXIT_FAILED if result.failed or findings_error else EXIT_OK


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
    from bsnb import report, results

    profile = profiles.load_profile(args.profile)
    out_dir = _out_dir(profile, args.out)
    if not results.claims_path(out_dir).exists():
        print(f"no claims.csv in {out_dir}: run `bsnb run {args.profile}` first", file=sys.stderr)
        return EXIT_FAILED
    ref = report.write_reference(out_dir, profile.name)
    report.update_readme(profile.name)
    print(f"README.md's results written from {ref}")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bsnb", description="Effect of batch size on neural-net training: "
                                 "a parameterised notebook study.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a profile's sweep, the findings and the report")
    run.add_argument("profile", help="profile name in params/ (quick, smoke, full) or a YAML path")
    run.add_argument("--out", help="output folder (default reports/<profile name>)")
    run.add_argument("--workers", type=int, help="parallel notebook executions (default: one per core)")
    run.add_argument("--force", action="store_true", help="rerun jobs even when their cached result is current")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)
    val = sub.add_parser("validate", help="check a profile and list its jobs; runs nothing")
    val.add_argument("profile")
    val.add_argument("--out", help="output folder to check for cached jobs")
    val.set_defaults(func=cmd_validate)
    rep = sub.add_parser("report", help="rebuild the findings and the report from stored runs")
    rep.add_argument("profile")
    rep.add_argument("--out", help="output folder (default reports/<profile name>)")
    rep.set_defaults(func=cmd_report)
    rdm = sub.add_parser("readme", help="write README.md's results from a finished run (its claims.csv)")
    rdm.add_argument("profile")
    rdm.add_argument("--out", help="output folder of the run (default reports/<profile name>)")
    rdm.set_defaults(func=cmd_readme)
    return ap


def main(argv=None) -> int:
    import signal

    if hasattr(signal, "SIGPIPE"):  # `bsnb validate quick | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # Ctrl-C stops a sweep cleanly even when the process started with SIGINT ignored (a parent that ignores it
    # passes that on, and Python then installs no KeyboardInterrupt): the sweep would not stop at all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parser().parse_args(argv)
    if getattr(args, "workers", None) is not None and args.workers < 1:
        print(f"error: --workers = {args.workers} is not allowed: expected an integer >= 1", file=sys.stderr)
        return EXIT_INVALID
    try:
        return args.func(args)
    except parameters.ProfileError as exc:
        print(f"error: {exc}\nnothing was run.", file=sys.stderr)
        return EXIT_INVALID
    except OSError as exc:  # the output folder is full or cannot be written: say what and where, in one line
        from bsnb import sweep

        problem = sweep.storage_problem(exc)
        if problem is None:
            raise
        print(f"error: cannot write ({problem}); completed jobs are kept: free space or fix the folder, "
              "then run the same command again to finish the rest", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
