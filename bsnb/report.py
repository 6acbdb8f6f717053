"""The HTML report: a small static site that stands alone (opens from file://, fetches nothing).

``<out>/index.html`` holds the verdict table, the figures (inlined as base64), how the report was
produced, and every run with its parameters and status; ``<out>/pages/`` holds the findings
notebook and every run's executed notebook, converted by nbconvert's ``basic`` template (a body
fragment, wrapped here in a page with its own inline style; the ``lab`` template would pull
require.js and MathJax from a CDN).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd

from bsnb import config, results

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{background:#1d3557;color:#fff;padding:14px 28px}header a{color:#cfe3ff;margin-right:18px}
main{max-width:1180px;margin:0 auto;padding:10px 28px 40px}
h1{font-size:1.5em;margin:.2em 0}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}th,td{border:1px solid #d0d7de;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#eef2f6}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-weight:600;font-size:.85em;white-space:nowrap}
.supported{background:#d1f2d9;color:#14532d}.not-supported{background:#fde2e1;color:#7f1d1d}
.inconclusive{background:#fff1c2;color:#713f12}.failed{background:#fde2e1;color:#7f1d1d}
.ok{background:#d1f2d9;color:#14532d}.diverged,.incomplete,.manual{background:#fff1c2;color:#713f12}
figure{margin:1em 0;background:#fff;border:1px solid #e1e4e8;padding:8px}main img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#4b5563;margin-top:4px}.prov{font-size:.82em;color:#4b5563}
.num{text-align:right;font-variant-numeric:tabular-nums}
.jp-InputArea,.jp-Cell-inputWrapper pre{background:#f6f8fa}.jp-Cell{margin:.6em 0}
pre{overflow-x:auto;font-size:.85em;padding:6px}.jp-InputPrompt,.jp-OutputPrompt{display:none}
.jp-RenderedHTMLCommon table{font-size:.85em}.jp-OutputArea-output img{max-width:100%}
.jp-RenderedText pre,.jp-OutputArea-output pre{background:#fff;border-left:3px solid #d0d7de}
.ansi-red-fg{color:#b91c1c}.ansi-green-fg{color:#15803d}.ansi-cyan-fg{color:#0e7490}.ansi-blue-fg{color:#1d4ed8}
"""


def page(title: str, body: str, nav: str = "", depth: int = 0) -> str:
    up = "../" * depth
    links = (f'<a href="{up}index.html">Overview</a><a href="{up}pages/{config.FINDINGS}.html">Findings notebook</a>'
             + nav)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><header><div>{links}</div><h1>{html.escape(title)}</h1></header>\n<main>\n{body}\n</main></body></html>\n")


