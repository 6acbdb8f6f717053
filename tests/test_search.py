"""The learning-rate search's rule (bsnb.search): extension past an edge that holds the best rate, refinement by
sqrt 2, the chosen rate; and the search job that follows it (bsnb.train.tune)."""

import math

import numpy as np
import pandas as pd
import pytest

from bsnb import search

CHANCE = math.log(10)


def runs(curve, rates, seeds=(0, 1, 2), step="grid", failed=()):
    """Search runs whose smoothed minimum at rate r is ``curve(r)`` (plus a little seed noise); ``failed`` rates
    never trained."""
    rng = np.random.default_rng(3)
    return pd.DataFrame([{"lr": r, "seed": s, "min_val_loss": curve(r) * (1 + 0.002 * rng.standard_normal()),
                          "failed": r in failed, "chance_loss": CHANCE, "search_step": step}
                         for r in rates for s in seeds])


def bowl(best):
    return lambda r: 0.3 * (1 + 0.1 * math.log2(r / best) ** 2)


GRID = [0.01, 0.02, 0.04, 0.08, 0.16]


def complete(curve, grid=GRID, failed=()):
    """Run the rule to its end as the search job does: every round's rates for every seed."""
    table = runs(curve, grid, failed=failed)
    while (todo := search.next_rates(table)) is not None:
        rates, step = todo
        table = pd.concat([table, runs(curve, rates, step=step, failed=failed)], ignore_index=True)
    return table


def test_a_best_rate_inside_the_grid_is_refined_by_sqrt_2_and_the_lowest_mean_is_chosen():
    table = complete(bowl(0.05))
    steps = table.drop_duplicates("lr").set_index("lr")["search_step"]
    assert (steps == "extension").sum() == 0
    assert sorted(steps[steps == "refinement"].index) == pytest.approx([0.04 / math.sqrt(2), 0.04 * math.sqrt(2)])
    choice = search.choose(table)
    assert choice.rate == pytest.approx(0.04 * math.sqrt(2)) and not choice.on_edge and choice.refined
    assert choice.means.idxmin() == pytest.approx(choice.rate)


def test_a_best_rate_on_an_edge_extends_the_grid_until_it_lies_inside():
    table = complete(bowl(0.4))  # the best lies past the top of the grid
    added = table.drop_duplicates("lr")
    assert list(added.loc[added["search_step"] == "extension", "lr"]) == pytest.approx([0.32, 0.64])
    choice = search.choose(table)
    assert not choice.on_edge and choice.extensions == 2
    assert choice.rate == pytest.approx(0.32 * math.sqrt(2))  # refined around 0.32, the factor-2 best
    # downwards too
    low = search.choose(complete(bowl(0.004)))
    assert low.extensions == 2 and not low.on_edge and low.rate < 0.01


def test_at_most_three_extensions_and_then_the_edge_says_the_grid_was_too_narrow():
    table = complete(bowl(100.0))
    assert table.loc[table["search_step"] == "extension", "lr"].nunique() == search.EXTENSIONS
    choice = search.choose(table)
    assert choice.on_edge and choice.extensions == 3


def test_no_extension_past_a_rate_that_failed_in_every_seed():
    curve = bowl(1.0)  # without failures the best would lie past the top
    table = complete(curve, grid=[0.04, 0.08, 0.16], failed=(0.16,))
    # 0.16 failed in every seed: its mean is the chance loss, so the best (0.08) lies inside and nothing is added
    assert (table["search_step"] == "extension").sum() == 0
    assert search.choose(table).rate == pytest.approx(0.08 * math.sqrt(2))
    # a top edge that failed everywhere while still the best (every rate failed): no rate past it
    dead = runs(lambda r: 5.0, [0.04, 0.08], failed=(0.04, 0.08))
    assert search.next_rates(dead)[1] == "refinement"


def test_a_failed_run_counts_with_the_chance_loss_in_the_mean():
    table = runs(bowl(0.04), GRID)
    table.loc[(table["lr"] == 0.04) & (table["seed"] == 0), ["min_val_loss", "failed"]] = [float("nan"), True]
    means = search.rate_means(table)
    assert means[0.04] == pytest.approx((CHANCE + 2 * 0.3) / 3, rel=0.01)
    assert search.choose(table).rate != 0.04


def test_a_search_job_adds_its_rates_and_records_how_each_entered():
    from bsnb import data, train

    d = data.load("mnist1d", 300, 100, 100)
    out = train.tune(train.TrainSpec(batch_size=30, width=8, epochs=6, patience=2, stack="off"), d, [0.01, 0.02],
                     [0], target_loss=2.0, progress=False)
    steps = [r.summary["search_step"] for r in out]
    assert steps[:2] == ["grid", "grid"] and steps[-2:] == ["refinement", "refinement"]
    assert set(steps) <= {"grid", "extension", "refinement"}
    table = search.table_of(pd.DataFrame([r.summary for r in out]))
    assert search.next_rates(table) is None  # complete: the job ran the rule to its end
    assert len({r.label for r in out}) == len(out)  # every run has its own checkpoint folder


def test_bsnb_rates_reads_each_workloads_stored_search_by_the_rule(tmp_path, capsys):
    """`bsnb rates` (what a pilot search pins in params/workloads.yaml): each workload's finished search read by
    the rule, the chosen rate and whether it still lies on an edge; a study without a search is an error."""
    from bsnb import cli, results

    store = results.store_dir(tmp_path)
    for workload, best, grid in (("wide", 0.04, GRID), ("edge", 0.5, GRID[:3])):
        job = results.JobStore(store / f"04-bs32-remedytuned-{workload}")
        table = runs(bowl(best), grid)
        records = [{"lr_used": r.lr, "seed": r.seed, "min_val_loss": r.min_val_loss, "status": "ok",
                    "search_step": "grid", "failed_to_train": False} for r in table.itertuples()]
        job.save("04_closing_the_gap", {"remedy": "tuned", "patience": 20, "batch_size": 32}, records)
        job.write_status({"status": "ok"})
    other = results.JobStore(store / "02-bs32")
    other.save("02_empirical_comparison", {"batch_size": 32, "patience": 20}, [{"seed": 0, "min_val_loss": 0.3}])
    other.write_status({"status": "ok"})
    results.write_plan(store, "pilot", [p.name for p in store.iterdir()],
                       {"wide": ["04-bs32-remedytuned-wide", "02-bs32"], "edge": ["04-bs32-remedytuned-edge"]})
    table = search.chosen_rates(tmp_path)
    assert list(table["workload"]) == ["wide", "edge"] and list(table["batch_size"]) == [32, 32]
    assert table["chosen_lr"].tolist() == [0.04, 0.04] and table["on_edge"].tolist() == [False, True]
    assert cli.main(["rates", "pilot", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "wide: batch 32 chooses lr 0.04 (3 seeds" in printed and "edge: batch 32 chooses lr 0.04" in printed
    assert "still on an edge of its grid" in printed.splitlines()[1]
    assert cli.main(["rates", "pilot", "--out", str(tmp_path / "nothing")]) == 2
    assert "no finished learning-rate search" in capsys.readouterr().err
