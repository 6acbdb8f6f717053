"""What a job runs: its notebook (read from the jupytext script, the readable source), the notebook's parameters
cell (written from :mod:`bsnb.parameters`, the one home of every parameter), and the digest of the ``bsnb`` code the
job notebooks compute with (part of every job's cache key, :mod:`bsnb.sweep`)."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from bsnb import choices, kernels, parameters


def notebook_source(name: str) -> Path:
    return parameters.NOTEBOOKS_DIR / f"{name}.py"


def read_notebook(name: str):
    """The notebook as papermill needs it, read from its jupytext script (the readable source)."""
    import jupytext

    nb = jupytext.read(notebook_source(name))
    nb.metadata["kernelspec"] = {"name": kernels.KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def pairing_problems(names) -> list[str]:
    """Notebooks whose .ipynb was edited after its .py script without a ``jupytext --sync``."""
    import jupytext

    problems = []
    for name in names:
        py, ipynb = notebook_source(name), notebook_source(name).with_suffix(".ipynb")
        if not py.exists():
            problems.append(f"notebook script {py} is missing")
            continue
        if ipynb.exists() and ipynb.stat().st_mtime > py.stat().st_mtime:
            a, b = jupytext.read(py), jupytext.read(ipynb)
            if [(c.cell_type, c.source) for c in a.cells] != [(c.cell_type, c.source) for c in b.cells]:
                problems.append(f"{ipynb.name} is newer than {py.name} and differs from it: "
                                f"run `jupytext --sync {ipynb}` first")
    return problems


def code_text(source: str) -> str:
    """Python source reduced to what it computes: comments, docstrings, layout and parameters' help texts dropped.

    A parameter's help is the fourth argument of ``parameters._p(...)``; in a notebook's parameters cell
    it is a comment.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body[0] = ast.Pass()
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_p" and len(node.args) >= 4:
            node.args[3] = ast.Constant("")
    return ast.unparse(tree)


def notebook_code(name: str) -> str:
    """The code a notebook runs, without its prose: editing a caption or a comment reruns nothing."""
    return "\n# %%\n".join(code_text(c.source) for c in read_notebook(name).cells if c.cell_type == "code")


def _bsnb_imports(code: str) -> set[str]:
    """The ``bsnb`` modules (or packages) that ``code`` imports, anywhere in it (a function's own imports too)."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bsnb":
            found |= {a.name for a in node.names} if node.module == "bsnb" else {node.module.split(".")[1]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bsnb.")}
    return found


def _marked_out(code: str) -> bool:
    """A module that says ``CACHE_KEY = False`` at its top level (it only draws: its edits rerun nothing)."""
    return any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "CACHE_KEY" for t in n.targets)
               and isinstance(n.value, ast.Constant) and n.value.value is False for n in ast.parse(code).body)


def computing_modules() -> list[Path]:
    """The files of the ``bsnb`` modules a job's computation can reach: those the job notebooks (01 to 04) import,
    and those they import in turn, read from their import statements, less the modules marked ``CACHE_KEY =
    False``. A module no job notebook reaches (the sweep, the findings' claims, the report) is never in a cache
    key, and no list has to remember it."""
    package = parameters.ROOT / "bsnb"
    todo = set().union(*(_bsnb_imports(notebook_code(nb)) for nb in parameters.NOTEBOOKS))
    seen, files = set(), []
    while todo:
        name = todo.pop()
        seen.add(name)
        path = package / f"{name}.py"
        paths = [path] if path.exists() else sorted((package / name).rglob("*.py"))
        for p in paths:
            code = p.read_text()
            if not _marked_out(code):
                files.append(p)
                todo |= _bsnb_imports(code) - seen
    return sorted(set(files))


def source_digest() -> str:
    """Hash of the code of the ``bsnb`` modules the job notebooks compute with (:func:`computing_modules`; see
    :func:`code_text`)."""
    h = hashlib.sha256()
    package = parameters.ROOT / "bsnb"
    for path in computing_modules():
        name = path.relative_to(package).as_posix()
        h.update(name.encode() + b"\0" + code_text(path.read_text()).encode())
    return h.hexdigest()


def model_digest(model: str) -> str | None:
    """Hash of the file that defines a model named by import path (part of its jobs' cache key, so an edit to your
    model reruns them); None for the study's own models, whose code :func:`source_digest` covers. A module that
    cannot be found hashes as missing: the check before any job names why."""
    import importlib.util
    import os
    import sys

    if not choices.is_import_path(model):
        return None
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # as bsnb.models.resolve finds it
    try:
        spec = importlib.util.find_spec(model.split(":")[0])
    except (ImportError, ValueError):
        spec = None
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    data = origin.read_bytes() if origin is not None and origin.is_file() else b"missing"
    return hashlib.sha256(data).hexdigest()


def write_parameter_cells(names=None) -> list[str]:
    """Write each notebook's parameters cell as :func:`bsnb.parameters.parameter_cell` renders it, into the script
    and the paired .ipynb (`bsnb cells`); returns the notebooks it changed."""
    import jupytext

    changed = []
    for name in names or parameters.ALL_NOTEBOOKS:
        path = notebook_source(name)
        nb = jupytext.read(path)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        wanted = parameters.parameter_cell(name)
        if cell.source != wanted:
            cell.source = wanted
            jupytext.write(nb, path, fmt="py:percent")
            paired = jupytext.read(path.with_suffix(".ipynb"))
            next(c for c in paired.cells if "parameters" in c.metadata.get("tags", [])).source = wanted
            jupytext.write(paired, path.with_suffix(".ipynb"))
            changed.append(name)
    return changed


def code_commit() -> str:
    """The git commit of the code that runs (short), with "(with uncommitted changes)" where the checkout differs
    from it; "not a git checkout" or "unknown" where git cannot say."""
    import subprocess

    try:
        commit = subprocess.run(["git", "-C", str(parameters.ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(parameters.ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + (" (with uncommitted changes)" if dirty else "")) if commit else "not a git checkout"
