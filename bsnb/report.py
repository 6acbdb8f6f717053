"""The HTML report: a small static site that stands alone (opens from file://, fetches nothing).

    <out>/index.html                        the verdict table of every claim, the questions, how it was produced
    <out>/pages/q<N>-<question>.html        one page per question of the article, cut from the findings notebook
    <out>/pages/findings.html               the whole findings notebook
    <out>/pages/runs.html                   every run with its parameters and status (failures with their error)
    <out>/pages/runs/<job>.html             each run's executed notebook
    <out>/figures/<name>.{png,svg,txt}      every figure, with its caption

Notebooks are converted with nbconvert's ``basic`` template (a body fragment) and wrapped here in a
page with its own inline style and a few lines of inline script (the code toggle): the ``lab``
template would pull require.js and MathJax from a CDN. Code is hidden until "Show code" is pressed.
Every page ends with how it was produced. Converted fragments are cached beside the pages, so a
rebuild converts only the notebooks that changed.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import platform
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pandas as pd

from bsnb import claims as claims_mod
from bsnb import minima, parameters, profiles, results, sources

# The article's questions: page slug, title, and the claims each answers. The findings notebook's
# section cells carry the slug as a cell tag, which is how a section finds its page.
# Which claims a question answers comes from the claims' registry (each claim names its question).
QUESTIONS = [(slug, title, tuple(c.id for c in claims_mod.CLAIMS.values() if c.question == number))
             for number, (slug, title) in enumerate([
                 ("q1-what-is-batch-size", "What is batch size, and why does it matter?"),
                 ("q2-empirical-comparison", "How do small and large batches perform?"),
                 ("q3-sharpness", "Why do large batches do worse?"),
                 ("q4-closing-the-gap", "How can the gap be closed?")], start=1)]

STYLE = (Path(__file__).with_name("report.css")).read_text()  # inlined into every page: it opens offline

SCRIPT = """document.getElementById('toggle-code').addEventListener('click', function () {
  var on = document.body.classList.toggle('show-code');
  this.textContent = on ? 'Hide code' : 'Show code';
});"""


def _nav(current: str, depth: int, matrix: bool = False) -> str:
    up = "../" * depth
    links = [("index", f"{up}index.html", "Overview")]
    links += [(slug, f"{up}pages/{slug}.html", f"{i + 1}. {title.split(',')[0].split('?')[0]}")
              for i, (slug, title, _) in enumerate(QUESTIONS)]
    links += [("matrix", f"{up}pages/matrix.html", "Workloads")] if matrix else []
    links += [("runs", f"{up}pages/runs.html", "Runs"), ("findings", f"{up}pages/findings.html", "Findings notebook")]
    return "".join(f'<a href="{href}"{" class=here" if key == current else ""}>{html.escape(text)}</a>'
                   for key, href, text in links)


# the manual beside the report: the protocol its verdicts follow, and the pages of docs/ (in the checkout that wrote
# it; the links name files, nothing is fetched)
DOCS = "The rules every verdict here follows: " + " &middot; ".join(
    f'<a href="{(parameters.ROOT / "docs" / name).as_uri()}">{label}</a>' for name, label in
    (("protocol.md", "the protocol"), ("findings.md", "the findings read claim by claim"),
     ("running.md", "running a study"), ("data.md", "data and workloads"), ("scaling.md", "scaling out"),
     ("contributing.md", "contributing")))


def page(title: str, body: str, info: dict, current: str = "", depth: int = 0, code: bool = False,
         matrix: bool | None = None) -> str:
    """A whole page: navigation, the body, and how it was produced; ``code`` adds the show-code toggle; ``matrix``
    links the workloads' page (by default where the study has several workloads, ``info['workloads']``)."""
    matrix = bool(info.get("workloads")) if matrix is None else matrix
    toggle = '<button id="toggle-code" type="button">Show code</button>' if code else ""
    footer = " &middot; ".join(f"<b>{html.escape(k)}</b> {html.escape(str(v))}" for k, v in info.items())
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><header>{toggle}<nav>{_nav(current, depth, matrix)}</nav><h1>{html.escape(title)}</h1></header>\n"
            f"<main>\n{body}\n<footer>How this page was produced: {footer}<br>{DOCS}</footer></main>"
            + (f"<script>{SCRIPT}</script>" if code else "") + "</body></html>\n")


