"""Verdicts follow from the data: checked on synthetic tables whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bsnb import claims


def test_interval_is_the_student_t_interval():
    mean, lo, hi, n = claims.interval([1.0, 2.0, 3.0], 0.95)
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (mean, n) == (2.0, 3) and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)


def test_log_interval_is_a_geometric_mean_interval():
    mean, lo, hi, n = claims.interval([2.0, 2.0, 2.0], log=True)
    assert mean == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)


def test_one_value_gives_no_interval():
    assert math.isnan(claims.interval([1.0])[1])


@pytest.mark.parametrize("lo, hi, direction, expected", [
    (1.1, 1.3, "greater", claims.SUPPORTED),
    (0.7, 0.9, "greater", claims.NOT_SUPPORTED),
    (0.9, 1.1, "greater", claims.INCONCLUSIVE),
    (0.7, 0.9, "less", claims.SUPPORTED),
    (1.1, 1.2, "less", claims.NOT_SUPPORTED),
    (1.0, 1.5, "at_least", claims.SUPPORTED),
    (0.2, 0.9, "at_least", claims.NOT_SUPPORTED),
    (0.5, 1.5, "at_least", claims.INCONCLUSIVE),
])
def test_decide(lo, hi, direction, expected):
    assert claims.decide(lo, hi, 1.0, direction, n=3) == expected


def test_decide_needs_two_seeds():
    assert claims.decide(1.1, 1.3, 1.0, "greater", n=1) == claims.INCONCLUSIVE


def synthetic(min_val: dict, spe: dict, best_epoch: dict, final_train: dict, seeds=(0, 1, 2), noise=0.0, rng=None):
    """Runs and epochs tables for batch sizes with the given per-batch values (plus optional noise)."""
    rng = rng or np.random.default_rng(0)
    runs, epochs = [], []
    for bs in min_val:
        for s in seeds:
            jitter = 1 + noise * rng.standard_normal()
            runs.append({"job_id": f"bs{bs}", "notebook": "02_empirical_comparison", "batch_size": bs, "lr": 0.01,
                         "seed": s, "status": "ok", "min_val_loss": min_val[bs] * jitter,
                         "seconds_per_epoch": spe[bs] * (1 + noise * rng.standard_normal()),
                         "examples_per_second": 1000 / spe[bs], "epoch_of_min_val_loss": best_epoch[bs] + s,
                         "epochs_run": 50})
            for e in range(51):
                epochs.append({"job_id": f"bs{bs}", "batch_size": bs, "seed": s, "epoch": e,
                               "train_loss": final_train[bs] * jitter * (1 + (50 - e) / 50)})
    return pd.DataFrame(runs), pd.DataFrame(epochs)


ARTICLE_LIKE = dict(min_val={32: 0.344, 256: 0.395}, spe={32: 1.0, 256: 0.4}, best_epoch={32: 10, 256: 30},
                    final_train={32: 0.01, 256: 0.1})


def by_claim(verdicts):
    return {v.claim: v for v in verdicts}


def test_an_article_like_store_supports_c1_to_c4():
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    v = by_claim(claims.empirical(runs, epochs))
    assert {c: x.verdict for c, x in v.items()} == {c: claims.SUPPORTED for c in ("C1", "C2", "C3", "C4")}
    assert v["C2"].effect == pytest.approx(0.395 / 0.344, rel=0.03)
    assert v["C4"].effect == pytest.approx(20)
    assert v["C2"].ci_low < v["C2"].effect < v["C2"].ci_high and v["C2"].seeds == 3


def test_the_opposite_store_is_not_supported():
    swapped = {k: {32: d[256], 256: d[32]} for k, d in ARTICLE_LIKE.items()}
    runs, epochs = synthetic(**swapped, noise=0.01)
    v = by_claim(claims.empirical(runs, epochs))
    assert {c: x.verdict for c, x in v.items()} == {c: claims.NOT_SUPPORTED for c in ("C1", "C2", "C3", "C4")}


def test_no_effect_with_noise_is_inconclusive():
    flat = dict(min_val={32: 0.3, 256: 0.3}, spe={32: 1.0, 256: 1.0}, best_epoch={32: 10, 256: 10},
                final_train={32: 0.1, 256: 0.1})
    runs, epochs = synthetic(**flat, noise=0.2, rng=np.random.default_rng(5))
    v = by_claim(claims.empirical(runs, epochs))
    assert v["C2"].verdict == claims.INCONCLUSIVE and v["C3"].verdict == claims.INCONCLUSIVE


def test_missing_batch_sizes_fall_back_to_the_extremes_and_say_so():
    runs, epochs = synthetic(min_val={16: 0.3, 64: 0.4, 128: 0.5}, spe={16: 1, 64: 0.5, 128: 0.3},
                             best_epoch={16: 5, 64: 9, 128: 20}, final_train={16: 0.01, 64: 0.05, 128: 0.1})
    v = by_claim(claims.empirical(runs, epochs))
    assert "batch 128 / batch 16" in v["C2"].measure
    assert "not both in the sweep" in v["C2"].note


def test_diverged_seeds_are_left_out_and_counted():
    runs, epochs = synthetic(**ARTICLE_LIKE)
    runs.loc[(runs.batch_size == 256) & (runs.seed == 2), "status"] = "diverged"
    v = by_claim(claims.empirical(runs, epochs))
    assert v["C2"].seeds == 2 and "1 diverged" in v["C2"].note


def test_budget_censoring_is_noted_for_c4():
    params = {**ARTICLE_LIKE, "best_epoch": {32: 10, 256: 50}}
    runs, epochs = synthetic(**params)
    runs["epoch_of_min_val_loss"] = runs["epoch_of_min_val_loss"].clip(upper=50)
    v = by_claim(claims.empirical(runs, epochs))
    assert "last epoch in 3 of 3 seeds" in v["C4"].note


def test_c4_is_not_supported_by_two_budget_censored_minima():
    # both batch sizes still improving at the last epoch: large - small is 0 in every seed, an interval
    # [0, 0] that would pass "at least 0", yet it measures only the budget
    params = {**ARTICLE_LIKE, "best_epoch": {32: 50, 256: 50}}
    runs, epochs = synthetic(**params)
    runs["epoch_of_min_val_loss"] = runs["epoch_of_min_val_loss"].clip(upper=50)
    v = by_claim(claims.empirical(runs, epochs))["C4"]
    assert v.effect == 0 and v.ci_low == 0 and v.verdict == claims.INCONCLUSIVE
    assert "batch-32 minimum fell on the last epoch in 3 of 3 seeds" in v.note
    assert "artefact of the budget" in v.note


def test_c4_refutation_by_a_censored_large_batch_is_inconclusive():
    # the large batch ran a shorter budget (20 epochs) and peaked on its last one, before the small batch's
    # minimum at epoch 30: the refutation may be the budget's doing
    params = {**ARTICLE_LIKE, "best_epoch": {32: 30, 256: 20}}
    runs, epochs = synthetic(**params)
    large = runs["batch_size"] == 256
    runs.loc[large, "epochs_run"] = 20
    runs.loc[large, "epoch_of_min_val_loss"] = 20
    v = by_claim(claims.empirical(runs, epochs))["C4"]
    assert v.ci_high < 0 and v.verdict == claims.INCONCLUSIVE
    assert "batch-256 minimum fell on the last epoch in 3 of 3 seeds" in v.note


def test_empty_store_gives_inconclusive_rows_for_every_claim():
    v = claims.empirical(pd.DataFrame(columns=["notebook", "batch_size"]), pd.DataFrame())
    assert [x.claim for x in v] == ["C1", "C2", "C3", "C4"] and all(x.verdict == claims.INCONCLUSIVE for x in v)


def test_claims_csv_has_the_agreed_columns(tmp_path):
    runs, epochs = synthetic(**ARTICLE_LIKE)
    df = claims.save(claims.empirical(runs, epochs), tmp_path / "claims.csv")
    back = pd.read_csv(tmp_path / "claims.csv")
    assert list(back.columns[:6]) == ["claim", "verdict", "effect", "ci_low", "ci_high", "seeds"]
    assert len(back) == len(df) == 4
    assert "C2 SUPPORTED" in claims.conclusions(claims.empirical(runs, epochs))


def sharpness_runs(lam: dict, seeds=(0, 1, 2), noise=0.05, rng=None):
    rng = rng or np.random.default_rng(1)
    return pd.DataFrame([{"job_id": f"03-bs{b}", "notebook": "03_sharpness", "batch_size": b, "seed": s,
                          "lambda_max": v * (1 + noise * rng.standard_normal()), "trace": 10 * v,
                          "eps_full_0.001": v / 10} for b, v in lam.items() for s in seeds])


def test_sharper_large_batch_minima_support_c6_and_flatter_ones_do_not():
    v = claims.sharpness(sharpness_runs({32: 1.0, 256: 5.0}))
    assert v.verdict == claims.SUPPORTED and v.effect == pytest.approx(5, rel=0.1)
    assert "trace ratio" in v.ours and "Keskar" in v.published
    assert claims.sharpness(sharpness_runs({32: 5.0, 256: 1.0})).verdict == claims.NOT_SUPPORTED
    assert claims.sharpness(pd.DataFrame(columns=["notebook", "batch_size"])).verdict == claims.INCONCLUSIVE


def test_c7_compares_final_distances_and_reports_the_log_fit():
    from bsnb import analysis

    rows = []
    for b, scale in ((32, 3.0), (256, 1.0)):
        for s in (0, 1, 2):
            for t in np.unique(np.geomspace(1, 1000, 40).round()):
                rows.append({"job_id": f"bs{b}", "seed": s, "batch_size": b, "step": t,
                             "distance": scale * (1 + s * 0.01) * (0.5 + np.log(t))})
    fits = analysis.log_fits(pd.DataFrame(rows))
    assert np.allclose(fits["r2"], 1.0) and len(fits) == 6
    v = claims.distance(fits)
    assert v.verdict == claims.SUPPORTED and v.effect == pytest.approx(1 / 3, rel=0.02)
    assert "R^2" in v.note and "batch 32 1.00" in v.note


def remedy_runs(values: dict, seeds=(0, 1, 2), rng=None):
    """02 baselines and 04 remedy runs: values maps (notebook, batch, remedy) to a min val loss."""
    rng = rng or np.random.default_rng(3)
    rows = []
    for (nb, b, remedy), v in values.items():
        for s in seeds:
            rows.append({"job_id": f"{nb}-{b}-{remedy}", "notebook": nb, "batch_size": b, "remedy": remedy,
                         "seed": s, "status": "ok", "lr": 0.01, "epochs": 100, "train_seconds": 10.0 * (2 if remedy ==
                         "longer" else 1), "min_val_loss": v + 0.002 * rng.standard_normal()})
    return pd.DataFrame(rows)


GAP = {("02_empirical_comparison", 32, None): 0.30, ("02_empirical_comparison", 256, None): 0.60,
       ("04_closing_the_gap", 256, "linear_warmup"): 0.33, ("04_closing_the_gap", 256, "sqrt"): 0.50,
       ("04_closing_the_gap", 256, "longer"): 0.58, ("04_closing_the_gap", 256, "bn"): 0.50,
       ("04_closing_the_gap", 256, "ghost_bn"): 0.45}


def test_gap_shares_are_computed_seed_by_seed_against_the_article_setting():
    table = claims.remedy_table(remedy_runs(GAP)).set_index("remedy")
    assert table.loc["linear_warmup", "gap_closed"] == pytest.approx(0.9, abs=0.05)
    assert table.loc["sqrt", "gap_closed"] == pytest.approx(1 / 3, abs=0.05)
    assert table.loc["longer", "cost_vs_baseline"] == pytest.approx(2.0)
    assert (table["seeds"] == 3).all()


def test_c8_to_c10_verdicts_follow_the_shares_and_the_ghost_difference():
    runs = remedy_runs(GAP)
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))
    assert v["C8"].verdict == claims.SUPPORTED and "sqrt closes" in v["C8"].ours
    assert v["C9"].verdict == claims.NOT_SUPPORTED  # 'longer' closes ~7%, well under half
    assert v["C10"].verdict == claims.SUPPORTED and v["C10"].effect == pytest.approx(0.05, abs=0.01)
    empty = by_claim(claims.closing(pd.DataFrame(), runs.iloc[0:0]))
    assert all(x.verdict == claims.INCONCLUSIVE for x in empty.values())


def test_steps_to_target_takes_each_seeds_best_learning_rate_and_labels_regimes():
    rows = []
    steps = {16: 4000, 32: 2000, 64: 1000, 128: 700, 256: 650}
    for b, best in steps.items():
        for s in (0, 1, 2):
            for lr, factor in ((0.01, 1.5), (0.1, 1.0)):
                rows.append({"notebook": "04_closing_the_gap", "remedy": "tuned", "batch_size": b, "seed": s,
                             "lr_used": lr, "reached_target": True, "steps_to_target": best * factor,
                             "seconds_to_target": best * factor / b, "target_loss": 0.5})
    rows.append({**rows[-1], "reached_target": False, "steps_to_target": None})  # a pruned run is ignored
    curve = claims.steps_to_target(pd.DataFrame(rows))
    assert curve["steps"].tolist() == pytest.approx(list(steps.values()))
    assert (curve["best_lr"] == 0.1).all()
    assert curve["regime_to_next"].tolist() == ["perfect scaling", "perfect scaling", "diminishing returns",
                                                "plateau", ""]


def test_findings_without_closing_the_gap_runs_are_inconclusive_not_broken():
    runs, _ = synthetic(**ARTICLE_LIKE)
    table = claims.remedy_table(runs)
    assert table.empty and claims.steps_to_target(runs).empty
    assert all(v.verdict == claims.INCONCLUSIVE for v in claims.closing(table, runs))


def variance_table(scale: dict, seeds=(0, 1, 2), m=4000, tr=50.0, rng=None):
    rng = rng or np.random.default_rng(4)
    rows = []
    for checkpoint, k in scale.items():
        for s in seeds:
            for b in (1, 4, 16, 64, 256, 1024):
                pred = tr / b * (m - b) / (m - 1)
                rows.append({"seed": s, "checkpoint": checkpoint, "batch_size": b, "predicted": pred,
                             "measured": pred * k * (1 + 0.02 * rng.standard_normal()), "cosine_mean": b / 1100})
    return pd.DataFrame(rows)


def test_c5_is_an_equivalence_with_the_formula_at_every_checkpoint():
    v = claims.noise_variance(variance_table({"initial": 1.0, "final": 1.0}))
    assert v.verdict == claims.SUPPORTED and v.effect == pytest.approx(1.0, abs=0.02)
    assert "slope of the measured variance -1.03" in v.ours and "; final 0.99" in v.ours  # (m-B) steepens it a little
    assert claims.noise_variance(variance_table({"initial": 1.0, "final": 1.5})).verdict == claims.NOT_SUPPORTED
    noisy = variance_table({"initial": 1.0}, rng=np.random.default_rng(0))
    noisy.loc[noisy["seed"] == 2, "measured"] *= 1.3  # one seed off: the interval straddles the bound
    assert claims.noise_variance(noisy).verdict == claims.INCONCLUSIVE
    assert claims.noise_variance(pd.DataFrame()).verdict == claims.INCONCLUSIVE


def test_the_critical_batch_fit_recovers_a_known_curve():
    b = pd.Series({16: 0.0, 32: 0.0, 64: 0.0, 128: 0.0, 256: 0.0, 1024: 0.0})
    steps = pd.Series(200 * (1 + 150 / b.index.to_numpy(float)), index=b.index)
    s_min, b_crit = claims.fit_critical_batch(steps)
    assert s_min == pytest.approx(200, rel=1e-4) and b_crit == pytest.approx(150, rel=1e-4)


def test_c11_compares_the_noise_scale_with_the_fitted_critical_batch():
    runs, logs, hist = [], [], []
    for s in (0, 1, 2):
        for b in (16, 64, 256, 1024):
            runs.append({"notebook": "04_closing_the_gap", "remedy": "tuned", "batch_size": b, "seed": s,
                         "reached_target": True, "steps_to_target": 200 * (1 + 150 / b) * (1 + 0.01 * s),
                         "target_loss": 0.5, "status": "ok", "job_id": f"tuned{b}"})
        runs.append({"notebook": "02_empirical_comparison", "batch_size": 32, "seed": s, "status": "ok",
                     "job_id": "ref"})
        for step in range(1, 101):  # S / |G|^2 = 300 throughout; the target is reached at step 50
            logs.append({"job_id": "ref", "seed": s, "step": step, "g2_est": 0.1, "s_est": 30.0})
        hist += [{"job_id": "ref", "seed": s, "step": 50, "val_loss": 0.45}]
    v, table = claims.critical_batch(pd.DataFrame(runs), pd.DataFrame(logs), pd.DataFrame(hist))
    assert table["b_crit"].mean() == pytest.approx(150, rel=0.05)
    assert v.effect == pytest.approx(2.0, rel=0.05) and v.verdict == claims.SUPPORTED  # 300 / 150, within 3x
    assert "by seed: 300, 300, 300; 0% of the |G|^2" in v.note
    none, _ = claims.critical_batch(pd.DataFrame(runs), pd.DataFrame(), pd.DataFrame(hist))
    assert none.verdict == claims.INCONCLUSIVE
    # seed 1 reaches the target at two batch sizes only: it is left out, and the note says so
    short = pd.DataFrame(runs)
    short.loc[(short["seed"] == 1) & short["batch_size"].isin([256, 1024]), ["reached_target", "steps_to_target"]] = \
        [False, np.nan]
    v, table = claims.critical_batch(short, pd.DataFrame(logs), pd.DataFrame(hist))
    assert list(table["seed"]) == [0, 2] and v.seeds == 2
    assert "left out, because fewer than 3 batch sizes reached validation loss 0.5" in v.note
    assert "seed 1 (2 of 4)" in v.note


def test_the_share_of_negative_g2_estimates_counts_only_steps_before_the_target():
    logs = pd.DataFrame({"seed": 0, "step": [1, 2, 3, 4, 5, 6], "g2_est": [1.0, -1.0, 2.0, -3.0, -1.0, -1.0],
                         "s_est": 1.0})
    hist = pd.DataFrame({"seed": [0, 0], "step": [4, 6], "val_loss": [0.4, 0.3]})  # target 0.5 first met at step 4
    assert claims.negative_g2_share(logs, hist, 0.5) == pytest.approx(0.5)  # steps 1-4: two of four negative
    assert claims.b_simple_until(logs, hist, 0.5).empty  # mean |G|^2 of steps 1-4 is -0.25: no estimate
