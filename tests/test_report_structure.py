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
    # every claim of a question is computed in that question's section
    for tag, cells in report.sections(nb):
        slug = report.question_of(tag)
        if slug:
            claim_ids = dict((s, ids) for s, _, ids in report.QUESTIONS)[slug]
            assert any("verdicts" in c.metadata.get("tags", []) or "closing(" in c.source for c in cells), slug
            assert claim_ids


def test_readme_results_are_the_ones_made_from_the_reference_run():
    from bsnb import report

    text = report.README.read_text()
    block = text.split(report.README_BEGIN, 1)[1].split(report.README_END, 1)[0]
    assert block.strip() == report.readme_block("quick").strip(), "run `bsnb readme quick` after `bsnb run quick`"


def test_a_question_page_drops_the_outputs_of_its_verdict_tables_only():
    import nbformat

    from bsnb import report

    cells = [nbformat.v4.new_code_cell("table", metadata={"tags": ["verdicts"]}),
             nbformat.v4.new_code_cell("figure")]
    for c in cells:
        c.outputs = [nbformat.v4.new_output("stream", text="shown")]
    kept = report.without_verdict_outputs(cells)
    assert kept[0].outputs == [] and kept[1].outputs and cells[0].outputs  # the notebook itself is unchanged
