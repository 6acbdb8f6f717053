"""Where a sweep's jobs execute: Dask distributed, on a local cluster by default or on a cluster the user names.

Three ways to get workers, one interface (:class:`Engine`):

* ``bsnb run PROFILE``: a local cluster of worker processes, started here and stopped at the end. One
  notebook at a time per worker (papermill's ``cwd`` is a process-wide ``chdir``); on a machine with
  GPUs, one worker per GPU, each seeing only its own (``CUDA_VISIBLE_DEVICES``).
* ``bsnb run PROFILE --scheduler ADDRESS``: a running Dask cluster (``dask scheduler`` and ``dask worker``
  processes started by the user); nothing is started or stopped here.
* ``bsnb run PROFILE --cluster FILE``: a SLURM or PBS cluster through dask-jobqueue, described by a small
  YAML file (:data:`CLUSTER_KEYS`); started, scaled to the jobs and closed here. ``bsnb cluster-script
  FILE`` prints the batch script it would submit.

A GPU is a Dask resource: workers that have one declare ``GPU=1``, and a job whose device may be a GPU asks
for one when the cluster has any, so N GPUs run N jobs at once and never two on one GPU.

This module knows Dask and clusters, nothing about notebooks or the study: :mod:`bsnb.sweep` hands it
functions to run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bsnb import parameters

# A job whose worker died this many times while running it (killed, out of memory, node lost) fails with
# ``KilledWorker`` instead of taking down worker after worker; before that it reruns on another worker.
WORKER_DEATHS = 3

# What a cluster file may hold. Every key but ``kind`` is optional.
CLUSTER_KEYS = {
    "kind": "the batch system: slurm, pbs, or local (dask-jobqueue's own, to try the file on one machine)",
    "jobs": "how many batch jobs at most, each one Dask worker running one notebook at a time (default 4)",
    "cores": "CPU threads per job: torch's threads in its notebook (default 1)",
    "gpus": "GPUs per job (default 0); a worker with one declares the Dask resource GPU",
    "memory": "memory per job, e.g. 16GB (default 8GB)",
    "walltime": "wall time per batch job, e.g. 04:00:00 (default 01:00:00)",
    "queue": "the partition (SLURM) or queue (PBS)",
    "account": "the account or project charged",
    "interface": "the network interface the workers reach the scheduler on, e.g. ib0",
    "python": "the Python of the study's environment on the compute nodes (default: this one)",
    "directives": "extra lines for the batch script's header, e.g. ['--constraint=a100']",
    "prologue": "shell lines run before the worker starts, e.g. ['module load cuda', 'source env/bin/activate']",
    "log_directory": "where the batch jobs' own output goes (default: the sweep's logs/cluster)",
}
CLUSTER_KINDS = ("slurm", "pbs", "local")


# --------------------------------------------------------------------------------------------
# GPUs on this machine


def local_gpus() -> list[str]:
    """The GPUs this machine offers, as ``CUDA_VISIBLE_DEVICES`` entries, found without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in listing.splitlines() if l.startswith("GPU "))]


def default_workers() -> int:
    """One worker per GPU on a GPU machine, else one per core this process may use."""
    return len(local_gpus()) or cores()


