"""The sweep: a profile's jobs executed with papermill on Dask workers, cached and resumable.

Data flow: profile -> :func:`bsnb.profiles.expand` (every job validated, nothing has run yet)
-> :func:`plan` (cache keys; which jobs are already done) -> :func:`execute` (papermill, in a
kernel each worker keeps (:mod:`bsnb.kernels`), on the workers of :class:`bsnb.engine.Engine`) -> the findings notebook -> the report.
:func:`run` does all of it and keeps the books (the plan, the profile copied, the timings).

This module imports no notebook and no training code; the notebooks do the work. A job's cache
key covers the notebook's source, its parameters, the ``bsnb`` source the notebooks run, and the
data's identity. A job is done when its ``status.json`` says ``ok`` for the same key; that file is
written last, after the executed notebook, so an interrupted job is simply run again.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bsnb import choices, jobs, parameters, profiles, results, schedule, sources
from bsnb import data as data_mod
from bsnb.engine import WORKER_DEATHS, Engine, cores
from bsnb.jobs import Outcome, Planned, is_done, may_use_gpu, run_job, where_raised


def cache_key(job: profiles.Job, notebook_code: str, bsnb_digest: str, source_key: str | None = None) -> str:
    """What a job's result depends on; a job that reads another run depends on that run's key too."""
    blob = {"notebook": notebook_code, "params": job.identity(), "bsnb": bsnb_digest,
            "data": data_mod.identity(job.params) if "dataset" in job.params else None, "source": source_key}
    own_model = sources.model_digest(job.params.get("model", ""))
    if own_model:  # a model defined outside bsnb: its file's code (the study's own models are in bsnb_digest)
        blob["model_source"] = own_model
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# planning


def plan(profile: profiles.Profile, out_dir: Path, force: bool = False) -> list[Planned]:
    """Validate every job and work out which are already done. Raises ProfileError; runs nothing."""
    jobs = profiles.expand(profile)
    problems = sources.pairing_problems(profile.notebooks + [parameters.FINDINGS])
    problems += data_mod.missing((j.params["dataset"], j.params.get("data_path", "")) for j in jobs
                                 if "dataset" in j.params)
    problems += own_model_problems(jobs) if not problems else []
    if problems:
        raise parameters.ProfileError(problems, str(profile.path))
    digest = sources.source_digest()
    texts = {nb: sources.notebook_code(nb) for nb in {j.notebook for j in jobs}}
    store = results.store_dir(out_dir)
    planned: dict[str, Planned] = {}
    for job in jobs:  # sources come first
        source = planned[job.source.job_id] if job.source is not None else None
        key = cache_key(job, texts[job.notebook], digest, source.key if source else None)
        run_dir = store / job.job_id
        damaged = results.JobStore(run_dir).damaged() if run_dir.is_dir() else []
        # a job that reads a run that will run again reruns too: it measured the files being replaced
        done = not force and is_done(run_dir, key, damaged)
        stale = done and source is not None and not source.cached
        planned[job.job_id] = Planned(job, key, run_dir, cached=done and not stale, source=source, damaged=damaged,
                                      stale=stale)
    return list(planned.values())


def own_model_problems(jobs: list[profiles.Job]) -> list[str]:
    """Why a model named by import path cannot train on its job's data (:func:`bsnb.models.problems_of`) or, where
    the job may stack its seeds, stacked (:func:`bsnb.stacking.stack_problem`): checked once per model, data shape
    and width before any job runs. The study's own models need no check."""
    own = {(j.params["model"], data_mod.input_shape(j.params), data_mod.n_classes(j.params), j.params.get("width", 25),
            j.params.get("batch_norm", False), j.params.get("stack", "auto") != "off" and len(j.params.get("seeds", [0])) > 1)
           for j in jobs if choices.is_import_path(j.params.get("model", ""))}
    if not own:
        return []
    from bsnb import models, stacking  # torch's modules, only for a profile that names its own model

    problems = []
    for model, shape, classes, width, bn, stacks in sorted(own, key=str):
        if shape is None:
            continue
        found = models.problems_of(model, shape, classes, width, bn)
        if not found and stacks:
            found = [p for p in [stacking.stack_problem(model, shape, classes, width, bn)] if p]
        problems += [p for p in found if p not in problems]
    return problems


