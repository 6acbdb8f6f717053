"""The benchmark scripts' own arithmetic, on the smoke study the test session runs once."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


@pytest.mark.slow
def test_then_and_now_of_a_study_against_itself(smoke):
    """``quick_profile.py --then``: a study set beside itself has every ratio 1, and the floor is its own training
    steps and measurements over its own job seconds, from the same per-job phases the profile prints."""
    import quick_profile as bench

    out, _ = smoke
    lines = bench.then_and_now(out, out)
    rows = {m.group(1).strip(): (float(m.group(2)), float(m.group(3)), float(m.group(4)))
            for m in (re.match(r"(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+|nan)$", line) for line in lines[2:]) if m}
    for part in (*bench.PARTS, "total", "all"):
        then, now, ratio = rows[part]
        assert then == now
        assert ratio == 1.0 or (then == 0 and ratio != ratio)  # nan where a phase took no time
    _, _, phases = bench._last_sweep(out)
    total = sum(p["total"] for p in phases.values())
    floor = sum(p["training"] + p["measurement"] for p in phases.values()) / total
    assert rows["all"][0] > 0  # the smoke study trained
    assert lines[-1].endswith(f"{total:.0f} job-s") and f"{floor:.2f}x" in lines[-1]


def test_same_numbers_names_each_differing_column_and_leaves_timings_out():
    import pandas as pd
    import same_numbers

    a = pd.DataFrame({"epoch": [1, 2], "val_loss": [0.5, 0.4], "seconds": [1.0, 1.1], "note": ["x", "y"]})
    assert same_numbers.differences(a, a.assign(seconds=[9.0, 9.0])) == []  # a timing is not a number of the study
    b = a.assign(val_loss=[0.5, 0.40001], note=["x", "z"])
    assert same_numbers.differences(a, b) == ["note", "val_loss (largest difference 1e-05)"]
    assert same_numbers.differences(a, a.iloc[:1]) == ["2 rows against 1"]