def cores() -> int:
    """The cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------
# cluster files (dask-jobqueue)


def read_cluster_file(path) -> dict:
    """A cluster file's settings, checked: raises ProfileError naming each bad key and what it allows."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise parameters.ProfileError([f"cannot read the cluster file: {exc.strerror}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise parameters.ProfileError([f"not valid YAML: {exc}"], str(path)) from None
    raw = raw.get("cluster", raw) if isinstance(raw, dict) else raw  # a profile-like file with a cluster: section
    if not isinstance(raw, dict):
        raise parameters.ProfileError(["expected a mapping of cluster settings"], str(path))
    problems = [f"unknown key {k!r}: allowed keys are {', '.join(CLUSTER_KEYS)}" for k in raw if k not in CLUSTER_KEYS]
    if raw.get("kind") not in CLUSTER_KINDS:
        problems.append(f"kind = {raw.get('kind')!r} is not allowed: expected one of {', '.join(CLUSTER_KINDS)}")
    for key, low in (("jobs", 1), ("cores", 1), ("gpus", 0)):
        value = raw.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(f"{key} = {value!r} is not allowed: expected an integer >= {low}")
    for key in ("directives", "prologue"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{key} = {value!r} is not allowed: expected a list of strings")
    for key in ("memory", "walltime", "queue", "account", "interface", "python", "log_directory"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{key} = {raw[key]!r} is not allowed: expected a string")
    if problems:
        raise parameters.ProfileError(problems, str(path))
    settings = {"jobs": 4, "cores": 1, "gpus": 0, "memory": "8GB", "walltime": "01:00:00", "directives": [],
                "prologue": [], **raw}
    settings["path"] = str(path)
    return settings


def jobqueue_cluster(settings: dict, log_directory: Path | None = None):
    """The dask-jobqueue cluster a cluster file describes (its scheduler starts here; no job is submitted yet).

    Each batch job is one Dask worker with one thread (one notebook at a time) and ``cores`` CPUs for torch.
    """
    import sys

    kind, gpus, ncpu = settings["kind"], settings["gpus"], settings["cores"]
    common = dict(cores=1, processes=1, memory=settings["memory"], walltime=settings["walltime"],
                  python=settings.get("python", sys.executable), job_name="bsnb",
                  job_script_prologue=settings["prologue"], log_directory=settings.get("log_directory") or (
                      str(log_directory) if log_directory else None),
                  worker_extra_args=["--resources", f"GPU={gpus}"] if gpus else [],
                  scheduler_options={"dashboard_address": None, **({"interface": settings["interface"]}
                                                                  if settings.get("interface") else {})})
    if settings.get("interface"):
        common["interface"] = settings["interface"]
    if kind == "slurm":
        from dask_jobqueue import SLURMCluster

        return SLURMCluster(queue=settings.get("queue"), account=settings.get("account"), job_cpu=ncpu,
                            job_extra_directives=settings["directives"] + ([f"--gres=gpu:{gpus}"] if gpus else []),
                            **common)
    if kind == "pbs":
        from dask_jobqueue import PBSCluster

        spec = f"select=1:ncpus={ncpu}:mem={settings['memory']}" + (f":ngpus={gpus}" if gpus else "")
        return PBSCluster(queue=settings.get("queue"), account=settings.get("account"), resource_spec=spec,
                          job_extra_directives=settings["directives"], **common)
    from dask_jobqueue.local import LocalCluster

    common.pop("walltime")
    return LocalCluster(**common)


def cluster_script(path) -> str:
    """The batch script ``--cluster FILE`` would submit for each worker."""
    cluster = jobqueue_cluster(read_cluster_file(path))
    try:
        return cluster.job_script()
    finally:
        cluster.close()


# --------------------------------------------------------------------------------------------
# the engine


@dataclass
class Engine:
    """A Dask client and, when started here, its cluster. Use as a context manager: the cluster stops at exit."""

    workers: int | None = None  # local cluster: worker processes (default: one per GPU, else per core)
    threads: int | None = None  # torch threads per job (default: the cores shared among the workers)
    scheduler: str | None = None  # the address of a running Dask scheduler
    cluster_file: str | None = None  # a dask-jobqueue cluster file
    log_directory: Path | None = None  # the batch jobs' output, for a jobqueue cluster
    client: object = field(default=None, init=False)
    cluster: object = field(default=None, init=False)
    settings: dict = field(default_factory=dict, init=False)

    def __post_init__(self):
        if sum(x is not None for x in (self.scheduler, self.cluster_file)) > 1:
            raise parameters.ProfileError(["--scheduler and --cluster both given: choose one"], "command line")
        if self.cluster_file is not None:
            self.settings = read_cluster_file(self.cluster_file)

    # -- what it is

    @property
    def kind(self) -> str:
        if self.scheduler:
            return f"the Dask cluster at {self.scheduler}"
        if self.settings:
            return f"a {self.settings['kind']} cluster ({self.settings['path']})"
        return "a local Dask cluster"

    def size(self) -> int:
        """How many jobs can run at once: the cluster file's jobs (its workers come as the batch system starts
        them), else the worker threads connected."""
        if self.settings:
            return self.settings["jobs"]
        return self.slots() if self.client else (self.workers or default_workers())

    def job_threads(self) -> int:
        if self.threads:
            return self.threads
        if self.settings:
            return self.settings["cores"]
        if self.scheduler:
            return 1
        return max(1, cores() // (self.workers or default_workers()))

    def slots(self) -> int:
        """How many jobs can start now: the worker threads connected (at least 1, so a job waits for the first)."""
        return max(1, sum(w.get("nthreads", 1) for w in self._workers()))

    def has_gpus(self) -> bool:
        """Whether any worker declares a GPU (then every job that may use one asks for one)."""
        if self.settings:
            return self.settings["gpus"] > 0
        return any(w.get("resources", {}).get("GPU") for w in self._workers())

    def _workers(self) -> list[dict]:
        """What the scheduler knows of every connected worker."""
        return list(self.client.scheduler_info(n_workers=-1).get("workers", {}).values())

    @property
    def dashboard(self) -> str | None:
        """The address of Dask's dashboard, when one runs (it needs bokeh)."""
        import importlib.util

        if self.client is None or importlib.util.find_spec("bokeh") is None:
            return None
        try:
            if "dashboard" not in self.client.scheduler_info(n_workers=0).get("services", {}):
                return None  # a scheduler started with --no-dashboard
            return self.client.dashboard_link
        except Exception:  # no dashboard
            return None

    # -- starting and stopping

    def start(self, jobs: int = 0):
        """Connect to the scheduler, or start a cluster with workers for at most ``jobs`` jobs at once."""
        import dask
        from distributed import Client

        dask.config.set({"distributed.scheduler.allowed-failures": WORKER_DEATHS - 1,
                         # a worker that waits for a notebook is not stuck, and its kernel's memory is not its own
                         "distributed.worker.memory.terminate": False,
                         "distributed.admin.tick.limit": "1h",
                         # one job per worker thread at a time, the rest kept by the scheduler: a job submitted later
                         # with a higher priority (a dependent job whose source just finished) starts next
                         "distributed.scheduler.worker-saturation": 1.0,
                         # the workers only wait for their kernels, on the same cores: Dask's own sampling (a stack
                         # profile every 10 ms, the event loop's health every 20 ms, memory every 100 ms) took 4%
                         # of a core per worker, and the default profile ran 1.09x the old pool's time
                         "distributed.worker.profile.enabled": False,
                         "distributed.admin.tick.interval": "1s",
                         "distributed.admin.system-monitor.interval": "5s",
                         "distributed.admin.system-monitor.gil.enabled": False,
                         "distributed.worker.memory.monitor-interval": "5s"})
        if self.scheduler:
            # how long to try to reach the scheduler, and to reconnect once lost: Dask's connect timeout (30 s)
            self.client = Client(self.scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect"))
        elif self.settings:
            self.cluster = jobqueue_cluster(self.settings, self.log_directory)
            self.cluster.scale(jobs=max(1, min(self.settings["jobs"], jobs or self.settings["jobs"])))
            self.client = Client(self.cluster)
        else:
            self.cluster = local_cluster(min(self.workers or default_workers(), max(jobs, 1)))
            self.client = Client(self.cluster)
        if self.cluster is not None:  # workers started here; a user's own cluster is left as it is
            self.client.register_plugin(quiet_close())
        return self

    def close(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def address(self) -> str:
        """Where the scheduler is: the address given, or the one started here."""
        if self.scheduler:
            return self.scheduler
        with contextlib.suppress(Exception):
            return self.cluster.scheduler_address
        return "the cluster started here"

    def connection_problem(self, exc: BaseException) -> str | None:
        """One line saying the scheduler was lost or never reached, when ``exc`` says so; else None.

        A client that loses its scheduler tries to reconnect for the connect timeout, then closes and cancels the
        futures it held (``FuturesCancelledError``); one that cannot reach it raises ``OSError`` ("Timed out trying
        to connect"). Neither is a job's failure: the jobs that finished are kept and a rerun does the rest.
        """
        from concurrent.futures import CancelledError

        from distributed.comm.core import CommClosedError

        closed = self.client is not None and getattr(self.client, "status", "running") in ("closing", "closed")
        if self.client is None and isinstance(exc, OSError) and exc.errno is None:  # while connecting
            return f"cannot reach the Dask scheduler at {self.address} ({str(exc).splitlines()[0]})"
        if isinstance(exc, (CancelledError, CommClosedError, ConnectionError, TimeoutError)) or closed:
            return f"lost the connection to the Dask scheduler at {self.address}"
        return None

    def abandon(self):
        """Give up on a scheduler that is gone: the client's own reconnection attempts, cut short as it closes, would
        log their tracebacks after the one line the sweep has already said."""
        import logging

        for name in ("distributed", "distributed.client", "distributed.comm"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.close()

    # -- jobs

    def submit(self, fn, *args, name: str, priority: float = 0, gpu: bool = False):
        """Run ``fn(*args)`` on a worker; a job that may use a GPU gets one when the cluster has any."""
        return self.client.submit(fn, *args, key=f"{name}-{uuid.uuid4().hex[:8]}", priority=priority, pure=False,
                                  resources={"GPU": 1} if gpu else None)

    def stop(self, futures):
        """Stop running jobs: Dask cannot stop a running task, so the workers that run them are restarted (a
        cluster started here is closed at exit anyway); their kernels notice and exit."""
        futures = list(futures)
        if not futures or self.client is None:
            return
        keys = {f.key for f in futures}
        busy = [w for w, tasks in self.client.processing().items() if keys & set(tasks)]
        self.client.cancel(futures, force=True)
        if self.cluster is not None:
            self.close()
        elif busy:
            try:
                self.client.restart_workers(busy, timeout=60)
            except Exception:  # a worker that cannot restart is left to its cluster's own handling
                pass


def quiet_close():
    """The worker plugin below (built here: importing this module must not import Dask)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class QuietClose(WorkerPlugin):
        """A worker that closes while its heartbeat is in flight logs "Failed to communicate with scheduler during
        heartbeat" with a traceback: Dask closes the connection under its own request (Worker.close stops the
        heartbeat's timer, then closes the connection pool an earlier heartbeat still waits on). Every cluster
        close can print it, after a sweep that went well. This drops that one record while the worker is closing;
        on a running worker, where it means the scheduler is unreachable, it still shows."""

        name = "bsnb-quiet-close"

        def setup(self, worker):
            import logging

            from distributed.core import Status

            def keep(record) -> bool:
                return not (worker.status not in (Status.running, Status.paused)
                            and record.getMessage().startswith("Failed to communicate with scheduler during heartbeat"))

            logging.getLogger("distributed.worker").addFilter(keep)

    return QuietClose()


def local_cluster(n: int):
    """``n`` worker processes on this machine, one thread each; on a GPU machine worker i sees GPU i only.

    Built from Dask's ``SpecCluster`` (what ``LocalCluster`` is made of) because each worker needs its own
    environment. The Nanny's memory limit would count only the worker, not the kernels it starts: none is set.
    """
    from distributed import Nanny, Scheduler, SpecCluster

    # the workers' own log lines (connections, closing) would fill the terminal; a user's setting wins
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    gpus = local_gpus()
    workers = {}
    for i in range(n):
        options = {"nthreads": 1, "memory_limit": 0}
        if gpus:
            options.update(env={"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]}, resources={"GPU": 1})
        workers[f"worker-{i}"] = {"cls": Nanny, "options": options}
    import importlib.util

    dashboard = ":0" if importlib.util.find_spec("bokeh") else None
    return SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {"dashboard_address": dashboard,
                                                                                 "host": "127.0.0.1"}},
                       silence_logs=50, name="bsnb")