# ------------------------------------------------------------------------------------------------
# notebooks


def fragment(nb, cache: Path | None = None, source: Path | None = None) -> str:
    """A notebook (node) as an HTML body fragment, images inlined; cached in ``cache`` when it is newer than ``source``."""
    if cache is not None and source is not None and cache.exists() and cache.stat().st_mtime >= source.stat().st_mtime:
        return cache.read_text()
    from nbconvert import HTMLExporter

    nb, warned = without_warnings(nb)
    body, _ = HTMLExporter(template_name="basic").from_notebook_node(nb)
    if cache is not None:
        results.write_atomic(cache, body)
        if warned:  # logged beside the page, never shown on it
            results.write_atomic(cache.with_suffix(".warnings.txt"), "".join(warned))
    return body


WARNING = re.compile(r"^[^\n]*:\d+: \w*Warning: [^\n]*\n(?:[ \t]+[^\n]*\n)?", re.M)


def without_warnings(nb) -> tuple:
    """A copy of ``nb`` whose stderr outputs have lost the warnings a library printed (``file:line: XWarning:
    message`` and the source line under it), and the warnings taken out. Progress bars and errors stay."""
    import copy

    nb, warned = copy.deepcopy(nb), []
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                warned += WARNING.findall(text if text.endswith("\n") else text + "\n")
                out["text"] = WARNING.sub("", text if text.endswith("\n") else text + "\n")
                if not out["text"].strip():
                    continue
            kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    return nb, warned


SECTION_TAGS = {slug for slug, _, _ in QUESTIONS} | {"all-verdicts"}


def sections(nb) -> list[tuple[str, list]]:
    """Cut the findings notebook at its section cells, the markdown cells tagged with a question's slug (or
    ``all-verdicts``): [(tag, cells)], the part before the first section first (tag ""). A renamed heading
    cannot lose a question's page."""
    parts: list[tuple[str, list]] = [("", [])]
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type == "markdown" and tags & SECTION_TAGS:
            parts.append((sorted(tags & SECTION_TAGS)[0], []))
        parts[-1][1].append(cell)
    return parts


def question_of(tag: str) -> str | None:
    """The question page a findings section belongs to: its tag, when that is a question's slug."""
    return tag if any(tag == slug for slug, _, _ in QUESTIONS) else None


def without_verdict_outputs(cells: list) -> list:
    """The cells of a question page: the outputs of cells tagged ``verdicts`` dropped, since the page shows its
    verdicts once, in its own table."""
    import nbformat

    out = []
    for cell in cells:
        if cell.cell_type == "code" and "verdicts" in cell.metadata.get("tags", []):
            cell = nbformat.from_dict({**cell, "outputs": []})
        out.append(cell)
    return out


def toc(body: str) -> str:
    """A table of contents of a page: its headings and its figures."""
    items = []
    for tag, anchor, text in re.findall(r'<(h2|h3)[^>]*id="([^"]+)"[^>]*>(.*?)</\1>', body, re.S):
        items.append(f'<li><a href="#{anchor}">{re.sub("<[^>]+>", "", text).replace("¶", "").strip()}</a></li>')
    for name in re.findall(r'<a id="fig-([\w-]+)"', body):
        items.append(f'<li><a href="#fig-{name}">figure: {name.replace("_", " ")}</a></li>')
    return f'<div class="toc"><b>On this page</b><ul>{"".join(items)}</ul></div>' if items else ""


