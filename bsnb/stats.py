"""Statistics of the verdicts: intervals over seeds, the verdict rules, censoring, and the distance laws.

Every claim's effect is paired by seed. Its interval is a Student-t interval over the usable
seeds (on the log scale for ratios). A verdict needs at least :data:`MIN_SEEDS` usable seeds and
an interval with some spread: an interval of zero width from identical values is no evidence of
anything (``interval([25, 25, 25])`` is [25, 25]), so it gives "inconclusive" with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
NOT_RUN = "not run in this profile"  # a claim the profile has no runs for: no verdict at all
MIN_SEEDS = 3


def usable(values, log: bool = False) -> np.ndarray:
    """The values an interval can use: finite, and positive on a log scale."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v[v > 0] if log else v


def interval(values, confidence: float = 0.95, log: bool = False) -> tuple[float, float, float, int]:
    """Mean and Student-t confidence interval of the usable ``values`` (geometric mean and interval if ``log``)."""
    v = usable(values, log)
    if log:
        v = np.log(v)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        lo = hi = math.nan
    else:
        half = float(sps.t.ppf((1 + confidence) / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
        lo, hi = mean - half, mean + half
    if log:
        return math.exp(mean), math.exp(lo) if n > 1 else math.nan, math.exp(hi) if n > 1 else math.nan, n
    return mean, lo, hi, n


def fieller(numerator, denominator, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Ratio of the means of two paired series, mean(numerator) / mean(denominator), with Fieller's interval.

    The interval is the set of ratios r for which mean(numerator - r denominator) is not distinguishable from 0 by a
    paired t test. It is bounded only when the denominator's mean is itself clear of 0; otherwise the ends are
    infinite (a gap that might be 0 makes any share possible).
    """
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    if n < 2 or b.mean() == 0:
        return (float(a.mean() / b.mean()) if n and b.mean() != 0 else math.nan), math.nan, math.nan, n
    t2 = float(sps.t.ppf((1 + confidence) / 2, n - 1)) ** 2
    ma, mb = a.mean(), b.mean()
    vaa, vbb, vab = np.var(a, ddof=1) / n, np.var(b, ddof=1) / n, np.cov(a, b, ddof=1)[0, 1] / n
    # (ma - r mb)^2 = t2 (vaa - 2 r vab + r^2 vbb): a quadratic q2 r^2 + q1 r + q0 <= 0
    q2, q1, q0 = mb ** 2 - t2 * vbb, -2 * (ma * mb - t2 * vab), ma ** 2 - t2 * vaa
    ratio = float(ma / mb)
    disc = q1 ** 2 - 4 * q2 * q0
    if q2 <= 0 or disc < 0:  # the denominator is not clear of 0: unbounded
        return ratio, -math.inf, math.inf, n
    root = math.sqrt(disc)
    return ratio, float((-q1 - root) / (2 * q2)), float((-q1 + root) / (2 * q2)), n


def decide_gated_contrast(gap: tuple[float, float], contrast: tuple[float, float], n: int) -> str:
    """A remedy's per-seed contrast, decided only where there is a gap to close (its interval above 0): supported when
    the contrast's upper end is below 0, not supported when its lower end is above 0 (docs/protocol.md, C8 and C9)."""
    (gap_lo, _), (lo, hi) = gap, contrast
    if evidence_problem(lo, hi, n) or not (math.isfinite(gap_lo) and gap_lo > 0):
        return INCONCLUSIVE
    return SUPPORTED if hi < 0 else NOT_SUPPORTED if lo > 0 else INCONCLUSIVE


def evidence_problem(lo: float, hi: float, n: int) -> str | None:
    """Why an interval cannot decide anything, or None when it can."""
    if n < MIN_SEEDS:
        return f"only {n} usable seed{'s' if n != 1 else ''}: a verdict needs at least {MIN_SEEDS}"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "the interval is not defined"
    if hi == lo:
        return f"every seed gave the same value ({lo:.4g}): an interval of zero width is no evidence"
    return None


def dropped_note(values, log: bool = False, what: str = "value") -> str:
    """Says how many values the interval could not use, and why (empty when none)."""
    v = np.asarray(values, dtype=float)
    n_bad = int((~np.isfinite(v)).sum())
    n_neg = int((np.isfinite(v) & (v <= 0)).sum()) if log else 0
    parts = []
    if n_bad:
        parts.append(f"{n_bad} non-finite {what}{'s' if n_bad > 1 else ''} dropped")
    if n_neg:
        parts.append(f"{n_neg} non-positive {what}{'s' if n_neg > 1 else ''} dropped from the log scale")
    return "; ".join(parts)


def decide(lo: float, hi: float, null: float, direction: str, n: int) -> str:
    """The verdict implied by an interval [lo, hi] for a claim that the effect is ``direction`` of ``null``.

    ``direction`` is ``greater``, ``less``, or ``at_least`` (the effect is not below ``null``).
    """
    if evidence_problem(lo, hi, n):
        return INCONCLUSIVE
    if direction == "greater":
        return SUPPORTED if lo > null else NOT_SUPPORTED if hi < null else INCONCLUSIVE
    if direction == "less":
        return SUPPORTED if hi < null else NOT_SUPPORTED if lo > null else INCONCLUSIVE
    if direction == "at_least":
        return SUPPORTED if lo >= null else NOT_SUPPORTED if hi < null else INCONCLUSIVE
    raise ValueError(f"direction = {direction!r}: expected greater, less or at_least")


def decide_within(lo: float, hi: float, low: float, high: float, n: int) -> str:
    """Verdict of an equivalence claim: the effect lies within [low, high]."""
    if evidence_problem(lo, hi, n):
        return INCONCLUSIVE
    if low <= lo and hi <= high:
        return SUPPORTED
    if hi < low or lo > high:
        return NOT_SUPPORTED
    return INCONCLUSIVE


# ------------------------------------------------------------------------------------------------
# censoring: a minimum the budget ended before confirming is only a bound


def censoring_bias(up: bool, down: bool) -> str | None:
    """``up``: a censored run may have made the measured effect larger than the truth; ``down``: smaller."""
    return "both" if up and down else "up" if up else "down" if down else None


def withdraw_if_censored(verdict: str, direction: str, bias: str | None) -> str:
    """The verdict, or inconclusive when censoring could have produced its direction.

    A censored run's minimum is an upper bound of its true minimum, so it biases an effect one way
    (``bias``: the measured effect may be larger than the truth, ``up``; smaller, ``down``; ``both``).
    A verdict that rests on the effect being large (supported for ``greater``/``at_least``, not
    supported for ``less``) is withdrawn under an upward bias, and the other way round; a verdict
    drawn against the bias stands, since the truth lies further in its direction.
    """
    if bias is None or verdict == INCONCLUSIVE:
        return verdict
    rests_on_large = (verdict == SUPPORTED) == (direction in ("greater", "at_least"))
    if bias == "both" or (bias == "up" and rests_on_large) or (bias == "down" and not rests_on_large):
        return INCONCLUSIVE
    return verdict


# ------------------------------------------------------------------------------------------------
# distance from initialisation: log(t) against sqrt(t) (Hoffer et al. 2017), out of sample

LAWS = {"log": np.log, "sqrt": np.sqrt}


@dataclass
class LawFit:
    law: str
    a: float
    b: float
    rmse_out: float  # root-mean-square error on the held-out later steps


def fit_law(t, d, law: str, train_share: float = 0.7) -> LawFit:
    """Fit d = a + b f(t) on the first ``train_share`` of the points (in step order), score on the rest."""
    t, d = np.asarray(t, float), np.asarray(d, float)
    order = np.argsort(t)
    t, d = t[order], d[order]
    cut = max(2, int(round(len(t) * train_share)))
    x = LAWS[law](t)
    b, a = np.polyfit(x[:cut], d[:cut], 1)
    rest = d[cut:] - (a + b * x[cut:])
    return LawFit(law, float(a), float(b), float(np.sqrt(np.mean(rest ** 2))) if len(rest) else math.nan)


def power_exponent(t, d) -> float:
    """The exponent c of d = a + b t^c fitted by least squares (c near 0 reads as logarithmic, 0.5 as a random walk)."""
    from scipy.optimize import curve_fit

    t, d = np.asarray(t, float), np.asarray(d, float)
    t = t / t.max()
    try:
        (a, b, c), _ = curve_fit(lambda x, a, b, c: a + b * x ** c, t, d, p0=[d.min(), d.max() - d.min(), 0.3],
                                 bounds=([-np.inf, 0, 1e-4], [np.inf, np.inf, 3]), maxfev=20000)
    except (RuntimeError, ValueError):
        return math.nan
    return float(c)
