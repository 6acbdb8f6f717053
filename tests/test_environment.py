"""environment.yml and pyproject.toml name the same dependencies with the same version bounds."""

import re
import tomllib

import yaml

from bsnb import parameters

CONDA_NAMES = {"pytorch": "torch"}


def _split(req: str):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((parameters.ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((parameters.ROOT / "environment.yml").read_text())
    have = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for req in dep["pip"]:
                if not req.startswith("-e"):
                    have.update([_split(req)])
        elif not dep.startswith(("python", "pip")):
            name, spec = _split(dep)
            have[CONDA_NAMES.get(name, name)] = spec
    assert have == wanted
    assert any(isinstance(d, dict) and "-e ." in d["pip"] for d in env["dependencies"]), "install bsnb itself"
