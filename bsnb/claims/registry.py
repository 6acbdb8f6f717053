"""The registry of the claims: every claim's statement, rule, question, figure and ``compute``, collected from the
question modules in the order of the claims. Adding a claim is one :class:`~bsnb.claims.protocol.Claim` entry in
its question's module (and that module's function); the report's pages, notebook 05's sections, the README's
table and the sensitivity analysis all read this registry."""

from __future__ import annotations

import math

from bsnb.claims import q1_gradient_noise, q2_comparison, q3_sharpness, q4_closing, q4_tuning
from bsnb.claims.protocol import PROTOCOL, Claim, Reading, Study, comparison_rate_problem
from bsnb.claims.verdict import Verdict, fmt
from bsnb.stats import NOT_RUN

QUESTIONS = (q1_gradient_noise, q2_comparison, q3_sharpness, q4_closing, q4_tuning)  # questions 1 to 4

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


LEAVE_ONE_OUT_SEEDS = 5  # fewer seeds than this: the one-seed-left-out check is not made, and no label is robust
FAMILY_ALPHA = 0.05  # the Bonferroni level is 1 - FAMILY_ALPHA / K, K the claims the profile decides


def robustness(study: Study, verdicts: list[Verdict]) -> list[Verdict]:
    """The protocol's sensitivity, multiplicity and stability checks: each verdict recomputed under its claim's
    alternative readings, at the Bonferroni level 1 - 0.05/K (K: the claims the profile decides), and with each seed
    left out in turn. A verdict is robust when every check gives its label; ``sensitivity`` says what each gave and
    which moved the label. With fewer than 5 seeds the seed check is not made and the claim is not robust; a claim
    without alternatives still faces the other two checks. An alternative that cannot be read from the store (a
    level no run reached) is named and left out. A claim not run has no verdict to check."""
    decided = [v for v in verdicts if v.verdict != NOT_RUN]
    strict = study.at_confidence(1 - (1 - study.confidence) / max(1, len(decided)) if decided else study.confidence)
    left_out: dict[int, Study] = {}  # one seed left out, built once for every claim
    rate = comparison_rate_problem(study.runs(), study.small_batch)
    confirmation_only = study.confirmation_only_seeds()
    out = []
    for v in verdicts:
        claim = CLAIMS.get(v.claim)
        if v.verdict == NOT_RUN:  # no verdict, so nothing to be robust about
            v.sensitivity = "not run in this profile"
            out.append(v)
            continue
        found, missing, moved = [], [], []
        for alt in (claim.alternatives if claim else ()):
            try:
                w = claim.compute(study, alt)
            except Exception as e:  # noqa: BLE001 - an alternative that cannot be computed is reported, not fatal
                missing.append(f"{alt.describe()} ({type(e).__name__})")
                continue
            if not math.isfinite(w.effect) and w.seeds == 0:
                missing.append(alt.describe())
                continue
            found.append(f"{alt.describe()}: {w.verdict}, {fmt(w.effect)} [{fmt(w.ci_low)}, {fmt(w.ci_high)}]")
            if w.verdict != v.verdict:
                moved.append(alt.describe())
        if claim is not None and claim.at_comparison_rate and rate:
            found.append(rate)
            moved.append("the comparison's rate (not the small batch's chosen rate)")
        if claim is not None:
            w = claim.compute(strict, PROTOCOL)
            found.append(f"Bonferroni ({strict.confidence:.4g}, K = {len(decided)}): {w.verdict}, "
                         f"[{fmt(w.ci_low)}, {fmt(w.ci_high)}]")
            if w.verdict != v.verdict:
                moved.append("the Bonferroni level")
            if v.seeds < LEAVE_ONE_OUT_SEEDS:
                found.append(f"one seed left out: not made ({v.seeds} seeds, fewer than {LEAVE_ONE_OUT_SEEDS})")
                moved.append("too few seeds to leave one out")
            else:
                flips = []
                # a claim is checked on the seeds it reads: C15, where confirmation runs decide it, on those alone
                # (leaving out a seed it does not read cannot move it, and would count as a check passed)
                seeds = sorted(confirmation_only) if claim.reads_confirmation and confirmation_only else \
                    [s for s in study.seed_ids() if s not in confirmation_only]
                for seed in seeds:
                    if seed not in left_out:
                        left_out[seed] = study.without_seed(seed)
                    w = claim.compute(left_out[seed], PROTOCOL)
                    if w.verdict != v.verdict:
                        flips.append(f"seed {seed} ({w.verdict})")
                found.append("one seed left out: " + (f"the label moves without {', '.join(flips)}" if flips else
                                                      f"the same label without any one of {len(seeds)}"))
                if flips:
                    moved.append("one seed left out")
        v.robust = not moved
        v.sensitivity = "; ".join(([f"moved by {', '.join(moved)}"] if moved else [])
                                  + found + ([f"not readable: {', '.join(missing)}"] if missing else [])) or \
            "the protocol names no alternative reading"
        out.append(v)
    return out
