"""What users do to a running study, each ending with a rerun that finishes and loses nothing, and no kernel or
worker process left behind: Ctrl-C, SIGTERM, kill -9 of the sweep, a second sweep on the same folder, a full disk,
the Dask dashboard opened in a browser, a worker killed mid-job, and the scheduler lost mid-run."""

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import (
    CHROMIUM,
    DRIVER,
    REQUIRE_BROWSER,
    ROOT,
    WorkerKiller,
    bsnb,
    headless_chromium,
    kernels_under,
    states,
    tiny_profile,
)

from bsnb import profiles, results, sweep

pytestmark = pytest.mark.slow



# --- running a sweep as a user does, and what it leaves behind -------------------------------------


class Sweep:
    """``bsnb run`` in its own session, marked so that every process it starts can be found afterwards."""

    def __init__(self, *args, env=None):
        self.tag = uuid.uuid4().hex
        self.lines: list[str] = []  # stderr, as it comes
        self.out: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "bsnb.cli", "run", *map(str, args)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, env={**os.environ, "BSNB_FAULT_TAG": self.tag,
                                                                  **(env or {})})
        # read as it comes: a sweep killed with -9 may leave children holding the pipes open for a while
        self._readers = [threading.Thread(target=lambda f=f, into=into: into.extend(f), daemon=True)
                         for f, into in ((self.proc.stderr, self.lines), (self.proc.stdout, self.out))]
        for reader in self._readers:
            reader.start()

    def wait_for(self, pattern: str, timeout=180) -> re.Match:
        """The first stderr line matching ``pattern``, waiting for it while the sweep runs."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            assert self.proc.poll() is None or time.time() < deadline, "".join(self.lines)
            time.sleep(0.2)
        raise AssertionError(f"no line matched {pattern!r}:\n{''.join(self.lines)}")

    def finish(self, timeout=300) -> tuple[int, str, str]:
        self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=30)
        return self.proc.returncode, "".join(self.out), "".join(self.lines)


def left_behind(tag: str, wait: float = 20.0) -> list[str]:
    """Processes a sweep marked ``tag`` started that are still alive after ``wait`` seconds (an orphaned kernel
    notices its dead parent within about a second; a Dask worker within a few)."""
    deadline = time.time() + wait
    while True:
        alive = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.environ().get("BSNB_FAULT_TAG") == tag:
                    alive.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:120]}")
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.5)


def _wait_for_first_job(out, proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if [p for p in Path(out).glob("runs/*/status.json") if json.loads(p.read_text())["status"] == "ok"]:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("no job finished in time")


def _rerun_finishes(profile, out, jobs: int, kept: int):
    """The same command again finishes what is missing and reruns nothing that was kept."""
    again = bsnb("run", profile, "--out", out, "--quiet", "--jobs-only")  # the jobs are what a fault can lose
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{jobs - kept} ran, {kept} cached, 0 failed; findings not run (--jobs-only)" in again.stdout
    assert not (Path(out) / "index.html").exists()
    assert sorted(states(out).values()) == ["ok"] * jobs
    print(f"rerun: exit {again.returncode}, {again.stdout.splitlines()[-2]}")  # `pytest -s` shows what a user sees


def _said(fault: str, code: int, stderr: str, left: list):
    """What the sweep said when the fault hit, for `pytest -s tests/test_faults.py` (the closing note's table)."""
    last = [line for line in stderr.splitlines() if line.strip()][-1:] or [""]
    print(f"\nFAULT {fault}: exit {code}; last line: {last[0][:300]}; processes left: {len(left)}")


@contextlib.contextmanager
def holding(run_dirs):
    """Hold the sweep's per-run lock on ``run_dirs``: their jobs wait at the start until released.

    This is the point the test controls: the interrupt arrives while those jobs cannot have
    finished, however fast the machine.
    """
    handles = []
    try:
        for d in run_dirs:
            d.mkdir(parents=True, exist_ok=True)
            fh = open(d / ".lock", "w")
            fcntl.flock(fh, fcntl.LOCK_EX)
            handles.append(fh)
        yield
    finally:
        for fh in handles:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


# --- the faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "kill-9"])
def test_an_interrupted_sweep_resumes_and_finishes(tmp_path, sig):
    profile = tiny_profile(tmp_path, batch_sizes=(16, 32, 64), epochs=6)
    out = tmp_path / "out"
    planned = sweep.plan(profiles.load_profile(profile), out)
    first = max(planned, key=lambda p: p.cost)  # the sweep starts the longest job first
    held = [p.run_dir for p in planned if p is not first]
    with holding(held):
        run = Sweep(profile, "--out", out, "--workers", "1")
        _wait_for_first_job(out, run.proc)
        if sig == signal.SIGKILL:  # kill -9 of the sweep alone: its workers and their kernels are orphaned
            os.kill(run.proc.pid, sig)
        else:  # what a terminal sends to the whole foreground job
            os.killpg(run.proc.pid, sig)
        code, stdout, stderr = run.finish(timeout=60)
    if sig != signal.SIGKILL:
        assert code == 130, stdout + stderr
        assert "rerun" in stderr
    left = left_behind(run.tag)
    _said(signal.Signals(sig).name, code, stderr, left)
    assert left == []
    tables = results.load_tables(out / "runs")
    complete = set(tables.jobs.loc[tables.jobs["state"] == "ok", "job_id"])
    assert complete == {first.job.job_id}
    assert "failed" not in set(tables.jobs["state"])  # an interruption is not a failure
    for job in results.jobs_in(out / "runs"):  # nothing half-written is taken as complete
        assert job.complete == (job.job_id in complete)
        assert not list(job.dir.glob(".*.tmp-*"))
    _rerun_finishes(profile, out, jobs=3, kept=1)


def test_two_sweeps_on_one_folder_at_once_run_each_job_once(tmp_path):
    profile = tiny_profile(tmp_path, batch_sizes=(16, 32, 64), epochs=6)
    out = tmp_path / "out"
    first, second = (Sweep(profile, "--out", out, "--quiet", "--jobs-only") for _ in range(2))
    for run in (first, second):
        code, stdout, stderr = run.finish()
        assert code == 0, stdout + stderr
        left = left_behind(run.tag)
        _said("second sweep on the same folder", code, stdout, left)
        assert left == []
    finished = [json.loads(p.read_text()) for p in out.glob("runs/*/status.json")]
    assert len(finished) == 3 and {s["status"] for s in finished} == {"ok"}
    _rerun_finishes(profile, out, jobs=3, kept=3)
    # what --jobs-only left for later: the findings and the report, from the stored runs
    built = bsnb("report", profile, "--out", out)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (out / "index.html").exists() and len(pd.read_csv(out / "claims.csv")) > 0


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system (tmpfs, which needs root): the sweep fills it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a small tmpfs in CI: {made.stderr!r}")
        pytest.skip(f"mounting a small tmpfs needs root: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_sweep_in_one_line_and_a_rerun_finishes(tmp_path, small_disk):
    profile = tiny_profile(tmp_path, batch_sizes=(16, 32, 64), epochs=20)
    out = small_disk / "out"
    run = Sweep(profile, "--out", out, "--quiet")
    code, stdout, stderr = run.finish()
    assert code == 1, stdout + stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "run the same command again" in errors[0]
    assert "Traceback" not in stdout + stderr
    left = left_behind(run.tag)
    _said("full disk", code, stderr, left)
    assert left == []
    # the jobs the sweep finished before the disk filled (their status written last); one whose summary was
    # written but not its status is complete yet not done, and runs again
    kept = {r.job_id for r in results.jobs_in(out / "runs") if r.complete and r.status() is not None}
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    _rerun_finishes(profile, out, jobs=3, kept=len(kept))


@pytest.mark.skipif(not (CHROMIUM and DRIVER) and not REQUIRE_BROWSER,
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_opening_the_dashboard_in_a_browser_does_not_stop_the_sweep(tmp_path):
    """The dashboard's page opened as a browser does, its live websocket open, then the browser closed: a process
    that took the default SIGPIPE action died here (exit 141) the moment the websocket closed."""
    profile = tiny_profile(tmp_path, batch_sizes=(16, 32), epochs=30)
    out = tmp_path / "out"
    planned = sweep.plan(profiles.load_profile(profile), out)
    with holding([p.run_dir for p in planned]):  # the jobs wait until both visits are over, however fast the machine
        run = Sweep(profile, "--out", out, "--jobs-only")
        url = run.wait_for(r"dashboard (http://\S+)").group(1)
        for visit in range(2):  # opened, rendered, closed; then once more, as a user comes back to it
            driver = headless_chromium("1400,900")
            try:
                driver.get(url)
                time.sleep(4)  # the page opens its websocket and draws live
                if visit == 0:
                    driver.save_screenshot(str(tmp_path / "dashboard.png"))
                assert "Dask" in driver.title
            finally:
                driver.quit()  # the websocket closes with the browser
            assert run.proc.poll() is None, "".join(run.lines)
    code, stdout, stderr = run.finish()
    assert code == 0, stdout + stderr
    assert "2 ran, 0 cached, 0 failed" in stdout
    left = left_behind(run.tag)
    _said("dashboard opened twice in Chromium", code, stdout, left)
    assert left == []
    _rerun_finishes(profile, out, jobs=2, kept=2)


def test_a_killed_worker_of_a_running_cluster_has_its_job_rerun(tmp_path, dask_cluster):
    address, procs = dask_cluster
    workers = procs[1:]
    out = tmp_path / "out"
    profile = tiny_profile(tmp_path, batch_sizes=(16, 64), epochs=6, notebooks=("02_empirical_comparison",
                                                                                 "03_sharpness"))
    killer = WorkerKiller(lambda: [w.pid for w in workers], times=1)
    killer.start()
    proc = bsnb("run", profile, "--out", out, "--scheduler", address, "--jobs-only")
    killer.done.set()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"the Dask cluster at {address}" in proc.stderr
    assert len(killer.killed) == 1  # one worker died while its kernel ran a job
    found = states(out)
    assert len(found) == 4 and set(found.values()) == {"ok"}
    seen = {results.JobStore(out / "runs" / job).status()["worker"] for job in found}
    assert seen and all(w.startswith("tcp://127.0.0.1:") for w in seen)  # the external workers ran them
    for job in results.jobs_in(out / "runs"):  # nothing the dead worker half-wrote is left as complete
        assert job.complete and not list(job.dir.glob(".*.partial.ipynb"))
    assert "4 ran, 0 cached, 0 failed" in proc.stdout
    _said("a worker killed mid-job", proc.returncode, proc.stdout, [])
    _rerun_finishes(profile, out, jobs=4, kept=4)
    # each of the user's workers keeps its kernel for the next job; stopping the cluster stops them all
    kept = kernels_under([p.pid for p in workers])
    for worker in workers:
        worker.terminate()
        worker.wait(timeout=60)
    assert not [k for k in kept if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]


def test_a_lost_scheduler_ends_in_one_line_and_a_local_rerun_finishes(tmp_path, dask_cluster):
    address, procs = dask_cluster
    out = tmp_path / "out"
    profile = tiny_profile(tmp_path, batch_sizes=(16, 32, 64, 128), epochs=10)
    # the client tries to reconnect for Dask's connect timeout (30 s by default) before it gives up
    run = Sweep(profile, "--out", out, "--scheduler", address, "--quiet",
                env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"})
    _wait_for_first_job(out, run.proc)
    procs[0].kill()  # the scheduler
    code, stdout, stderr = run.finish(timeout=120)
    assert code == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    said = int(re.search(r"; (\d+) of 4 jobs complete and kept", errors[0]).group(1))
    assert said >= 1 and f"lost the connection to the Dask scheduler at {address}" in errors[0]
    assert "run the same command again" in errors[0]
    left = left_behind(run.tag)
    _said("the scheduler killed mid-run", code, stderr, left)
    assert left == []
    # the user's workers lost their scheduler: a job one was running still finishes and is kept, then they go
    kernels = kernels_under([p.pid for p in procs[1:]])
    for worker in procs[1:]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=90)
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)
    time.sleep(2)  # an orphaned kernel notices within a second
    assert not [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    found = states(out)
    assert "failed" not in found.values()  # the lost scheduler is not the jobs' failure
    kept = sum(s == "ok" for s in found.values())
    assert kept >= said
    _rerun_finishes(profile, out, jobs=4, kept=kept)


def test_a_scheduler_that_cannot_be_reached_is_named_in_one_line(tmp_path):
    profile = tiny_profile(tmp_path)
    with socket_nobody_listens_on() as port:
        proc = bsnb("run", profile, "--out", tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{port}", "--quiet",
                    env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    error, = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in error and "0 of 1 jobs" in error


@contextlib.contextmanager
def socket_nobody_listens_on():
    """A loopback port that was free a moment ago (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port
