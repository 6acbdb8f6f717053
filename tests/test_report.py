"""The report stands alone: verdict table, inlined figures, working links, nothing from the network."""

import re
from urllib.parse import unquote

import pandas as pd
import pytest
from conftest import smoke_jobs

pytestmark = pytest.mark.slow


def pages(out):
    return [out / "index.html", *sorted((out / "pages").rglob("*.html"))]


def test_index_has_a_verdict_row_per_claim_and_every_run(smoke):
    out, _ = smoke
    html = (out / "index.html").read_text()
    for _, c in pd.read_csv(out / "claims.csv").iterrows():
        row = re.search(rf'<tr id="{c.claim}">(.*?)</tr>', html, re.S)
        assert row and f"badge {c.verdict.replace(' ', '-')}" in row.group(1)
    runs = [d for d in (out / "runs").iterdir() if d.is_dir()]
    assert len(runs) == smoke_jobs() and (out / "runs" / ".plan.json").is_file()
    for run in runs:
        assert f'href="pages/runs/{run.name}.html"' in html
    assert html.count('src="data:image/png;base64,') == len(list((out / "figures").glob("*.png"))) == 16


def test_nothing_is_fetched_from_the_network(smoke):
    out, _ = smoke
    for page in pages(out):
        html = page.read_text()
        assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html), page
        assert "@import" not in html and "<link" not in html


def test_every_internal_link_leads_to_a_file(smoke):
    out, _ = smoke
    for page in pages(out):
        for target in re.findall(r'href="([^"#:]+)"', page.read_text()):
            assert (page.parent / unquote(target)).resolve().exists(), (page, target)


def test_run_pages_show_parameters_and_outputs(smoke):
    out, _ = smoke
    run_pages = list((out / "pages" / "runs").glob("*.html"))
    assert len(run_pages) == smoke_jobs()
    for page in run_pages:
        html = page.read_text()
        assert "<th>batch_size</th>" in html and "data:image/png;base64," in html
        # the checked result table of each notebook
        expected = {"01-": "b_simple", "03-": "lambda_max"}.get(page.name[:3], "min_val_loss")
        assert expected in html
        assert "widget-state" not in html  # progress bars are plain text, readable in the report

