"""Verdicts follow from the data: checked on synthetic tables whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bsnb import claims, minima


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


def synthetic(min_val: dict, spe: dict, best_epoch: dict, final_train: dict, seeds=(0, 1, 2), noise=0.0, rng=None,
              tau: dict | None = None):
    """Runs and epochs tables for batch sizes with the given per-batch values (plus optional noise)."""
    rng = rng or np.random.default_rng(0)
    runs, epochs = [], []
    for bs in min_val:
        for s in seeds:
            jitter = 1 + noise * rng.standard_normal()
            runs.append({"job_id": f"bs{bs}", "notebook": "02_empirical_comparison", "batch_size": bs, "lr": 0.01,
                         "seed": s, "status": "ok", "min_val_loss": min_val[bs] * jitter,
                         "seconds_per_epoch": spe[bs] * (1 + noise * rng.standard_normal()),
                         "examples_per_second": 1000 / spe[bs],
                         "epoch_of_min_val_loss": best_epoch[bs] + s * (1 + bs // 256),
                         "epochs_run": 50})
            for e in range(51):  # the training loss falls from 2.3 to final_train, more slowly at larger batches
                t = (tau[bs] if tau else 3 * (1 + bs / 64)) * jitter
                epochs.append({"job_id": f"bs{bs}", "batch_size": bs, "seed": s, "epoch": e,
                               "train_loss": final_train[bs] + (2.3 - final_train[bs]) * math.exp(-e / t)})
    return pd.DataFrame(runs), pd.DataFrame(epochs)


def timing_for(spe: dict, repeats=5):
    """A timing that ran alone (bsnb.timing's table) with the given seconds per epoch."""
    return pd.DataFrame([{"repeat": r, "batch_size": b, "seconds_per_epoch": t * (1 + 0.01 * ((r + b) % 3)), "threads": 1,
                          "device": "cpu"} for r in range(repeats) for b, t in spe.items()])


ARTICLE_LIKE = dict(min_val={32: 0.344, 256: 0.395}, spe={32: 1.0, 256: 0.4}, best_epoch={32: 10, 256: 30},
                    final_train={32: 0.01, 256: 0.1}, tau={32: 4.5, 256: 15.0})


def by_claim(verdicts):
    return {v.claim: v for v in verdicts}


def test_an_article_like_store_supports_c1_to_c4():
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    v = by_claim(claims.empirical(runs, epochs, timing=timing_for(ARTICLE_LIKE["spe"])))
    assert {c: x.verdict for c, x in v.items()} == {c: claims.SUPPORTED for c in ("C1", "C2", "C3", "C4")}
    assert v["C2"].effect == pytest.approx(0.395 / 0.344, rel=0.03)
    assert v["C4"].effect == pytest.approx(21)
    assert v["C2"].ci_low < v["C2"].effect < v["C2"].ci_high and v["C2"].seeds == 3


def test_the_opposite_store_is_not_supported():
    swapped = {k: {32: d[256], 256: d[32]} for k, d in ARTICLE_LIKE.items()}
    runs, epochs = synthetic(**swapped, noise=0.01)
    v = by_claim(claims.empirical(runs, epochs, timing=timing_for(swapped["spe"])))
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
    assert v["C2"].seeds == 2 and "1 run(s) left out: batch 256 lr 0.01 seed 2 diverged" in v["C2"].note


def test_budget_censoring_is_noted_for_c4():
    params = {**ARTICLE_LIKE, "best_epoch": {32: 10, 256: 50}}
    runs, epochs = synthetic(**params)
    runs["epoch_of_min_val_loss"] = runs["epoch_of_min_val_loss"].clip(upper=50)
    v = by_claim(claims.empirical(runs, epochs))
    assert "censored" in v["C4"].note and "batch 256 in seeds 0, 1, 2" in v["C4"].note


def test_c4_is_not_supported_by_two_budget_censored_minima():
    # both batch sizes still improving at the last epoch: large - small is 0 in every seed, an interval
    # [0, 0] that would pass "at least 0", yet it measures only the budget
    params = {**ARTICLE_LIKE, "best_epoch": {32: 50, 256: 50}}
    runs, epochs = synthetic(**params)
    runs["epoch_of_min_val_loss"] = runs["epoch_of_min_val_loss"].clip(upper=50)
    v = by_claim(claims.empirical(runs, epochs))["C4"]
    assert v.effect == 0 and v.ci_low == 0 and v.verdict == claims.INCONCLUSIVE
    assert "zero width" in v.note and "batch 32 in seeds 0, 1, 2" in v.note


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
    assert "batch 256 in seeds 0, 1, 2" in v.note and "the interval says not supported" in v.note


def test_a_censored_large_batch_cannot_support_c2_but_a_confirmed_one_can():
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    runs["censored"] = False
    assert by_claim(claims.empirical(runs, epochs))["C2"].verdict == claims.SUPPORTED
    runs.loc[(runs["batch_size"] == 256) & (runs["seed"] == 1), "censored"] = True
    v = by_claim(claims.empirical(runs, epochs))["C2"]
    assert v.verdict == claims.INCONCLUSIVE and v.ci_low > 1 and "batch 256 in seed 1" in v.note
    # a censored small batch only makes the large batch look better: the support stands
    runs["censored"] = runs["batch_size"] == 32
    assert by_claim(claims.empirical(runs, epochs))["C2"].verdict == claims.SUPPORTED


def test_c1_counts_epochs_to_the_lowest_level_every_compared_run_reached():
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    v = by_claim(claims.empirical(runs, epochs))["C1"]
    # batch 256 ends at 0.1 (never at or below it within 50 epochs): the lowest level all reached is 0.3
    assert "training loss 0.3" in v.measure and v.verdict == claims.SUPPORTED
    first = claims.epochs_to_level(epochs, 0.3)
    small, large = first.loc[("bs32", 0)], first.loc[("bs256", 0)]
    assert v.effect == pytest.approx(np.exp(np.mean(np.log(
        [first.loc[("bs256", s)] / first.loc[("bs32", s)] for s in (0, 1, 2)]))))
    assert large > small
    # the next higher level is the sensitivity analysis' alternative; there is no lower one all reached
    higher = by_claim(claims.empirical(runs, epochs, reading=claims.Reading(level_shift=-1)))["C1"]
    assert "training loss 1" in higher.measure
    lower = by_claim(claims.empirical(runs, epochs, reading=claims.Reading(level_shift=1)))["C1"]
    assert lower.seeds == 0 and "not reached by all" in lower.note


def test_c1_is_not_moved_by_a_late_spike_of_one_epoch():
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    before = by_claim(claims.empirical(runs, epochs))["C1"]
    late = (epochs["batch_size"] == 32) & (epochs["epoch"] == 45)
    epochs.loc[late, "train_loss"] *= 30  # a spike far above every level, long after the level was reached
    after = by_claim(claims.empirical(runs, epochs))["C1"]
    assert (after.effect, after.verdict) == (before.effect, before.verdict)


def test_an_unstable_run_sets_no_matched_level_and_is_read_only_at_a_level_it_reached():
    """Protocol v4: one large-batch seed trains to 0.86, then climbs back above chance (the v3 reference's batch 256
    seed 6). v3 let it set the level (1, the only one it reached); v4 matches at the stable runs' 0.3, where it is
    not read."""
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01, seeds=(0, 1, 2, 3))
    shaky = (epochs["batch_size"] == 256) & (epochs["seed"] == 3)
    e = epochs.loc[shaky, "epoch"].to_numpy()
    epochs.loc[shaky, "train_loss"] = np.where(e <= 20, 2.3 - (2.3 - 0.86) * e / 20, 0.86 + (4.07 - 0.86) * (e - 20) / 30)
    runs = runs.assign(chance_loss=math.log(10))
    read = minima.read_runs(runs, epochs.assign(val_loss=0.5, step=epochs["epoch"] * 10))
    assert read.loc[(read["batch_size"] == 256) & (read["seed"] == 3), "unstable"].all()
    assert not read.loc[read["seed"] != 3, "unstable"].any()
    v = by_claim(claims.empirical(read, epochs))["C1"]
    assert "training loss 0.3" in v.measure and v.seeds == 3  # the unstable seed never reached 0.3
    assert "1 unstable run(s) kept" in v.note


