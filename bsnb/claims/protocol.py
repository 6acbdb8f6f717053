"""How the claims read a store (docs/protocol.md): the compared runs and pair, the matched training-loss levels, the
learning-rate search's best rates, the :class:`Reading` fixed before the runs (and its alternatives), the
:class:`Study` a claim is computed from, and the :class:`Claim` record of the registry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bsnb import minima, parameters, search
from bsnb.claims.verdict import TEXTS, Verdict
from bsnb.results import MATCHED_LEVELS, NOISE_WINDOW  # noqa: F401 (the levels C1, C6, C14 and C16 match runs at)


def _pick(available, wanted: int, fallback) -> int:
    return wanted if wanted in available else fallback(available)


def choose_pair(runs: pd.DataFrame, small_batch: int, large_batch: int) -> tuple[int, int, list[str]]:
    """The article's pair when both were run, else the smallest and the largest batch size."""
    sizes = sorted(int(b) for b in runs["batch_size"].unique())
    small = _pick(sizes, small_batch, min)
    large = _pick([b for b in sizes if b > small] or sizes, large_batch, max)
    notes = []
    if (small, large) != (small_batch, large_batch):
        notes.append(f"batch sizes {small_batch} and {large_batch} not both in the sweep; compared {small} and {large}")
    return small, large, notes


def search_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the learning-rate search (04, tuned) trained to their minimum (not stopped at the target, not
    pruned): what C15's best rates and C18's bands read."""
    tuned = runs[(runs.get("notebook") == "04_closing_the_gap") & (runs.get("remedy") == "tuned")] \
        if "remedy" in runs else runs.iloc[0:0]
    if tuned.empty or "stopped_by" not in tuned:
        return tuned.iloc[0:0]
    return tuned[(tuned["stopped_by"] != "target") & ~tuned.get("pruned", pd.Series(False, index=tuned.index))
                 .fillna(False).astype(bool)]


def best_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (batch size, seed) of the learning-rate search trained to its minimum: the batch size's chosen rate
    (:func:`bsnb.search.choose`: the lowest mean smoothed minimum over the search seeds, of every searched rate), the
    seed's smoothed minimum at that rate, whether the rate lies on an edge of the grid after extension, and the
    seed's own best rate beside it (``seed_best_lr``)."""
    tuned = search_runs(runs)
    if tuned.empty:
        return pd.DataFrame()
    rows = []
    for batch, g in tuned.groupby("batch_size"):
        choice = search.choose(search.table_of(g))
        if choice is None:
            continue
        rates = ", ".join(f"{x:.4g}" for x in sorted(g["lr_used"].unique()))
        for seed, s in g.groupby("seed"):
            at = s[(s["lr_used"] - choice.rate).abs() <= 1e-9 * choice.rate]
            ok = usable_runs(s)
            if at.empty or ok.empty or ok["min_val_loss"].isna().all():
                continue
            r = at.iloc[0]
            # the value read at the chosen rate: the smoothed minimum, or what a reading scores there (``read_loss``)
            read = r.get("read_loss", math.nan)
            rows.append({"batch_size": int(batch), "seed": int(seed), "status": r.get("status", "ok"),
                         "best_lr": choice.rate,
                         "min_val_loss": float(read) if pd.notna(read) else float(r["min_val_loss"]),
                         "censored": bool(r.get("censored", False)), "unstable": bool(r.get("unstable", False)),
                         "on_edge": choice.on_edge, "extensions": choice.extensions, "refined": choice.refined,
                         "seed_best_lr": float(ok.loc[ok["min_val_loss"].idxmin(), "lr_used"]), "grid": rates})
    return pd.DataFrame(rows)


def comparison_rate_problem(runs: pd.DataFrame, small_batch: int) -> str:
    """Why the comparison's one rate is not the small batch's chosen rate (docs/protocol.md: the profile pins it, the
    profile's own search checks it), or "" where it is, or where the profile has no search to check it with."""
    comparison, _ = comparison_runs(runs)
    best = best_rates(runs)
    if comparison.empty or best.empty or "lr" not in comparison or small_batch not in set(best["batch_size"]):
        return ""
    lr, chosen = float(comparison["lr"].iloc[0]), float(best.loc[best["batch_size"] == small_batch, "best_lr"].iloc[0])
    if math.isclose(lr, chosen, rel_tol=1e-9):
        return ""
    return f"the comparison's rate {lr:g} is not the batch-{small_batch} search's chosen rate {chosen:.4g}"


