"""Workloads: named settings a profile lists, the jobs each reads, the findings per workload and the matrix."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from bsnb import claims, parameters, profiles, results


def profile_file(tmp_path, **changes):
    base = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())
    base.update(changes)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_every_named_workload_is_valid_and_described():
    named = profiles.load_workloads()
    assert {"mnist1d-cnn", "mnist1d-cnn-wide", "mnist1d-cnn-bn", "mnist1d-mlp", "mnist1d-cnn-adamw", "digits-mlp",
            "npz-cnn2d", "fashion-mnist-cnn2d"} <= set(named)
    assert all(w.description for w in named.values())
    assert named["mnist1d-cnn-adamw"].values["optimizer"] == "adamw"


def test_a_workloads_values_win_over_the_profiles_and_its_notebook_sections(tmp_path):
    profile = profiles.load_profile(profile_file(tmp_path, workloads=["mnist1d-cnn", "mnist1d-cnn-adamw", "mnist1d-mlp"]))
    jobs = profiles.expand(profile)
    members = profiles.workload_jobs(profile)
    assert list(members) == ["mnist1d-cnn", "mnist1d-cnn-adamw", "mnist1d-mlp"]
    by_id = {j.job_id: j for j in jobs}
    for name, ids in members.items():
        trained = [by_id[i] for i in ids if "optimizer" in by_id[i].params]
        assert trained
        if name == "mnist1d-cnn-adamw":  # its grid beats the smoke profile's 04 section's lr_grid
            assert all(j.params["optimizer"] == "adamw" for j in trained)
            assert all(j.params["lr_grid"] == profiles.load_workloads()[name].values["lr_grid"] for j in trained
                       if j.params.get("remedy") == "tuned")
        if name == "mnist1d-mlp":
            assert all(j.params["model"] == "mlp" for j in trained)
    # no job appears twice, and each workload's jobs include the sources its reading jobs need
    assert len(by_id) == len(jobs)
    for ids in members.values():
        assert all(by_id[i].source is None or by_id[i].source.job_id in ids for i in ids)


def test_a_job_two_workloads_share_runs_once_and_both_read_it(tmp_path):
    width = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())["fixed"].get("width", 25)
    lr = profiles.load_workloads()["mnist1d-cnn"].values["lr"]  # each workload pins its own rate
    path = profile_file(tmp_path, workloads=["mnist1d-cnn", {"mnist1d-cnn-wide": {"fixed": {"width": width},
                                                                                 "nuisance": {"lr": lr}}}])
    profile = profiles.load_profile(path)
    jobs = profiles.expand(profile)
    members = profiles.workload_jobs(profile)
    assert sorted(members["mnist1d-cnn"]) == sorted(members["mnist1d-cnn-wide"])  # the same setting: the same jobs
    assert len(jobs) == len(members["mnist1d-cnn"])


def test_validate_lists_the_jobs_by_workload_with_their_cost_and_a_shared_job_once(tmp_path):
    """What a user sees before starting the matrix: each workload's jobs, count and estimated job-seconds; a job two
    workloads share once, with both names; the total."""
    from conftest import bsnb

    width = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())["fixed"].get("width", 25)
    lr = profiles.load_workloads()["mnist1d-cnn"].values["lr"]
    path = profile_file(tmp_path, workloads=["mnist1d-cnn", {"mnist1d-cnn-wide": {"fixed": {"width": width},
                                                                                 "nuisance": {"lr": lr}}},
                                             "mnist1d-mlp"])
    proc = bsnb("validate", path, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    jobs = profiles.expand(profiles.load_profile(path))
    members = profiles.workload_jobs(profiles.load_profile(path))
    for name, ids in members.items():
        assert any(line.startswith(f"workload {name}: {len(ids)} jobs, about ") and "job-seconds" in line
                   for line in lines)
    listed = [line.split()[2] for line in lines if line.startswith("  to run ")]
    assert sorted(listed) == sorted(j.job_id for j in jobs)  # every job once
    shared = [line for line in lines if "(shared with mnist1d-cnn-wide)" in line]
    assert len(shared) == len(members["mnist1d-cnn"]) and not any("mnist1d-mlp" in line for line in shared)
    assert lines[-2].startswith(f"in all: {len(jobs)} of {len(jobs)} jobs to run, about ")


def test_a_grid_limited_to_some_workloads_runs_only_for_them(tmp_path):
    base = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())
    base["workloads"] = ["mnist1d-cnn", {"digits-mlp": {"fixed": {"n_train": 1000}}}]
    base["notebooks"]["04_closing_the_gap"].append(
        {"scientific": {"batch_size": [16], "remedy": ["one_pass"]}, "workloads": ["mnist1d-cnn"]})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base))
    profile = profiles.load_profile(path)
    jobs = {j.job_id: j for j in profiles.expand(profile)}
    members = profiles.workload_jobs(profile)
    remedies = {w: {jobs[i].params.get("remedy") for i in ids} for w, ids in members.items()}
    assert "one_pass" in remedies["mnist1d-cnn"] and "one_pass" not in remedies["digits-mlp"]


def test_the_one_pass_arms_read_the_small_batch_s_comparison_run_for_their_budget():
    """C17 and C19 (docs/protocol.md): the small batch in one pass for its comparison run's epochs, the large batch
    for as many steps; both arms' source is the comparison job at the reference batch, run first."""
    jobs = profiles.expand(profiles.load_profile("variants"))
    arms = [j for j in jobs if j.params.get("remedy") in profiles.ONE_PASS]
    assert len(arms) == 10
    for arm in arms:
        source = arm.source
        assert source.notebook == "02_empirical_comparison" and source in jobs
        assert source.params["batch_size"] == arm.params["reference_batch"] == 32
        assert {k: source.params[k] for k in ("lr", "seeds", "model", "epochs", "patience")} == {
            k: arm.params[k] for k in ("lr", "seeds", "model", "epochs", "patience")}
        assert jobs.index(source) < jobs.index(arm)