@pytest.mark.parametrize("values", [[25.0, 25.0, 25.0], [1.2, 1.4]])
def test_zero_spread_or_two_seeds_is_inconclusive_and_says_why(values):
    mean, lo, hi, n = claims.interval(values)
    assert claims.decide(lo, hi, 1.0, "greater", n) == claims.INCONCLUSIVE
    assert claims.evidence_note(values, lo, hi, n) in ("every seed gave the same value (25): an interval of zero "
                                                       "width is no evidence", "only 2 usable seeds: a verdict needs "
                                                       "at least 3")


def test_dropped_values_are_counted_in_the_note():
    values = [1.2, 1.3, float("nan"), 1.25, -1.0]
    mean, lo, hi, n = claims.interval(values, log=True)
    assert n == 3
    note = claims.evidence_note(values, lo, hi, n, log=True)
    assert "1 non-finite value dropped" in note and "1 non-positive value dropped" in note


def test_empty_store_gives_inconclusive_rows_for_every_claim():
    v = claims.empirical(pd.DataFrame(columns=["notebook", "batch_size"]), pd.DataFrame())
    assert [x.claim for x in v] == ["C1", "C2", "C3", "C4"] and all(x.verdict == claims.INCONCLUSIVE for x in v)


def test_claims_csv_has_the_agreed_columns(tmp_path):
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    df = claims.save(claims.empirical(runs, epochs), tmp_path / "claims.csv")
    back = pd.read_csv(tmp_path / "claims.csv")
    assert list(back.columns[:6]) == ["claim", "verdict", "effect", "ci_low", "ci_high", "seeds"]
    assert len(back) == len(df) == 4
    assert "C2 SUPPORTED" in claims.conclusions(claims.empirical(runs, epochs))


def sharpness_runs(lam: dict, seeds=(0, 1, 2), noise=0.05, rng=None, final: dict | None = None, levels=("matched",)):
    """03 runs: ``lam`` the top eigenvalue per batch size at matched loss (or at each of ``levels``), ``final`` at
    the final weights."""
    rng = rng or np.random.default_rng(1)
    rows = []
    for checkpoint, values in [(lv, lam) for lv in levels] + [("final", final or lam)]:
        rows += [{"job_id": f"03-bs{b}", "notebook": "03_sharpness", "batch_size": b, "seed": s, "status": "ok",
                  "checkpoint": checkpoint, "matched_loss": 0.3, "train_loss": 0.3 if checkpoint == "matched" else 0.01,
                  "lambda_max": v * (1 + noise * rng.standard_normal()), "trace": 10 * v, "eps_full_0.001": v / 10}
                 for b, v in values.items() for s in seeds]
    return pd.DataFrame(rows)


def test_sharper_large_batch_minima_at_matched_loss_support_c6_and_flatter_ones_do_not():
    v = claims.sharpness(sharpness_runs({32: 1.0, 256: 5.0, 1024: 9.0}, final={32: 9.0, 256: 5.0, 1024: 1.0}))
    assert v.verdict == claims.SUPPORTED and v.effect == pytest.approx(5, rel=0.1)  # matched loss decides
    assert "first fell to 0.3" in v.measure and "trace ratio at training loss 0.3" in v.ours and "Keskar" in v.published
    assert "at the final weights, top eigenvalue ratio 0.5" in v.ours
    assert claims.sharpness(sharpness_runs({32: 5.0, 256: 1.0, 1024: 0.5})).verdict == claims.NOT_SUPPORTED
    assert claims.sharpness(pd.DataFrame(columns=["notebook", "batch_size"])).verdict == claims.INCONCLUSIVE


def test_c6_needs_the_per_seed_slope_over_every_batch_size_as_well_as_the_pair():
    # the pair says sharper (x5), but the largest batch is the flattest of all: the per-seed slope over the three
    # sizes falls, so the claim is not supported however sharp the pair
    v = claims.sharpness(sharpness_runs({32: 3.0, 256: 15.0, 1024: 1.0}, noise=0.3))
    assert v.ci_low > 1 and v.verdict == claims.NOT_SUPPORTED and "does not clearly rise" in v.note
    assert "per-seed slope of log lambda_max on log2(batch)" in v.ours


def test_c6_reads_the_ratio_at_the_pair_s_level_and_the_slope_at_every_size_s_and_their_neighbours():
    runs = sharpness_runs({32: 1.0, 256: 5.0, 1024: 9.0}, levels=("loss1", "loss0.3", "loss0.1"))
    runs = runs[~((runs["checkpoint"] == "loss0.1") & (runs["batch_size"] == 1024) & (runs["seed"] == 2))]
    # one run of batch 1024 never reached 0.1: the pair 32/256 is read at 0.1 (both reached it in every seed), the
    # slope over the three sizes at 0.3 (docs/protocol.md, matched loss: a ratio at its pair's level, a trend at
    # every size's)
    v = claims.sharpness(runs)
    assert v.measure.startswith("top Hessian eigenvalue of the training loss where the training loss first fell to 0.1")
    assert "batch size where the training loss first fell to 0.3 (the lowest every stable run of every" in v.measure
    assert v.verdict == claims.SUPPORTED and "(batches 32, 256, 1024)" in v.ours
    moved = claims.sharpness(runs, reading=claims.Reading(level_shift=-1))
    assert "first fell to 0.3 (the lowest" in moved.measure and "first fell to 1 (the lowest every" in moved.measure
    assert claims.sharpness(runs, reading=claims.Reading(level_shift=1)).seeds == 0
    # a run whose training failed leaves the measurements of its weights too
    failed = pd.DataFrame([{"job_id": f"02-bs{b}", "notebook": "02_empirical_comparison", "batch_size": b, "seed": s,
                            "status": "failed to train" if (b, s) == (1024, 2) else "ok"}
                           for b in (32, 256, 1024) for s in (0, 1, 2)])
    both = pd.concat([runs, failed], ignore_index=True)
    v = claims.sharpness(both)
    assert "first fell to 0.1" in v.measure and "batch 1024 lr" in v.note and "failed to train" in v.note


def test_c6_without_matched_checkpoints_says_it_compared_the_final_weights():
    runs = sharpness_runs({32: 1.0, 256: 5.0, 1024: 9.0})
    v = claims.sharpness(runs[runs["checkpoint"] == "final"])
    assert v.verdict == claims.SUPPORTED and "compared at the final weights" in v.note


def test_c7_compares_distances_at_the_smoothed_minimum_and_at_equal_steps():
    rows, runs = [], []
    for b, scale in ((32, 3.0), (256, 1.0)):
        for s in (0, 1, 2):
            for t in np.unique(np.geomspace(1, 1000, 40).round()):
                rows.append({"job_id": f"bs{b}", "run": f"seed{s}", "seed": s, "batch_size": b, "step": t,
                             "distance": scale * (1 + s * 0.01) * (0.5 + np.log(t))})
            runs.append({"job_id": f"bs{b}", "notebook": "02_empirical_comparison", "batch_size": b, "seed": s,
                         "status": "ok", "step_of_min_val_loss": 500.0 if b == 32 else 100.0})
    v = claims.distance(pd.DataFrame(runs), pd.DataFrame(rows))
    expected = (0.5 + np.log(100)) / (3 * (0.5 + np.log(500)))
    assert v.verdict == claims.SUPPORTED and v.effect == pytest.approx(expected, rel=0.02)
    assert "at equal steps (the fewer of the two runs' steps to their minimum, 100 on average) 0.333" in v.ours


