"""The registry of the claims: every claim's statement, rule, question, figure and ``compute``, collected from the
question modules in the order of the claims. Adding a claim is one :class:`~bsnb.claims.protocol.Claim` entry in
its question's module (and that module's function); the report's pages, notebook 05's sections, the README's
table and the sensitivity analysis all read this registry."""

from __future__ import annotations

import math

from bsnb.claims import q1_gradient_noise, q2_comparison, q3_sharpness, q4_closing
from bsnb.claims.protocol import PROTOCOL, Claim, Reading, Study
from bsnb.claims.verdict import Verdict, _fmt
from bsnb.stats import NOT_RUN

QUESTIONS = (q1_gradient_noise, q2_comparison, q3_sharpness, q4_closing)  # the article's questions 1 to 4

CLAIMS: dict[str, Claim] = {c.id: c for c in sorted((c for q in QUESTIONS for c in q.CLAIMS),
                                                     key=lambda c: int(c.id[1:]))}
STATEMENTS = {c.id: c.statement for c in CLAIMS.values()}
FIGURES = {c.id: c.figure for c in CLAIMS.values()}


def question(study: Study, number: int, reading: Reading = PROTOCOL) -> list[Verdict]:
    """The verdicts of every claim of one of the article's questions (1 to 4), in the registry's order; a claim the
    profile ran nothing for is listed as not run, never as an inconclusive verdict."""
    return [decide_claim(c, study, reading) for c in CLAIMS.values() if c.question == number]


def decide_claim(claim: Claim, study: Study, reading: Reading = PROTOCOL) -> Verdict:
    """``claim``'s verdict on ``study``, or :data:`~bsnb.stats.NOT_RUN` when the profile has no runs it measures."""
    if claim.needs is not None and not claim.needs(study.runs(reading)):
        return Verdict(claim.id, NOT_RUN, math.nan, math.nan, math.nan, 0, claim.statement, "",
                       note="the profile has no runs that measure this claim")
    return claim.compute(study, reading)


def robustness(study: Study, verdicts: list[Verdict]) -> list[Verdict]:
    """the protocol's sensitivity analysis: each verdict recomputed under its claim's alternative readings. A verdict
    is robust when every alternative gives its label; ``sensitivity`` says what each gave. A claim without
    alternatives (C3, C5) has none to fail, and is marked robust; an alternative that cannot be read from the
    store (a level no run reached) is named and left out."""
    out = []
    for v in verdicts:
        claim = CLAIMS.get(v.claim)
        if v.verdict == NOT_RUN:  # no verdict, so nothing to be robust about
            v.sensitivity = "not run in this profile"
            out.append(v)
            continue
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
