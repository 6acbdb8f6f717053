import json

import pandas as pd
import pytest

from bsnb import data, results, summaries, train


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    path = results.write_atomic(tmp_path / "a" / "x.json", "{}")
    assert path.read_text() == "{}"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_json_stores_nan_as_null(tmp_path):
    results.write_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.0, None]}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A store with one complete run per batch size, one interrupted run and one failed run."""
    root = tmp_path_factory.mktemp("store")
    d = data.load("mnist1d", 100, 50, 50)
    for bs in (16, 32):
        params = {"batch_size": bs, "seeds": [0, 1], "lr": 0.05, "width": 4, "epochs": 2, "log_points": 5}
        store = results.JobStore(root / f"02-bs{bs}")
        store.save_training(params, train.train_seeds(params, d, progress=False))
        store.write_status({"status": "ok", "notebook": "02_empirical_comparison"})
    # interrupted: params and a history written, never a summary
    broken = results.JobStore(root / "02-bs64")
    results.write_json(broken.path(results.PARAMS), {"batch_size": 64})
    results.write_atomic(broken.path(results.HISTORY), "seed,epoch\n0,")
    failed = results.JobStore(root / "02-bs128")
    failed.write_status({"status": "failed", "error": "ValueError: boom", "params": {"batch_size": 128}})
    return root


def test_tables_hold_every_complete_run_and_list_the_rest(store_dir):
    t = results.load_tables(store_dir)
    assert dict(zip(t.jobs["job_id"], t.jobs["state"])) == {
        "02-bs16": "ok", "02-bs32": "ok", "02-bs64": "incomplete", "02-bs128": "failed"}
    assert len(t.runs) == 4 and set(t.runs["batch_size"]) == {16, 32}
    assert len(t.epochs) == 2 * 2 * 3  # runs x seeds x (epoch 0 + 2 epochs)
    assert {"train_loss", "val_loss", "batch_size", "seed", "job_id"} <= set(t.epochs.columns)
    assert {"distance", "grad_norm", "step"} <= set(t.steps.columns)
    assert t.jobs.set_index("job_id").loc["02-bs128", "error"] == "ValueError: boom"


def test_the_plan_limits_the_tables_to_the_profiles_own_runs(store_dir, tmp_path):
    import shutil

    store = shutil.copytree(store_dir, tmp_path / "runs")
    results.write_plan(store, "p", ["02-bs16", "02-bs64", "02-bs999"])  # 02-bs999: planned, not yet run
    t = results.load_tables(store)
    assert set(t.jobs["job_id"]) == {"02-bs16", "02-bs64"} and set(t.runs["batch_size"]) == {16}
    assert results.superseded(store) == ["02-bs128", "02-bs32"]
    assert len(results.jobs_in(store, everything=True)) == 4 and (store / "02-bs32").is_dir()
    (store / results.PLAN).unlink()  # a store without a plan is read whole
    assert len(results.load_tables(store).jobs) == 4 and results.superseded(store) == []


def test_rewriting_a_run_first_marks_it_incomplete(store_dir, tmp_path):
    import shutil

    store = results.JobStore(shutil.copytree(store_dir / "02-bs16", tmp_path / "02-bs16"))
    assert store.complete and store.state() == "ok"
    store.forget()
    assert not store.complete and store.status() is None and store.state() == "incomplete"


def test_checkpoints_load_back(store_dir):
    """A checkpoint loads back into the model it came from, and each seed's are its own."""
    import torch

    from bsnb import models

    store = results.JobStore(store_dir / "02-bs32")
    best, initial = store.load_state(seed=1, which="best"), store.load_state(seed=1, which="initial")
    net = models.build("cnn", (40,), 10, 4)
    assert {k: tuple(v.shape) for k, v in best.items()} == {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict(best)  # strict: every tensor of the model, nothing else
    assert any(not torch.equal(best[k], initial[k]) for k in best)  # training moved the weights
    other = store.load_state(seed=0, which="initial")
    assert any(not torch.equal(other[k], initial[k]) for k in initial)  # another seed, another initialisation


def test_loss_level_and_target_checkpoints_load_where_a_seed_saved_them(store_dir, tmp_path):
    import shutil

    import torch

    shutil.copytree(store_dir / "02-bs16", tmp_path / "run")
    store = results.JobStore(tmp_path / "run")
    torch.save(store.load_state(1, "final"), store.checkpoint_path(1, results.level_checkpoint(1.0)))
    assert set(store.load_checkpoints()) == {(s, w) for s in (0, 1) for w in results.CHECKPOINTS}
    torch.save(store.load_state(0, "best"), store.checkpoint_path(0, results.TARGET))
    found = store.load_checkpoints(levels=(1.0, 0.3))
    # seed 0 never got to training loss 1, nor did either seed to 0.3; only seed 0 reached the target
    assert set(found) - {(s, w) for s in (0, 1) for w in results.CHECKPOINTS} == {(1, "loss1"), (0, "target")}


def test_seed_table_and_describe_are_computed_from_the_summary(store_dir):
    store = results.JobStore(store_dir / "02-bs32")
    table = summaries.seed_table(store)
    assert list(table.index) == [0, 1] and "min_val_loss" in table
    assert "Batch size 32" in summaries.describe(store)


def test_batch_size_is_the_runs_batch_in_every_table_and_a_tables_own_batch_has_its_own_name(tmp_path):
    store = results.JobStore(tmp_path / "01-bs32")
    store.save("01_what_is_batch_size", {"batch_size": 32, "lr": 0.01}, [{"seed": 0}],
               {"variance": [{"drawn_batch": 1, "measured": 2.0}, {"drawn_batch": 64, "measured": 0.1}]})
    old = results.JobStore(tmp_path / "01-bs64")  # written before the drawn batch had its own name
    old.save("01_what_is_batch_size", {"batch_size": 64, "lr": 0.01}, [{"seed": 0}],
             {"variance": [{"batch_size": 4, "measured": 1.0}], "history": [{"epoch": 1, "batch_size": 128}]})
    t = results.load_tables(tmp_path)
    variance = t.table("variance").sort_values("measured")
    assert variance["drawn_batch"].tolist() == [64, 4, 1] and variance["batch_size"].tolist() == [32, 64, 32]
    assert (variance["lr"] == 0.01).all()  # the run's setting fills what a table does not have
    assert t.epochs["epoch_batch"].tolist() == [128] and t.epochs["batch_size"].tolist() == [64]


def test_the_noise_scale_of_a_window_sums_its_numerator_and_denominator():
    """McCandlish's average: tr(Sigma) and |G|^2 each summed over the window's checkpoints, so one checkpoint
    where |G|^2 happened to be small does not dominate as it does the mean of the ratios."""
    records = pd.DataFrame([
        {"seed": 0, "checkpoint": "initial", "g2": 2.0, "tr_sigma": 20.0, "b_simple": 10.0, "train_loss": 2.3},
        {"seed": 0, "checkpoint": "loss0.1", "g2": 0.1, "tr_sigma": 100.0, "b_simple": 1000.0, "train_loss": 0.1},
        {"seed": 0, "checkpoint": "loss0.1+1", "g2": 1.9, "tr_sigma": 100.0, "b_simple": 100 / 1.9, "train_loss": 0.09},
        {"seed": 1, "checkpoint": "loss0.1", "g2": 1.0, "tr_sigma": 50.0, "b_simple": 50.0, "train_loss": 0.1}])
    w = results.windowed_b_simple(records).set_index(["seed", "checkpoint"])
    assert w.loc[(0, "loss0.1"), "b_simple"] == pytest.approx(100.0)  # 200 / 2, not the mean ratio 526
    assert w.loc[(0, "loss0.1"), "measured"] == 2 and w.loc[(1, "loss0.1"), "measured"] == 1
    assert w.loc[(0, "loss0.1"), "train_loss"] == pytest.approx(0.095) and w.loc[(0, "initial"), "b_simple"] == 10.0
    assert results.window_start("loss0.1+2") == ("loss0.1", 2) and results.window_start("best") == ("best", 0)


def test_a_job_knows_its_files_by_size_and_hash(store_dir, tmp_path):
    """The manifest, written before the summary, lists every file the notebook wrote; a checkpoint cut short, a
    table edited or a file removed makes the job damaged (incomplete); a store from before manifests is read as
    before."""
    import shutil

    store = results.JobStore(shutil.copytree(store_dir / "02-bs16", tmp_path / "02-bs16"))
    listed = json.loads(store.path(results.MANIFEST).read_text())
    assert "checkpoints/seed0/final.pt" in listed and results.HISTORY in listed and results.PARAMS in listed
    assert results.SUMMARY not in listed and store.complete and store.damaged() == []
    (store.dir / ".notebook.partial.ipynb").write_text("{}")  # the sweep's own files are not the notebook's
    assert ".notebook.partial.ipynb" not in store.fingerprints()
    final = store.checkpoint_path(0, "final")
    whole = final.read_bytes()
    final.write_bytes(whole[:200])
    assert store.damaged() == ["checkpoints/seed0/final.pt"] and not store.complete
    final.write_bytes(whole)
    assert store.complete
    store.checkpoint_path(1, "best").unlink()
    assert store.damaged() == ["checkpoints/seed1/best.pt"]
    store.path(results.MANIFEST).unlink()  # an older store: no manifest, the files are checked by reading
    assert store.damaged() == [] and store.complete