def distance_steps(law, seeds=(0, 1, 2), rng=None):
    """Logged distances from a known law (log, or a random walk's sqrt) with a little noise, two batch sizes."""
    rng = rng or np.random.default_rng(7)
    rows, epochs = [], []
    for b in (32, 256):
        for s in seeds:
            t = np.unique(np.geomspace(1, 20000, 120).round())
            d = 1 + (np.log(t) if law == "log" else 0.05 * np.sqrt(t))
            d = d * (1 + 0.003 * rng.standard_normal(len(t)))
            rows += [{"job_id": f"bs{b}", "run": f"seed{s}", "seed": s, "batch_size": b, "step": x, "distance": y}
                     for x, y in zip(t, d)]
            epochs.append({"job_id": f"bs{b}", "seed": s, "epoch": 1, "step": 4000 // b})
    return pd.DataFrame(rows), pd.DataFrame(epochs)


@pytest.mark.parametrize("law, verdict", [("log", claims.SUPPORTED), ("sqrt", claims.NOT_SUPPORTED)])
def test_c13_prefers_log_on_a_log_law_and_sqrt_on_a_random_walk(law, verdict):
    from bsnb import minima

    steps, epochs = distance_steps(law)
    laws = minima.distance_laws(steps, epochs)
    assert len(laws) == 6 and (laws["points"] > 20).all()
    v = claims.distance_law(laws)
    assert v.verdict == verdict and f"({'log' if law == 'log' else 'sqrt'})" in v.ours
    # fitted only up to each run's minimum: fewer points
    until = pd.Series(5000.0, index=pd.MultiIndex.from_frame(laws[["job_id"]].assign(run="seed" + laws["seed"].astype(str))))
    short = minima.distance_laws(steps, epochs, until=until)
    assert (short["points"] < laws["points"]).all() and (steps.loc[steps["step"] <= 5000, "step"].nunique()
                                                        >= short["points"].max())
    exponent = laws["exponent"].median()
    assert (exponent < 0.2) if law == "log" else (0.4 < exponent < 0.6)


def test_distance_laws_fit_each_run_of_a_search_whose_runs_share_their_seed():
    # a search: two learning rates per seed, one job; epochs keyed by run (a GPU store's findings failed on
    # "Can only compare identically-labeled Series" where a (job, seed) key found several first epochs)
    from bsnb import minima

    steps, epochs = distance_steps("log", seeds=(0,))
    steps = steps[steps["job_id"] == "bs32"]
    search = pd.concat([steps.assign(job_id="04-tuned", run=f"lr{lr}-seed0") for lr in (0.1, 0.2)])
    first = pd.DataFrame([{"job_id": "04-tuned", "run": f"lr{lr}-seed0", "seed": 0, "epoch": 1, "step": 125}
                          for lr in (0.1, 0.2)])
    laws = minima.distance_laws(search, first)
    assert len(laws) == 2 and laws["points"].nunique() == 1  # one law per run, the same curve
    # a minimum named twice for one run (and none for the other) cuts that run's fit alone
    until = pd.Series([5000.0, 5000.0], index=pd.MultiIndex.from_tuples([("04-tuned", "lr0.1-seed0")] * 2))
    short = minima.distance_laws(search, first, until=until)
    assert short["points"].iloc[0] < short["points"].iloc[1] == laws["points"].iloc[1]


def remedy_runs(values: dict, seeds=(0, 1, 2), rng=None):
    """02 baselines and 04 remedy runs: values maps (notebook, batch, remedy) to a min val loss."""
    rng = rng or np.random.default_rng(3)
    rows = []
    for (nb, b, remedy), v in values.items():
        for s in seeds:
            rows.append({"job_id": f"{nb}-{b}-{remedy}", "notebook": nb, "batch_size": b, "remedy": remedy,
                         "seed": s, "status": "ok", "lr": 0.01, "epochs": 100, "train_seconds": 10.0 * (2 if remedy ==
                         "longer" else 1), "min_val_loss": v + 0.002 * rng.standard_normal(),
                         "steps_run": 1000 * (0.4 if remedy == "batch_growth" else 1), "censored": False,
                         "epoch_of_min_val_loss": 50, "epochs_run": 100, "patience": 0 if remedy else 25})
    return pd.DataFrame(rows)


GAP = {("02_empirical_comparison", 32, None): 0.30, ("02_empirical_comparison", 256, None): 0.60,
       ("04_closing_the_gap", 256, "linear_warmup"): 0.33, ("04_closing_the_gap", 256, "sqrt"): 0.50,
       ("04_closing_the_gap", 256, "longer"): 0.58, ("04_closing_the_gap", 256, "bn"): 0.50,
       ("04_closing_the_gap", 256, "ghost_bn"): 0.45, ("04_closing_the_gap", 32, "bn"): 0.28,
       # Hoffer's three arms (C9): the same-steps arm closes (0.50 - 0.48) / (0.50 - 0.28) of the gap, about 9%
       ("04_closing_the_gap", 32, "step"): 0.28, ("04_closing_the_gap", 256, "sqrt_step"): 0.50,
       ("04_closing_the_gap", 256, "sqrt_step_longer"): 0.48,
       # Smith's arms from the small batch (C12); their constant-rate control is batch 32's comparison run (0.30)
       ("04_closing_the_gap", 32, "lr_decay"): 0.25, ("04_closing_the_gap", 32, "batch_growth"): 0.252}


def test_gap_shares_are_computed_seed_by_seed_against_the_article_setting():
    table = claims.remedy_table(remedy_runs(GAP)).set_index("remedy")
    assert table.loc["linear_warmup", "gap_closed"] == pytest.approx(0.9, abs=0.05)
    assert table.loc["sqrt", "gap_closed"] == pytest.approx(1 / 3, abs=0.05)
    assert table.loc["longer", "cost_vs_baseline"] == pytest.approx(2.0)
    assert (table["seeds"] == 3).all()


def test_c8_to_c10_verdicts_follow_the_shares_and_the_ghost_difference():
    runs = remedy_runs(GAP)
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))
    assert v["C8"].verdict == claims.SUPPORTED and "sqrt: c " in v["C8"].ours
    # C9's contrast: 0.48 - 0.28 - 0.1 (0.50 - 0.28) = 0.178 above 0; the same-steps arm closes about 9% of the gap
    assert v["C9"].verdict == claims.NOT_SUPPORTED and v["C9"].effect == pytest.approx(0.178, abs=0.01)
    assert "share closed 0.0" in v["C9"].ours
    assert v["C10"].verdict == claims.SUPPORTED and v["C10"].effect == pytest.approx(0.05, abs=0.01)
    assert "plain BN at batch 32 0.28" in v["C10"].ours
    assert v["C12"].verdict == claims.SUPPORTED and v["C12"].effect == pytest.approx(0.252 / 0.25, abs=0.02)
    assert "0.40x the parameter updates" in v["C12"].ours and "control: decay over constant 0.8" in v["C12"].ours


def test_c12_without_its_control_is_inconclusive_the_schedule_having_no_effect():
    no_effect = {**GAP, ("02_empirical_comparison", 32, None): 0.25}  # the constant rate as good as decay
    runs = remedy_runs(no_effect)
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C12"]
    assert v.ci_low > 0.95 and v.ci_high < 1.05 and v.verdict == claims.INCONCLUSIVE
    assert "the schedule has no effect here" in v.note
    runs = remedy_runs(GAP)
    runs = runs[~((runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == 32))]
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C12"]
    assert v.verdict == claims.INCONCLUSIVE and "no constant-rate control" in v.note
    # a censored comparison run (the cap came before its patience ran out): the control rests on a bound
    runs = remedy_runs(GAP)
    runs.loc[(runs["notebook"] == "02_empirical_comparison") & (runs["batch_size"] == 32) & (runs["seed"] == 1),
             "censored"] = True
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C12"]
    assert v.verdict == claims.INCONCLUSIVE and "control is censored in seed 1" in v.note


def test_c12_s_control_is_the_small_batch_s_comparison_run_not_a_separate_constant_rate_run():
    """Protocol v4: a separate constant-rate run of the same epochs was the comparison run continued; it is not
    read (here it would say the schedule has no effect), the comparison run is."""
    runs = remedy_runs({**GAP, ("04_closing_the_gap", 32, "none"): 0.25})
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C12"]
    assert v.verdict == claims.SUPPORTED and "control: decay over constant" in v.ours and "constant 0.3" in v.ours


