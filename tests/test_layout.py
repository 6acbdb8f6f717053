"""The house: the package's rooms import one way, on at most 6 floors (notebooks on top), and a profile's
parameters are read without importing the training rooms."""

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


PACKAGES = {p.name for p in (ROOT / "bsnb").iterdir() if (p / "__init__.py").exists()}  # claims, plots: one room each


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""  # bsnb.claims.verdict -> claims: a package is one room


def _imports(path: Path) -> set[str]:
    """The bsnb rooms a file imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bsnb"):
            out |= {_room(f"{node.module}.{a.name}") if node.module == "bsnb" else _room(node.module)
                    for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {_room(a.name) for a in node.names if a.name.startswith("bsnb.")}
    return out - {""}


def _graph() -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for path in (ROOT / "bsnb").glob("*.py"):
        if path.stem != "__init__":
            rooms[path.stem] = _imports(path) - {path.stem}
    for package in PACKAGES:
        rooms[package] = set().union(*(_imports(p) for p in (ROOT / "bsnb" / package).glob("*.py"))) - {package}
    rooms["notebooks"] = set().union(*(_imports(p) for p in (ROOT / "notebooks").glob("*.py")))
    return rooms


def test_the_rooms_stand_on_at_most_six_floors_without_a_circle():
    graph = _graph()

    @cache
    def floor(room: str, seen: tuple = ()) -> int:
        assert room not in seen, f"an import circle: {' -> '.join(seen + (room,))}"
        return 1 + max((floor(r, seen + (room,)) for r in graph.get(room, ())), default=0)

    floors = {room: floor(room) for room in graph}
    assert max(floors.values()) <= 6, sorted(floors.items(), key=lambda kv: -kv[1])
    assert floors["notebooks"] == max(floors.values())  # nothing stands above what the user reads


def test_parameters_are_read_without_the_training_rooms():
    graph = _graph()
    reach, todo = set(), ["parameters"]
    while todo:
        for r in graph[todo.pop()] - reach:
            reach.add(r)
            todo.append(r)
    assert not reach & {"models", "stacking", "train", "noise", "sharpness", "sweep"}, reach


def test_checking_a_profile_imports_no_torch():
    """`bsnb validate` reads a YAML file: expanding the default profile into its jobs imports no torch (the ghost
    batch-norm layers live with the models, not with the remedies' options)."""
    import subprocess
    import sys

    code = ("import sys; from bsnb import profiles; profiles.expand(profiles.load_profile('quick')); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout
