"""The reference runs the README and docs/findings.md quote, and the tables written from them.

`bsnb readme PROFILE` copies a finished run's ``claims.csv`` and provenance to ``reports/reference/<profile>/``
and writes, from those files alone: the README's verdict table (compact: a row per claim) and docs/findings.md's
full table (every column of claims.csv) for the default profile, or docs/findings.md's matrix (claims as rows,
workloads as columns) for a workloads profile. Each block sits between markers; tests check each block against the
reference files, and every number docs/findings.md's reading quotes against them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bsnb import claims as claims_mod
from bsnb import parameters, results

README = parameters.ROOT / "README.md"
FINDINGS = parameters.ROOT / "docs" / "findings.md"
REFERENCE_DIR = parameters.REPORTS_DIR / "reference"
VERDICTS = ("<!-- verdicts:begin (written by `bsnb readme`) -->", "<!-- verdicts:end -->")  # README, compact
RESULTS = ("<!-- results:begin (written by `bsnb readme`) -->", "<!-- results:end -->")  # findings.md, every column
MATRIX = ("<!-- matrix:begin (written by `bsnb readme variants`) -->", "<!-- matrix:end -->")  # findings.md


def _cell(v) -> str:
    return "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v).replace("|", "\\|")


def _effect(r) -> str:
    if pd.notna(r.ci_low):
        return f"{r.effect:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
    return f"{r.effect:.3g}" if pd.notna(r.effect) else "n/a"


def _measured(info: dict) -> str:
    return (f"Measured by `{info.get('command', 'bsnb run')}` on {info.get('machine', 'an unstated machine')}, "
            f"torch {info.get('torch', '?')}, commit {info.get('commit', '?')}, {info.get('date', '')}; the study "
            f"took {info.get('study wall time', '?')}.")


def verdicts_markdown(claims_table: pd.DataFrame, info: dict) -> str:
    """The README's verdict table: a row per claim, its statement, verdict, robustness, effect and seeds."""
    lines = [_measured(info) + " Effect: the mean over seeds (geometric for ratios) with its 95% Student-t "
             "interval; robust: the label survives every check of the protocol.", "",
             "| claim | statement | verdict | robust | effect [95% interval] | seeds |", "|---|---|---|---|---|---|"]
    for r in claims_table.itertuples():
        robust = {True: "yes", False: "no"}.get(results.robust_flag(getattr(r, "robust", None)), "")
        statement = claims_mod.CLAIMS[r.claim].statement if r.claim in claims_mod.CLAIMS else ""
        lines.append(f"| {r.claim} | {_cell(statement)} | **{r.verdict}** | {robust} | {_effect(r)} | {r.seeds} |")
    return "\n".join(lines) + "\n"


def results_markdown(claims_table: pd.DataFrame, info: dict) -> str:
    """docs/findings.md's full table: where and how it was measured, and every column a reader needs per claim."""
    lines = [_measured(info) + " The effect is the mean over seeds (geometric for ratios) with its 95% Student-t "
             "interval.", "",
             "| claim | verdict | robust | effect [95% interval] | seeds | measure | ours | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in claims_table.itertuples():
        robust = {True: "yes", False: "no"}.get(results.robust_flag(getattr(r, "robust", None)), "")
        lines.append(f"| {r.claim} | **{r.verdict}** | {robust} | {_effect(r)} | {r.seeds} | {_cell(r.measure)} | "
                     f"{_cell(r.ours)} | {_cell(r.note)} |")
    return "\n".join(lines) + "\n"


def matrix_markdown(table: pd.DataFrame, info: dict) -> str:
    """docs/findings.md's matrix: claims as rows, workloads as columns (verdict, effect and interval, a dagger where
    the label is not robust), and where each holds, counting robust cells only."""
    workloads = list(dict.fromkeys(table["workload"]))
    summary = claims_mod.across_workloads(table).set_index("claim")
    lines = [_measured(info) + " Each cell: the verdict, the effect and its 95% interval (a dash: the workload's "
             "runs do not measure the claim; † the label is not robust).", "",
             "| claim | " + " | ".join(workloads) + " | holds |", "|---" * (len(workloads) + 2) + "|"]
    for claim in summary.index:
        cells = []
        for w in workloads:
            r = table[(table["workload"] == w) & (table["claim"] == claim)]
            if r.empty or not pd.to_numeric(r["seeds"], errors="coerce").fillna(0).iloc[0] > 0:
                cells.append("–")
                continue
            r = r.iloc[0]
            dagger = "" if results.robust_flag(r.get("robust")) in (True, None) else " †"
            cells.append(f"**{r.verdict}**{dagger} {_effect(r)}")
        s = summary.loc[claim]
        lines.append(f"| {claim} | " + " | ".join(cells) + f" | {s.holds} ({s.supported} of {s.measured}) |")
    return "\n".join(lines) + "\n"


def write_reference(out_dir: Path, profile_name: str) -> Path:
    """Copy a run's claims.csv and its provenance to ``reports/reference/<profile>/``."""
    from bsnb import report

    out_dir = Path(out_dir)
    ref = REFERENCE_DIR / profile_name
    claims_table = pd.read_csv(results.claims_path(out_dir))
    info = report.provenance(out_dir, None, {"command": f"bsnb run {profile_name}"})
    results.write_atomic(ref / results.CLAIMS_CSV, claims_table.to_csv(index=False))
    results.write_json(ref / "provenance.json", info)
    return ref


def reference(profile_name: str) -> tuple[pd.DataFrame, dict]:
    ref = REFERENCE_DIR / profile_name
    return pd.read_csv(ref / results.CLAIMS_CSV), results.read_json(ref / "provenance.json")


def blocks(profile_name: str) -> list[tuple[Path, tuple[str, str], str]]:
    """(file, markers, text) of every block a reference run writes."""
    table, info = reference(profile_name)
    if "workload" in table:
        return [(FINDINGS, MATRIX, matrix_markdown(table, info))]
    return [(README, VERDICTS, verdicts_markdown(table, info)), (FINDINGS, RESULTS, results_markdown(table, info))]


def block_in(path: Path, markers: tuple[str, str]) -> str:
    """The text between ``markers`` in ``path``."""
    return path.read_text().split(markers[0], 1)[1].split(markers[1], 1)[0]


def update(profile_name: str) -> list[Path]:
    """Replace each block the reference run of ``profile_name`` writes; returns the files written."""
    written = []
    for path, (begin, end), text in blocks(profile_name):
        head, rest = path.read_text().split(begin, 1)
        _, tail = rest.split(end, 1)
        results.write_atomic(path, head + begin + "\n" + text + end + tail)
        written.append(path)
    return written