def test_c8_is_a_contrast_decided_only_where_there_is_a_gap_to_close():
    """Protocol v4: c = L_remedy - (L_large + L_small) / 2 per seed. With no gap (the large batch as good as the small)
    there is nothing to close, whatever the remedy does: v3's share divided by that noisy gap (6.72 [-8.8, 22.3])."""
    no_gap = {**GAP, ("02_empirical_comparison", 256, None): 0.30}
    runs = remedy_runs(no_gap)
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C8"]
    assert v.verdict == claims.INCONCLUSIVE and "no gap to close" in v.note
    worse = {**GAP, ("04_closing_the_gap", 256, "linear_warmup"): 0.55}  # closes a sixth of the gap
    runs = remedy_runs(worse)
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C8"]
    assert v.verdict == claims.NOT_SUPPORTED and v.ci_low > 0
    assert v.effect == pytest.approx(0.55 - (0.60 + 0.30) / 2, abs=0.01)


def test_fieller_s_interval_holds_the_ratio_of_means_and_is_unbounded_when_the_denominator_may_be_0():
    rng = np.random.default_rng(1)
    den = 1.0 + 0.05 * rng.standard_normal(8)
    num = 0.5 * den + 0.02 * rng.standard_normal(8)
    ratio, lo, hi, n = claims.fieller(num, den)
    assert n == 8 and lo < ratio < hi and lo < 0.5 < hi and hi - lo < 0.1
    _, lo, hi, _ = claims.fieller(num, 0.01 + 0.5 * rng.standard_normal(8))
    assert math.isinf(lo) and math.isinf(hi)


def test_c9s_three_arms_differ_and_a_censored_same_steps_arm_cannot_refute():
    runs = remedy_runs(GAP)
    arms = runs[runs["remedy"].isin(["step", "sqrt_step", "sqrt_step_longer"])]
    assert arms.groupby("remedy")["min_val_loss"].mean().round(2).to_dict() == {
        "sqrt_step": 0.50, "sqrt_step_longer": 0.48, "step": 0.28}
    runs.loc[runs["remedy"] == "sqrt_step_longer", "censored"] = True  # still falling: its minimum is only a bound
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C9"]
    assert v.verdict == claims.INCONCLUSIVE and "sqrt_step_longer at batch 256 in seeds 0, 1, 2" in v.note
    missing = remedy_runs({k: x for k, x in GAP.items() if k[2] != "sqrt_step_longer"})
    v = by_claim(claims.closing(claims.remedy_table(missing), missing))["C9"]
    assert v.seeds == 0 and "needs Hoffer's three arms" in v.note


def test_c9_needs_ninety_percent_and_censoring_withdraws_what_it_could_have_caused():
    gap = {**GAP, ("04_closing_the_gap", 256, "sqrt_step_longer"): 0.31}  # closes ~86%: less than 90%
    runs = remedy_runs(gap)
    assert by_claim(claims.closing(claims.remedy_table(runs), runs))["C9"].verdict != claims.SUPPORTED
    gap[("04_closing_the_gap", 256, "sqrt_step_longer")] = 0.27
    runs = remedy_runs(gap)
    assert by_claim(claims.closing(claims.remedy_table(runs), runs))["C9"].verdict == claims.SUPPORTED
    # a censored small batch may lie lower still, so the gap may be wider: "closes most" is withdrawn
    runs.loc[(runs["batch_size"] == 32) & (runs["seed"] == 0), "censored"] = True
    v = by_claim(claims.closing(claims.remedy_table(runs), runs))["C8"]
    assert v.verdict == claims.INCONCLUSIVE and "batch 32 in seed 0" in v.note


