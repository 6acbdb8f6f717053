"""The registry of the claims: every claim's statement, rule, question, figure and ``compute``, collected from the
question modules in the order of the claims. Adding a claim is one :class:`~bsnb.claims.protocol.Claim` entry in
its question's module (and that module's function); the report's pages, notebook 05's sections, the README's
table and the sensitivity analysis all read this registry."""

from __future__ import annotations

import math

from bsnb.claims import q1_gradient_noise, q2_comparison, q3_sharpness, q4_closing
from bsnb.claims.protocol import PROTOCOL, Claim, Reading, Study
from bsnb.claims.verdict import Verdict, _fmt

QUESTIONS = (q1_gradient_noise, q2_comparison, q3_sharpness, q4_closing)  # the article's questions 1 to 4

CLAIMS: dict[str, Claim] = {c.id: c for c in sorted((c for q in QUESTIONS for c in q.CLAIMS),
                                                     key=lambda c: int(c.id[1:]))}
STATEMENTS = {c.id: c.statement for c in CLAIMS.values()}
FIGURES = {c.id: c.figure for c in CLAIMS.values()}


def question(study: Study, number: int, reading: Reading = PROTOCOL) -> list[Verdict]:
    """The verdicts of every claim of one of the article's questions (1 to 4), in the registry's order."""
    return [c.compute(study, reading) for c in CLAIMS.values() if c.question == number]


def robustness(study: Study, verdicts: list[Verdict]) -> list[Verdict]:
    """STUDY.md's sensitivity analysis: each verdict recomputed under its claim's alternative readings. A verdict
    is robust when every alternative gives its label; ``sensitivity`` says what each gave. A claim without
    alternatives (C3, C5) has none to fail, and is marked robust; an alternative that cannot be read from the
    store (a level no run reached) is named and left out."""
    out = []
    for v in verdicts:
        claim = CLAIMS.get(v.claim)
        found, missing = [], []
        for alt in (claim.alternatives if claim else ()):
            try:
                w = claim.compute(study, alt)
            except Exception as e:  # noqa: BLE001 - an alternative that cannot be computed is reported, not fatal
                missing.append(f"{alt.describe()} ({type(e).__name__})")
                continue
            if not math.isfinite(w.effect) and w.seeds == 0:
                missing.append(alt.describe())
                continue
            found.append(f"{alt.describe()}: {w.verdict}, {_fmt(w.effect)} [{_fmt(w.ci_low)}, {_fmt(w.ci_high)}]")
            if w.verdict != v.verdict:
                v.robust = False
        if v.robust is None:
            v.robust = True
        v.sensitivity = "; ".join(found + ([f"not readable: {', '.join(missing)}"] if missing else [])) or \
            "the protocol names no alternative reading"
        out.append(v)
    return out
