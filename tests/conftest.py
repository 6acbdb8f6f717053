"""Shared fixtures: one smoke sweep per test session, reused by every test that reads its output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Generated datasets go to a fresh cache, so tests never depend on a user's ~/.cache."""
    os.environ["BSNB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


def bsnb(*args, timeout=600, **kw) -> subprocess.CompletedProcess:
    """Run the ``bsnb`` command line in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "bsnb.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The smoke profile run once into a temporary folder: (output folder, completed process)."""
    out = tmp_path_factory.mktemp("smoke")
    proc = bsnb("run", "smoke", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


# --- small profiles, a user's Dask cluster, and the processes a sweep leaves ------------------------


def smoke_jobs() -> int:
    """How many jobs the smoke profile plans (counted from the profile, not written down in each test)."""
    from bsnb import profiles

    return len(profiles.expand(profiles.load_profile("smoke")))


def tiny_profile(tmp_path, name="tiny", batch_sizes=(16,), epochs=4, notebooks=("02_empirical_comparison",)):
    """A profile of a few short 02 jobs (and 03 when asked): seconds each."""
    import yaml

    from bsnb import parameters

    base = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())
    base["notebooks"] = {nb: base["notebooks"][nb] for nb in notebooks}
    base["scientific"] = {"batch_size": list(batch_sizes)}
    base["fixed"]["epochs"] = epochs
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def states(out) -> dict:
    """job id -> state of every job in a finished study's store."""
    from bsnb import results

    return dict(zip(*[results.load_tables(Path(out) / "runs").jobs[c] for c in ("job_id", "state")]))


def kernels_under(pids) -> list:
    """The Jupyter kernels running under the processes ``pids`` (a job's kernel is its worker's child)."""
    import contextlib

    import psutil

    found = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    if "ipykernel_launcher" in " ".join(child.cmdline()):
                        found.append(child)
    return found


class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the worker process of each job kernel it sees under ``pids``, at most ``times`` times."""

    def __init__(self, pids, times):
        super().__init__(daemon=True)
        self.pids, self.times, self.killed, self.done = pids, times, [], threading.Event()

    def run(self):
        import contextlib

        import psutil

        while not self.done.is_set() and len(self.killed) < self.times:
            roots = self.pids()
            for kernel in kernels_under(roots):
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker = kernel.parent()
                    if worker.pid not in self.killed and worker.pid not in roots:  # a worker, not the sweep
                        worker.send_signal(signal.SIGKILL)
                        self.killed.append(worker.pid)
                        break
            time.sleep(0.2)


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and two workers, started as a user would start them: (address, [scheduler, *workers])."""
    import contextlib
    import json

    info = tmp_path / "scheduler.json"
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker-0", "worker-1")]
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
                              cwd=ROOT, stdout=logs[0], stderr=subprocess.STDOUT)]
    deadline = time.time() + 60
    while not info.exists() and time.time() < deadline:
        time.sleep(0.2)
    for i in (0, 1):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(info), "--nthreads", "1", "--memory-limit", "0", "--name", f"w{i}"],
                                      cwd=ROOT, stdout=logs[i + 1], stderr=subprocess.STDOUT))
    address = json.loads(info.read_text())["address"]
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    try:
        yield address, procs
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=20)
            if p.poll() is None:
                p.kill()
        for fh in logs:
            fh.close()


# --- headless Chromium (Debian's chromium and chromium-driver; .ci/run installs them) ----------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUIRE_BROWSER = os.environ.get("BSNB_REQUIRE_BROWSER") == "1"  # set by .ci/run: a missing browser fails, not skips


def headless_chromium(window: str = "1300,1000", logs: bool = False):
    """A Selenium driver of Debian's headless Chromium with the flags this closed network needs; nothing is
    downloaded (the driver is given). ``logs``: keep the browser's console and network log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and DRIVER, "chromium and chromedriver are not installed"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--window-size={window}"):
        options.add_argument(arg)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=options)
