"""The smoke report in a real browser: headless Chromium opens it from file:// and checks what a reader sees."""

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from conftest import CHROMIUM, DRIVER, REQUIRE_BROWSER, headless_chromium, smoke_jobs

pytestmark = pytest.mark.slow
if not (CHROMIUM and DRIVER) and not REQUIRE_BROWSER:
    pytestmark = [pytest.mark.slow, pytest.mark.skip(reason="needs Debian's chromium and chromium-driver "
                                                            "(.ci/run installs them)")]


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium("1300,1000", logs=True)
    yield driver
    driver.quit()


def site_pages(out: Path) -> list[Path]:
    return [out / "index.html", *sorted((out / "pages").rglob("*.html"))]


def visit(driver, path: Path) -> dict:
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get(path.as_uri())
    requests = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"]
    return {
        "errors": [e for e in driver.get_log("browser") if e["level"] == "SEVERE"],
        "broken_images": driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"),
        "links": driver.execute_script("return Array.from(document.links).map(a => a.href)"),
        "requests": urls,
    }


def test_every_page_loads_cleanly_offline_with_working_images_and_links(smoke, browser):
    out, _ = smoke
    pages = site_pages(out)
    assert len(pages) == 1 + 4 + 2 + smoke_jobs()  # overview, questions, runs and findings pages, a page per run
    for page in pages:
        seen = visit(browser, page)
        assert not seen["errors"], (page, seen["errors"])
        assert not seen["broken_images"], (page, seen["broken_images"])
        outside = [u for u in seen["requests"] if not u.startswith(("file:", "data:"))]
        assert not outside, (page, outside)  # nothing is fetched from the network
        for link in seen["links"]:
            url = urlparse(link)
            assert url.scheme == "file", (page, link)  # no link leaves the report
            target = Path(unquote(url.path))
            assert target.exists(), (page, link)
            if url.fragment and target.suffix == ".html":
                assert f'id="{url.fragment}"' in target.read_text(), (page, link)


def test_the_verdict_table_has_a_row_per_claim_and_links_its_figure(smoke, browser):
    out, _ = smoke
    claims = pd.read_csv(out / "claims.csv")
    browser.get((out / "index.html").as_uri())
    rows = browser.find_elements("css selector", "table.verdicts tr[id]")
    assert [r.get_attribute("id") for r in rows] == list(claims["claim"])
    for row, (_, claim) in zip(rows, claims.iterrows()):
        assert claim["verdict"] in row.text
    figure_links = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.verdicts a')).map(a => a.getAttribute('href'))")
    assert any(re.search(r"pages/q2-empirical-comparison\.html#fig-minima$", h) for h in figure_links)
    browser.save_screenshot(str(out / "screenshot-index.png"))
    assert (out / "screenshot-index.png").stat().st_size > 10_000


def test_code_is_hidden_until_asked_for(smoke, browser):
    out, _ = smoke
    browser.get((out / "pages" / "q2-empirical-comparison.html").as_uri())
    code = browser.find_elements("css selector", "div.input")
    assert code and not any(c.is_displayed() for c in code)
    button = browser.find_element("id", "toggle-code")
    button.click()
    assert all(c.is_displayed() for c in code[:3]) and button.text == "Hide code"