@pytest.mark.parametrize("listed, words", [
    (["no-such-workload"], ["no-such-workload", "mnist1d-cnn"]),
    (["mnist1d-cnn", "mnist1d-cnn"], ["twice"]),
    ([{"mnist1d-cnn": {"fixed": {"no_such_parameter": 1}}}], ["no_such_parameter"]),
    ("mnist1d-cnn", ["expected a list"]),
])
def test_a_bad_workload_list_is_refused_by_name(tmp_path, listed, words):
    with pytest.raises(parameters.ProfileError) as err:
        profiles.load_profile(profile_file(tmp_path, workloads=listed))
    assert all(w in str(err.value) for w in words), str(err.value)


def test_a_workload_whose_data_cannot_take_a_setting_is_named_before_anything_runs(tmp_path):
    # digits has 1,797 examples: the smoke sizes fit, but one pass needs a generator
    base = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())
    base["workloads"] = ["digits-mlp"]
    base["notebooks"]["04_closing_the_gap"].append({"scientific": {"batch_size": [16], "remedy": ["one_pass"]},
                                                    "fixed": {"one_pass": True}})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(parameters.ProfileError) as err:
        profiles.expand(profiles.load_profile(path))
    assert "workload digits-mlp" in str(err.value) and "one_pass" in str(err.value)


def test_the_workloads_file_is_not_a_profile():
    assert profiles.WORKLOADS_FILE not in profiles.profile_paths()
    with pytest.raises(parameters.ProfileError, match="not a profile"):
        profiles.load_profile("workloads")


def test_the_store_says_which_runs_each_workload_reads(tmp_path):
    store = tmp_path / "runs"
    for job in ("a", "b", "c"):
        (store / job).mkdir(parents=True)
    results.write_plan(store, "p", ["a", "b", "c"], {"second": ["b", "c"], "first": ["a", "b"]})
    assert results.workloads_of(store) == ["second", "first"]  # the profile's order, not the alphabet's
    assert [r.job_id for r in results.jobs_in(store, workload="first")] == ["a", "b"]
    assert [r.job_id for r in results.jobs_in(store)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="third"):
        results.jobs_in(store, workload="third")


def verdict_rows(workload, verdicts):
    return [{"workload": workload, "claim": c, "verdict": v, "effect": 1.0, "ci_low": 0.9, "ci_high": 1.1,
             "seeds": 0 if v == "unmeasured" else 5} for c, v in verdicts.items()]


