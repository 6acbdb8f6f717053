"""How a verdict is formed and written: the :class:`Verdict` record, the ratio verdict every paired claim uses,
and the claims table (``claims.csv``) with its generated conclusions."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bsnb.results import robust_flag
from bsnb.stats import INCONCLUSIVE, decide, dropped_note, evidence_problem, interval, withdraw_if_censored

COLUMNS = ["claim", "verdict", "effect", "ci_low", "ci_high", "seeds", "robust", "statement", "measure", "ours",
           "published", "note", "rule", "sensitivity"]


@dataclass
class Verdict:
    claim: str
    verdict: str
    effect: float
    ci_low: float
    ci_high: float
    seeds: int
    statement: str
    measure: str
    ours: str = ""
    published: str = ""
    note: str = ""
    rule: str = ""
    robust: bool | None = None  # set by robustness(): the label holds under every alternative reading
    sensitivity: str = ""  # what each alternative reading gave


# what each claim says and when it holds (statement, rule), by id: filled as the question modules define their
# claims (bsnb.claims.protocol.Claim), so that a verdict can name its claim without importing the registry
TEXTS: dict[str, tuple[str, str]] = {}


def statement(claim: str) -> str:
    """The statement of ``claim``, as its registry entry gives it."""
    return TEXTS[claim][0]


def empty(claim: str, why: str) -> Verdict:
    return Verdict(claim, INCONCLUSIVE, math.nan, math.nan, math.nan, 0, statement(claim), "", note=why)


def ratio_text(pairs: pd.DataFrame, confidence: float) -> str:
    effect, lo, hi, n = interval(pairs["large"] / pairs["small"], confidence, log=True)
    return f"{fmt(effect)} [{fmt(lo)}, {fmt(hi)}]" if n else "n/a"


def rank_trend(values: pd.DataFrame, column: str, confidence: float = 0.95, by: str = "batch_size"
               ) -> tuple[float, float, float, int]:
    """Spearman's rank correlation of ``column`` with ``by`` (the batch size) over every row (seed and batch size),
    with a Fisher interval (Bonett and Wright's standard error for Spearman): does the measure rise with it?"""
    from scipy import stats as sps

    v = values[[by, column]].replace([np.inf, -np.inf], np.nan).dropna()
    n = len(v)
    if n < 4 or v[by].nunique() < 3:
        return math.nan, math.nan, math.nan, n
    rho = float(sps.spearmanr(v[by], v[column]).statistic)
    z, se = math.atanh(max(-0.9999, min(0.9999, rho))), math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    half = float(sps.norm.ppf((1 + confidence) / 2)) * se
    return rho, math.tanh(z - half), math.tanh(z + half), n


def seed_slope(values: pd.DataFrame, column: str, confidence: float = 0.95, by: str = "batch_size",
               log_y: bool = True, x=np.log2) -> tuple[float, float, float, int]:
    """The protocol's trend: per seed, the least-squares slope of ``column`` (its log when ``log_y``) on ``x(by)``
    (log2 of the batch size by default), over the seed's own points; mean slope and Student-t interval over seeds.
    A seed needs 3 or more distinct points; seeds are the independent units, not seeds x sizes."""
    slopes = []
    for _, g in values.groupby("seed"):
        y = g[column].to_numpy(float)
        keep = np.isfinite(y) & ((y > 0) if log_y else True) & np.isfinite(g[by].to_numpy(float))
        g, y = g[keep], y[keep]
        if g[by].nunique() < 3:
            continue
        xs = x(g[by].to_numpy(float))
        slopes.append(float(np.polyfit(xs, np.log(y) if log_y else y, 1)[0]))
    return interval(slopes, confidence)


def join_notes(*notes) -> str:
    return "; ".join(n for n in notes if n)


def evidence_note(values, lo: float, hi: float, n: int, log: bool = False) -> str:
    """What the interval could not use, and why it cannot decide (if it cannot)."""
    return join_notes(dropped_note(values, log), evidence_problem(lo, hi, n))


def ratio_verdict(claim, pairs, direction, confidence, measure, fmt="{:.3f}", published="", note=""):
    ratio = pairs["large"] / pairs["small"]
    effect, lo, hi, n = interval(ratio, confidence, log=True)
    ours = (f"small {fmt.format(pairs['small'].mean())}, large {fmt.format(pairs['large'].mean())} "
            f"(mean of {n} seeds)") if n else "no paired seeds"
    return Verdict(claim, decide(lo, hi, 1.0, direction, n), effect, lo, hi, n, statement(claim), measure,
                   ours, published, join_notes(note, evidence_note(ratio, lo, hi, n, log=True)))


def censor(v: Verdict, direction: str, censored: dict, bias: str | None) -> Verdict:
    named = [f"{label} in seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
             for label, seeds in censored.items() if len(seeds)]
    if not named:
        return v
    verdict = withdraw_if_censored(v.verdict, direction, bias)
    note = "censored (the budget ended before the minimum was confirmed): " + "; ".join(named)
    if verdict != v.verdict:
        note += (f"; the interval says {v.verdict}, but censoring can only have pushed the effect that way, so the "
                 "verdict is inconclusive: a longer budget decides it")
    v.verdict, v.note = verdict, join_notes(v.note, note)
    return v


def fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.3g}"