# ------------------------------------------------------------------------------------------------
# how it was produced


def bsnb_version() -> str:
    """The installed bsnb's version; run from a checkout that was never installed (``PYTHONPATH=.``, as on a
    machine that cannot reach a package index), the version its pyproject.toml names."""
    try:
        return metadata.version("bsnb")
    except metadata.PackageNotFoundError:
        with open(parameters.ROOT / "pyproject.toml", "rb") as f:
            return f"{tomllib.load(f)['project']['version']} (not installed: run from {parameters.ROOT})"


def provenance(out_dir: Path, profile: profiles.Profile | None, meta: dict | None,
               tables: results.Tables | None = None) -> dict:
    """bsnb version and commit, Python, torch and device, the profile and its hash, date, wall time."""
    timings = out_dir / "logs" / "timings.json"
    t = results.read_json(timings) if timings.exists() else {}
    # the commit that ran the study, as the sweep recorded it; a report rebuilt later by other code says both
    ran, now = t.get("commit"), sources.code_commit()
    commit = (now if ran == now or not t else f"{ran} (the runs; findings and report by {now})" if ran else
              f"{now} (findings and report; the sweep that made the runs recorded no commit)")
    info = {"bsnb": bsnb_version(), "commit": commit, "python": platform.python_version()}
    runs = tables.runs if tables is not None else pd.DataFrame()
    info["torch"] = ", ".join(sorted(runs["torch"].dropna().astype(str).unique())) if "torch" in runs \
        else metadata.version("torch")
    if "device" in runs:
        info["device"] = ", ".join(sorted(runs["device"].dropna().astype(str).unique()))
    info["machine"] = f"{platform.machine()}, {platform.system()}"
    workloads = results.workloads_of(results.store_dir(out_dir))
    if workloads:
        info["workloads"] = ", ".join(workloads)
    if profile is not None:
        info["profile"] = f"{profile.name} ({profile.path.name if profile.path else ''}, content hash {profile.digest()})"
    if t:
        info["study wall time"] = f"{t['total']:.0f} s (jobs {t['jobs']:.0f} s on {t['workers']} workers)"
    info["date"] = t.get("finished") or dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    info.update(meta or {})
    return info


# ------------------------------------------------------------------------------------------------
# pieces of the overview


def _badge(state: str) -> str:
    return f'<span class="badge {state.replace(" ", "-")}">{html.escape(state)}</span>'


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and pd.isna(v)) else html.escape(str(v))


def verdict_table(claims: pd.DataFrame, figures: dict, depth: int = 0) -> str:
    """Every claim on one line: statement, verdict badge and robust flag, effect [interval], seeds, the published
    figure and a link to the figure that decides it (``figures``: figure name -> the page that shows it). How it
    was measured, our numbers, the alternative readings and the note open on demand (a ``<details>`` element)."""
    if claims.empty:
        return "<p>No verdicts: the findings notebook did not write <code>claims.csv</code> (see its page).</p>"
    up = "../" * depth
    rows = []
    for _, c in claims.iterrows():
        name = claims_mod.FIGURES.get(c.claim)
        link = (f'<a href="{up}pages/{figures[name]}.html#fig-{name}">{name.replace("_", " ")}</a>'
                if name in figures else "&ndash;")
        sensitivity = _text(c.get("sensitivity"))
        robust = {True: "robust", False: "<b>not robust</b>"}.get(results.robust_flag(c.get("robust")), "")
        robust = f'<span class="robust" title="{sensitivity}">{robust}</span>' if sensitivity and robust else robust
        detail = (f"<p><i>measure:</i> {_text(c.measure)}</p><p><i>ours:</i> {_text(c.ours)}</p>"
                  + (f"<p><i>under the protocol's alternative readings:</i> {sensitivity}</p>" if sensitivity else "")
                  + (f"<p><i>note:</i> {_text(c.note)}</p>" if _text(c.note) else ""))
        rows.append(f'<tr id="{c.claim}"><td><b>{c.claim}</b></td><td>{_text(c.statement)}'
                    f"<details><summary>how measured, our numbers</summary>{detail}</details></td>"
                    f"<td>{_badge(str(c.verdict))} {robust}</td>"
                    f"<td class=num>{_fmt(c.effect)} [{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]</td>"
                    f"<td class=num>{int(c.seeds)}</td><td class=published>{_text(c.published)}</td>"
                    f"<td>{link}</td></tr>")
    return ('<table class="verdicts"><tr><th>claim</th><th>statement</th><th>verdict</th>'
            "<th>effect [95% interval]</th><th>seeds</th><th>published</th><th>figure</th></tr>"
            + "".join(rows) + "</table>")