def test_the_matrix_says_where_each_claim_holds():
    table = pd.DataFrame(
        verdict_rows("a", {"C1": "supported", "C2": "supported", "C4": "inconclusive", "C7": "not supported",
                           "C8": "unmeasured"})
        + verdict_rows("b", {"C1": "supported", "C2": "not supported", "C4": "inconclusive", "C7": "inconclusive",
                             "C8": "unmeasured"})
        + verdict_rows("c", {"C1": "supported", "C2": "inconclusive", "C4": "inconclusive", "C7": "not supported",
                             "C8": "unmeasured"}))
    matrix = claims.across_workloads(table).set_index("claim")
    assert list(matrix.index) == ["C1", "C2", "C4", "C7"]  # C8: no workload measured it
    assert matrix.loc["C1", "holds"] == "everywhere" and matrix.loc["C1", "supported"] == 3
    assert matrix.loc["C2", "holds"] == "somewhere" and matrix.loc["C2", "flips"] == "b"
    assert matrix.loc["C4", "holds"] == "undecided"
    assert matrix.loc["C7", "holds"] == "nowhere" and matrix.loc["C7", "not_supported"] == 2
    assert set(matrix["holds"]) <= set(claims.HOLDS)


def test_gathered_claims_have_a_row_per_claim_and_workload(tmp_path):
    for w, verdict in (("a", "supported"), ("b", "not supported")):
        folder = results.workload_dir(tmp_path, w)
        folder.mkdir(parents=True)
        pd.DataFrame(verdict_rows(w, {"C1": verdict, "C2": "inconclusive"})).to_csv(results.claims_path(folder),
                                                                                     index=False)
    table = results.gather_claims(tmp_path, ["a", "b", "missing"])
    again = pd.read_csv(results.claims_path(tmp_path))
    assert list(again.columns[:2]) == ["workload", "claim"] and len(again) == len(table) == 4
    assert set(zip(again["workload"], again["claim"])) == {("a", "C1"), ("a", "C2"), ("b", "C1"), ("b", "C2")}


# --- C17: one pass over fresh data --------------------------------------------------------------------------------


def one_pass_tables(ratio: float, seeds=(0, 1, 2, 3, 4), small_epochs=40, rng=None, large_epochs=300):
    """Runs and epochs of a repeated-data comparison (batch 32 and 256: ``large_epochs`` of 16 steps) and of the
    one-pass arms, whose large batch's validation loss is ``ratio`` times the small batch's at every step."""
    rng = rng or np.random.default_rng(0)
    runs, epochs = [], []

    def curve(job, notebook, remedy, batch, seed, n_epochs, per_epoch, level):
        runs.append({"job_id": job, "notebook": notebook, "remedy": remedy, "batch_size": batch, "lr": 0.03,
                     "seed": seed, "status": "ok", "min_val_loss": level, "patience": 0 if remedy else 20})
        for e in range(n_epochs + 1):
            step = e * per_epoch
            val = level * (1 + 2 * math.exp(-step / 400)) * (1 + 0.002 * rng.standard_normal())
            epochs.append({"job_id": job, "batch_size": batch, "seed": seed, "epoch": e, "step": step,
                           "val_loss": val if e else 2.3, "train_loss": val * 0.8})

    for s in seeds:
        curve("rep32", "02_empirical_comparison", None, 32, s, 60, 125, 0.3)
        curve("rep256", "02_empirical_comparison", None, 256, s, large_epochs, 16, 0.4)
        curve("one32", "04_closing_the_gap", "one_pass", 32, s, small_epochs, 125, 0.3)
        curve("one256", "04_closing_the_gap", "one_pass_longer", 256, s, small_epochs * 8, 16, 0.3 * ratio)
    runs, epochs = pd.DataFrame(runs), pd.DataFrame(epochs)
    # the repeated-data small batch's minimum: its curve turns up after step 3,000 (epoch 24)
    turn = (epochs["job_id"] == "rep32") & (epochs["epoch"] > 24)
    epochs.loc[turn, "val_loss"] += 0.01 * (epochs.loc[turn, "epoch"] - 24)
    return runs, epochs


@pytest.mark.parametrize("ratio, verdict", [(1.0, "supported"), (1.2, "not supported")])
def test_c17_compares_one_pass_runs_at_the_step_of_the_repeated_data_minimum(ratio, verdict):
    from bsnb import minima

    runs, epochs = one_pass_tables(ratio)
    read = minima.read_runs(runs, epochs)
    v = claims.one_pass(read, epochs, 32, 256)
    assert v.verdict == verdict, v
    assert v.seeds == 5 and math.isclose(v.effect, ratio, rel_tol=0.02)
    assert "repeated data read the same way: 1.33" in v.ours  # 0.4 / 0.3: the large batch's best within s steps
    curves, steps = claims.one_pass_curves(read, epochs, 32, 256)
    assert set(curves["regime"]) == {"one pass", "repeated data"} and len(steps) == 5


