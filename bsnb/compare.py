"""Two finished studies set side by side, claim by claim: did the labels hold, and does each effect lie in the
other's interval? For a user who reruns the study on another machine (another CPU, torch build or GPU) or with
``stack: off`` (other float rounding), and wants to see what moved.

Reads the two ``claims.csv`` files the findings wrote; computes nothing new.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bsnb import results


def read_claims(path: str | Path) -> pd.DataFrame:
    """A study's verdicts, from its ``claims.csv`` or the folder holding it."""
    p = Path(path)
    p = results.claims_path(p) if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist: give a study's folder (its --out) or its claims.csv")
    return pd.read_csv(p).set_index("claim")


def _inside(x: float, lo: float, hi: float) -> bool | None:
    if not all(map(math.isfinite, (x, lo, hi))):
        return None
    return lo <= x <= hi


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of either study: each one's verdict, effect and interval, whether the label changed, and
    whether each effect lies inside the other's interval (None where an effect or interval is missing)."""
    rows = []
    for claim in sorted(set(a.index) | set(b.index), key=lambda c: int(c[1:])):
        ra, rb = (a.loc[claim] if claim in a.index else None), (b.loc[claim] if claim in b.index else None)
        row = {"claim": claim}
        for tag, r in (("a", ra), ("b", rb)):
            row.update({f"verdict_{tag}": r["verdict"] if r is not None else "absent",
                        f"effect_{tag}": float(r["effect"]) if r is not None else math.nan,
                        f"ci_low_{tag}": float(r["ci_low"]) if r is not None else math.nan,
                        f"ci_high_{tag}": float(r["ci_high"]) if r is not None else math.nan,
                        f"robust_{tag}": bool(r["robust"]) if r is not None and "robust" in r and pd.notna(r["robust"])
                        else None})
        row["label_changed"] = row["verdict_a"] != row["verdict_b"]
        row["a_in_b"] = _inside(row["effect_a"], row["ci_low_b"], row["ci_high_b"])
        row["b_in_a"] = _inside(row["effect_b"], row["ci_low_a"], row["ci_high_a"])
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def summary(table: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> str:
    """The comparison as text: one line per claim, then how many labels changed and which of them were robust."""
    mark = {True: "yes", False: "NO", None: "-"}
    lines = [f"A: {name_a}", f"B: {name_b}",
             f"{'claim':5s}  {'A':36s}  {'B':36s}  label    A in B's  B in A's"]
    for r in table.itertuples():
        cell = {t: f"{getattr(r, 'verdict_' + t)[:13]:13s} {_fmt(getattr(r, 'effect_' + t))} "
                   f"[{_fmt(getattr(r, 'ci_low_' + t))}, {_fmt(getattr(r, 'ci_high_' + t))}]" for t in "ab"}
        lines.append(f"{r.claim:5s}  {cell['a']:36s}  {cell['b']:36s}  "
                     f"{'CHANGED' if r.label_changed else 'same':7s}  {mark[r.a_in_b]:8s}  {mark[r.b_in_a]}")
    changed = table[table["label_changed"]]
    robust = changed[(changed["robust_a"] == True) & (changed["robust_b"] == True)]  # noqa: E712
    lines.append(f"{len(changed)} of {len(table)} labels changed"
                 + (f" ({', '.join(changed['claim'])})" if len(changed) else "")
                 + (f"; {len(robust)} of them robust in both studies ({', '.join(robust['claim'])}): the protocol "
                    "promises that a robust label holds" if len(robust) else
                    "; none of the changed labels was robust in both studies" if len(changed) else ""))
    outside = table[(table["a_in_b"] == False) | (table["b_in_a"] == False)]  # noqa: E712
    lines.append(f"{len(outside)} effect(s) outside the other study's interval"
                 + (f" ({', '.join(outside['claim'])})" if len(outside) else ""))
    return "\n".join(lines)