def figure_html(png: Path, depth: int = 0, folder: str = "figures") -> str:
    """A figure with its caption; ``folder`` is where its SVG lies relative to the output folder."""
    data = base64.b64encode(png.read_bytes()).decode()
    cap = png.with_suffix(".txt")
    caption = cap.read_text().strip() if cap.exists() else ""
    svg = png.with_suffix(".svg")
    alt = f' (also as <a href="{"../" * depth}{folder}/{svg.name}">SVG</a>)' if svg.exists() else ""
    return (f'<figure id="fig-{png.stem}"><img alt="{png.stem}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{png.stem.replace('_', ' ')}.</b> {html.escape(caption)}{alt}</figcaption></figure>")


def runs_table(tables: results.Tables, depth: int = 1) -> str:
    """Every run: its status, setting, result and error, linked to its page (from a page ``depth`` folders down)."""
    if tables.jobs.empty:
        return "<p>No runs in the store.</p>"
    up = "" if depth == 1 else "pages/"
    by_job = tables.runs.groupby("job_id") if not tables.runs.empty else None
    noted = _runs_of_note(tables)
    varying = [c for c in ("dataset", "model", "width", "batch_norm", "optimizer", "one_pass")  # differ by workload
               if c in tables.jobs and tables.jobs[c].dropna().astype(str).nunique() > 1]
    shown = [c for c in ("notebook", *varying, "batch_size", "remedy", "lr", "seeds", "epochs") if c in tables.jobs]
    rows = []
    order = [c for c in ("notebook", "batch_size") if c in tables.jobs] or ["job_id"]
    for _, j in tables.jobs.sort_values(order).iterrows():
        result = "&ndash;"
        if by_job is not None and j.job_id in by_job.groups:
            g = by_job.get_group(j.job_id)
            for col, label in (("min_val_loss", "min val loss"), ("lambda_max", "top eigenvalue"),
                               ("b_simple", "B_simple")):
                if col in g and g[col].notna().any():
                    result = f"{label} {g[col].mean():.3g}"
                    break
        rows.append(f'<tr><td><a href="{up}runs/{j.job_id}.html">{j.job_id}</a></td><td>{_badge(j.state)}</td>'
                    + "".join(f"<td>{_fmt(j[c])}</td>" for c in shown)
                    + f"<td>{result}</td><td>{html.escape(noted.get(j.job_id, ''))}</td>"
                    + f"<td class=num>{_fmt(j.seconds)}</td><td>{_text(j.error)}</td></tr>")
    head = "".join(f"<th>{c}</th>" for c in ["run", "status", *shown, "result (mean over seeds)",
                                             "unstable or failed seed runs", "seconds", "error"])
    return f"<table>{head and '<tr>' + head + '</tr>'}{''.join(rows)}</table>"


def _runs_of_note(tables: results.Tables) -> dict[str, str]:
    """Per job, its seed runs the protocol reads apart: unstable (kept, setting no level) or failed to train."""
    if tables.runs.empty or tables.epochs.empty:
        return {}
    runs = minima.read_runs(tables.runs, tables.epochs)
    out: dict[str, list[str]] = {}
    for job, g in runs.groupby("job_id"):
        lr = g["lr_used"] if "lr_used" in g else pd.Series(math.nan, index=g.index)
        several = "lr_used" in g and g["lr_used"].nunique() > 1  # a search: name the rate too
        label = lambda i: f"seed {int(g.at[i, 'seed'])}" + (f" lr {lr[i]:.3g}" if several else "")  # noqa: E731
        shaky = [label(i) for i in minima.unstable(g).index]
        bad = [f"{label(i)} {g.at[i, 'status']}" for i in minima.unusable(g).index]
        if shaky or bad:
            out[job] = "; ".join(([f"unstable: {', '.join(shaky)}"] if shaky else []) + bad)
    return out


# ------------------------------------------------------------------------------------------------
# the site


def build(out_dir: str | Path, profile: profiles.Profile | None = None, meta: dict | None = None) -> Path:
    """Write the site of ``out_dir`` from its runs, findings, claims and figures; return its index.html."""
    import nbformat

    out_dir = Path(out_dir)
    pages = out_dir / "pages"
    cache = out_dir / "logs" / "fragments"
    before = set(pages.rglob("*.html")) if pages.exists() else set()
    tables = results.load_tables(results.store_dir(out_dir))
    info = provenance(out_dir, profile, meta, tables)

    # one page per run
    for run in results.jobs_in(results.store_dir(out_dir)):
        status = run.status() or {}
        cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                        for k, v in run.setting().items())
        body = f"<p>Status: {_badge(run.state())}</p>"
        if status.get("error"):
            body += f"<p><b>Error:</b> {html.escape(status['error'])}</p>"
        if status.get("seconds"):
            body += f"<p>Executed in {status['seconds']:.1f} s.</p>"
        body += f"<h2>Parameters</h2><table>{cells}</table><h2>The executed notebook</h2>"
        nb_path = run.path(results.NOTEBOOK)
        if nb_path.exists():
            body += fragment(nbformat.read(nb_path, as_version=4), cache / f"{run.job_id}.html", nb_path)
        else:
            body += "<p>No executed notebook (the run was interrupted before papermill saved it).</p>"
        results.write_atomic(pages / "runs" / f"{run.job_id}.html",
                             page(f"Run {run.job_id}", body, info, "runs", depth=2, code=True))
    results.write_atomic(pages / "runs.html", page(
        "Runs", f"<p>{len(tables.jobs)} runs. Failed and interrupted runs are listed with their error; each run "
                f"links to its executed notebook.</p>{runs_table(tables)}", info, "runs", depth=1))

    # the findings notebook, whole and cut into the article's questions (of the first workload, where there are several)
    workloads = results.workloads_of(results.store_dir(out_dir))
    main = results.findings_dir(out_dir)
    findings = main / f"{parameters.FINDINGS}.ipynb"
    bodies = {slug: "" for slug, _, _ in QUESTIONS}
    if findings.exists():
        nb = nbformat.read(findings, as_version=4)
        whole = fragment(nb, cache / "findings.html", findings)
        for i, (tag, cells) in enumerate(sections(nb)):
            slug = question_of(tag)
            if slug:
                part = nbformat.from_dict({**nb, "cells": without_verdict_outputs(cells)})
                bodies[slug] += fragment(part, cache / f"findings-{i}.html", findings)
    else:
        whole = "<p>The findings notebook has not run.</p>"
    results.write_atomic(pages / "findings.html", page("Findings notebook", whole, info, "findings", 1, code=True))
    figures = {name: slug for slug, body in bodies.items() for name in re.findall(r'<a id="fig-([\w-]+)"', body)}
    claims_csv = results.claims_path(out_dir)
    every = pd.read_csv(claims_csv) if claims_csv.exists() and claims_csv.stat().st_size else pd.DataFrame()
    claims = every[every["workload"] == workloads[0]] if workloads and "workload" in every else every
    written = set()
    if workloads:
        written |= workload_pages(out_dir, workloads, every, info, cache)
    for slug, title, claim_ids in QUESTIONS:
        mine = claims[claims["claim"].isin(claim_ids)] if not claims.empty else claims
        body = bodies[slug] or "<p>This profile ran no notebook that answers this question.</p>"
        full = (f"<h2>Verdicts</h2>{verdict_table(mine, figures, depth=1)}" + toc(body) + body)
        results.write_atomic(pages / f"{slug}.html", page(title, full, info, slug, depth=1, code=True))

    # the overview
    states = tables.jobs["state"].value_counts().to_dict() if not tables.jobs.empty else {}
    counts = ", ".join(f"{n} {s}" for s, n in states.items()) or "none"
    cards = "".join(f'<div class="card"><a href="pages/{slug}.html"><b>{i + 1}. {html.escape(title)}</b></a><br>'
                    f"claims {', '.join(ids)}</div>" for i, (slug, title, ids) in enumerate(QUESTIONS))
    several = (f'<p>This profile runs {len(workloads)} workloads; the verdicts below are those of the first, '
               f'<b>{html.escape(workloads[0])}</b>. <a href="pages/matrix.html">The workloads page</a> sets every '
               f"workload's verdicts side by side.</p>") if workloads else ""
    figures_folder = main.relative_to(out_dir).as_posix() + "/figures" if workloads else "figures"
    body = (f"<p>A reproduction of the article <i>Effect of Batch Size on Neural Net Training</i>: every claim is "
            f"tested by measurement, and its verdict computed from the runs below: the effect, a 95% Student-t "
            f"interval over seeds, and the published figure beside ours. "
            f'<a href="{results.CLAIMS_CSV}">claims.csv</a></p>{several}'
            f"<h2 id=verdicts>Verdicts</h2>{verdict_table(claims, figures)}"
            f"<h2 id=questions>The questions</h2><div class=cards>{cards}</div>"
            f"<h2 id=figures>Figures</h2>"
            + ("".join(figure_html(p, folder=figures_folder) for p in sorted(results.figures_dir(main).glob("*.png")))
               or "<p>None.</p>")
            + f'<h2 id=runs>Runs</h2><p>{len(tables.jobs)} runs: {counts}. Each links to its executed notebook; '
            f'<a href="pages/runs.html">the runs page</a> has them alone.</p>{runs_table(tables, depth=0)}')
    title = "Effect of batch size on neural-net training" + (f": profile {profile.name}" if profile else "")
    index = results.write_atomic(out_dir / "index.html", page(title, body, info, "index"))
    written |= {pages / "runs.html", pages / "findings.html", *(pages / f"{slug}.html" for slug, _, _ in QUESTIONS),
               *(pages / "runs" / f"{r.job_id}.html" for r in results.jobs_in(results.store_dir(out_dir)))}
    for stale in before - written:  # pages of an earlier build that this one no longer has
        stale.unlink(missing_ok=True)
    return index