@pytest.mark.parametrize("ratio, verdict", [(1.0, "supported"), (1.6, "not supported")])
def test_c19_asks_whether_one_pass_shrinks_the_small_batch_s_advantage(ratio, verdict):
    """Per seed, log(one-pass ratio) - log(repeated-data ratio): the repeated-data ratio is 0.4 / 0.3 = 1.33, so a
    one-pass ratio of 1 shrinks the large batch's deficit (below 0) and 1.6 widens it (above 0)."""
    from bsnb import minima

    runs, epochs = one_pass_tables(ratio)
    v = claims.one_pass_interaction(minima.read_runs(runs, epochs), epochs, 32, 256)
    assert v.verdict == verdict and v.seeds == 5
    assert math.isclose(v.effect, math.log(ratio) - math.log(0.4 / 0.3), abs_tol=0.02)


@pytest.mark.parametrize("censored, verdict", [(True, "inconclusive"), (False, "supported")])
def test_c19_reads_a_repeated_data_run_the_cap_cut_before_that_step_as_a_bound(censored, verdict):
    """The large batch's repeated-data run ends at 2,400 steps, before the small batch's minimum (about 3,000): its
    best by then is its best by s only if patience confirmed it; cut by the cap (censored), it bounds the ratio from
    above, so the difference C19 reads may be larger than measured and "supported" is withdrawn (docs/protocol.md)."""
    from bsnb import minima

    runs, epochs = one_pass_tables(1.0, large_epochs=150)
    runs["censored"] = (runs["job_id"] == "rep256") & censored
    read = minima.read_runs(runs, epochs)
    v = claims.one_pass_interaction(read, epochs, 32, 256)
    assert v.verdict == verdict and v.seeds == 5
    assert ("(stopped by the cap before step s) in seeds 0, 1, 2, 3, 4" in v.note) == censored
    c17 = claims.one_pass(read, epochs, 32, 256)  # C17 reads one pass alone: the bound is only named beside it
    assert c17.verdict == "supported" and ("rests on bounds" in c17.note) == censored


def test_c17_leaves_out_and_names_seeds_whose_one_pass_budget_ended_before_that_step():
    from bsnb import minima

    runs, epochs = one_pass_tables(1.0, small_epochs=10)  # 1,250 steps: the minimum came at about 3,000
    v = claims.one_pass(minima.read_runs(runs, epochs), epochs, 32, 256)
    assert v.verdict == "inconclusive" and v.seeds == 0
    assert "budget ended before" in v.note


def test_c17_keeps_a_one_pass_run_that_failed_by_intention_to_treat():
    """The one-pass arms are the remedy's (docs/protocol.md): a run that failed to train stays, with its measured best
    by the compared step; one whose curve is all non-finite counts at the chance loss."""
    from bsnb import minima

    runs, epochs = one_pass_tables(1.0)
    read = minima.read_runs(runs, epochs).assign(chance_loss=2.3)
    failed = (read["job_id"] == "one256") & (read["seed"] == 0)
    read.loc[failed, "status"] = "failed to train"
    v = claims.one_pass(read, epochs, 32, 256)
    assert v.seeds == 5 and "kept with their measured best (intention to treat" in v.note
    assert "large batch seed 0 (failed to train)" in v.note
    lost = epochs.assign(val_loss=epochs["val_loss"].where(~((epochs["job_id"] == "one256") & (epochs["seed"] == 0))))
    v = claims.one_pass(read, lost, 32, 256)
    assert v.seeds == 5 and v.effect > 1.2  # 2.3 / 0.3 in one seed of five


def test_c17_without_one_pass_runs_is_inconclusive_and_says_why():
    from bsnb import minima

    runs, epochs = one_pass_tables(1.0)
    keep = runs["notebook"] == "02_empirical_comparison"
    v = claims.one_pass(minima.read_runs(runs[keep], epochs), epochs, 32, 256)
    assert v.verdict == "inconclusive" and "one-pass" in v.note


def test_the_matrix_counts_only_robust_labels_where_a_claim_holds():
    table = pd.DataFrame(verdict_rows("a", {"C1": "supported", "C2": "supported"})
                         + verdict_rows("b", {"C1": "supported", "C2": "not supported"})).assign(robust="True")
    table.loc[(table["workload"] == "b") & (table["claim"] == "C1"), "robust"] = "False"
    table.loc[(table["workload"] == "b") & (table["claim"] == "C2"), "robust"] = "false"  # as text, as a CSV may give it
    holds = claims.across_workloads(table).set_index("claim")
    assert holds.loc["C1", "holds"] == "somewhere" and holds.loc["C1", "supported"] == 1
    assert holds.loc["C2", "holds"] == "somewhere" and holds.loc["C2", "flips"] == ""
    from bsnb import readme

    assert "**supported** † 1 [0.9, 1.1]" in readme.matrix_markdown(table, {"command": "bsnb run variants"})