def conclusions(verdicts: list[Verdict]) -> str:
    """One generated line per claim: verdict, effect and interval, and the published figure."""
    lines = []
    for v in verdicts:
        line = (f"{v.claim} {v.verdict.upper()}: {v.statement}. Measured {v.measure}: {fmt(v.effect)} "
                f"[{fmt(v.ci_low)}, {fmt(v.ci_high)}] over {v.seeds} seed{'s' if v.seeds != 1 else ''}.")
        if v.published:
            line += f" Published: {v.published}."
        if v.note:
            line += f" Note: {v.note}."
        lines.append(line)
    return "\n".join(lines)


def table(verdicts: list[Verdict]) -> pd.DataFrame:
    """The verdicts as a table, in the order of the claims (C1, C2, ..., C11)."""
    rows = sorted(({**asdict(v), "rule": v.rule or TEXTS[v.claim][1]} for v in verdicts),
                  key=lambda r: int(r["claim"][1:]))
    return pd.DataFrame(rows, columns=COLUMNS)


def save(verdicts: list[Verdict], path, workload: str = "") -> pd.DataFrame:
    """Write ``claims.csv`` (atomically) and return the table; a workload's verdicts carry its name."""
    from bsnb.results import write_atomic

    df = table(verdicts)
    if workload:
        df.insert(0, "workload", workload)
    write_atomic(path, df.to_csv(index=False))
    return df


HOLDS = ("everywhere", "somewhere", "nowhere", "undecided")  # a claim across the workloads it was measured on


def across_workloads(table: pd.DataFrame) -> pd.DataFrame:
    """The matrix of a ``claims.csv`` with a workload column: a row per claim that some workload measured (a verdict
    read from at least one seed), its verdict in each workload, and whether it holds everywhere (supported in every
    workload that measured it), somewhere (in some), nowhere (in none, and not supported in some) or is undecided
    (inconclusive in every one); ``flips`` names the workloads where it is not supported beside others where it is.
    Only robust labels count (docs/protocol.md): a cell whose label a check moved counts as undecided."""
    if table.empty or "workload" not in table:
        return pd.DataFrame(columns=["claim", "measured", "supported", "not_supported", "holds", "flips"])
    measured = table[pd.to_numeric(table["seeds"], errors="coerce").fillna(0) > 0]
    order = sorted(measured["claim"].unique(), key=lambda c: int(c[1:]))
    rows = []
    for claim in order:
        mine = measured[measured["claim"] == claim]
        robust = mine["robust"].map(robust_flag).ne(False) if "robust" in mine else pd.Series(True, index=mine.index)
        supported = mine.loc[(mine["verdict"] == "supported") & robust, "workload"].tolist()
        against = mine.loc[(mine["verdict"] == "not supported") & robust, "workload"].tolist()
        holds = ("everywhere" if len(supported) == len(mine) else "somewhere" if supported
                 else "nowhere" if against else "undecided")
        rows.append({"claim": claim, "measured": len(mine), "supported": len(supported), "not_supported": len(against),
                     "holds": holds, "flips": ", ".join(against) if supported and against else ""})
    return pd.DataFrame(rows)