# ------------------------------------------------------------------------------------------------
# several workloads: the matrix and each workload's findings


def matrix_table(every: pd.DataFrame, workloads: list[str], depth: int = 1) -> str:
    """Claims as rows, workloads as columns (verdict, effect and interval in each cell), and whether each claim holds
    everywhere, somewhere or nowhere among the workloads that measured it."""
    summary = claims_mod.across_workloads(every)
    if summary.empty:
        return "<p>No workload's findings wrote verdicts (see each workload's findings page).</p>"
    up = "../" * depth
    head = "".join(f'<th><a href="{up}pages/workloads/{html.escape(w)}.html">{html.escape(w)}</a></th>'
                   for w in workloads)
    rows = []
    for s in summary.itertuples():
        cells = []
        for w in workloads:
            v = every[(every["workload"] == w) & (every["claim"] == s.claim)]
            if v.empty or not (pd.to_numeric(v["seeds"], errors="coerce").fillna(0) > 0).any():
                cells.append("<td>&ndash;</td>")
                continue
            c = v.iloc[0]
            robust = "" if results.robust_flag(c.get("robust")) is not False else " <span class=robust>not robust</span>"
            title = html.escape(f"{_text(c.get('measure'))}; {_text(c.get('note'))}".strip("; "))
            cells.append(f'<td title="{title}">{_badge(str(c.verdict))}{robust}<br><span class=num>'
                         f"{_fmt(c.effect)} [{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]</span> "
                         f"<small>({int(c.seeds)} seeds)</small></td>")
        flips = f"<br><small>not supported in {html.escape(s.flips)}</small>" if s.flips else ""
        statement = claims_mod.STATEMENTS.get(s.claim, "")
        rows.append(f'<tr><td><b>{s.claim}</b><br><small>{html.escape(statement)}</small></td>{"".join(cells)}'
                    f"<td><b>{s.holds}</b> ({s.supported} of {s.measured}){flips}</td></tr>")
    return (f'<table class="verdicts matrix"><tr><th>claim</th>{head}<th>holds</th></tr>' + "".join(rows)
            + "</table>")