def notebook_fragment(ipynb: Path) -> str:
    """The notebook as an HTML body fragment, images inlined."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    body, _ = exporter.from_notebook_node(nbformat.read(ipynb, as_version=4))
    return body


def convert(ipynb: Path, target: Path, title: str, depth: int, intro: str = "") -> Path:
    """Convert one executed notebook to a page, unless the page is already newer than the notebook."""
    if target.exists() and target.stat().st_mtime >= ipynb.stat().st_mtime:
        return target
    return results.write_atomic(target, page(title, intro + notebook_fragment(ipynb), depth=depth))


def provenance(out_dir: Path, profile: config.Profile | None, meta: dict | None) -> dict:
    """How the report was produced, so a reader can rerun it."""
    meta = dict(meta or {})
    try:
        commit = subprocess.run(["git", "-C", str(config.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(config.ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit = (commit + (" (with uncommitted changes)" if dirty else "")) if commit else "not a git checkout"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    info = {
        "bsnb": metadata.version("bsnb"),
        "commit": commit,
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "machine": f"{platform.machine()}, {platform.system()}",
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }
    if profile is not None:
        info["profile"] = f"{profile.name} ({profile.path}, content hash {profile.digest()})"
    info.update(meta)
    return info


def _badge(state: str) -> str:
    return f'<span class="badge {state.replace(" ", "-")}">{html.escape(state)}</span>'


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def verdict_table(claims: pd.DataFrame) -> str:
    if claims.empty:
        return "<p>No verdicts yet: the findings notebook has not written <code>claims.csv</code>.</p>"
    rows = []
    for _, c in claims.iterrows():
        ci = f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]"
        rows.append(f"<tr id=\"{c.claim}\"><td><b>{c.claim}</b></td><td>{html.escape(str(c.statement))}</td>"
                    f"<td>{_badge(str(c.verdict))}</td><td class=num>{_fmt(c.effect)}</td><td class=num>{ci}</td>"
                    f"<td class=num>{int(c.seeds)}</td><td>{html.escape(str(c.measure))}<br><i>ours:</i> "
                    f"{html.escape(str(c.ours))}</td><td>{html.escape(str(c.published))}"
                    f"{'<br><i>note:</i> ' + html.escape(str(c.note)) if str(c.note) not in ('', 'nan') else ''}</td></tr>")
    return ("<table><tr><th>claim</th><th>statement</th><th>verdict</th><th>effect</th><th>95% CI</th><th>seeds</th>"
            "<th>measure (ours)</th><th>published</th></tr>" + "".join(rows) + "</table>")


def figures_html(report_dir: Path) -> str:
    parts = []
    for png in sorted(results.figures_dir(report_dir).glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        cap_file = png.with_suffix(".txt")
        caption = cap_file.read_text().strip() if cap_file.exists() else ""
        parts.append(f'<figure id="fig-{png.stem}"><img alt="{png.stem}" src="data:image/png;base64,{data}">'
                     f"<figcaption><b>{png.stem.replace('_', ' ')}.</b> {html.escape(caption)}</figcaption></figure>")
    return "\n".join(parts) or "<p>No figures yet.</p>"


def runs_table(tables: results.Tables) -> str:
    if tables.jobs.empty:
        return "<p>No runs in the store.</p>"
    by_job = tables.runs.groupby("job_id") if not tables.runs.empty else None
    rows = []
    shown = [c for c in ("batch_size", "lr", "optimizer", "seeds", "epochs", "model", "dataset") if c in tables.jobs]
    for _, j in tables.jobs.sort_values(["notebook", "batch_size"] if "batch_size" in tables.jobs else "job_id").iterrows():
        link = f'<a href="pages/runs/{j.job_id}.html">{j.job_id}</a>'
        mvl = "&ndash;"
        if by_job is not None and j.job_id in by_job.groups:
            g = by_job.get_group(j.job_id)
            mvl = f"{g['min_val_loss'].mean():.3f}"
        err = html.escape(str(j.error)) if isinstance(j.error, str) else ""
        rows.append(f"<tr><td>{link}</td><td>{_badge(j.state)}</td>" + "".join(
            f"<td>{_fmt(j[c])}</td>" for c in shown) + f"<td class=num>{mvl}</td><td class=num>{_fmt(j.seconds, 3)}</td>"
            f"<td>{err}</td></tr>")
    head = "".join(f"<th>{c}</th>" for c in ["run", "status", *shown, "min val loss (mean)", "seconds", "error"])
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def build(out_dir: str | Path, profile: config.Profile | None = None, meta: dict | None = None) -> Path:
    """Write the report of ``out_dir`` (runs, findings, claims, figures) and return its index.html."""
    out_dir = Path(out_dir)
    pages = out_dir / "pages"
    tables = results.load_tables(results.store_dir(out_dir))
    for run in results.runs_in(results.store_dir(out_dir)):
        nb = run.path(results.NOTEBOOK)
        params = run.setting()
        cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                        for k, v in params.items())
        intro = f"<p>Status: {_badge(run.state())}</p><h2>Parameters</h2><table>{cells}</table>"
        status = run.status() or {}
        if status.get("error"):
            intro += f"<p><b>Error:</b> {html.escape(status['error'])}</p>"
        target = pages / "runs" / f"{run.job_id}.html"
        if nb.exists():
            convert(nb, target, f"Run {run.job_id}", depth=2, intro=intro)
        else:
            results.write_atomic(target, page(f"Run {run.job_id}", intro + "<p>No executed notebook.</p>", depth=2))
    findings_nb = out_dir / f"{config.FINDINGS}.ipynb"
    findings_page = pages / f"{config.FINDINGS}.html"
    if findings_nb.exists():
        convert(findings_nb, findings_page, "Findings", depth=1)
    else:
        results.write_atomic(findings_page, page("Findings", "<p>The findings notebook has not run.</p>", depth=1))

    claims_csv = results.claims_path(out_dir)
    claims = pd.read_csv(claims_csv) if claims_csv.exists() else pd.DataFrame()
    info = provenance(out_dir, profile, meta)
    prov = "<p class=prov>" + " &middot; ".join(f"<b>{k}</b> {html.escape(str(v))}" for k, v in info.items()) + "</p>"
    states = tables.jobs["state"].value_counts().to_dict() if not tables.jobs.empty else {}
    counts = ", ".join(f"{n} {s}" for s, n in states.items()) or "none"
    body = (f"{prov}<h2>Verdicts</h2><p>Each verdict is computed from the runs below (effect with a 95% Student-t "
            f"interval over seeds). <a href=\"{results.CLAIMS_CSV}\">claims.csv</a></p>{verdict_table(claims)}"
            f"<h2>Figures</h2>{figures_html(out_dir)}"
            f"<h2>Runs</h2><p>{len(tables.jobs)} runs: {counts}. Each links to its executed notebook.</p>"
            f"{runs_table(tables)}")
    title = "Effect of batch size on neural-net training" + (f": profile {profile.name}" if profile else "")
    return results.write_atomic(out_dir / "index.html", page(title, body))