def confirmation_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """C15's confirmation runs (04, remedy confirm): new seeds at each batch size's chosen rate."""
    if "remedy" not in runs or runs.empty:
        return runs.iloc[0:0]
    return runs[(runs.get("notebook") == "04_closing_the_gap") & (runs["remedy"] == "confirm")]


def comparison_runs(runs: pd.DataFrame, notebook: str = "02_empirical_comparison") -> tuple[pd.DataFrame, str]:
    """The runs of one fixed setting that differ only in batch size (the largest such group)."""
    r = runs[runs["notebook"] == notebook] if "notebook" in runs else runs
    keys = [k for k in parameters.SETTING if k != "batch_size" and k in r]
    if r.empty or not keys:
        return r, ""
    groups = r.groupby(keys, dropna=False)
    if groups.ngroups == 1:
        return r, ""
    best_key = max(groups.groups, key=lambda k: (r.loc[groups.groups[k], "batch_size"].nunique(),
                                                 len(groups.groups[k])))
    chosen = groups.get_group(best_key)
    desc = ", ".join(f"{k}={v}" for k, v in zip(keys, best_key))
    return chosen, f"the store holds {groups.ngroups} settings; compared the one with most batch sizes ({desc})"


def paired(runs: pd.DataFrame, column: str, small: int, large: int) -> pd.DataFrame:
    """Per-seed values of ``column`` for the small and the large batch, seeds present in both."""
    ok = runs[runs["status"].isna() | (runs["status"] == "ok")] if "status" in runs else runs
    if column not in ok:
        return pd.DataFrame(columns=["small", "large"])
    wide = ok.pivot_table(index="seed", columns="batch_size", values=column, aggfunc="first")
    if small not in wide or large not in wide:
        return pd.DataFrame(columns=["small", "large"])
    return wide[[small, large]].dropna().set_axis(["small", "large"], axis=1)


def censored_seeds(runs: pd.DataFrame, batch: int) -> list:
    """Seeds of ``batch`` whose minimum validation loss the budget ended before confirming (the protocol's censoring).

    Runs record it as ``censored`` (the cap came before the patience ran out); older runs without
    the column count a minimum on the last trained epoch.
    """
    r = runs[(runs["batch_size"] == batch) & ((runs["status"] == "ok") if "status" in runs else True)]
    if "censored" in r and r["censored"].notna().all():
        flags = r["censored"].astype(bool)
    elif not {"epoch_of_min_val_loss", "epochs_run"} <= set(r.columns):
        return []  # nothing says where the minimum lay
    else:
        flags = r["epoch_of_min_val_loss"] >= r["epochs_run"]
    return sorted(int(s) for s in r.loc[flags, "seed"])




def epochs_to_level(epochs: pd.DataFrame, level: float) -> pd.Series:
    """Per (job_id, seed), the first evaluated epoch whose training loss is at or below ``level`` (NaN if never)."""
    ep = epochs[(epochs["epoch"] > 0) & epochs["train_loss"].notna()]
    first = ep[ep["train_loss"] <= level].groupby(["job_id", "seed"])["epoch"].min()
    return first.reindex(ep.groupby(["job_id", "seed"]).size().index)


def shifted_level(reached: list, shift: int = 0, levels=MATCHED_LEVELS) -> float | None:
    """The lowest of ``reached`` (levels every run reached) moved by ``shift`` places among ``levels`` (-1: the
    next higher level, +1: the next lower); None when there is none, or the shifted level was not reached by all."""
    if not reached:
        return None
    i = levels.index(reached[-1]) + shift
    return levels[i] if 0 <= i < len(levels) and levels[i] in reached else None


def common_level(epochs: pd.DataFrame, levels=MATCHED_LEVELS, shift: int = 0) -> tuple[float | None, list[float]]:
    """The lowest of ``levels`` that every run in ``epochs`` reached, moved by ``shift`` places (-1: the next
    higher level, +1: the next lower); None when no level (or no shifted level) was reached by all. Also returns
    every level all of them reached."""
    reached = [lv for lv in levels if len(epochs) and epochs_to_level(epochs, lv).notna().all()]
    return shifted_level(reached, shift, levels), reached


def level_of(checkpoint: str) -> float:
    """The training-loss level of a ``loss<level>`` checkpoint name (NaN for any other)."""
    return float(checkpoint[4:]) if isinstance(checkpoint, str) and checkpoint.startswith("loss") else math.nan