def workload_cost(out_dir: Path, workload: str) -> tuple[int, float]:
    """The jobs a workload reads and the seconds they took to execute (a job two workloads share counts in both)."""
    runs = results.jobs_in(results.store_dir(out_dir), workload=workload)
    return len(runs), sum((r.status() or {}).get("seconds") or 0.0 for r in runs)


def workload_pages(out_dir: Path, workloads: list[str], every: pd.DataFrame, info: dict, cache: Path) -> set[Path]:
    """The matrix page and one page per workload (its verdicts and its whole findings notebook); the paths written."""
    import nbformat

    pages = out_dir / "pages"
    described = profiles.load_workloads()
    cost = {w: workload_cost(out_dir, w) for w in workloads}
    items = "".join(f'<li><a href="workloads/{html.escape(w)}.html"><b>{html.escape(w)}</b></a>: '
                    f"{html.escape(described[w].description if w in described else '')} "
                    f"<small>({cost[w][0]} jobs, {cost[w][1]:.0f} job-seconds)</small></li>" for w in workloads)
    body = ("<p>The study's claims on every workload of the profile, each decided by the same rules (docs/protocol.md) from "
            "that workload's runs alone. A claim <b>holds everywhere</b> when it is supported on every workload that "
            "measured it, <b>somewhere</b> when on some, <b>nowhere</b> when on none and not supported on some, and "
            "is <b>undecided</b> when inconclusive on every one; a dash is a claim the workload's runs do not measure. "
            f'<a href="../{results.CLAIMS_CSV}">claims.csv</a> has a row per claim and workload.</p>'
            f"{matrix_table(every, workloads)}<h2>The workloads</h2><ul>{items}</ul>")
    written = {results.write_atomic(pages / "matrix.html", page("The claims across workloads", body, info, "matrix", 1))}
    for w in workloads:
        folder = results.workload_dir(out_dir, w)
        nb_path = folder / f"{parameters.FINDINGS}.ipynb"
        mine = every[every["workload"] == w] if "workload" in every else every.iloc[0:0]
        text = (fragment(nbformat.read(nb_path, as_version=4), cache / f"findings-{w}.html", nb_path)
                if nb_path.exists() else "<p>The findings notebook of this workload has not run.</p>")
        description = described[w].description if w in described else ""
        body = (f"<p>{html.escape(description)}</p><h2>Verdicts</h2>{verdict_table(mine, {}, depth=2)}"
                f"<h2>The findings notebook of this workload</h2>{text}")
        written.add(results.write_atomic(pages / "workloads" / f"{w}.html",
                                         page(f"Workload {w}", body, info, "matrix", depth=2, code=True)))
    return written