# --------------------------------------------------------------------------------------------
# the whole sweep


@dataclass
class SweepResult:
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    unwritable: str | None = None  # why the sweep stopped early: what could not be written where
    lost: str | None = None  # why the sweep stopped early: the scheduler was lost or could not be reached
    seconds: float = 0.0
    engine: str = ""  # where the jobs ran, and how many at once
    workers: int = 0
    estimated: float | None = None  # the jobs' wall time the cost model expected at the start, in seconds

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.state == "failed"]


def log_path(out_dir: Path) -> Path:
    return Path(out_dir) / "logs" / "sweep.log"


def _record_failure(p: Planned, error: str) -> Outcome:
    """A job that failed without writing its own status (its source failed, its worker died): written here."""
    store = results.JobStore(p.run_dir)
    store.forget()
    store.write_status({"notebook": p.job.notebook, "key": p.key, "status": "failed", "params": p.job.params,
                        "error": error})
    return Outcome(p.job.job_id, "failed", error=error)


def execute(planned: list[Planned], engine: Engine, force: bool = False, progress: bool = True,
            stream=None, log: Path | None = None, reuse_kernels: bool = True) -> SweepResult:
    """Run the jobs that are not cached on ``engine``, longest first, each dependent job once its source is
    done (each worker reusing its kernel, unless ``reuse_kernels`` is False); Ctrl-C or SIGTERM stops the
    running jobs and keeps the completed ones."""
    from distributed import wait
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    result = SweepResult()
    start = time.time()
    todo = schedule.longest_first([p for p in planned if not p.cached], lambda p: p.cost)
    result.outcomes += [Outcome(p.job.job_id, "cached") for p in planned if p.cached]
    # the bar draws on a terminal only; job lines are written either way
    bar = tqdm(total=len(planned), initial=len(planned) - len(todo), desc="jobs", unit="job", file=stream,
               disable=None if progress else True, dynamic_ncols=True, mininterval=0.5)
    if result.outcomes:
        bar.write(f"{len(result.outcomes)} of {len(planned)} jobs already done (cached)", file=stream)
    if not todo:
        bar.close()
        return result
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    running: dict = {}  # future -> Planned
    queue = list(todo)
    finished = {o.job_id: o.state for o in result.outcomes}

    def ready(p: Planned) -> bool:
        return p.source is None or finished.get(p.source.job.job_id) in ("ok", "cached")

    clock: schedule.Clock | None = None  # the time left, once the engine says how many jobs run at once
    started: dict[str, float] = {}

    def done(outcome: Outcome, line: str):
        result.outcomes.append(outcome)
        finished[outcome.job_id] = outcome.state
        bar.update(1)
        left = ""
        if clock is not None:
            clock.finished(outcome.job_id, outcome.seconds, ran=outcome.state == "ok")
            now = time.time()
            seconds = clock.seconds_left({p.job.job_id: now - started[p.job.job_id] for p in running.values()})
            left = f"; about {schedule.duration(seconds)} left" if len(result.outcomes) < len(planned) else ""
        bar.write(f"[{len(result.outcomes)}/{len(planned)}] {line}{left}", file=stream)

    try:
        engine.start(jobs=len(todo))
        threads, gpu = engine.job_threads(), engine.has_gpus()
        result.engine, result.workers, dashboard = engine.kind, engine.size(), engine.dashboard
        bar.write(f"engine: {result.engine}, {result.workers} job(s) at once, {threads} thread(s) each"
                  + (", a GPU for each job that may use one" if gpu else "")
                  + (f"; dashboard {dashboard}" if dashboard else ""), file=stream)
        clock = schedule.Clock({p.job.job_id: p.cost for p in todo}, result.workers)
        result.estimated = clock.at_start
        bar.write(f"{len(todo)} job(s) to run: about {schedule.duration(clock.at_start)} by the cost model "
                  "(refined as jobs finish)", file=stream)
        while queue or running:
            for p in [p for p in queue if p.source is not None and finished.get(p.source.job.job_id) == "failed"]:
                queue.remove(p)  # the run it reads failed: it cannot run
                outcome = _record_failure(p, f"the run it reads ({p.source.job.job_id}) failed")
                done(outcome, f"FAILED {p.job.job_id}: {outcome.error}")
            # the longest ready jobs, as many as the workers have free threads (bsnb.schedule)
            for p in schedule.to_start(queue, ready, engine.slots() if queue else 0, len(running)):
                queue.remove(p)
                fut = engine.submit(run_job, p, threads, force, str(log) if log else None, reuse_kernels,
                                    name=p.job.job_id, priority=p.cost, gpu=gpu and may_use_gpu(p.job.params))
                running[fut] = p
                started[p.job.job_id] = time.time()
            if not running:  # nothing can start: what is left waits on a run that will not come
                for p in queue:
                    done(Outcome(p.job.job_id, "failed", error="the run it reads was not run"),
                         f"FAILED {p.job.job_id}: the run it reads was not run")
                break
            bar.set_postfix_str(f"in flight: {len(running)} | failed: {len(result.failed)}", refresh=False)
            bar.refresh()
            try:
                finished_now = wait(list(running), timeout=1.0, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            for fut in finished_now:
                p = running.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # the worker died every time it ran the job (KilledWorker), ...
                    if engine.connection_problem(exc):  # ... or the scheduler is gone: not the job's failure
                        raise
                    outcome = _record_failure(p, _describe_failure(exc))
                if outcome.state == "interrupted":
                    raise KeyboardInterrupt
                if outcome.state == "unwritable":
                    result.unwritable = f"{p.job.job_id}: {outcome.error}"
                    raise KeyboardInterrupt
                mark = "FAILED" if outcome.state == "failed" else outcome.state
                done(outcome, f"{mark:6s} {p.job.job_id} ({outcome.seconds:.1f} s, {time.time() - start:.0f} s elapsed)"
                     + (f": {outcome.error}" if outcome.error else ""))
    except KeyboardInterrupt:
        result.interrupted = result.unwritable is None
        bar.write(f"cannot write ({result.unwritable}): stopping the running jobs" if result.unwritable else
                  "interrupted: stopping the running jobs; completed jobs are kept, rerun to finish the rest",
                  file=stream)
        engine.stop(running)
    except Exception as exc:  # the scheduler was lost, or never reached: what finished is kept
        result.lost = engine.connection_problem(exc)
        if result.lost is None:
            raise
        bar.write(f"{result.lost}: stopping; completed jobs are kept", file=stream)
        engine.abandon()
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        result.seconds = time.time() - start
    return result


def _describe_failure(exc: BaseException) -> str:
    """One line for a job whose task raised in the engine rather than in its notebook."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        deaths = getattr(exc, "allowed_failures", WORKER_DEATHS - 1) + 1
        return f"its worker died each of the {deaths} times it ran the job (killed, out of memory, or its node lost)"
    return f"{type(exc).__name__}: {exc}"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _findings_job(params: dict, output: Path) -> str | None:
    from papermill.exceptions import PapermillExecutionError

    try:
        jobs.execute_notebook(parameters.FINDINGS, params, output)
    except PapermillExecutionError as exc:
        return f"{exc.ename}: {exc.evalue} ({where_raised(exc)})"
    return None


def findings_key(params: dict, out_dir: Path) -> str:
    """What the findings depend on: their notebook, all of bsnb, their parameters (and workload), and the state of
    every run they read."""
    h = hashlib.sha256(sources.notebook_source(parameters.FINDINGS).read_bytes())
    for path in sorted((parameters.ROOT / "bsnb").rglob("*.py")):  # claims/ too: a changed rule reruns the findings
        h.update(path.read_bytes())
    h.update(json.dumps({k: v for k, v in params.items() if parameters.PARAMS[k].kind != "system"}, sort_keys=True).encode())
    h.update(params.get("workload", "").encode())
    for run in results.jobs_in(results.store_dir(out_dir), workload=params.get("workload", "")):
        stamp = run.path(results.STATUS).stat().st_mtime_ns if run.path(results.STATUS).exists() else None
        h.update(json.dumps([run.job_id, run.state(), stamp]).encode())
    return h.hexdigest()


def run_findings(profile: profiles.Profile, out_dir: Path) -> str | None:
    """Execute the findings notebook over the store, here with every core, once per workload of the profile (each
    into its own folder, their verdicts then gathered into one ``claims.csv`` with a workload column); an error
    message, or None.

    Nothing is executed when the findings' inputs (see :func:`findings_key`) are those of their last
    successful run: ``bsnb report`` then only rebuilds the pages.
    """
    out_dir = Path(out_dir).resolve()
    names = profile.workload_names
    errors = []
    for name in names or [""]:
        error = _findings_of(profile, out_dir, name)
        if error:
            errors.append(f"workload {name}: {error}" if name else error)
    if names:
        results.gather_claims(out_dir, names)
    return "; ".join(errors) or None


def _findings_of(profile: profiles.Profile, out_dir: Path, workload: str) -> str | None:
    report_dir = results.workload_dir(out_dir, workload) if workload else out_dir
    params = profiles.findings_params(profile, store_dir=str(results.store_dir(out_dir)), report_dir=str(report_dir))
    params["workload"] = workload
    key = findings_key(params, out_dir)
    marker = out_dir / "logs" / (f"findings-{workload}.json" if workload else "findings.json")
    done = results.read_json(marker).get("key") if marker.exists() else None
    notebook = report_dir / f"{parameters.FINDINGS}.ipynb"
    if done == key and results.claims_path(report_dir).exists() and notebook.exists():
        return None
    marker.unlink(missing_ok=True)
    results.clear_findings(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    with jobs.job_environment(cores(), log_path(out_dir)):
        error = _findings_job(params, notebook)
    if error is None:
        results.write_json(marker, {"key": key})
    return error


# --------------------------------------------------------------------------------------------
# a profile from start to end


@dataclass
class ProfileRun:
    planned: list[Planned]
    result: SweepResult
    findings_error: str | None = None
    index: Path | None = None  # the report's front page
    timings: dict = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        return self.result.interrupted or self.result.unwritable is not None or self.result.lost is not None


def run(profile: profiles.Profile, out_dir: Path, engine: Engine, force: bool = False, progress: bool = True,
        say=print, build_report=None, reuse_kernels: bool = True, findings: bool = True) -> ProfileRun:
    """Everything ``bsnb run`` does: plan, keep the books, execute the jobs, the findings, then
    ``build_report(out_dir, profile, meta)``. ``say`` gets the lines a user should read before the jobs start.
    ``findings=False`` stops after the jobs (``bsnb run --jobs-only``; ``bsnb report`` builds the rest later)."""
    start = time.time()
    out_dir = Path(out_dir)
    planned = plan(profile, out_dir, force=force)
    say(f"profile {profile.name}: {len(planned)} jobs ({sum(p.cached for p in planned)} cached), "
        f"output in {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "profile.yaml").write_text(profile.path.read_text())
    store = results.store_dir(out_dir)
    results.write_plan(store, profile.name, [p.job.job_id for p in planned], profiles.workload_jobs(profile))
    old = results.superseded(store)
    if old:
        say(f"{len(old)} run folder(s) in {store} are not jobs of this profile (an earlier version of it?): "
            f"kept on disk, left out of the findings and the report: {', '.join(old)}")
    for p in planned:
        if p.damaged:
            readers = [q.job.job_id for q in planned if q.source is p and q.stale]
            say(f"{p.job.job_id}: cannot read {', '.join(p.damaged)} in {p.run_dir} (damaged): running it again"
                + (f", and the job(s) that read it: {', '.join(readers)}" if readers else ""))
    with engine:
        result = execute(planned, engine, force=force, progress=progress, log=log_path(out_dir),
                         reuse_kernels=reuse_kernels)
    done = ProfileRun(planned, result)
    if done.stopped:
        return done
    t_findings = time.time()
    commit = sources.code_commit()  # the code that ran the jobs: the reference runs name it (bsnb.readme)
    done.findings_error = run_findings(profile, out_dir) if findings else None
    t_report = time.time()
    if build_report is not None and findings:
        done.index = build_report(out_dir, profile, meta={
            "wall time": f"{time.time() - start:.0f} s (jobs {result.seconds:.0f} s, findings {t_report - t_findings:.0f} s)"})
    done.timings = {"commit": commit, "finished": time.strftime("%Y-%m-%d %H:%M %Z"),
                    "total": time.time() - start, "jobs": result.seconds, "findings": t_report - t_findings,
                    "report": time.time() - t_report, "workers": result.workers,
                    "engine": result.engine,
                    "ran": [o.job_id for o in result.outcomes if o.state in ("ok", "failed")]}
    results.write_json(out_dir / "logs" / "timings.json", done.timings)
    return done