def usable_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].isna() | (runs["status"] == "ok")] if "status" in runs else runs


def intention_to_treat(arm: pd.DataFrame) -> pd.DataFrame:
    """A remedy's arm as docs/protocol.md reads it (C8 to C10, C12, C17, C19): a run that failed to train or diverged is
    kept with its measured minimum, and a non-finite minimum counts as the chance loss (a remedy that fails to train
    has not closed the gap). The comparison arms it is set against keep only the runs that trained."""
    if arm.empty or "status" not in arm:
        return arm
    kept = arm[arm["status"].isna() | arm["status"].isin(["ok", minima.FAILED, "diverged"])]
    chance = pd.to_numeric(kept["chance_loss"], errors="coerce") if "chance_loss" in kept else math.nan
    losses = {c: pd.to_numeric(kept[c], errors="coerce") for c in ("min_val_loss", "min_val_loss_raw") if c in kept}
    return kept.assign(**{c: v.where(np.isfinite(v), chance) for c, v in losses.items()})


@dataclass(frozen=True)
class Reading:
    """The protocol's reading choices that a verdict depends on (docs/protocol.md). :data:`PROTOCOL` is the one fixed
    before the runs; the sensitivity analysis reads the same data with the alternatives docs/protocol.md names."""

    smoothing: int = minima.SMOOTHING  # evaluated epochs in the centred moving average of the validation loss
    level_shift: int = 0  # C1, C6: places from the lowest level every compared run reached (-1: the next higher)
    window: int = NOISE_WINDOW  # C11, C14: evaluated epochs whose tr(Sigma) and |G|^2 are summed
    train_share: float = 0.7  # C13: share of the logged steps the laws are fitted on
    at_minimum: bool = False  # C6, C16: compare at the weights of the smoothed minimum instead of the matched level
    test_loss: bool = False  # C2, C8 to C10, C12: the test loss at the selected weights instead of the validation minimum
    censored_lowered: bool = False  # a censored minimum lowered by twice its fall over its last 10% of epochs

    def describe(self) -> str:
        """How this reading differs from the protocol's, in a few words."""
        parts = []
        if self.smoothing != PROTOCOL.smoothing:
            parts.append("raw minima" if self.smoothing <= 1 else f"{self.smoothing}-epoch smoothing")
        if self.level_shift:
            parts.append(f"the {'next higher' if self.level_shift < 0 else 'next lower'} loss level")
        if self.window != PROTOCOL.window:
            parts.append(f"a window of {self.window} epoch{'s' * (self.window > 1)}")
        if self.at_minimum:
            parts.append("at the smoothed minimum")
        if self.train_share != PROTOCOL.train_share:
            parts.append(f"fitted on {self.train_share:g} of the steps")
        if self.test_loss:
            parts.append("the test loss at the selected weights")
        if self.censored_lowered:
            parts.append("censored minima lowered by twice their tail fall")
        return ", ".join(parts) or "the protocol"


PROTOCOL = Reading()


