"""One job, on a worker: the record the sweep plans for it (:class:`Planned`), whether it is done, and its
execution: the folder's lock, the environment (threads, log), papermill in the worker's kept kernel
(:mod:`bsnb.kernels`), and the ``status.json`` written last (ok or failed, with its cache key). The sweep
(:mod:`bsnb.sweep`) plans the jobs and hands them to the engine, which calls :func:`run_job` on a worker."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bsnb import kernels, parameters, profiles, results, schedule, sources


@dataclass
class Planned:
    job: profiles.Job
    key: str
    run_dir: Path
    cached: bool
    source: "Planned | None" = None
    damaged: list = field(default_factory=list)  # files of the job's folder that cannot be read: it reruns
    stale: bool = False  # done, but it reads a run that runs again: it reruns too

    @property
    def cost(self) -> float:
        """Rough relative cost (:func:`bsnb.schedule.cost`), so the longest jobs start first."""
        return schedule.cost(self.job.params, self.source.job.params if self.source is not None else None)


def is_done(run_dir: Path, key: str, damaged: list | None = None) -> bool:
    """The job's status says ok for ``key`` and its results are complete (``damaged``: its unreadable files,
    when already known)."""
    store = results.JobStore(run_dir)
    status = store.status() or {}
    damaged = store.damaged() if damaged is None else damaged
    return status.get("status") == "ok" and status.get("key") == key and store.path(results.SUMMARY).exists() \
        and not damaged


@dataclass
class Outcome:
    job_id: str
    state: str  # ok, failed, cached, interrupted, unwritable (the disk is full or the folder read-only)
    seconds: float = 0.0
    error: str | None = None


# A write that fails for one of these reasons fails every job after it: the sweep stops instead.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def storage_problem(exc: BaseException) -> str | None:
    """One line saying what could not be written where, when ``exc`` is a full disk or an unwritable folder."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    if isinstance(exc, PapermillExecutionError) and exc.ename in ("OSError", "PermissionError"):
        codes = {f"[Errno {code}]" for code in STORAGE_ERRNOS}
        if any(code in str(exc.evalue) for code in codes):  # raised inside the kernel, while the notebook saved
            return str(exc.evalue).split("] ", 1)[-1]
    return None


