"""The sweep on Dask: a running cluster named by --scheduler, workers killed mid-job, a job that kills every worker
it runs on, dask-jobqueue's cluster files and the batch script they render."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, WorkerKiller, bsnb, states, tiny_profile

from bsnb import engine, results

GOLDEN = Path(__file__).parent / "golden"


def cluster_file(tmp_path, **settings):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


# --- a job that kills every worker it runs on (the worker lost mid-job, and the other faults: test_faults.py)


@pytest.mark.slow
def test_a_job_that_kills_every_worker_it_runs_on_fails_with_its_reason(tmp_path):
    out = tmp_path / "out"
    profile = tiny_profile(tmp_path, epochs=50)
    sweep_proc = {}
    killer = WorkerKiller(lambda: [sweep_proc["pid"]] if "pid" in sweep_proc else [], times=10)
    proc = subprocess.Popen([sys.executable, "-m", "bsnb.cli", "run", str(profile), "--out", str(out), "--quiet"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sweep_proc["pid"] = proc.pid
    killer.start()
    stdout, stderr = proc.communicate(timeout=300)
    killer.done.set()
    assert proc.returncode == 1, stdout + stderr
    # then Dask gives up on it instead of looping (the killer would go on to 10). The count itself is racy: the
    # killer polls every 0.2 s and, on a fresh clone of 2418de6, once caught a fourth worker before the sweep ended
    assert engine.WORKER_DEATHS <= len(killer.killed) <= engine.WORKER_DEATHS + 1
    (job, state), = states(out).items()
    assert state == "failed"
    error = results.JobStore(out / "runs" / job).status()["error"]
    assert f"died each of the {engine.WORKER_DEATHS} times" in error and f"failed: {job}" in stdout
    assert (out / "index.html").exists()


# --- closing the cluster ----------------------------------------------------------------------------------------

SLOW_HEARTBEATS = r'''
import asyncio, time
from bsnb.engine import Engine
engine = Engine(workers=2)
engine.start(jobs=2)
scheduler = engine.cluster.scheduler
answer = scheduler.handlers["heartbeat_worker"]
async def late(*args, **kwargs):  # each heartbeat in flight 0.4 s of every 0.5 s: closing nearly always meets one
    await asyncio.sleep(0.4)
    return answer(*args, **kwargs)
scheduler.handlers["heartbeat_worker"] = late
[f.result() for f in [engine.submit(time.sleep, 1.0, name=f"nap{i}") for i in range(2)]]
engine.close()
print("closed")
'''


def test_closing_a_local_cluster_while_heartbeats_are_in_flight_prints_no_traceback():
    """A worker closing while its heartbeat waits logged Dask's "Failed to communicate with scheduler during
    heartbeat" with a traceback after a sweep that went well (CI, stop 37); with the scheduler answering late, 6 of 6
    closings printed it before the fix, 0 of 6 after."""
    proc = subprocess.run([sys.executable, "-c", SLOW_HEARTBEATS], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "closed" in proc.stdout, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "heartbeat" not in proc.stderr, proc.stderr


# --- dask-jobqueue --------------------------------------------------------------------------------


def _golden_text(script: str) -> str:
    """The batch script without what differs between machines: the Python, the scheduler's address."""
    script = script.replace(sys.executable, "PYTHON")
    return re.sub(r"tcp://[0-9.]+:\d+", "tcp://SCHEDULER", script)


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_cluster_script_renders_the_batch_script(tmp_path, kind):
    path = cluster_file(tmp_path, kind=kind, jobs=8, cores=4, gpus=1, memory="16GB", walltime="04:00:00",
                        queue="gpu", account="myproject", prologue=["module load cuda", "source ~/bsnb/.venv/bin/activate"])
    proc = bsnb("cluster-script", path)
    assert proc.returncode == 0, proc.stderr
    golden = GOLDEN / f"{kind}.sh"
    assert _golden_text(proc.stdout) == golden.read_text(), f"differs from {golden}:\n{proc.stdout}"


def test_a_bad_cluster_file_names_each_bad_key_and_runs_nothing(tmp_path):
    path = cluster_file(tmp_path, kind="lsf", gpu=1, cores=0)
    proc = bsnb("run", "smoke", "--out", tmp_path / "out", "--cluster", path)
    assert proc.returncode == 2
    for words in ("unknown key 'gpu'", "allowed keys are kind, jobs", "kind = 'lsf'", "slurm, pbs, local",
                  "cores = 0", "nothing was run"):
        assert words in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_jobqueue_local_cluster_with_a_gpu_resource_runs_the_jobs(tmp_path):
    out = tmp_path / "out"
    profile = yaml.safe_load(tiny_profile(tmp_path).read_text())
    profile["fixed"]["device"] = "auto"  # may use a GPU: asks the cluster for one (here it trains on the CPU)
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(profile))
    cluster = cluster_file(tmp_path, kind="local", jobs=1, cores=1, gpus=1, memory="2GB")
    proc = bsnb("run", path, "--out", out, "--cluster", cluster)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "a local cluster" in proc.stderr and "a GPU for each job" in proc.stderr
    (job, state), = states(out).items()
    assert state == "ok"
    assert results.JobStore(out / "runs" / job).status()["resources"] == {"GPU": 1.0}


def test_a_job_s_kernel_gets_its_threads_and_not_the_worker_s_malloc_trimming(monkeypatch, tmp_path):
    from bsnb import jobs

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what Dask's Nanny gives its workers
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    log = tmp_path / "logs" / "sweep.log"
    with jobs.job_environment(3, log):
        assert "MALLOC_TRIM_THRESHOLD_" not in os.environ and os.environ["OMP_NUM_THREADS"] == "3"
        os.write(2, b"kernel chatter\n")
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536" and os.environ["OMP_NUM_THREADS"] == "7"
    assert log.read_text() == "kernel chatter\n"