@dataclass
class Study:
    """What the claims are computed from: a store's tables, the compared pair and the timing that ran alone."""

    tables: object  # bsnb.results.Tables (seeds, epochs, steps, table(name))
    small_batch: int = 32
    large_batch: int = 256
    confidence: float = 0.95
    speed: pd.DataFrame | None = None
    c1_level: float = 0.0
    _read: dict = field(default_factory=dict, repr=False)

    def runs(self, reading: Reading = PROTOCOL) -> pd.DataFrame:
        """The per-seed table read by :func:`bsnb.minima.read_runs` with ``reading``'s smoothing (kept)."""
        if reading.smoothing not in self._read:
            self._read[reading.smoothing] = minima.read_runs(self.tables.runs, self.tables.epochs, reading.smoothing)
        runs = self._read[reading.smoothing]
        if reading.test_loss and "test_loss" in runs:  # the weights the validation loss chose, scored on the test set
            runs = runs.assign(min_val_loss=runs["test_loss"].where(runs["test_loss"].notna(), runs["min_val_loss"]))
        if reading.censored_lowered and {"censored", "tail_fall"} <= set(runs.columns):
            lowered = runs["censored"].fillna(False).astype(bool) & (runs["tail_fall"] > 0)
            runs = runs.assign(min_val_loss=runs["min_val_loss"] - 2 * runs["tail_fall"].where(lowered, 0.0))
        return runs

    def memo(self, key, compute):
        """``compute()`` once per ``key`` for this study: a question's function decides several claims at once, and
        the robust flag asks each of them under every reading (without it the closing claims were computed five
        times over per reading)."""
        cache = self._read.setdefault("memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def seed_ids(self) -> list[int]:
        """Every seed the study's runs used (the comparisons', the search's and the confirmation seeds)."""
        runs = self.tables.runs
        return sorted(int(s) for s in runs["seed"].dropna().unique()) if "seed" in runs else []

    def confirmation_only_seeds(self) -> set[int]:
        """Seeds that only the confirmation runs (04, remedy confirm) use: leaving one out changes no other claim."""
        runs = self.tables.runs
        if "remedy" not in runs or "seed" not in runs:
            return set()
        confirm = runs["remedy"].eq("confirm")
        return set(runs.loc[confirm, "seed"].dropna().astype(int)) - set(runs.loc[~confirm, "seed"].dropna().astype(int))

    def without_seed(self, seed: int) -> "Study":
        """The same study with one seed's runs and measurements left out (the protocol's stability check)."""
        return Study(SeedLeftOut(self.tables, seed), self.small_batch, self.large_batch, self.confidence, self.speed,
                     self.c1_level)

    def at_confidence(self, confidence: float) -> "Study":
        """The same study with intervals at another confidence level (the Bonferroni level); its readings are kept."""
        read = {k: v for k, v in self._read.items() if k != "memo"}  # the readings, not the verdicts
        return Study(self.tables, self.small_batch, self.large_batch, confidence, self.speed, self.c1_level, read)

    def comparison_steps(self, reading: Reading = PROTOCOL) -> pd.DataFrame:
        comparison, _ = comparison_runs(self.runs(reading))
        steps = self.tables.steps
        return steps[steps["job_id"].isin(comparison["job_id"])] if len(steps) and len(comparison) else steps.iloc[0:0]


class SeedLeftOut:
    """A store's tables without one seed's rows (every table that has a ``seed`` column)."""

    def __init__(self, tables, seed: int):
        self._tables, self._seed = tables, seed
        self.runs, self.epochs, self.steps = (self._drop(getattr(tables, name)) for name in ("runs", "epochs", "steps"))

    def _drop(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["seed"] != self._seed] if len(frame) and "seed" in frame else frame

    def table(self, name: str) -> pd.DataFrame:
        return self._drop(self._tables.table(name))

    def __getattr__(self, name):  # jobs, extra: as they are
        return getattr(self._tables, name)


def ran(notebook: str, *remedies: str):
    """A claim's ``needs``: the profile ran ``notebook`` (with one of ``remedies``, for notebook 04)."""
    def ran_it(runs: pd.DataFrame) -> bool:
        if runs.empty or "notebook" not in runs:
            return False
        mine = runs[runs["notebook"] == notebook]
        if remedies:
            mine = mine[mine["remedy"].isin(remedies)] if "remedy" in mine else mine.iloc[0:0]
        return not mine.empty
    return ran_it


def one_claim(verdicts: list[Verdict], claim: str) -> Verdict:
    return next(v for v in verdicts if v.claim == claim)


SMOOTHINGS = (Reading(smoothing=1), Reading(smoothing=3), Reading(smoothing=9))
MINIMA = SMOOTHINGS + (Reading(censored_lowered=True),)  # C4, C7, C15: and censored minima lowered
MINIMA_AND_TEST = MINIMA + (Reading(test_loss=True),)  # C2, C8 to C10, C12: and the test loss at the selected weights


LEVELS = (Reading(level_shift=-1), Reading(level_shift=1))
SHARPNESS = LEVELS + (Reading(at_minimum=True),)  # C6, C16: the neighbouring levels and the smoothed minimum


WINDOWS = (Reading(window=1), Reading(window=5))


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    rule: str  # when it is supported / not supported (the protocol's table)
    figure: str  # the figure of the findings that decides it
    compute: object  # compute(study, reading) -> Verdict
    question: int = 0  # the article's question (report page, notebook 05's section)
    alternatives: tuple = ()  # the protocol's sensitivity analysis: the readings a robust verdict survives
    needs: object = None  # needs(runs) -> bool: whether the profile ran what the claim measures (None: always)
    at_comparison_rate: bool = True  # read at the comparison's one rate: not robust where the search chooses another
    reads_confirmation: bool = False  # reads the confirmation seeds (C15): only then is leaving one of them out a check

    def __post_init__(self):
        TEXTS[self.id] = (self.statement, self.rule)  # what a verdict of this claim says it tested