@contextmanager
def job_lock(run_dir: Path):
    """One process at a time per run folder (a second sweep, or an orphan of a killed one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def execute_notebook(name: str, values: dict, output: Path, cwd: Path | None = None, reuse_kernel: bool = False
                     ) -> dict:
    """Run a notebook with papermill; the executed notebook is written to ``output`` atomically. With
    ``reuse_kernel``, in this thread's kept kernel (:mod:`bsnb.kernels`). Returns which kernel ran it.

    On failure the notebook (with papermill's error banner) is still saved, then the error raised.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial.ipynb")
    try:
        return kernels.execute(sources.read_notebook(name), str(partial), values, cwd or parameters.ROOT, reuse=reuse_kernel)
    finally:
        if partial.exists():
            os.replace(partial, output)


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# Set by Dask's Nanny for its workers (distributed.nanny.pre-spawn-environ) and inherited by the kernels they start:
# glibc then returns freed memory to the system at once, and every training step pays page faults for its
# tensors again. Measured here: a batch-1024 step of the default CNN took 25 ms with it against 10.5 ms without,
# and the default profile ran 2.0x slower on Dask than on the old pool until kernels stopped inheriting it.
KERNEL_DROPS = ("MALLOC_TRIM_THRESHOLD_",)


@contextmanager
def job_environment(threads: int, log: Path | None):
    """While a job runs in a worker: the kernel it starts gets ``threads`` CPU threads (kernels inherit the
    environment), and its chatter (and any traceback) goes to the sweep's log rather than the terminal."""
    saved = {var: os.environ.get(var) for var in (*THREAD_VARS, *KERNEL_DROPS)}
    os.environ.update({var: str(threads) for var in THREAD_VARS})
    for var in KERNEL_DROPS:
        os.environ.pop(var, None)
    fds = []
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        fds = [(n, os.dup(n)) for n in (1, 2)]
        for n in (1, 2):
            os.dup2(fd, n)
        os.close(fd)
    try:
        yield
    finally:
        for n, copy in fds:
            os.dup2(copy, n)
            os.close(copy)
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _where() -> dict:
    """The host and Dask worker a job ran on, and the resources that worker declares."""
    import socket

    where = {"host": socket.gethostname()}
    try:
        from distributed import get_worker

        worker = get_worker()
        where.update(worker=worker.address, resources=dict(worker.state.total_resources))
    except (ImportError, ValueError):  # not in a Dask worker
        pass
    return where


def run_job(planned: Planned, threads: int, force: bool, log: str | None = None, reuse_kernel: bool = True
            ) -> Outcome:
    """Execute one job (in a Dask worker, in the worker's kept kernel unless ``reuse_kernel`` is False); record ok
    or failed in its status.json (an interruption records nothing, so the job simply runs again)."""
    try:
        with job_environment(threads, Path(log) if log else None):
            return _run_job(planned, threads, force, reuse_kernel)
    except KeyboardInterrupt:  # the kernel was interrupted, or the worker told to stop
        return Outcome(planned.job.job_id, "interrupted")
    except OSError as exc:  # the lock, a status or the notebook could not be written
        problem = storage_problem(exc)
        if problem is None:
            raise
        return Outcome(planned.job.job_id, "unwritable", error=problem)


def _run_job(planned: Planned, threads: int, force: bool, reuse_kernel: bool) -> Outcome:
    from papermill.exceptions import PapermillExecutionError

    job, run_dir = planned.job, planned.run_dir
    store = results.JobStore(run_dir)
    with job_lock(run_dir):
        if not force and not planned.stale and is_done(run_dir, planned.key):  # finished meanwhile elsewhere
            return Outcome(job.job_id, "cached")
        store.forget()
        params = {**job.injected(), "run_dir": str(run_dir.resolve()), "threads": threads}
        if planned.source is not None:
            params.update(launch_params(job.params, planned.source.run_dir.resolve()))
        start = time.time()
        status = {"notebook": job.notebook, "key": planned.key, "params": params, "started": start, **_where()}
        try:
            status.update(execute_notebook(job.notebook, params, run_dir / results.NOTEBOOK, reuse_kernel=reuse_kernel))
        except PapermillExecutionError as exc:
            if exc.ename == "KeyboardInterrupt":
                return Outcome(job.job_id, "interrupted")
            if storage_problem(exc):
                return Outcome(job.job_id, "unwritable", error=storage_problem(exc))
            error = f"{exc.ename}: {exc.evalue} ({where_raised(exc)})"
        except KeyboardInterrupt:
            return Outcome(job.job_id, "interrupted")
        except Exception as exc:  # the kernel died, could not start, ...
            if storage_problem(exc):
                return Outcome(job.job_id, "unwritable", error=storage_problem(exc))
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        else:
            error = None if store.complete else "the notebook finished without writing its results"
        seconds = time.time() - start
        state = "failed" if error else "ok"
        store.write_status({**status, "status": state, "error": error, "seconds": seconds, "finished": time.time()})
        return Outcome(job.job_id, state, seconds, error)


def launch_params(params: dict, source_dir: Path) -> dict:
    """What a dependent job is given at launch from the run it reads, which is finished by then: ``source_dir``;
    and for a one-pass arm of notebook 04 (C17, C19) its budget, ``epochs``, the small batch's repeated-data
    comparison run's (docs/protocol.md): the large arm trains as many steps (remedy one_pass_longer).

    The seeds of a job train together, so the arm trains for the longest of its seeds' comparison runs (C17 and C19
    read the first s steps, s the step of a seed's repeated-data minimum, inside its run: docs/protocol.md says
    what the longer budget changes). Raises ValueError where the source holds no comparison run of the job's
    seeds at its reference batch."""
    given = {"source_dir": str(source_dir)}
    if params.get("remedy") not in profiles.ONE_PASS:
        return given
    compared = results.JobStore(source_dir)
    epochs = {s["seed"]: s.get("epochs_run") for s in compared.summary()["seeds"]}
    batch, missing = compared.params().get("batch_size"), [s for s in params["seeds"] if not epochs.get(s)]
    if batch != params["reference_batch"] or missing:
        raise ValueError(f"{source_dir} holds a comparison at batch {batch} with seeds {sorted(epochs)}: remedy "
                         f"{params['remedy']} needs batch {params['reference_batch']} (reference_batch) with seeds "
                         f"{params['seeds']}")
    return {**given, "epochs": int(max(epochs[s] for s in params["seeds"]))}


def may_use_gpu(params: dict) -> bool:
    """Whether a job's device can be a GPU (then it asks the engine for one, where the cluster has any)."""
    return str(params.get("device", "auto")).startswith(("auto", "cuda"))


def where_raised(exc) -> str:
    """Where a notebook's error came from: its cell and the deepest line of bsnb in the traceback (the
    executed notebook holds the whole traceback; this names it in the sweep's one line)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(getattr(exc, "traceback", None) or []))
    frames = re.findall(r"File (\S*bsnb/\S+\.py):(\d+), in (\w+)", text)
    where = f"cell {exc.exec_count}"
    if frames:
        path, line, func = frames[-1]
        where += f", {Path(path).relative_to(parameters.ROOT) if parameters.ROOT in Path(path).parents else path}" \
                 f":{line} in {func}"
    return where
