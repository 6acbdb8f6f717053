"""The notebooks: paired with their scripts, free of outputs, and their parameters match bsnb.parameters."""

import ast

import jupytext
import nbformat
import papermill
import pytest

from bsnb import claims, parameters

NOTEBOOKS = list(parameters.ALL_NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_script_and_notebook_are_in_sync(name):
    py = jupytext.read(parameters.NOTEBOOKS_DIR / f"{name}.py")
    nb = jupytext.read(parameters.NOTEBOOKS_DIR / f"{name}.ipynb")
    assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in nb.cells], \
        f"run `jupytext --sync notebooks/{name}.ipynb`"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs_and_a_kernel(name):
    nb = nbformat.read(parameters.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_declares_exactly_the_configured_parameters(name):
    declared = papermill.inspect_notebook(str(parameters.NOTEBOOKS_DIR / f"{name}.ipynb"))
    assert list(declared) == parameters.ALL_NOTEBOOKS[name]
    for pname, info in declared.items():
        spec = parameters.PARAMS[pname]
        assert info["inferred_type_name"] == spec.type.__name__, pname
        assert ast.literal_eval(info["default"]) == spec.default, pname
        assert info["help"] == spec.help, pname


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_parameters_cell_is_what_bsnb_cells_writes_from_the_parameters_module(name):
    nb = jupytext.read(parameters.NOTEBOOKS_DIR / f"{name}.py")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert cell.source == parameters.parameter_cell(name), "run `bsnb cells`"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_parameters_cell_is_tagged_and_holds_only_literals(name):
    nb = jupytext.read(parameters.NOTEBOOKS_DIR / f"{name}.py")
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.AnnAssign)
        ast.literal_eval(node.value)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_code_is_a_few_calls_into_bsnb(name):
    nb = jupytext.read(parameters.NOTEBOOKS_DIR / f"{name}.py")
    code = [c.source for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    tree = ast.parse("\n".join(code))
    assert not any(isinstance(n, (ast.For, ast.While, ast.FunctionDef, ast.ClassDef)) for n in ast.walk(tree))
    assert all(len(c.splitlines()) <= 12 for c in code)


@pytest.mark.slow
def test_the_findings_on_a_store_where_every_job_failed_say_so(tmp_path):
    """Nothing finished: the findings run every cell, say that no job finished, and draw no verdict."""
    import pandas as pd

    from bsnb import results

    store = tmp_path / "runs"
    for job in ("02-bs32-a", "02-bs256-b", "01-bs32-c"):
        results.JobStore(store / job).dir.mkdir(parents=True)
        results.JobStore(store / job).write_status({"status": "failed", "error": "ValueError: boom",
                                                    "notebook": "02_empirical_comparison", "params": {}})
    out = tmp_path / "05.ipynb"
    papermill.execute_notebook(str(parameters.NOTEBOOKS_DIR / f"{parameters.FINDINGS}.ipynb"), str(out),
                               parameters={"store_dir": str(store), "report_dir": str(tmp_path / "report")},
                               cwd=str(parameters.ROOT), progress_bar=False)
    text = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert "3 of 3 job(s) did not finish (3 failed): 01-bs32-c: ValueError: boom;" in text
    assert "No job finished" in text
    verdicts = pd.read_csv(tmp_path / "report" / "claims.csv")
    # no verdict is drawn: a claim whose runs all failed has no runs that measure it ("not run"), the rest are
    # inconclusive
    assert len(verdicts) == len(claims.CLAIMS)
    assert set(verdicts["verdict"]) <= {"inconclusive", "not run in this profile"}
