"""The Jupyter kernels that execute a sweep's jobs: one kept per worker thread and reused, job after job.

A fresh kernel per notebook paid, per job of the default profile on this project's 2-core machine,
about 2 s to start, 2.5 s to import torch, ``bsnb``, pandas and matplotlib, and 1.1 to 1.7 s more
when torch imported ``torch._dynamo`` on the first optimiser or ``vmap`` call: 5 to 6 s of a job's
fixed cost, 23 times a sweep (a small training job took 7.0 to 8.0 s in a fresh kernel against
2.0 s in a kept one). So a worker keeps its kernel, and papermill executes each notebook in it
(papermill passes an existing kernel manager through to nbclient, which then neither starts nor
stops the kernel).

Between two jobs the kernel forgets the last notebook: ``%reset -f`` empties its namespace,
figures are closed, the working folder is set again, warnings shown once are shown again, and
cells count from 1. Imported modules stay: that is the saving, and it is safe because every
random draw of the study comes from a seed it sets itself (the results of a job are the same in a
kept kernel as in a fresh one; the tests check it). A kernel is kept only while everything it was
started with is unchanged (the environment, where its output goes, the ``bsnb`` sources); else,
and when it has died, the next job starts a new one. ``bsnb run --fresh-kernels`` starts one per
job, as before.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

KERNEL = "python3"
STARTS = 2  # a job's tries at a kernel that dies before it answers (see died_starting)
READY_SECONDS = 30  # for a kept kernel to answer before a job; past it, the job gets a new kernel

# Run silently in a kept kernel before each job (it neither counts as a cell nor prints).
FORGET = """\
get_ipython().run_line_magic("reset", "-f")  # (it collects the garbage too)
import os as _os, sys as _sys, warnings as _warnings
_os.chdir({cwd!r})
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
if not hasattr(_warnings, "_bsnb_filters"):
    _warnings._bsnb_filters = list(_warnings.filters)
_warnings.filterwarnings("ignore", message="bsnb: forget which warnings were shown")  # invalidates the registries
_warnings.filters[:] = _warnings._bsnb_filters
get_ipython().execution_count = 1
del _os, _sys, _warnings
"""


def _manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class KeptKernelManager(AsyncKernelManager):
        """Remembers the clients nbclient opens on it, so that their channels can be closed after each job
        (nbclient leaves them open when it does not own the kernel)."""

        def client(self, **kwargs):
            kc = super().client(**kwargs)
            self.__dict__.setdefault("_bsnb_clients", []).append(kc)
            return kc

        def close_clients(self):
            for kc in self.__dict__.pop("_bsnb_clients", []):
                kc.stop_channels()

    return KeptKernelManager


@dataclass
class Kept:
    manager: object
    started_with: str
    jobs: int = 0  # notebooks executed in it so far

    @property
    def pid(self) -> int | None:
        process = getattr(getattr(self.manager, "provisioner", None), "process", None)
        return getattr(process, "pid", None)


_KEPT: dict[int, Kept] = {}  # per thread: nbclient's event loop, which the manager is bound to, is the thread's


def started_with() -> str:
    """What a kernel inherits at its start and keeps: the environment, the files its output goes to (a job's log),
    and the ``bsnb`` sources it imports."""
    h = hashlib.sha256()
    h.update(repr(sorted(os.environ.items())).encode())
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
            h.update(f"{st.st_dev}:{st.st_ino}".encode())
        except OSError:
            h.update(b"-")
    for path in sorted(Path(__file__).parent.glob("*.py")):
        st = path.stat()
        h.update(f"{path.name}:{st.st_mtime_ns}:{st.st_size}".encode())
    return h.hexdigest()


def _run(coro_fn, *args, **kwargs):
    from jupyter_core.utils import run_sync

    return run_sync(coro_fn)(*args, **kwargs)


def _forget(kept: Kept, cwd: Path) -> bool:
    """Make a kept kernel forget its last job; False when it is dead or does not answer."""
    try:
        if not _run(kept.manager.is_alive):
            return False
        kc = kept.manager.client()
        kc.start_channels()
        try:  # on the shell channel alone: its messages queue until the kernel takes them, no need to wait for iopub
            msg_id = kc.execute(FORGET.format(cwd=str(cwd)), silent=True, store_history=False)
            while True:
                reply = _run(kc.get_shell_msg, timeout=READY_SECONDS)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return reply["content"]["status"] == "ok"
        finally:
            kept.manager.close_clients()
    except Exception:  # a kernel in any doubt is replaced
        return False


def _discard(kept: Kept) -> None:
    try:
        kept.manager.close_clients()
        if kept.manager.has_kernel:
            _run(kept.manager.shutdown_kernel, now=True)
    except Exception:
        pass


def for_job(cwd: Path) -> Kept:
    """This thread's kernel for the next job, forgotten since its last one; a new manager (whose kernel papermill
    starts) when there is none yet, it died, or what it was started with has changed."""
    key, thread = started_with(), threading.get_ident()
    kept = _KEPT.get(thread)
    if kept is not None and kept.jobs and (kept.started_with != key or not _forget(kept, cwd)):
        _discard(kept)
        kept = None
    if kept is None:
        kept = _KEPT[thread] = Kept(_manager_class()(kernel_name=KERNEL), key)
    return kept


def after_job(kept: Kept) -> None:
    kept.jobs += 1
    kept.manager.close_clients()


def execute(nb, output: str, parameters: dict, cwd: Path, reuse: bool = True) -> dict:
    """Execute ``nb`` with papermill (its parameters injected), writing the executed notebook to ``output``.
    Returns which kernel ran it: its process id and the how-manieth job it was in that kernel (1: a new kernel)."""
    import papermill

    options = dict(parameters=parameters, kernel_name=KERNEL, language="python", progress_bar=False, cwd=str(cwd))
    for attempt in range(1, STARTS + 1):
        kept = None if not reuse else for_job(cwd)
        try:
            papermill.execute_notebook(nb, output, **options, **({"km": kept.manager} if kept else {}))
        except RuntimeError as exc:  # papermill's own errors (a cell raised) are not RuntimeErrors
            if not died_starting(exc) or attempt == STARTS:
                raise
            if kept is not None:  # not kept for the next job either
                _KEPT.pop(threading.get_ident(), None)
                _discard(kept)
            continue
        finally:
            if kept is not None:
                after_job(kept)
        return {"kernel": kept.pid, "job_in_kernel": kept.jobs} if kept else {"kernel": "new", "job_in_kernel": 1}


def died_starting(exc: BaseException) -> bool:
    """A kernel that died before it answered its first message: no cell ran, so the job can be given a new one.
    (Seen once on a GPU machine, 8 jobs starting kernels at once; the same job ran in a new kernel.)"""
    return isinstance(exc, RuntimeError) and "died before replying to kernel_info" in str(exc)


@atexit.register
def shutdown_all() -> None:
    """Stop the kept kernels (a worker that exits normally; one killed leaves them to notice it: ipykernel
    exits when its parent process is gone)."""
    while _KEPT:
        _discard(_KEPT.popitem()[1])