def test_a_remedy_s_failed_runs_are_kept_by_intention_to_treat_and_a_baseline_s_are_left_out():
    """docs/protocol.md: a remedy that fails to train has not closed the gap. Its arm keeps a failed or diverged run
    with its measured minimum (a non-finite one at the chance loss); the arm it is set against keeps only runs that
    trained."""
    runs = remedy_runs(GAP, seeds=(0, 1, 2, 3)).assign(chance_loss=2.3)
    ghost = (runs["remedy"] == "ghost_bn") & (runs["seed"] == 2)
    runs.loc[ghost, ["status", "min_val_loss"]] = ["diverged", np.nan]  # C10's remedy: kept at chance
    runs.loc[(runs["remedy"] == "bn") & (runs["batch_size"] == 256) & (runs["seed"] == 3), "status"] = "diverged"
    warm = (runs["remedy"] == "linear_warmup") & (runs["seed"] == 1)
    runs.loc[warm, ["status", "min_val_loss"]] = ["failed to train", 2.2]  # C8's remedy: kept at its own minimum
    grow = (runs["remedy"] == "batch_growth") & (runs["seed"] == 0)
    runs.loc[grow, ["status", "min_val_loss"]] = ["failed to train", 2.25]  # C12's remedy
    table = claims.remedy_table(runs)
    v = by_claim(claims.closing(table, runs))
    # C10: plain minus ghost in seeds 0, 1 (0.05 each) and 2 (0.50 - 2.3, ghost at chance); seed 3's plain run left out
    assert v["C10"].seeds == 3 and v["C10"].effect == pytest.approx((0.05 + 0.05 + 0.5 - 2.3) / 3, abs=0.01)
    assert "batch 256 bn lr 0.01 seed 3 diverged" in v["C10"].note and "1 run(s) left out" in v["C10"].note
    assert "1 run(s) kept with their measured minimum (intention to treat" in v["C10"].note
    row = table[(table["remedy"] == "linear_warmup")].iloc[0]
    assert row.seeds == 4 and row.min_val_loss == pytest.approx((3 * 0.33 + 2.2) / 4, abs=0.01)
    assert "kept with their measured minimum" in row.left_out and "seed 1 failed to train" in row.left_out
    assert v["C8"].verdict != claims.SUPPORTED  # the failed seed did not close its gap
    assert v["C12"].seeds == 4 and "kept with their measured minimum" in v["C12"].note
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
    assert curve["seconds"].tolist() == pytest.approx([best / b for b, best in steps.items()])
    assert not curve["seconds_timed_alone"].any()
    # with a timing alone, seconds are steps x seconds per step (n_train 512: an epoch is 512 / B steps) ...
    frame = pd.DataFrame(rows).assign(n_train=512)
    timing = pd.DataFrame([{"repeat": r, "batch_size": b, "seconds_per_epoch": 0.01 * 512 / b} for r in range(3)
                           for b in (16, 32, 64, 128)])
    timed = claims.steps_to_target(frame, timing=timing).set_index("batch_size")
    assert timed.loc[16, "seconds"] == pytest.approx(4000 * 0.01) and timed.loc[16, "seconds_timed_alone"]
    # ... and a batch the timing lacks keeps the runs' own seconds, unless they trained stacked
    assert timed.loc[256, "seconds"] == pytest.approx(650 / 256) and not timed.loc[256, "seconds_timed_alone"]
    stacked = claims.steps_to_target(frame.assign(stacked=3), timing=timing).set_index("batch_size")
    assert np.isnan(stacked.loc[256, "seconds"]) and stacked.loc[16, "seconds"] == pytest.approx(40.0)


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
                rows.append({"seed": s, "checkpoint": checkpoint, "drawn_batch": b, "predicted": pred,
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


def test_c5_checks_every_batch_size_not_their_geometric_mean():
    """Protocol v4: one batch size 20% off, the others 2% the other way: their geometric mean (about 1.01 over six
    sizes) looks fine; the one batch size does not."""
    table = variance_table({"initial": 1.0})
    sizes = sorted(table["drawn_batch"].unique())
    table.loc[table["drawn_batch"] == sizes[-1], "measured"] *= 1.2
    table.loc[table["drawn_batch"] != sizes[-1], "measured"] *= 0.98
    v = claims.noise_variance(table)
    assert 0.95 < v.effect < 1.05 and v.verdict == claims.NOT_SUPPORTED
    assert f"farthest from 1: batch {sizes[-1]} at initial" in v.ours


def test_the_critical_batch_fit_recovers_a_known_curve():
    b = pd.Series({16: 0.0, 32: 0.0, 64: 0.0, 128: 0.0, 256: 0.0, 1024: 0.0})
    steps = pd.Series(200 * (1 + 150 / b.index.to_numpy(float)), index=b.index)
    s_min, b_crit = claims.fit_critical_batch(steps)
    assert s_min == pytest.approx(200, rel=1e-4) and b_crit == pytest.approx(150, rel=1e-4)


def c11_store(exact=300.0, at_target=None, saved_at=0.5):
    """The search's runs (target 0.5, B_crit 150), the reference batch-32 run and notebook 01's exact B_simple:
    ``exact`` at the best weights, and ``at_target`` where the reference run first reached validation loss
    ``saved_at`` (no such checkpoint when None)."""
    runs, logs, hist = [], [], []
    for s in (0, 1, 2):
        for b in (16, 64, 256, 1024):
            for lr, slower in ((0.01, 1.5), (0.1, 1.0), (1.0, 2.0)):  # the best rate lies inside the grid
                runs.append({"notebook": "04_closing_the_gap", "remedy": "tuned", "batch_size": b, "seed": s,
                             "lr_used": lr, "reached_target": True,
                             "steps_to_target": slower * 200 * (1 + 150 / b) * (1 + 0.01 * s),
                             "target_loss": 0.5, "status": "ok", "job_id": f"tuned{b}"})
        runs.append({"notebook": "02_empirical_comparison", "batch_size": 32, "seed": s, "status": "ok",
                     "job_id": "ref", "checkpoint_val_loss": saved_at if at_target else None})
        if exact:
            for checkpoint in ("initial", "best", "final") + (("target",) if at_target else ()):
                b = {"best": exact, "target": at_target}.get(checkpoint, 1.0)
                runs.append({"notebook": "01_what_is_batch_size", "batch_size": 32, "seed": s, "status": "ok",
                             "job_id": "noise", "checkpoint": checkpoint, "b_simple": b * (1 + 0.02 * s)})
        for step in range(1, 101):  # S / |G|^2 = 300 throughout; the target is reached at step 50
            logs.append({"job_id": "ref", "seed": s, "step": step, "g2_est": 0.1, "s_est": 30.0})
        hist += [{"job_id": "ref", "seed": s, "step": 50, "val_loss": 0.45}]
    return pd.DataFrame(runs), pd.DataFrame(logs), pd.DataFrame(hist)


def test_c11_compares_the_exact_noise_scale_with_the_fitted_critical_batch():
    runs, logs, hist = c11_store(exact=900.0)
    v, table = claims.critical_batch(runs, logs, hist)
    assert table["b_crit"].mean() == pytest.approx(150, rel=0.05)
    # the exact B_simple (900) decides, not the two-batch one (300) shown beside it: 6 lies outside [1/5, 5]
    assert v.effect == pytest.approx(6.0, rel=0.05) and v.verdict == claims.NOT_SUPPORTED
    assert claims.critical_batch(*c11_store(exact=600.0))[0].verdict == claims.SUPPORTED  # 4: within a factor 5
    assert "exact" in v.measure and "two-batch B_simple by seed: seed 0 300, seed 1 300, seed 2 300; 0% of its |G|^2" \
        in v.note
    runs, logs, hist = c11_store(exact=300.0)
    assert claims.critical_batch(runs, logs, hist)[0].verdict == claims.SUPPORTED  # 300 / 150, within 5x
    none, _ = claims.critical_batch(runs.iloc[0:0].assign(remedy=None), logs, hist)
    assert none.verdict == claims.INCONCLUSIVE
    # seed 1 reaches the target at two batch sizes only: it is left out, and the note says so
    short = runs.copy()
    short.loc[(short["seed"] == 1) & short["batch_size"].isin([256, 1024]), ["reached_target", "steps_to_target"]] = \
        [False, np.nan]
    v, table = claims.critical_batch(short, logs, hist)
    assert list(table["seed"]) == [0, 2] and v.seeds == 2 and v.verdict == claims.INCONCLUSIVE
    assert "left out, because fewer than 3 batch sizes reached validation loss 0.5" in v.note
    assert "seed 1 (2 of 4)" in v.note


def test_c11_reads_the_noise_scale_where_the_reference_run_reached_the_target():
    runs, logs, hist = c11_store(exact=3000.0, at_target=300.0)
    v, table = claims.critical_batch(runs, logs, hist)
    assert v.verdict == claims.SUPPORTED and v.effect == pytest.approx(2.0, rel=0.05)  # 300 / 150, not 3000 / 150
    assert "where the validation loss first reached 0.5" in v.measure and "best weights" not in v.note
    # saved at another loss than the search's target: the best weights, and the note says why
    runs, logs, hist = c11_store(exact=3000.0, at_target=300.0, saved_at=0.7)
    v, _ = claims.critical_batch(runs, logs, hist)
    assert v.effect == pytest.approx(20.0, rel=0.05) and "at the best weights" in v.measure
    assert "saved no checkpoint at validation loss 0.5 (they saved one at 0.7)" in v.note
    # one seed never reached the target: every seed is read at the best weights
    runs, logs, hist = c11_store(exact=3000.0, at_target=300.0)
    runs = runs[~((runs["checkpoint"] == "target") & (runs["seed"] == 2))]
    v, _ = claims.critical_batch(runs, logs, hist)
    assert v.effect == pytest.approx(20.0, rel=0.05) and "never reached validation loss 0.5 for seed 2" in v.note


def test_c11_is_inconclusive_when_the_best_rate_is_on_the_grids_edge():
    runs, logs, hist = c11_store()
    edge = (runs["batch_size"] == 256) & (runs["lr_used"] == 1.0)
    runs.loc[edge, "steps_to_target"] = 10.0  # batch 256 does best at the largest rate tried
    v, _ = claims.critical_batch(runs, logs, hist)
    assert v.verdict == claims.INCONCLUSIVE and "edge of the searched grid" in v.note and "batch 256 seed 0" in v.note


def test_c11_s_critical_batch_is_undefined_where_a_chosen_rate_holds_the_edge_its_refinement_stepped_past():
    """docs/protocol.md: B_crit is defined when every batch size's chosen rate (lowest mean smoothed minimum) lies
    inside its grid after extension. Batch 256's best minimum is at 1.0, the top of its grid; the sqrt-2 refinement
    trained 1.41 beyond it, and its fewest steps to the target came at 0.1: reading the fewest-steps rate against every
    rate tried said "inside"."""
    runs, logs, hist = c11_store()
    runs = runs.assign(stopped_by=runs["notebook"].map({"04_closing_the_gap": "patience"}), search_step="grid",
                       min_val_loss=np.where(runs["lr_used"] == 0.1, 0.30, 0.33))
    top = (runs["batch_size"] == 256) & (runs["lr_used"] == 1.0)
    runs.loc[top, "min_val_loss"] = 0.29
    past = runs[top].assign(lr_used=1.0 * 2 ** 0.5, search_step="refinement", min_val_loss=0.295,
                            steps_to_target=lambda d: d["steps_to_target"] * 3)
    runs = pd.concat([runs, past], ignore_index=True)
    v, _ = claims.critical_batch(runs, logs, hist)
    assert v.verdict == claims.INCONCLUSIVE and "B_crit is not defined" in v.note
    assert "batch 256 (chosen lr 1 of 0.01, 0.1, 1, 1.414)" in v.note
    inside = runs[runs["search_step"] == "grid"].copy()
    inside["min_val_loss"] = np.where(inside["lr_used"] == 0.1, 0.30, 0.33)
    assert claims.critical_batch(inside, logs, hist)[0].verdict == claims.SUPPORTED  # every chosen rate inside


def test_c11_falls_back_to_the_two_batch_estimate_only_where_it_is_defined():
    runs, logs, hist = c11_store(exact=None)
    v, table = claims.critical_batch(runs, logs, hist)
    assert "two-batch" in v.measure and v.verdict == claims.SUPPORTED
    noisy = logs.copy()
    noisy["g2_est"] = np.where(noisy["step"] % 2 == 0, 1.0, -0.9)  # mean 0.05, interval reaching below 0
    v, table = claims.critical_batch(runs, noisy, hist)
    assert not table["two_batch_defined"].any() and v.verdict == claims.INCONCLUSIVE
    assert "undefined: the interval of its |G|^2 reaches 0" in v.note
    # a seed of the reference run that the search did not use is judged by its own estimates, not taken as defined
    extra = noisy[noisy["seed"] == 0].assign(seed=7)
    v, _ = claims.critical_batch(runs, pd.concat([noisy, extra]), pd.concat([hist, hist[hist["seed"] == 0].assign(seed=7)]))
    assert "seed 7 " in v.note and v.note.count("(undefined") == 4


def test_the_share_of_negative_g2_estimates_counts_only_steps_before_the_target():
    logs = pd.DataFrame({"seed": 0, "step": [1, 2, 3, 4, 5, 6], "g2_est": [1.0, -1.0, 2.0, -3.0, -1.0, -1.0],
                         "s_est": 1.0})
    hist = pd.DataFrame({"seed": [0, 0], "step": [4, 6], "val_loss": [0.4, 0.3]})  # target 0.5 first met at step 4
    assert claims.negative_g2_share(logs, hist, 0.5) == pytest.approx(0.5)  # steps 1-4: two of four negative
    assert claims.b_simple_until(logs, hist, 0.5).empty  # mean |G|^2 of steps 1-4 is -0.25: no estimate


def noise_levels(growth: float, seeds=(0, 1, 2, 3), rng=None, skip=()):
    """01's exact noise scale at the windows of the loss levels: B_simple = 50 * growth^k at the k-th level."""
    rng = rng or np.random.default_rng(5)
    rows = []
    for s in seeds:
        points = [("initial", 2.3, 800.0)] + [(f"loss{lv:g}", lv, 50.0 * growth ** k)
                                              for k, lv in enumerate((1.0, 0.3, 0.1, 0.03)) if (s, lv) not in skip]
        for checkpoint, loss, b in points:
            for i in range(5 if checkpoint != "initial" else 1):  # the window's checkpoints
                name = checkpoint if i == 0 else f"{checkpoint}+{i}"
                value = b * (1 + 0.05 * rng.standard_normal())
                rows.append({"notebook": "01_what_is_batch_size", "batch_size": 32, "seed": s, "checkpoint": name,
                             "train_loss": loss, "b_simple": value, "tr_sigma": value, "g2": 1.0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("growth, verdict", [(2.0, claims.SUPPORTED), (0.5, claims.NOT_SUPPORTED)])
def test_c14_is_the_per_seed_slope_of_the_noise_scale_on_the_falling_loss(growth, verdict):
    v = claims.noise_growth(noise_levels(growth))
    assert v.verdict == verdict and v.seeds == 4 and (v.effect > 0) == (growth > 1)
    assert "over the levels 1 down to 0.03" in v.measure and "at the start" in v.ours  # the start is beside it


def test_c14_reads_the_levels_every_seed_reached_and_the_window_it_is_given():
    runs = noise_levels(2.0, skip={(3, 0.03)})  # one seed never reached 0.03
    v = claims.noise_growth(runs)
    assert "down to 0.1" in v.measure and "next 2 evaluated ones" in v.measure
    assert "at that epoch alone" in claims.noise_growth(runs, reading=claims.Reading(window=1)).measure
    flat = claims.noise_growth(noise_levels(1.0, rng=np.random.default_rng(9)))
    assert flat.verdict == claims.INCONCLUSIVE


def test_c3_is_decided_by_the_timing_that_ran_alone_else_only_described():
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    timing = pd.DataFrame([{"repeat": r, "batch_size": b, "seconds_per_epoch": t * (1 + 0.01 * r * (b == 32)), "threads": 1,
                            "device": "cpu"} for r in range(5) for b, t in ((32, 1.0), (256, 0.3))])
    v = by_claim(claims.empirical(runs, epochs, timing=timing))["C3"]
    assert v.verdict == claims.SUPPORTED and v.seeds == 5 and "timed alone" in v.measure
    described = by_claim(claims.empirical(runs, epochs))["C3"]
    assert described.verdict == claims.INCONCLUSIVE and "descriptive only" in described.note


def test_the_registry_holds_every_claim_with_its_rule_figure_question_and_function():
    assert list(claims.CLAIMS) == [f"C{i}" for i in range(1, 20)]
    for c in claims.CLAIMS.values():
        assert c.statement and " / " in c.rule and c.figure and callable(c.compute) and c.question in (1, 2, 3, 4)
        assert all(isinstance(a, claims.Reading) and a != claims.PROTOCOL for a in c.alternatives)
    v = claims.table([claims.empty("C9", "nothing")])
    assert v.loc[0, "rule"] == claims.CLAIMS["C9"].rule and "0.1 (L_epochs - L_small)" in v.loc[0, "rule"]


def search_runs(best_loss: dict, seeds=(0, 1, 2), rates=(0.01, 0.02, 0.04, 0.08, 0.16), best_at: dict | None = None,
                rng=None):
    """A learning-rate search trained to its minimum: per batch size, the smoothed minimum is ``best_loss`` at the
    rate ``best_at`` (the grid's middle by default), worse away from it."""
    rng = rng or np.random.default_rng(11)
    rows = []
    for b, loss in best_loss.items():
        centre = (best_at or {}).get(b, rates[len(rates) // 2])
        for s in seeds:
            for lr in rates:
                rows.append({"job_id": f"tuned{b}", "notebook": "04_closing_the_gap", "remedy": "tuned", "batch_size": b,
                             "seed": s, "lr_used": lr, "status": "ok", "stopped_by": "patience", "pruned": False,
                             "censored": False, "min_val_loss": loss * (1 + 0.1 * abs(np.log2(lr / centre)))
                             * (1 + 0.005 * rng.standard_normal())})
    return pd.DataFrame(rows)


def test_c15_is_an_equivalence_of_each_batch_sizes_best_minimum():
    v = claims.tuned_rates(search_runs({32: 0.30, 256: 0.301, 1024: 0.302}))
    assert v.verdict == claims.SUPPORTED and v.effect == pytest.approx(1.0, abs=0.02) and "lr 0.04" in v.ours
    worse = claims.tuned_rates(search_runs({32: 0.30, 256: 0.36, 1024: 0.40}))
    assert worse.verdict == claims.NOT_SUPPORTED and worse.effect == pytest.approx(1.2, abs=0.03)
    # a best rate on the grid's edge: the grid was too narrow to say
    edge = claims.tuned_rates(search_runs({32: 0.30, 256: 0.301}, best_at={256: 0.16}))
    assert edge.verdict == claims.INCONCLUSIVE and "edge of the searched grid" in edge.note
    # a search that stopped at its target says nothing about the best minimum
    stopped = search_runs({32: 0.30, 256: 0.30}).assign(stopped_by="target")
    assert claims.tuned_rates(stopped).seeds == 0 and "trained to its minimum" in claims.tuned_rates(stopped).note
    assert "0.04 is the batch-32 rate the learning-rate search chooses" in claims.learning_rate_check(pd.concat([
        search_runs({32: 0.30}), pd.DataFrame([{"job_id": "c", "notebook": "02_empirical_comparison", "batch_size": 32,
                                                 "seed": 0, "lr": 0.04, "status": "ok"}])]), 32)


def confirmation(best_loss: dict, lr: dict, seeds=range(100, 110), rng=None) -> pd.DataFrame:
    """C15's confirmation runs (04, remedy confirm): per batch size, new seeds at its chosen rate ``lr``."""
    rng = rng or np.random.default_rng(5)
    return pd.DataFrame([{"job_id": f"confirm{b}", "notebook": "04_closing_the_gap", "remedy": "confirm",
                          "batch_size": b, "seed": s, "lr": lr[b], "lr_used": lr[b], "status": "ok",
                          "stopped_by": "patience", "censored": False,
                          "min_val_loss": loss * (1 + 0.01 * rng.standard_normal())}
                         for b, loss in best_loss.items() for s in seeds])


def test_c15_reads_the_confirmation_seeds_at_the_chosen_rate_and_the_search_beside():
    search = search_runs({32: 0.30, 256: 0.30})
    # the search's own seeds say "equal"; ten new seeds at the chosen rates say the large batch is 10% worse
    v = claims.tuned_rates(pd.concat([search, confirmation({32: 0.30, 256: 0.33, 1024: 0.36},
                                                           {32: 0.04, 256: 0.04, 1024: 0.04})]))
    assert v.seeds == 10 and "10 confirmation seeds" in v.measure
    assert "batch 1024 lr" in v.ours and "slope of log minimum on log2(batch) nan" not in v.ours  # every size
    assert v.verdict == claims.NOT_SUPPORTED and v.effect == pytest.approx(1.1, abs=0.02)
    assert "the search's own reading at the chosen rates (3 search seeds): 0.99" in v.ours
    # without confirmation runs: read on the search's seeds, said to be weaker
    alone = claims.tuned_rates(search)
    assert alone.seeds == 3 and "no confirmation runs" in alone.measure and "selected on the same seeds" in alone.note
    # a confirmation at a rate the stored search no longer chooses is named
    stale = claims.tuned_rates(pd.concat([search, confirmation({32: 0.30, 256: 0.30}, {32: 0.04, 256: 0.08})]))
    assert "batch 256's confirmation ran at lr 0.08" in stale.note


def test_c15s_seed_check_leaves_out_each_confirmation_seed_it_reads_and_no_other():
    """Where confirmation runs decide C15, leaving out a search seed cannot move its label: the check counts only
    the 10 confirmation seeds (it said "any one of 13" when it counted the search's seeds too)."""
    runs = pd.concat([search_runs({32: 0.30, 256: 0.30}), confirmation({32: 0.30, 256: 0.33},
                                                                        {32: 0.04, 256: 0.04})], ignore_index=True)
    tables = type("T", (), {"runs": runs, "epochs": pd.DataFrame(), "steps": pd.DataFrame(),
                            "table": lambda self, name: pd.DataFrame()})()
    study = claims.Study(tables)
    [v] = claims.robustness(study, [claims.CLAIMS["C15"].compute(study, claims.PROTOCOL)])
    assert v.seeds == 10 and "one seed left out: the same label without any one of 10" in v.sensitivity, v.sensitivity


def test_c15_s_test_loss_reading_scores_the_confirmation_runs_and_keeps_the_rates_the_validation_loss_chose():
    """The protocol's alternatives for C15 include the test loss at the selected weights; the search still chooses
    its rate on the validation loss (here the test loss would pick 0.16 at batch 256)."""
    search = search_runs({32: 0.30, 256: 0.30})
    search = search.assign(test_loss=search["min_val_loss"].where(search["lr_used"] != 0.16, 0.05))
    confirm = confirmation({32: 0.30, 256: 0.30}, {32: 0.04, 256: 0.04})
    confirm = confirm.assign(test_loss=confirm["min_val_loss"] * np.where(confirm["batch_size"] == 256, 1.2, 1.0))
    runs = pd.concat([search, confirm], ignore_index=True)
    tables = type("T", (), {"runs": runs, "epochs": pd.DataFrame(), "steps": pd.DataFrame(),
                            "table": lambda self, name: pd.DataFrame()})()
    study = claims.Study(tables)
    assert claims.Reading(test_loss=True) in claims.CLAIMS["C15"].alternatives
    v = claims.CLAIMS["C15"].compute(study, claims.Reading(test_loss=True))
    assert v.effect == pytest.approx(1.2, abs=0.03) and v.verdict == claims.NOT_SUPPORTED
    assert "confirmation ran at lr" not in v.note and "lr 0.04" in v.ours  # the rates the validation loss chose
    assert claims.CLAIMS["C15"].compute(study, claims.PROTOCOL).effect == pytest.approx(1.0, abs=0.02)
    # without confirmation runs the search's own seeds are read: scored on the test set at the rate the validation
    # loss chose (batch 256's test loss there is 1.2 times its validation minimum)
    alone = search.assign(test_loss=search["min_val_loss"] * np.where(search["batch_size"] == 256, 1.2, 1.0))
    alone.loc[alone["lr_used"] == 0.16, "test_loss"] = 0.05
    tables.runs = alone
    v = claims.CLAIMS["C15"].compute(claims.Study(tables), claims.Reading(test_loss=True))
    assert v.effect == pytest.approx(1.2, abs=0.03) and "lr 0.04" in v.ours and "0.16" not in v.ours


def level_sharpness(lam_small, lam_large, seeds=(0, 1, 2), rng=None, lam_at_rate=None):
    """03 records of the small batch's comparison runs (and of the large batch's, at the comparison's rate, when
    ``lam_at_rate``) and 04 linear-rule records of the large batch, per level."""
    rng = rng or np.random.default_rng(12)
    small, large = [], []
    for s in seeds:
        for lv in ("loss1", "loss0.3", "loss0.1", "final"):
            small.append({"job_id": "03-bs32", "notebook": "03_sharpness", "batch_size": 32, "seed": s, "status": "ok",
                          "checkpoint": lv, "lambda_max": lam_small * (1 + 0.03 * rng.standard_normal())})
            if lam_at_rate is not None:
                small.append({"job_id": "03-bs256", "notebook": "03_sharpness", "batch_size": 256, "seed": s,
                              "status": "ok", "checkpoint": lv,
                              "lambda_max": lam_at_rate * (1 + 0.03 * rng.standard_normal())})
        for lv in ("loss1", "loss0.3"):
            large.append({"job_id": "04-lin", "remedy": "linear_warmup", "batch_size": 256, "seed": s,
                          "checkpoint": lv, "lambda_max": lam_large * (1 + 0.03 * rng.standard_normal())})
    runs = pd.DataFrame(small + [{"job_id": "02-bs32", "notebook": "02_empirical_comparison", "batch_size": 32,
                                  "seed": s, "status": "ok", "lr": 0.03} for s in seeds]
                        + [{"job_id": "04-lin", "notebook": "04_closing_the_gap", "remedy": "linear_warmup",
                            "batch_size": 256, "seed": s, "status": "ok", "lr_used": 0.24, "momentum": 0.9}
                           for s in seeds])
    return runs, pd.DataFrame(large)


@pytest.mark.parametrize("lam_large, lam_at_rate, verdict", [
    (4.0, 20.0, claims.SUPPORTED),  # (b) 0.4: flatter than the small batch; (a) 0.2: the rate moved it
    (40.0, 20.0, claims.NOT_SUPPORTED),  # (b) 4 > 1.25: sharper even at an equal noise scale (Keskar)
    (4.0, 3.0, claims.NOT_SUPPORTED),  # (a) 1.33 > 1: scaling the rate up made it sharper, not flatter
    (12.0, 20.0, claims.INCONCLUSIVE),  # (b) 1.2: not clear of the 1.25 margin
])
def test_c16_asks_whether_the_rate_moves_sharpness_and_whether_the_large_batch_is_sharper_at_equal_noise(
        lam_large, lam_at_rate, verdict):
    runs, large = level_sharpness(10.0, lam_large, lam_at_rate=lam_at_rate)
    v = claims.edge_of_stability(runs, large)
    assert v.verdict == verdict and v.effect == pytest.approx(lam_large / 10, rel=0.05)
    assert "first fell to 0.3" in v.measure  # the large batch's runs never reached 0.1
    assert f"(a) batch 256 under linear_warmup over batch 256 at the comparison's rate: {lam_large / lam_at_rate:.2g}" \
        in v.ours or f"{lam_large / lam_at_rate:.3g}" in v.ours
    assert f"batch 256 under linear_warmup {lam_large * 0.24 / 3.8:.2f}" in v.ours
    assert claims.edge_of_stability(runs, large.iloc[0:0]).seeds == 0


def test_c16_is_not_supported_without_part_a():
    runs, large = level_sharpness(10.0, 4.0)  # no 03 measurements at the large batch
    v = claims.edge_of_stability(runs, large)
    assert v.verdict == claims.INCONCLUSIVE and "(a) needs the top eigenvalue" in v.note


def test_the_gap_by_budget_is_empty_when_one_of_the_pair_has_no_usable_run():
    runs, epochs = synthetic(**ARTICLE_LIKE)
    epochs = epochs.assign(val_loss=epochs["train_loss"] + 0.2)
    assert len(claims.gap_by_budget(runs, epochs)) > 0
    runs.loc[runs["batch_size"] == 256, "status"] = "failed to train"
    assert claims.gap_by_budget(runs, epochs).empty


def test_each_question_module_holds_the_claims_of_its_question():
    """The registry is collected from one module per question: a claim is one entry in its question's module."""
    ids = []
    for module in claims.QUESTIONS:  # q<k>_<topic>: question k (question 4 has two, the remedies and the search)
        number = int(module.__name__.rsplit(".", 1)[1][1])
        assert module.CLAIMS, module.__name__
        assert {c.question for c in module.CLAIMS} == {number}, module.__name__
        ids += [c.id for c in module.CLAIMS]
    assert len(ids) == len(set(ids)) == len(claims.CLAIMS)
    assert list(claims.CLAIMS) == sorted(ids, key=lambda c: int(c[1:]))
    assert claims.statement("C2") == claims.CLAIMS["C2"].statement


def test_the_cache_key_holds_the_modules_the_job_notebooks_reach(tmp_path, monkeypatch):
    """Editing a claim's code, a figure or a new module no job notebook imports reruns no training; editing a module
    a job notebook reaches, directly or through another module, does. Nothing is kept by hand in a list."""
    import shutil

    from bsnb import parameters, sources

    root = tmp_path / "root"
    shutil.copytree(parameters.ROOT / "bsnb", root / "bsnb", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(parameters.ROOT / "notebooks", root / "notebooks")
    monkeypatch.setattr(parameters, "ROOT", root)
    monkeypatch.setattr(parameters, "NOTEBOOKS_DIR", root / "notebooks")
    names = {p.relative_to(root / "bsnb").as_posix() for p in sources.computing_modules()}
    assert {"train.py", "noise.py", "sharpness.py", "models.py", "stacking.py"} <= names  # stacking via train
    assert not names & {"plots/style.py", "plots/__init__.py", "sweep.py", "report.py", "cli.py"}
    assert not any(n.startswith("claims/") for n in names)
    before = sources.source_digest()
    (root / "bsnb" / "claims" / "q2_comparison.py").write_text("X = 1\n")
    (root / "bsnb" / "plots" / "style.py").write_text((root / "bsnb" / "plots" / "style.py").read_text() + "\nY = 2\n")
    (root / "bsnb" / "a_new_page.py").write_text("Z = 3\n")
    assert sources.source_digest() == before
    (root / "bsnb" / "stacking.py").write_text((root / "bsnb" / "stacking.py").read_text() + "\nW = 4\n")
    assert sources.source_digest() != before


def banded_search(steepness: dict, seeds=range(8), rates=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)):
    """A search whose loss rises by ``steepness[b]`` (a share of the best) per factor of 2 away from the best rate."""
    base = search_runs({b: 0.3 for b in steepness}, seeds, rates)
    k = base["batch_size"].map(steepness)
    centre = rates[len(rates) // 2]
    return base.assign(min_val_loss=0.3 * (1 + k * np.abs(np.log2(base["lr_used"] / centre))))


def test_c18_reads_the_band_of_good_rates_around_the_best():
    search = banded_search({32: 0.02, 256: 0.04, 1024: 0.5})
    bands = claims.rate_bands(search).set_index(["batch_size", "seed"])
    # within 5% of the best, interpolated in log2(rate): +-2.5 factors of 2 at 2% a step, +-1.25 at 4%, +-0.1 at 50%
    # (on the grid's rates alone, v3's reading, 4, 2 and 0: a band of one rate had no width)
    assert bands.loc[(32, 0), "width"] == pytest.approx(5) and bands.loc[(256, 0), "width"] == pytest.approx(2.5)
    assert bands.loc[(1024, 0), "width"] == pytest.approx(0.2) and bands.loc[(1024, 0), "grid_width"] == 0
    assert bands.loc[(32, 0), "band_low"] == pytest.approx(0.08 / 2 ** 2.5)
    assert not bands["at_edge"].any()
    v = claims.rate_robustness(search)
    assert v.verdict == claims.SUPPORTED and v.ci_high < 0 and v.seeds == 8 and "batch 32 5.00" in v.ours
    rising = claims.rate_robustness(banded_search({32: 0.5, 256: 0.04, 1024: 0.02}))
    assert rising.verdict == claims.NOT_SUPPORTED and rising.ci_low > 0


def test_c18_bands_end_at_a_failed_rate_and_flag_the_grid_edge():
    search = banded_search({32: 0.001, 256: 0.04, 1024: 0.5}, seeds=range(3))
    # a rate that failed to train ends the band even when its loss reads low
    search.loc[(search["batch_size"] == 256) & (search["lr_used"] == 0.16), "status"] = "failed to train"
    bands = claims.rate_bands(search).set_index(["batch_size", "seed"])
    assert bands.loc[(256, 1), "band_low"] == pytest.approx(0.08 / 2 ** 1.25)  # interpolated below the best
    assert bands.loc[(256, 1), "band_high"] == pytest.approx(0.08) and bands.loc[(256, 1), "at_edge"]  # a failed rate ends it
    # the flattest search spans the whole grid: its width is only a lower bound, and the note says so
    assert bands.loc[(32, 2), "at_edge"] and bands.loc[(32, 2), "width"] == 6
    v = claims.rate_robustness(search)
    assert "6 of 9 bands reach an end of their grid" in v.note and "batch 32 seed 0" in v.note
    # the narrowest bands (1024) are exact, the widest (32) and 256's are lower bounds: a narrowing read from
    # bounds that could only hide more narrowing stands; read the other way round it would be withdrawn
    assert v.verdict == claims.SUPPORTED
    # the stable range: the largest rate that trained in every seed over the chosen rate (0.16 failed at 256)
    ranges = claims.stable_range(search).set_index("batch_size")
    assert ranges.loc[256, "largest_stable_lr"] == pytest.approx(0.08) and ranges.loc[256, "stable_range"] <= 0
    assert ranges.loc[32, "at_top"] and "stable range" in v.ours and "search: 3 run(s) left out" in v.note
    # fewer than 3 batch sizes searched: no trend to read
    assert claims.rate_robustness(banded_search({32: 0.02, 256: 0.04})).seeds == 0


def test_c18_names_the_censored_search_runs_it_reads():
    search = banded_search({32: 0.02, 256: 0.04, 1024: 0.5}, seeds=range(3))
    search.loc[(search["batch_size"] == 256) & (search["seed"] == 1) & (search["lr_used"] == 0.08), "censored"] = True
    v = claims.rate_robustness(search)
    assert "1 of 63 search runs are censored" in v.note and "batch 256 seed 1 lr 0.08" in v.note
    assert "censored" not in claims.rate_robustness(banded_search({32: 0.02, 256: 0.04, 1024: 0.5})).note


def test_a_claim_the_profile_ran_nothing_for_is_listed_as_not_run_not_as_a_verdict():
    """Protocol v4: the default profile has no one-pass arms; v3 showed C17 as an inconclusive verdict."""
    runs, epochs = synthetic(**ARTICLE_LIKE, noise=0.01)
    tables = type("T", (), {"runs": runs, "epochs": epochs.assign(val_loss=0.5, step=epochs["epoch"] * 10),
                            "steps": pd.DataFrame(), "table": lambda self, name: pd.DataFrame()})()
    study = claims.Study(tables)
    by_id = by_claim(claims.question(study, 2))
    assert by_id["C17"].verdict == claims.NOT_RUN and by_id["C17"].seeds == 0
    assert by_id["C2"].verdict != claims.NOT_RUN and by_id["C2"].seeds == 3  # what it did run is decided
    robust = by_claim(claims.robustness(study, [by_id["C17"]]))["C17"]
    assert robust.robust is None and robust.sensitivity == "not run in this profile"
    one_pass = runs[runs["batch_size"] == 32].assign(notebook="04_closing_the_gap", remedy="one_pass", job_id="op")
    assert claims.CLAIMS["C17"].needs(pd.concat([runs, one_pass])) and not claims.CLAIMS["C17"].needs(runs)
