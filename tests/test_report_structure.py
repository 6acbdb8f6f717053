"""The report's structure and the README's results: found by tags, generated from a reference run (fast)."""

from bsnb import parameters


def test_sections_are_found_by_their_tags_not_their_headings():
    import jupytext

    from bsnb import report

    nb = jupytext.read(parameters.NOTEBOOKS_DIR / f"{parameters.FINDINGS}.py")
    for cell in nb.cells:  # rename every heading: no question may lose its section
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            cell.source = "## A heading a reader renamed\n" + cell.source.split("\n", 1)[-1]
    found = {report.question_of(tag) for tag, _ in report.sections(nb)} - {None}
    assert found == {slug for slug, _, _ in report.QUESTIONS}
    # every claim of a question is computed in that question's section, from the registry's entries for it
    from bsnb import claims

    numbers = {slug: k for k, (slug, _, _) in enumerate(report.QUESTIONS, start=1)}
    for tag, cells in report.sections(nb):
        slug = report.question_of(tag)
        if slug:
            verdict_cells = [c for c in cells if "verdicts" in c.metadata.get("tags", [])]
            assert any(f"claims.question(study, {numbers[slug]})" in c.source for c in verdict_cells), slug
    for slug, _, ids in report.QUESTIONS:
        assert ids and all(claims.CLAIMS[c].question == numbers[slug] for c in ids)
    assert sorted(c for _, _, ids in report.QUESTIONS for c in ids) == sorted(claims.CLAIMS)


def test_the_readme_and_findings_tables_are_the_ones_made_from_the_reference_runs():
    """README.md's verdict table and docs/findings.md's full table come from the default profile's reference run,
    docs/findings.md's matrix from the variants profile's: each block is what `bsnb readme` writes from those files."""
    from bsnb import readme

    for profile in ("quick", "variants"):
        for path, markers, text in readme.blocks(profile):
            assert readme.block_in(path, markers).strip() == text.strip(), \
                f"run `bsnb readme {profile}` after `bsnb run {profile}` ({path.name})"
    assert "| claim | mnist1d-cnn |" in readme.block_in(readme.FINDINGS, readme.MATRIX)
    assert "| claim | statement | verdict |" in readme.block_in(readme.README, readme.VERDICTS)


def test_a_question_page_drops_the_outputs_of_its_verdict_tables_only():
    import nbformat

    from bsnb import report

    cells = [nbformat.v4.new_code_cell("table", metadata={"tags": ["verdicts"]}),
             nbformat.v4.new_code_cell("figure")]
    for c in cells:
        c.outputs = [nbformat.v4.new_output("stream", text="shown")]
    kept = report.without_verdict_outputs(cells)
    assert kept[0].outputs == [] and kept[1].outputs and cells[0].outputs  # the notebook itself is unchanged


