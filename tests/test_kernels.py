"""Kept kernels (bsnb.kernels): a worker's kernel runs job after job, forgetting each, with the results of a fresh one."""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import nbformat
import pytest

from bsnb import jobs, kernels

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _no_kept_kernel_left():
    kernels.shutdown_all()
    yield
    kernels.shutdown_all()


def _notebook(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernels.KERNEL, "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("value = 0", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def _run(nb, tmp_path: Path, name: str, **values):
    info = kernels.execute(nb, str(tmp_path / f"{name}.ipynb"), values, tmp_path)
    return info, nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)


def _text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_a_kept_kernel_forgets_the_last_notebook(tmp_path):
    module = tmp_path / "noisy_module.py"
    module.write_text("import warnings\n\ndef hello():\n    warnings.warn('hello from a module')\n")
    first = _notebook("leftover = value\nimport os, sys\nsys.path.insert(0, %r)\nimport noisy_module\n"
                      "noisy_module.hello()\nos.chdir('/')" % str(tmp_path))
    info1, done1 = _run(first, tmp_path, "first", value=7)
    second = _notebook("import os, sys\nprint('leftover' in globals(), 'noisy_module' in globals(), os.getcwd())\n"
                       "sys.modules['noisy_module'].hello()")
    info2, done2 = _run(second, tmp_path, "second")
    assert info2 == {"kernel": info1["kernel"], "job_in_kernel": 2}, (info1, info2)
    assert isinstance(info1["kernel"], int) and info1["job_in_kernel"] == 1
    assert f"False False {tmp_path}" in _text(done2)  # names gone, back in the working folder
    assert "hello from a module" in _text(done1) and "hello from a module" in _text(done2)  # shown again
    counts = [c.execution_count for c in done2.cells if c.cell_type == "code"]
    assert counts[0] == 1 and counts == sorted(counts), counts


def test_a_new_kernel_when_the_environment_changes_or_the_kernel_died(tmp_path, monkeypatch):
    nb = _notebook("import os\nprint(os.environ.get('BSNB_TEST_MARK', 'unset'), os.getpid())")
    info1, _ = _run(nb, tmp_path, "a")
    monkeypatch.setenv("BSNB_TEST_MARK", "changed")  # a kernel keeps the environment it started with
    info2, done2 = _run(nb, tmp_path, "b")
    assert info2["kernel"] != info1["kernel"] and info2["job_in_kernel"] == 1
    assert _text(done2).startswith("changed")
    os.kill(info2["kernel"], signal.SIGKILL)  # dies between two jobs (out of memory, killed by hand)
    time.sleep(0.5)
    info3, done3 = _run(nb, tmp_path, "c")
    assert info3["kernel"] not in (info1["kernel"], info2["kernel"]) and info3["job_in_kernel"] == 1
    assert _text(done3).split()[1] == str(info3["kernel"])


def _table(run_dir: Path, name: str) -> list[dict]:
    timing = {"seconds", "examples_per_second"}
    with open(run_dir / name) as fh:
        return [{k: v for k, v in row.items() if k not in timing} for row in csv.DictReader(fh)]


def test_a_job_in_a_kept_kernel_computes_what_it_computes_in_a_fresh_one(tmp_path):
    """The same training job, run after another job in a kept kernel and alone in a new kernel: equal numbers."""
    small = {"n_train": 256, "n_val": 128, "n_test": 128, "epochs": 2, "seeds": [0, 1], "threads": 1, "lr": 0.05}
    kept_dirs = []
    for i, batch in enumerate((64, 16)):
        run_dir = tmp_path / f"kept{i}"
        info = jobs.execute_notebook("02_empirical_comparison", {**small, "batch_size": batch, "run_dir": str(run_dir)},
                                      run_dir / "notebook.ipynb", reuse_kernel=True)
        kept_dirs.append(run_dir)
    assert info["job_in_kernel"] == 2
    fresh = tmp_path / "fresh"
    info = jobs.execute_notebook("02_empirical_comparison", {**small, "batch_size": 16, "run_dir": str(fresh)},
                                  fresh / "notebook.ipynb", reuse_kernel=False)
    assert info["job_in_kernel"] == 1
    for table in ("history.csv", "steps.csv", "noise.csv"):
        assert _table(kept_dirs[1], table) == _table(fresh, table), table


def test_a_kernel_that_dies_before_it_answers_is_replaced_once(tmp_path, monkeypatch):
    import papermill

    managers = []
    died = "Kernel died before replying to kernel_info"  # as jupyter_client says it when the kernel exits at start

    def failing(messages):
        """papermill's execute_notebook raising the next of ``messages`` at each call (None: it succeeds)."""
        def execute_notebook(nb, output, km=None, **options):
            managers.append(km)
            message = messages[min(len(managers), len(messages)) - 1]
            if message:
                raise RuntimeError(message)
            Path(output).write_text("{}")
        return execute_notebook

    def run(messages, **kw):
        managers.clear()
        monkeypatch.setattr(papermill, "execute_notebook", failing(messages))
        return kernels.execute(_notebook("x = 1"), str(tmp_path / "out.ipynb"), {}, tmp_path, **kw)

    info = run([died, None])
    assert len(managers) == 2 and managers[0] is not managers[1]  # the second try had a new kernel
    assert info["job_in_kernel"] == 1
    # a kernel dying at start every time fails the job after STARTS tries; other errors are not retried
    with pytest.raises(RuntimeError, match="kernel_info"):
        run([died])
    assert len(managers) == kernels.STARTS
    with pytest.raises(RuntimeError, match="something else"):
        run(["something else"], reuse=False)
    assert managers == [None]