def test_the_readme_matrix_has_a_column_per_workload_in_order_and_where_each_claim_holds():
    from bsnb import readme

    table = pd.DataFrame(verdict_rows("second", {"C1": "supported", "C2": "unmeasured"})
                         + verdict_rows("first", {"C1": "not supported", "C2": "supported"}))
    text = readme.matrix_markdown(table, {"command": "bsnb run variants"})
    header = next(line for line in text.splitlines() if line.startswith("| claim"))
    assert header == "| claim | second | first | holds |"
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| C")}
    assert "**supported** 1 [0.9, 1.1]" in rows["| C1"] and "somewhere (1 of 2)" in rows["| C1"]
    assert "| – |" in rows["| C2"] and "everywhere (1 of 1)" in rows["| C2"]


def test_the_npz_workload_takes_the_file_a_profile_names_and_refuses_a_missing_one(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4
    x = (y[:, None, None] + 0.1 * rng.standard_normal((200, 8, 8))).astype(np.float32)  # 8x8 one-channel images
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    sizes = {"n_train": 120, "n_val": 40, "n_test": 40}
    listed = [{"npz-cnn2d": {"fixed": {"data_path": str(tmp_path / "mine.npz"), **sizes}}}]
    profile = profiles.load_profile(profile_file(tmp_path, workloads=listed))
    trained = [j for j in profiles.expand(profile) if "dataset" in j.params]
    assert trained and all(j.params["dataset"] == "npz" and j.params["model"] == "cnn2d" for j in trained)
    missing = [{"npz-cnn2d": {"fixed": {"data_path": str(tmp_path / "absent.npz"), **sizes}}}]
    with pytest.raises(parameters.ProfileError, match="absent.npz"):
        profiles.expand(profiles.load_profile(profile_file(tmp_path, workloads=missing)))


def test_c17_draws_no_figure_without_one_pass_runs():
    from bsnb import minima

    runs, epochs = one_pass_tables(1.0)
    keep = runs["notebook"] == "02_empirical_comparison"
    curves, _ = claims.one_pass_curves(minima.read_runs(runs[keep], epochs), epochs, 32, 256)
    assert curves.empty


def test_a_search_grid_given_as_factors_is_centred_on_each_workloads_pinned_rate(tmp_path):
    """Protocol v4: each workload's search grid is centred from its pinned rate, lr x batch / reference_batch x each
    factor; a workload that gives its own lr_grid (AdamW's, one grid at every batch size) sets no factors."""
    tuned = [{"scientific": {"batch_size": [32, 64], "remedy": ["tuned"]},
              "nuisance": {"lr_grid_factors": [0.5, 1, 2], "seeds": [0]}}]
    path = profile_file(tmp_path, notebooks={"04_closing_the_gap": tuned},
                        workloads=[{"mnist1d-cnn": {"nuisance": {"lr": 0.05}}},
                                   {"mnist1d-cnn-adamw": {"nuisance": {"lr_grid_factors": []}}}])
    profile = profiles.load_profile(path)
    by_id = {j.job_id: j for j in profiles.expand(profile)}
    members = profiles.workload_jobs(profile)
    grids = {(w, by_id[i].params["batch_size"]): by_id[i].params["lr_grid"] for w, ids in members.items() for i in ids}
    assert grids[("mnist1d-cnn", 32)] == [0.025, 0.05, 0.1] and grids[("mnist1d-cnn", 64)] == [0.05, 0.1, 0.2]
    adamw = profiles.load_workloads()["mnist1d-cnn-adamw"].values["lr_grid"]
    assert grids[("mnist1d-cnn-adamw", 32)] == grids[("mnist1d-cnn-adamw", 64)] == adamw
    assert all("lr_grid_factors" not in j.params for j in by_id.values())  # resolved before the job is made
    bad = [{**tuned[0], "nuisance": {"lr_grid_factors": [0.5, -1], "seeds": [0]}}]
    with pytest.raises(parameters.ProfileError, match="lr_grid_factors"):
        profiles.expand(profiles.load_profile(profile_file(tmp_path, notebooks={"04_closing_the_gap": bad})))