def test_library_warnings_are_logged_not_shown_and_progress_bars_stay(tmp_path):
    import nbformat

    from bsnb import report

    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=(
        "/lib/numpy/core.py:12: RuntimeWarning: invalid value encountered in subtract\n  a = b - c\n"
        "sharpness: 100%|##########| 8/8 [00:02<00:00]\n")),
        nbformat.v4.new_output("stream", name="stderr", text="/x.py:3: UserWarning: only this\n  y()\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    body = report.fragment(nb, tmp_path / "page.html", None)
    assert "RuntimeWarning" not in body and "UserWarning" not in body and "sharpness: 100%" in body
    logged = (tmp_path / "page.warnings.txt").read_text()
    assert "RuntimeWarning: invalid value" in logged and "UserWarning: only this" in logged
    assert len(nb.cells[0].outputs) == 2  # the notebook itself keeps everything


def test_the_overview_puts_each_claim_on_one_row_with_its_detail_on_demand():
    import pandas as pd

    from bsnb import report

    claims = pd.DataFrame([{"claim": "C2", "verdict": "supported", "effect": 1.42, "ci_low": 1.35, "ci_high": 1.49,
                            "seeds": 8, "robust": True, "statement": "Larger batches reach a worse minimum",
                            "measure": "ratio of smoothed minima", "ours": "small 0.286, large 0.406",
                            "published": "article: 0.344 vs 0.395", "note": "one run censored",
                            "sensitivity": "raw minima: supported"}])
    html = report.verdict_table(claims, {"minima": "q2-empirical-comparison"})
    row = html.split('<tr id="C2">', 1)[1].split("</tr>", 1)[0]
    visible, detail = row.split("<details>", 1)[0] + row.split("</details>", 1)[1], row.split("<details>", 1)[1]
    for shown in ("Larger batches reach a worse minimum", "badge supported", "robust", "1.42 [1.35, 1.49]",
                  "article: 0.344 vs 0.395", "#fig-minima"):
        assert shown in visible, shown
    for hidden in ("ratio of smoothed minima", "small 0.286, large 0.406", "one run censored"):
        assert hidden in detail and hidden not in visible, hidden
    assert "raw minima: supported" in detail and 'title="raw minima: supported"' in visible  # and on hover


def test_every_decimal_the_reading_quotes_of_the_reference_runs_is_in_their_claims():
    """docs/findings.md's reading of the reference runs, claim by claim, and the README's lines on the central
    question quote only numbers that the runs' claims.csv hold, as written there or as the generated tables round
    them (a number typed in, or left from an older run, fails)."""
    import re

    from bsnb import readme

    held = "".join((readme.REFERENCE_DIR / p / "claims.csv").read_text() for p in ("quick", "variants"))
    held += readme.block_in(readme.FINDINGS, readme.RESULTS) + readme.block_in(readme.FINDINGS, readme.MATRIX)
    findings = readme.FINDINGS.read_text()
    readings = [findings.split(readme.RESULTS[1], 1)[1].split(readme.MATRIX[0], 1)[0],
                findings.split(readme.MATRIX[1], 1)[1],
                readme.README.read_text().split("## What the study found", 1)[1].split(readme.VERDICTS[0], 1)[0]]
    quoted = [q for text in readings for q in re.findall(r"(?<![\w.])-?\d+\.\d+(?![\w.])", text)]
    assert len(quoted) >= 10
    missing = [q for q in quoted if not re.search(rf"(?<![\w.]){re.escape(q)}(?![\d])", held)]
    assert not missing, f"the reading quotes numbers its reference runs' claims.csv do not hold: {missing}"


def test_provenance_names_a_version_when_bsnb_runs_from_a_checkout_never_installed(monkeypatch):
    # a GPU machine that cannot reach a package index runs bsnb from PYTHONPATH: no installed metadata
    from importlib import metadata

    from bsnb import report

    real = metadata.version

    def version(name):
        if name == "bsnb":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(report.metadata, "version", version)
    v = report.bsnb_version()
    assert v.startswith("0.") and "not installed" in v


def test_provenance_names_the_commit_that_ran_the_study_not_the_one_that_rebuilt_it(tmp_path):
    """A reference run made in one checkout and quoted from another (`bsnb readme --out`) keeps the commit the sweep
    recorded; the same checkout names one commit."""
    from bsnb import report, results, sources

    results.write_json(tmp_path / "logs" / "timings.json", {"commit": "abc1234", "finished": "2026-12-07 04:00 UTC",
                                                           "total": 10.0, "jobs": 8.0, "workers": 2})
    info = report.provenance(tmp_path, None, None)
    assert info["commit"].startswith("abc1234 (the runs; findings and report by ") and info["date"].startswith("2026-12-07")
    results.write_json(tmp_path / "logs" / "timings.json", {"commit": sources.code_commit(), "total": 10.0, "jobs": 8.0,
                                                           "workers": 2})
    assert report.provenance(tmp_path, None, None)["commit"] == sources.code_commit()
    results.write_json(tmp_path / "logs" / "timings.json", {"total": 10.0, "jobs": 8.0, "workers": 2})  # an older sweep
    assert "the sweep that made the runs recorded no commit" in report.provenance(tmp_path, None, None)["commit"]


def test_the_findings_headings_name_the_claims_the_registry_gives_each_question():
    """Notebook 05's question headings list their claims; the registry is the one list, and this keeps them equal."""
    import re

    import jupytext

    from bsnb import claims, report

    nb = jupytext.read(parameters.NOTEBOOKS_DIR / f"{parameters.FINDINGS}.py")
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    listed = []
    for h in headings:
        m = re.search(r"\(claims ([^)]*)\)", h)
        if m:
            ids = set()
            for part in re.split(r", | and ", m.group(1)):
                a = re.fullmatch(r"C(\d+) to C(\d+)", part)
                ids |= {f"C{i}" for i in range(int(a[1]), int(a[2]) + 1)} if a else {part}
            listed.append(ids)
    assert listed == [set(ids) for _, _, ids in report.QUESTIONS]
    assert set().union(*listed) == set(claims.CLAIMS)


def test_every_page_of_docs_is_linked_from_the_readme_and_from_each_report_page():
    from bsnb import readme, report

    pages = sorted((parameters.ROOT / "docs").glob("*.md"))
    assert len(pages) >= 6
    text = readme.README.read_text()
    for doc in pages:
        assert f"](docs/{doc.name})" in text, doc.name
        assert f'href="{doc.as_uri()}"' in report.DOCS, doc.name
