"""The protocol's readings of a run (docs/protocol.md), on synthetic curves whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bsnb import claims, minima, train


def curve(val, train_loss=None, job="02-bs32", seed=0, steps_per_epoch=10):
    """An epochs table for one run: ``val`` the validation loss of epochs 1..n (epoch 0 is the start)."""
    n = len(val)
    train_loss = train_loss if train_loss is not None else np.linspace(1.0, 0.1, n)
    rows = [{"job_id": job, "run": f"seed{seed}", "seed": seed, "epoch": 0, "step": 0, "val_loss": 2.3,
             "train_loss": 2.3}]
    rows += [{"job_id": job, "run": f"seed{seed}", "seed": seed, "epoch": e, "step": e * steps_per_epoch,
              "val_loss": v, "train_loss": t} for e, (v, t) in enumerate(zip(val, train_loss), start=1)]
    return pd.DataFrame(rows)


def summary(job="02-bs32", seed=0, **kw):
    return pd.DataFrame([{"job_id": job, "seed": seed, "notebook": "02_empirical_comparison", "batch_size": 32,
                          "status": "ok", "min_val_loss": math.nan, "epoch_of_min_val_loss": 0, "patience": 25,
                          "censored": False, "chance_loss": math.log(10), "lr": 0.1, **kw}])


def test_smoothing_is_a_centred_average_that_shrinks_at_the_ends():
    assert np.allclose(minima.smooth([1, 2, 3, 4, 5, 6, 7], 5), [2, 2.5, 3, 4, 5, 5.5, 6])
    assert np.allclose(minima.smooth([1, 5, 2], 1), [1, 5, 2])


def test_the_smoothed_minimum_is_not_a_single_spike_down():
    # a slow valley with its bottom near epoch 15, and one epoch (5) that dips far below it
    epochs = np.arange(1, 31)
    val = 0.5 + 0.002 * (epochs - 15) ** 2
    val[4] = 0.2
    runs = minima.read_runs(summary(min_val_loss=0.2, epoch_of_min_val_loss=5), curve(val))
    r = runs.iloc[0]
    assert r["min_val_loss_raw"] == pytest.approx(0.2) and r["epoch_of_min_raw"] == 5
    assert r["epoch_of_min_val_loss"] == 15 and r["min_val_loss"] == pytest.approx(0.5, abs=0.005)
    assert r["step_of_min_val_loss"] == 150
    raw = minima.read_runs(summary(), curve(val), window=1).iloc[0]
    assert raw["min_val_loss"] == pytest.approx(0.2) and raw["epoch_of_min_val_loss"] == 5


def test_a_run_that_never_leaves_the_chance_loss_failed_to_train_and_is_named():
    flat = curve(np.full(20, 2.3), train_loss=np.full(20, 2.2))  # 2.2 > 0.9 ln 10 = 2.07
    runs = minima.read_runs(summary(lr=0.24, remedy="linear_warmup", lr_used=0.24), flat)
    assert runs.iloc[0]["status"] == minima.FAILED and runs.iloc[0]["failed_to_train"]
    note = minima.unusable_note(runs.assign(batch_size=256))
    assert "batch 256 linear_warmup lr 0.24 seed 0 failed to train" in note and "2.3" in note
    trained = minima.read_runs(summary(), curve(np.full(20, 1.0), train_loss=np.full(20, 1.5)))
    assert trained.iloc[0]["status"] == "ok"


def test_the_chance_loss_is_the_entropy_of_the_training_labels():
    assert train.chance_loss(torch.tensor([0, 1, 2, 3] * 5)) == pytest.approx(math.log(4))
    assert train.chance_loss(torch.tensor([0, 0, 0, 1])) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_a_fixed_schedule_still_falling_at_its_end_is_censored():
    falling = curve(np.linspace(1.0, 0.5, 50))  # no patience: the last 10% of epochs still fall by ~2%
    runs = minima.read_runs(summary(patience=0, censored=False), falling)
    assert bool(runs.iloc[0]["censored"])
    settled = curve(np.r_[np.linspace(1.0, 0.5, 40), np.full(10, 0.5)])
    assert not bool(minima.read_runs(summary(patience=0, censored=True), settled).iloc[0]["censored"])
    # a run with patience keeps the training loop's own flag
    assert not bool(minima.read_runs(summary(patience=25, censored=False), falling).iloc[0]["censored"])


def test_a_fixed_schedule_recovering_from_a_spike_in_its_tail_is_not_censored():
    """Protocol v4: the fall over the last 10% is a recovery from a spike, the minimum lies far earlier (v3 censored
    C12's control so in 3 of 8 seeds)."""
    val = np.r_[np.linspace(1.0, 0.3, 25), np.linspace(0.3, 0.45, 28), np.full(3, 0.9), np.linspace(0.6, 0.42, 4)]
    runs = minima.read_runs(summary(patience=0, censored=False), curve(val))
    r = runs.iloc[0]
    assert r["still_falling"] and not r["min_in_tail"]  # v3's rule alone would have censored it
    assert not bool(r["censored"]) and r["epoch_of_min_val_loss"] < 30


def test_a_verdict_is_robust_only_when_every_alternative_reading_gives_its_label():
    """C2 on two batch sizes whose raw minima differ by a spike: the raw reading flips the label."""
    rng = np.random.default_rng(0)
    seeds, epochs = [], []
    for b, level in ((32, 0.30), (256, 0.40)):
        for s in range(4):
            val = level + 0.01 * rng.standard_normal(40) + 0.0005 * (np.arange(40) - 20) ** 2
            if b == 256:
                val[10] = 0.05  # one spiky epoch: the raw minimum of the large batch is far below the small's
            epochs.append(curve(val, job=f"02-bs{b}", seed=s).assign(batch_size=b))
            seeds.append(summary(job=f"02-bs{b}", seed=s).assign(batch_size=b))
    tables = type("T", (), {"runs": pd.concat(seeds, ignore_index=True), "epochs": pd.concat(epochs, ignore_index=True),
                            "steps": pd.DataFrame(), "table": lambda self, name: pd.DataFrame()})()
    study = claims.Study(tables)
    v = claims.CLAIMS["C2"].compute(study, claims.PROTOCOL)
    assert v.verdict == claims.SUPPORTED
    [v] = claims.robustness(study, [v])
    assert v.robust is False and "raw minima: not supported" in v.sensitivity
    assert "3-epoch smoothing: supported" in v.sensitivity


def _c2_study(ratios: list[float]) -> "claims.Study":
    """C2 on batch 32 and 256 with the given per-seed ratio of their (flat) minima."""
    seeds, epochs = [], []
    for s, ratio in enumerate(ratios):
        for b, level in ((32, 0.30), (256, 0.30 * ratio)):
            epochs.append(curve(np.full(30, level) + 0.001 * np.abs(np.arange(30) - 15), job=f"02-bs{b}",
                                seed=s).assign(batch_size=b))
            seeds.append(summary(job=f"02-bs{b}", seed=s).assign(batch_size=b))
    tables = type("T", (), {"runs": pd.concat(seeds, ignore_index=True), "epochs": pd.concat(epochs, ignore_index=True),
                            "steps": pd.DataFrame(), "table": lambda self, name: pd.DataFrame()})()
    return claims.Study(tables)


def test_a_label_one_seed_decides_or_the_bonferroni_level_moves_is_not_robust():
    """Protocol v4: a label must survive each seed left out in turn and the Bonferroni interval."""
    steady = _c2_study([1.30, 1.32, 1.28, 1.31, 1.29, 1.33, 1.30, 1.27])
    [v] = claims.robustness(steady, [claims.CLAIMS["C2"].compute(steady, claims.PROTOCOL)])
    assert v.verdict == claims.SUPPORTED and v.robust, v.sensitivity
    assert "one seed left out: the same label without any one of 8" in v.sensitivity and "Bonferroni" in v.sensitivity
    # seven seeds agree and one (an unstable run, say) goes the other way: the label rests on that one seed
    one = _c2_study([1.30, 1.32, 1.28, 1.31, 1.29, 1.33, 1.30, 0.6])
    v = claims.CLAIMS["C2"].compute(one, claims.PROTOCOL)
    assert v.verdict == claims.INCONCLUSIVE
    [v] = claims.robustness(one, [v])
    assert not v.robust and "the label moves without seed 7 (supported)" in v.sensitivity
    # a clear but modest effect that the Bonferroni level (K = 1 here: the 95% level) leaves; K = 18 does not
    modest = _c2_study([1.05, 1.00, 1.09, 1.02, 1.08, 1.01, 1.07, 1.03])
    v = claims.CLAIMS["C2"].compute(modest, claims.PROTOCOL)
    others = [claims.Verdict(f"X{i}", claims.INCONCLUSIVE, 1, 0, 2, 8, "", "") for i in range(3, 20)]  # 17 more
    assert v.verdict == claims.SUPPORTED
    [v, *_] = claims.robustness(modest, [v, *others])
    assert not v.robust and "moved by the Bonferroni level" in v.sensitivity and "K = 18" in v.sensitivity
    # with fewer than 5 seeds the seed check is not made, and nothing is robust
    few = _c2_study([1.30, 1.32, 1.28, 1.31])
    [v] = claims.robustness(few, [claims.CLAIMS["C2"].compute(few, claims.PROTOCOL)])
    assert not v.robust and "not made (4 seeds" in v.sensitivity


def test_the_test_loss_and_lowered_censored_minima_are_alternative_readings():
    """Protocol v4: C2 read on the test loss at the weights the validation loss chose, and with censored minima
    lowered by twice their fall over their last 10% of epochs."""
    study = _c2_study([1.30, 1.32, 1.28, 1.31, 1.29, 1.33, 1.30, 1.27])
    seeds = study.tables.runs
    seeds["test_loss"] = 0.30  # on the test set, both batch sizes score alike
    [v] = claims.robustness(study, [claims.CLAIMS["C2"].compute(study, claims.PROTOCOL)])
    assert not v.robust and "the test loss at the selected weights: inconclusive" in v.sensitivity
    read = study.runs(claims.Reading(censored_lowered=True))
    assert "tail_fall" in read and (read["min_val_loss"] == study.runs()["min_val_loss"]).all()  # none censored
    study.tables.runs["censored"] = study.tables.runs["batch_size"] == 256
    study._read.clear()
    lowered = study.runs(claims.Reading(censored_lowered=True))
    falls = lowered["tail_fall"].clip(lower=0).where(lowered["censored"].astype(bool), 0.0)
    assert (lowered["min_val_loss"] == study.runs()["min_val_loss"] - 2 * falls).all()


def test_the_curves_reading_wins_over_the_columns_a_run_recorded_of_it():
    val = np.r_[np.linspace(1.0, 0.5, 20), np.full(5, 0.6)]
    recorded = summary(min_val_loss_raw=0.1, epoch_of_min_raw=3)  # what a newer training loop writes, here wrong
    r = minima.read_runs(recorded, curve(val)).iloc[0]
    assert r["min_val_loss_raw"] == pytest.approx(0.5) and r["epoch_of_min_raw"] == 20
    assert not any(c.endswith(("_x", "_y")) for c in minima.read_runs(recorded, curve(val)).columns)


def test_a_run_that_climbs_back_above_chance_is_unstable_kept_and_named():
    """Protocol v4: trained to 0.86, then back up to 4.07 above chance (2.30): kept with its minimum (intention to
    treat), counted, and not failed to train."""
    chance = math.log(10)
    train_loss = np.r_[np.linspace(2.0, 0.86, 10), np.linspace(1.5, 4.07, 10)]
    runs = minima.read_runs(summary(lr_used=0.24, remedy="linear_warmup"), curve(np.linspace(1.5, 1.3, 20), train_loss))
    r = runs.iloc[0]
    assert r["status"] == "ok" and bool(r["unstable"]) and r["train_loss_peak_after_fall"] == pytest.approx(4.07)
    assert r["min_val_loss"] == pytest.approx(1.31, abs=0.01)  # its measured minimum stays
    note = minima.unusable_note(runs.assign(batch_size=256))
    assert "1 unstable run(s) kept" in note and "seed 0" in note and "4.07" in note and "left out" not in note
    calm = minima.read_runs(summary(), curve(np.linspace(1.5, 1.3, 20), np.linspace(2.0, 0.5, 20))).iloc[0]
    assert not calm["unstable"]
    spiky = np.linspace(2.0, 0.3, 20)
    spiky[12] = 0.95 * chance  # a spike that stays below chance: not unstable
    assert not minima.read_runs(summary(), curve(np.linspace(1.5, 1.3, 20), spiky)).iloc[0]["unstable"]
    diverged = np.r_[np.linspace(2.0, 0.8, 10), np.full(10, np.inf)]
    assert minima.read_runs(summary(), curve(np.linspace(1.5, 1.3, 20), diverged)).iloc[0]["unstable"]


def test_a_blow_up_inside_an_epoch_seen_only_by_the_running_mean_is_unstable():
    """The evaluation at the epoch's end came back below chance (2.17), the epoch's running mean did not (3.00): the
    v3 reference's batch-256 linear-rule seed 6 as another CPU computed it."""
    train_loss = np.r_[np.linspace(2.0, 0.86, 8), 2.17, np.linspace(2.1, 1.4, 11)]
    epochs = curve(np.linspace(1.5, 1.3, 20), train_loss)
    epochs["train_loss_running"] = epochs["train_loss"]
    epochs.loc[epochs["epoch"] == 9, "train_loss_running"] = 3.0
    r = minima.read_runs(summary(), epochs).iloc[0]
    assert bool(r["unstable"]) and r["train_loss_peak_after_fall"] == pytest.approx(3.0)
    assert not minima.read_runs(summary(), epochs.drop(columns="train_loss_running")).iloc[0]["unstable"]


def test_where_the_search_chooses_another_rate_for_the_small_batch_claims_at_the_comparisons_rate_are_not_robust():
    """Protocol v4: the profile pins the comparison's rate; where its own search chooses another, every claim read at
    the comparison's rate says so and is not robust (C15, read at each batch size's own rate, is not touched)."""
    steady = _c2_study([1.30, 1.32, 1.28, 1.31, 1.29, 1.33, 1.30, 1.27])
    c2 = claims.CLAIMS["C2"].compute(steady, claims.PROTOCOL)
    lr = float(steady.runs()["lr"].iloc[0])
    for chosen, robust in ((lr, True), (2 * lr, False)):
        search = pd.DataFrame([{"job_id": "04-tuned", "notebook": "04_closing_the_gap", "remedy": "tuned",
                                "batch_size": 32, "seed": s, "lr_used": rate, "status": "ok", "stopped_by": "patience",
                                "pruned": False, "min_val_loss": 0.3 + abs(rate - chosen), "run": f"lr{rate}-seed{s}"}
                               for s in (0, 1, 2) for rate in (lr / 2, lr, 2 * lr, 4 * lr)])
        tables = steady.tables
        both = type("T", (), {"runs": pd.concat([tables.runs, search], ignore_index=True), "epochs": tables.epochs,
                              "steps": pd.DataFrame(), "table": lambda self, name: pd.DataFrame()})()
        [v] = claims.robustness(claims.Study(both), [claims.CLAIMS["C2"].compute(claims.Study(both), claims.PROTOCOL)])
        assert v.verdict == c2.verdict and v.robust is robust, v.sensitivity
        assert ("is not the batch-32 search's chosen rate" in v.sensitivity) is not robust


def test_leaving_out_a_confirmation_seed_is_a_check_of_c15_alone():
    """Seeds only the confirmation runs use cannot move a claim that does not read them: the seed check of C2 leaves
    out its own 8 seeds, not the 5 confirmation seeds beside them."""
    steady = _c2_study([1.30, 1.32, 1.28, 1.31, 1.29, 1.33, 1.30, 1.27])
    confirm = pd.DataFrame([{"job_id": "04-confirm", "notebook": "04_closing_the_gap", "remedy": "confirm",
                             "batch_size": 32, "seed": s, "lr": 0.1, "status": "ok", "min_val_loss": 0.3}
                            for s in range(100, 105)])
    tables = type("T", (), {"runs": pd.concat([steady.tables.runs, confirm], ignore_index=True),
                            "epochs": steady.tables.epochs, "steps": pd.DataFrame(),
                            "table": lambda self, name: pd.DataFrame()})()
    study = claims.Study(tables)
    assert study.confirmation_only_seeds() == set(range(100, 105)) and len(study.seed_ids()) == 13
    [v] = claims.robustness(study, [claims.CLAIMS["C2"].compute(study, claims.PROTOCOL)])
    assert "one seed left out: the same label without any one of 8" in v.sensitivity
