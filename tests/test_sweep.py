"""The sweep end to end through the command line: results, cache, failures, interruptions, nbval."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, bsnb, smoke_jobs

from bsnb import claims as bsnb_claims
from bsnb import parameters, profiles, results, search, sweep

pytestmark = pytest.mark.slow


def profile_file(tmp_path, name="p", **changes):
    base = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}
        else:
            base[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def status_mtimes(out):
    return {p.parent.name: p.stat().st_mtime_ns for p in Path(out).glob("runs/*/status.json")}


# --- a whole run ----------------------------------------------------------------------------------


def test_smoke_run_writes_every_result_and_the_report(smoke):
    out, proc = smoke
    index = Path(proc.stdout.strip().splitlines()[-1])
    assert index == (out / "index.html").resolve() and index.exists()
    tables = results.load_tables(out / "runs")
    assert sorted(tables.jobs["state"]) == ["ok"] * smoke_jobs()
    training = tables.runs[tables.runs["notebook"] == "02_empirical_comparison"]
    assert sorted(training["batch_size"]) == [16, 16, 64, 64]
    for run in results.jobs_in(out / "runs"):
        for name in (results.NOTEBOOK, results.SUMMARY, results.PARAMS, results.STATUS):
            assert run.path(name).exists(), name
        if run.job_id.startswith("02-"):
            assert run.path(results.HISTORY).exists() and run.path(results.STEPS).exists()
            for seed in (0, 1):
                for which in results.CHECKPOINTS:
                    assert run.checkpoint_path(seed, which).exists()
        elif run.job_id.startswith("03-"):
            for name in ("eigenvalues", "eps_sharpness", "slices"):
                assert len(run.table(name)) > 0, name
        elif run.job_id.startswith("01-"):
            assert set(run.table("variance")["checkpoint"]) == {"initial", "best", "final"}
            assert run.params()["source"]["batch_size"] == 16  # the training setting of the run it measured
    sharp = tables.runs[tables.runs["notebook"] == "03_sharpness"]
    final = sharp[sharp["checkpoint"] == "final"]
    assert sorted(final["batch_size"]) == [16, 16, 64, 64] and (final["lambda_max"] > 0).all()
    training = tables.runs[tables.runs["notebook"] == "02_empirical_comparison"]
    assert {"stopped_by", "censored"} <= set(training.columns)
    claims = pd.read_csv(out / "claims.csv")
    remedies = tables.runs[tables.runs["notebook"] == "04_closing_the_gap"]
    assert set(remedies["remedy"]) == {"linear_warmup", "sqrt", "bn", "ghost_bn", "sqrt_step", "sqrt_step_longer",
                                       "step", "lr_decay", "batch_growth", "tuned", "confirm"}
    tuned = remedies[remedies["remedy"] == "tuned"]
    grid = tuned[tuned["search_step"] == "grid"]
    assert len(grid) == 2 * 2 * 2 and set(grid["lr_used"]) == {0.05, 0.2}  # batch sizes x lrs x seeds
    assert (tuned["search_step"] == "refinement").sum() == 2 * 2 * 2  # two sqrt-2 rates, every seed, each batch size
    confirm = remedies[remedies["remedy"] == "confirm"]  # the confirmation seeds at each search's chosen rate
    assert sorted(confirm["seed"]) == [100, 100, 101, 101]
    for b, g in tuned.groupby("batch_size"):
        assert set(confirm.loc[confirm["batch_size"] == b, "lr"]) == {search.choose(search.table_of(g)).rate}
    assert len(tables.table("noise")) > 0  # two-batch estimates logged along training
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims["claim"]) == list(bsnb_claims.CLAIMS)  # every claim of the registry, in its order
    assert set(claims["verdict"]) <= {"supported", "not supported", "inconclusive", "not run in this profile"}
    # two seeds are too few for any verdict; C3's timing counts its repeats instead of seeds; the smoke profile has no
    # one-pass arms, so C17 is not run (no verdict at all, not an inconclusive one)
    seeds, verdicts = claims.set_index("claim")["seeds"], claims.set_index("claim")["verdict"]
    assert verdicts["C17"] == verdicts["C19"] == "not run in this profile"
    assert (verdicts.drop(["C3", "C17", "C19"]) == "inconclusive").all()
    assert (seeds.drop("C3") <= 2).all() and (seeds == 2).sum() >= 9 and seeds["C3"] == 7
    assert {p.stem for p in (out / "figures").glob("*.png")} == {
        "loss_curves", "minima", "speed", "sharpness", "interpolation", "distance", "remedies", "min_loss_by_rule",
        "steps_to_target", "gradient_noise", "noise_scale", "throughput", "gap_by_budget", "contours",
        "accumulation", "rate_bands"}


def test_rerun_is_served_from_the_cache(smoke):
    out, _ = smoke
    before = status_mtimes(out)
    proc = bsnb("run", "smoke", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"0 ran, {smoke_jobs()} cached" in proc.stdout
    assert status_mtimes(out) == before


def test_a_dependent_run_reads_its_source_and_is_invalidated_with_it(smoke, tmp_path):
    out, _ = smoke
    planned = {p.job.job_id: p for p in sweep.plan(profiles.load_profile("smoke"), out)}
    sharp = [p for p in planned.values() if p.job.notebook == "03_sharpness"]
    for p in sharp:
        assert p.source is planned[p.source.job.job_id]
        executed = nbformat.read(p.run_dir / results.NOTEBOOK, as_version=4)
        assert f"source_dir = \"{p.source.run_dir.resolve()}\"" in _injected(executed).source
    job = sharp[0].job
    assert sweep.cache_key(job, "nb", "d", "source A") != sweep.cache_key(job, "nb", "d", "source B")


def test_cache_key_covers_parameters_notebook_source_and_data(smoke, tmp_path):
    out, _ = smoke
    profile = profiles.load_profile("smoke")
    assert all(p.cached for p in sweep.plan(profile, out))
    assert not any(p.cached for p in sweep.plan(profile, out, force=True))
    changed = profiles.load_profile(profile_file(tmp_path, nuisance={"lr": 0.04}))
    assert not any(p.cached for p in sweep.plan(changed, out))
    job = sweep.plan(profile, out)[0].job
    key = sweep.cache_key(job, "source", "digest")
    assert key != sweep.cache_key(job, "source edited", "digest")
    assert key != sweep.cache_key(job, "source", "bsnb edited")
    other_data = profiles.Job(job.notebook, {**job.params, "data_seed": 1}, job.axes)
    assert key != sweep.cache_key(other_data, "source", "digest")


def test_editing_captions_help_texts_and_plots_reruns_nothing(smoke, tmp_path, monkeypatch):
    """The cache key covers what a run computes, not how it is shown or explained."""
    out, _ = smoke
    profile = profiles.load_profile("smoke")
    keys = {p.job.job_id: p.key for p in sweep.plan(profile, out)}
    nb_dir, pkg = tmp_path / "notebooks", tmp_path / "bsnb"
    shutil.copytree(parameters.NOTEBOOKS_DIR, nb_dir)
    shutil.copytree(parameters.ROOT / "bsnb", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    script = nb_dir / "02_empirical_comparison.py"
    text = script.read_text()
    text = text.replace("# ## Figure\n", "# ## Figure: a caption edited by a reader\n", 1)
    text = text.replace("# examples per optimiser step", "# examples in one optimiser step (help reworded)", 1)
    script.write_text(text)
    cfg = pkg / "parameters.py"
    cfg.write_text(cfg.read_text().replace('"examples per optimiser step"', '"examples in one optimiser step"', 1))
    plots_py = pkg / "plots" / "q2_comparison.py"
    plots_py.write_text(plots_py.read_text() + "\nDEFAULT_COLOUR = 'tab:red'  # a plot's colour changed\n")
    monkeypatch.setattr(parameters, "NOTEBOOKS_DIR", nb_dir)
    monkeypatch.setattr(parameters, "ROOT", tmp_path)
    assert {p.job.job_id: p.key for p in sweep.plan(profile, out)} == keys
    # and an edit of the code that computes does change the keys
    train_py = pkg / "train.py"
    train_py.write_text(train_py.read_text().replace("max_evals: int = 200", "max_evals: int = 201", 1))
    assert all(keys[p.job.job_id] != p.key for p in sweep.plan(profile, out))


def test_damage_anywhere_is_named_and_its_job_and_readers_rerun(smoke, tmp_path):
    """A summary cut short, and a checkpoint that no longer matches the size and hash its job recorded: each job
    is incomplete and left out of the findings; the sweep names each file and reruns each job with the jobs that
    read it (their cache keys are unchanged: they measured files that were replaced), and nothing fails."""
    out = Path(shutil.copytree(smoke[0], tmp_path / "out"))
    first, second = [r for r in results.jobs_in(out / "runs") if r.job_id.startswith("02-")][:2]
    text = first.path(results.SUMMARY).read_text()
    first.path(results.SUMMARY).write_text(text[: len(text) // 2])  # cut short
    assert not first.complete and first.damaged() == [results.SUMMARY] and first.state() == "incomplete"
    cut = second.checkpoint_path(0, "final")
    cut.write_bytes(cut.read_bytes()[:200])
    rel = cut.relative_to(second.dir).as_posix()
    assert second.damaged() == [rel] and not second.complete and second.state() == "incomplete"
    seeds = set(results.load_tables(out / "runs").runs["job_id"])
    assert first.job_id not in seeds and second.job_id not in seeds  # the findings never read them
    readers = [q.job.job_id for q in sweep.plan(profiles.load_profile("smoke"), out)
               if q.source is not None and q.source.job.job_id in (first.job_id, second.job_id)]
    proc = bsnb("run", "smoke", "--out", out, "--jobs-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{first.job_id}: cannot read {results.SUMMARY}" in proc.stdout
    assert f"{second.job_id}: cannot read {rel}" in proc.stdout
    assert len(readers) >= 2 and all(r in proc.stdout for r in readers)
    assert f"{2 + len(readers)} ran, {smoke_jobs() - 2 - len(readers)} cached, 0 failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    for run in (first, second):
        assert run.complete and not run.damaged() and run.summary()["seeds"]


def test_report_command_rebuilds_without_training(smoke):
    out, _ = smoke
    before = status_mtimes(out)
    index = out / "index.html"
    stamp = index.stat().st_mtime_ns
    proc = bsnb("report", "smoke", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert index.stat().st_mtime_ns > stamp and status_mtimes(out) == before


def test_runs_an_edited_profile_no_longer_has_are_left_out_of_the_findings(smoke, tmp_path):
    out = Path(shutil.copytree(smoke[0], tmp_path / "out"))
    edited = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())
    edited["notebooks"]["04_closing_the_gap"][0]["scientific"]["remedy"].remove("ghost_bn")
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(edited))
    gone = [p.job.job_id for p in sweep.plan(profiles.load_profile("smoke"), out) if p.job.params.get("remedy") == "ghost_bn"]
    proc = bsnb("run", path, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"0 ran, {smoke_jobs() - 1} cached" in proc.stdout and "1 run folder(s)" in proc.stdout and gone[0] in proc.stdout
    assert (out / "runs" / gone[0]).is_dir()  # kept for a later run that plans it again
    tables = results.load_tables(out / "runs")
    assert "ghost_bn" not in set(tables.runs["remedy"].dropna()) and len(tables.jobs) == smoke_jobs() - 1
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    assert "no pair of bn and ghost_bn runs" in claims.loc["C10", "note"]
    assert not (out / "pages" / "runs" / f"{gone[0]}.html").exists()


# --- bad parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, words", [
    ({"scientific": {"batchsize": [16]}}, ["unknown parameter 'batchsize'"]),
    ({"scientific": {"batch_size": ["abc"]}}, ["batch_size = 'abc'", "an integer"]),
    ({"nuisance": {"lr": 50.0}}, ["lr = 50.0", "from 1e-08 to 10"]),
    ({"fixed": {"model": "transformer"}}, ["model = 'transformer'", "one of 'cnn', 'mlp'"]),
])
def test_bad_parameter_exits_2_with_its_message_and_runs_nothing(tmp_path, changes, words):
    out = tmp_path / "out"
    for command in ("run", "validate"):
        proc = bsnb(command, profile_file(tmp_path, **changes), "--out", out)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        for word in words:
            assert word in proc.stderr
        assert "nothing was run" in proc.stderr
    assert not out.exists()


# --- failures and interruptions --------------------------------------------------------------------


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without an Apple GPU")
def test_a_failing_job_keeps_its_notebook_and_the_others_go_on(tmp_path):
    out = tmp_path / "out"
    proc = bsnb("run", profile_file(tmp_path, scientific={"batch_size": [16]}, fixed={"device": ["cpu", "mps"]},
                                    notebooks=["02_empirical_comparison"]), "--out", out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    jobs = results.load_tables(out / "runs").jobs.set_index("device")
    assert jobs.loc["cpu", "state"] == "ok" and jobs.loc["mps", "state"] == "failed"
    assert "device = 'mps'" in jobs.loc["mps", "error"]
    assert "(cell " in jobs.loc["mps", "error"] and ".py:" in jobs.loc["mps", "error"]  # where, in bsnb
    failed = out / "runs" / jobs.loc["mps", "job_id"] / results.NOTEBOOK
    nb = nbformat.read(failed, as_version=4)
    assert any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in nb.cells)
    assert "1 failed" in proc.stdout and "failed: " + jobs.loc["mps", "job_id"] in proc.stdout
    assert (out / "index.html").exists() and "failed" in (out / "index.html").read_text()


def test_an_error_names_its_cell_and_the_deepest_line_of_bsnb_it_passed():
    from papermill.exceptions import PapermillExecutionError

    frames = [f"\x1b[0;32mFile \x1b[0;32m{ROOT}/bsnb/claims/q4_closing.py:165\x1b[0m, in \x1b[0;36m_baseline\x1b[0m(x)",
              "File /usr/lib/python3/site-packages/pandas/core/ops/common.py:76, in new_method(self, other)"]
    exc = PapermillExecutionError(7, 7, "claims.remedies(study)", "ValueError", "Can only compare", frames)
    assert sweep.where_raised(exc) == "cell 7, bsnb/claims/q4_closing.py:165 in _baseline"
    exc = PapermillExecutionError(3, 3, "x", "ValueError", "x", [])
    assert sweep.where_raised(exc) == "cell 3"


# --- nbval ----------------------------------------------------------------------------------------


def _injected(nb):
    return next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))


def _executed_copy(smoke, tmp_path, prefix="02-"):
    """A copy of one executed smoke run, its injected run_dir pointed at the copy."""
    out, _ = smoke
    run = next(r for r in results.jobs_in(out / "runs") if r.job_id.startswith(prefix))
    copy = shutil.copytree(run.dir, tmp_path / run.job_id)
    nb = nbformat.read(copy / results.NOTEBOOK, as_version=4)
    injected = _injected(nb)
    injected.source = injected.source.replace(str(run.dir.resolve()), str(copy))
    path = copy / "executed.ipynb"
    nbformat.write(nb, path)
    return path, nb


def _nbval(path):
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p",
                           "no:cacheprovider", "-q", str(path)], capture_output=True, text=True, timeout=300,
                          cwd=path.parent)


@pytest.mark.parametrize("prefix", ["01-", "02-", "03-", "04-"])
def test_nbval_reexecution_reproduces_the_checked_outputs(smoke, tmp_path, prefix):
    path, nb = _executed_copy(smoke, tmp_path, prefix)
    checked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checked and all(c.outputs and c.execution_count for c in checked)
    proc = _nbval(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nbval_catches_an_output_that_does_not_reproduce(smoke, tmp_path):
    path, nb = _executed_copy(smoke, tmp_path)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source)
    cell.outputs[0]["text"] = cell.outputs[0]["text"].replace("0.", "9.", 1)
    nbformat.write(nb, path)
    proc = _nbval(path)
    assert proc.returncode != 0


# --- workloads ------------------------------------------------------------------------------------


def test_a_workloads_profile_runs_the_findings_of_each_and_sets_them_side_by_side(tmp_path):
    profile = {
        "name": "two-workloads", "workers": 2, "workloads": ["mnist1d-cnn", "mnist1d-mlp"],
        "notebooks": {"02_empirical_comparison": {}, "04_closing_the_gap": [  # C17's one-pass arms, for one workload
            {"scientific": {"batch_size": [16], "remedy": ["one_pass"]}, "workloads": ["mnist1d-cnn"]},
            {"scientific": {"batch_size": [64], "remedy": ["one_pass_longer"]}, "workloads": ["mnist1d-cnn"]}]},
        "scientific": {"batch_size": [16, 64]}, "nuisance": {"lr": 0.1, "seeds": [0, 1, 2]},
        "fixed": {"n_train": 256, "n_val": 128, "n_test": 128, "epochs": 10, "patience": 3, "small_batch": 16,
                  "large_batch": 64, "reference_batch": 16, "width": 8}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    out = tmp_path / "out"
    proc = bsnb("run", path, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 jobs: 6 ran" in proc.stdout
    table = pd.read_csv(out / "claims.csv")
    assert list(table.columns[:2]) == ["workload", "claim"]
    for w in ("mnist1d-cnn", "mnist1d-mlp"):  # a row per claim and workload, each from that workload's runs
        assert list(table.loc[table["workload"] == w, "claim"]) == list(bsnb_claims.CLAIMS)
        assert (results.workload_dir(out, w) / f"{parameters.FINDINGS}.ipynb").exists()
        assert (out / "pages" / "workloads" / f"{w}.html").exists()
    c17 = table[table["claim"] == "C17"].set_index("workload")
    assert c17.loc["mnist1d-mlp", "seeds"] == 0 and c17.loc["mnist1d-mlp", "verdict"] == "not run in this profile"
    assert "one pass" in str(c17.loc["mnist1d-cnn", "ours"])  # read from the arms the notebook trained
    assert (results.figures_dir(results.workload_dir(out, "mnist1d-cnn")) / "one_pass.png").exists()
    compared = {r.params()["batch_size"]: r for r in results.jobs_in(out / "runs", workload="mnist1d-cnn")
                if r.params().get("remedy") is None}
    budget = max(s["epochs_run"] for s in compared[16].summary()["seeds"])  # the small batch's comparison run's
    arms = {r.params()["remedy"]: r for r in results.jobs_in(out / "runs", workload="mnist1d-cnn")
            if r.params().get("remedy")}
    assert {s["epochs_run"] for s in arms["one_pass"].summary()["seeds"]} == {budget}
    assert {s["steps_run"] for s in arms["one_pass_longer"].summary()["seeds"]} == {budget * 256 // 16}
    matrix = (out / "pages" / "matrix.html").read_text()
    assert matrix.index("mnist1d-cnn") < matrix.index("mnist1d-mlp") and "holds" in matrix
    assert "pages/matrix.html" in (out / "index.html").read_text()
    seen = {}
    for run in results.jobs_in(out / "runs", workload="mnist1d-mlp"):
        seen[run.job_id] = run.setting()["model"]
    assert set(seen.values()) == {"mlp"} and len(seen) == 2
