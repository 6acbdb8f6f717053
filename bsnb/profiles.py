"""Profiles: how a YAML file in ``params/`` becomes validated jobs, one notebook execution each.

A profile names values for the parameters of :mod:`bsnb.parameters` under ``scientific``, ``nuisance``
and ``fixed``. A parameter given a list of values (a list of lists for list-typed parameters such
as ``seeds``) is an axis of the grid; the sweep runs the product of all axes, one notebook
execution per point. Every job is validated before anything runs; :class:`~bsnb.parameters.ProfileError`
names each bad parameter, its value and what is allowed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bsnb import schedule
from bsnb.parameters import (
    FINDINGS,
    FINDINGS_PARAMS,
    GROUPS,
    JOBS,
    NEEDS,
    NOTEBOOKS,
    PARAMS,
    PARAMS_DIR,
    ProfileError,
    centred_grid,
    check_params,
    check_value,
    defaults,
)

PROFILE_KEYS = {"name", "description", "notebooks", "workers", "threads", "workloads", *GROUPS}
WORKLOADS_FILE = PARAMS_DIR / "workloads.yaml"  # the named workloads a profile can list (not a profile)
# Notebook 04's one-pass arms (C17, C19) read the small batch's comparison run: their budget is its epochs, which
# the sweep gives them at launch (bsnb.jobs.launch_params)
ONE_PASS = schedule.ONE_PASS
COMPARISON = "02_empirical_comparison"


@dataclass(frozen=True)
class Workload:
    """A named setting (model, data, optimiser) whose values win over a profile's, notebook sections included."""

    name: str
    description: str = ""
    values: dict = field(default_factory=dict)


@dataclass
class Profile:
    """A parsed profile: its name, the notebooks it sweeps and the grouped parameter values."""

    name: str
    path: Path | None
    description: str = ""
    notebooks: list[str] = field(default_factory=lambda: list(NOTEBOOKS))
    workers: int | None = None  # jobs at once on the local cluster
    threads: int | None = None  # torch threads per job
    values: dict[str, Any] = field(default_factory=dict)  # parameter -> value or list of values (axis)
    groups: dict[str, str] = field(default_factory=dict)  # parameter -> group it was written under
    overrides: dict[str, list] = field(default_factory=dict)  # notebook -> its own grids (one dict each)
    workloads: list[Workload] = field(default_factory=list)  # the settings the profile runs side by side, if any
    only: dict[str, list] = field(default_factory=dict)  # notebook -> per grid, the workloads it is for (None: all)

    def digest(self) -> str:
        """Content hash of the profile's values, so a reader can tell two profiles apart."""
        blob = json.dumps({"notebooks": self.notebooks, "values": self.values, "overrides": self.overrides,
                           "workloads": [[w.name, w.values] for w in self.workloads]}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def values_for(self, notebook: str, workload: Workload | None = None) -> list[dict]:
        """The values of each grid of ``notebook``: the shared values overlaid with its section's, then with the
        workload's."""
        own = workload.values if workload else {}
        sections = self.overrides.get(notebook) or [{}]
        only = self.only.get(notebook) or [None] * len(sections)
        return [{**self.values, **section, **own} for section, names in zip(sections, only)
                if not (workload and names) or workload.name in names]

    @property
    def workload_names(self) -> list[str]:
        return [w.name for w in self.workloads]


@dataclass(frozen=True)
class Job:
    """One notebook execution: a notebook and a complete, validated parameter set."""

    notebook: str
    params: dict
    axes: tuple  # names of the parameters that vary across the profile's grid
    source: "Job | None" = None  # the job whose run this one reads (see NEEDS)

    @property
    def job_id(self) -> str:
        slug = "-".join(f"{_short(a)}{_slug(self.params[a])}" for a in self.axes) or "default"
        return f"{self.notebook[:2]}-{slug}-{params_digest(self.params)[:8]}"

    def identity(self) -> dict:
        """The parameters that define the result (system parameters excluded)."""
        return {k: v for k, v in self.params.items() if PARAMS[k].kind != "system"}

    def injected(self) -> dict:
        """The parameters papermill passes to the notebook: those it declares."""
        return {k: v for k, v in self.params.items() if k in NOTEBOOKS[self.notebook]}


def _short(name: str) -> str:
    return {"batch_size": "bs", "lr": "lr", "seeds": "seeds", "optimizer": "opt"}.get(name, name)


def _slug(value) -> str:
    if isinstance(value, list):
        return "_".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def params_digest(params: dict) -> str:
    ident = {k: v for k, v in params.items() if k in PARAMS and PARAMS[k].kind != "system"}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


# profiles


def profile_paths() -> list[Path]:
    """The profiles in ``params/`` (every YAML file there but the workloads')."""
    return sorted(p for p in PARAMS_DIR.glob("*.yaml") if p.resolve() != WORKLOADS_FILE.resolve())


def resolve_profile(spec: str | Path) -> Path:
    """A profile name (``quick``) or a path to a YAML file."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") and path.exists() and path.resolve() != WORKLOADS_FILE.resolve():
        return path
    candidate = PARAMS_DIR / f"{spec}.yaml"
    if candidate.exists() and candidate.resolve() != WORKLOADS_FILE.resolve():
        return candidate
    if path.resolve() == WORKLOADS_FILE.resolve() or str(spec) == WORKLOADS_FILE.stem:
        raise ProfileError([f"{WORKLOADS_FILE.name} names the workloads a profile lists; it is not a profile (run "
                            "params/variants.yaml, which lists them)"])
    known = ", ".join(p.stem for p in profile_paths())
    raise ProfileError([f"profile {str(spec)!r} not found: expected a YAML file or one of {known}"])


def load_profile(spec: str | Path) -> Profile:
    """Parse a profile file; structural problems raise :class:`ProfileError`."""
    path = resolve_profile(spec)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProfileError([f"not valid YAML: {exc}"], str(path)) from exc
    problems = []
    if not raw:
        raise ProfileError(["the profile is empty: expected a mapping with keys among " + ", ".join(sorted(PROFILE_KEYS))
                            + " (see params/quick.yaml)"], str(path))
    if not isinstance(raw, dict):
        raise ProfileError(["a profile is a mapping with keys " + ", ".join(sorted(PROFILE_KEYS))], str(path))
    for key in raw:
        if key not in PROFILE_KEYS:
            problems.append(f"unknown key {key!r}; a profile takes {', '.join(sorted(PROFILE_KEYS))}")
    name = raw.get("name", path.stem)
    notebooks = raw.get("notebooks", list(NOTEBOOKS))
    sections: dict = {}
    if isinstance(notebooks, dict):  # notebook -> its own scientific / nuisance / fixed values
        sections = {nb: (v or {}) for nb, v in notebooks.items()}
        notebooks = list(notebooks)
    if not isinstance(notebooks, list) or not notebooks:
        problems.append(f"notebooks = {notebooks!r}: expected a list drawn from {', '.join(NOTEBOOKS)}")
        notebooks = []
    for nb in notebooks:
        if nb not in NOTEBOOKS:
            problems.append(f"notebooks: {nb!r} is not a notebook of the study; expected some of {', '.join(NOTEBOOKS)}")
    workers, threads = raw.get("workers"), raw.get("threads")
    for key, value in (("workers", workers), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(f"{key} = {value!r} is not allowed: expected an integer >= 1")
    values, groups = _grouped(raw, "", problems)
    overrides, only = {}, {}
    for nb, entry in sections.items():  # one mapping, or a list of them (several grids for one notebook)
        for section in entry if isinstance(entry, list) else [entry]:
            if not isinstance(section, dict) or set(section) - {*GROUPS, "workloads"}:
                problems.append(f"notebooks: {nb}: expected a mapping (or a list of mappings) with keys among "
                                f"{', '.join(GROUPS)} (and workloads: the names of the workloads the grid is for)")
                continue
            values_, more = _grouped(section, f"notebooks: {nb}: ", problems)
            overrides.setdefault(nb, []).append(values_)
            only.setdefault(nb, []).append(section.get("workloads"))
            groups.update(more)
    workloads = _listed_workloads(raw.get("workloads"), problems)
    for nb, lists in only.items():
        for names in filter(None, lists):
            unknown = [n for n in names if n not in [w.name for w in workloads]] if isinstance(names, list) else names
            if unknown:
                problems.append(f"notebooks: {nb}: workloads = {names!r}: expected a list of the profile's workloads "
                                f"({', '.join(w.name for w in workloads) or 'it lists none'})")
    if problems:
        raise ProfileError(problems, str(path))
    return Profile(name=str(name), path=path, description=str(raw.get("description", "")),
                   notebooks=list(notebooks), workers=workers, threads=threads, values=values, groups=groups,
                   overrides=overrides, workloads=workloads, only=only)


def load_workloads(path: Path = WORKLOADS_FILE) -> dict[str, Workload]:
    """The named workloads of ``params/workloads.yaml``; a bad entry raises :class:`ProfileError` naming it."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError([f"cannot read the workloads: {exc}"], str(path)) from exc
    problems, found = [], {}
    for name, entry in raw.items():
        entry = entry or {}
        if not isinstance(entry, dict) or set(entry) - {"description", *GROUPS}:
            problems.append(f"workload {name!r}: expected a mapping with keys among description, {', '.join(GROUPS)}")
            continue
        values, _ = _grouped(entry, f"workload {name}: ", problems)
        found[str(name)] = Workload(str(name), " ".join(str(entry.get("description", "")).split()), values)
    if problems:
        raise ProfileError(problems, str(path))
    return found


def _listed_workloads(listed, problems: list) -> list[Workload]:
    """The workloads a profile lists: names, or ``{name: {group: {parameter: value}}}`` changing a named one."""
    if listed is None:
        return []
    known = load_workloads()
    if not isinstance(listed, list) or not listed:
        problems.append(f"workloads = {listed!r}: expected a list of names among {', '.join(known)}")
        return []
    chosen = []
    for entry in listed:
        name, changes = (next(iter(entry.items())) if isinstance(entry, dict) and len(entry) == 1 else (entry, {}))
        if not isinstance(name, str) or name not in known:
            problems.append(f"workloads: {entry!r} is not a workload; expected one of {', '.join(known)} "
                            f"(defined in {WORKLOADS_FILE.name}), or {{name: {{fixed: {{...}}}}}} changing one")
            continue
        if not isinstance(changes, dict) or set(changes) - set(GROUPS):
            problems.append(f"workloads: {name}: expected changes under {', '.join(GROUPS)}")
            continue
        values, _ = _grouped(changes, f"workloads: {name}: ", problems)
        base = known[name]
        chosen.append(Workload(name, base.description, {**base.values, **values}))
    names = [w.name for w in chosen]
    if len(set(names)) < len(names):
        problems.append(f"workloads: {names} lists a workload twice")
    return chosen


def _grouped(raw: dict, where: str, problems: list) -> tuple[dict, dict]:
    """Parameter values written under the scientific / nuisance / fixed keys of ``raw``."""
    values, groups = {}, {}
    for group in GROUPS:
        section = raw.get(group) or {}
        if not isinstance(section, dict):
            problems.append(f"{where}{group} = {section!r}: expected a mapping of parameter names to values")
            continue
        for pname, value in section.items():
            if pname not in PARAMS or PARAMS[pname].kind == "system":
                known = ", ".join(sorted(n for n, p in PARAMS.items() if p.kind == group))
                problems.append(f"{where}unknown parameter {pname!r} under {group} (value {value!r}); "
                                f"{group} parameters are: {known}")
                continue
            if PARAMS[pname].kind != group:
                problems.append(f"{where}{pname} is a {PARAMS[pname].kind} parameter, not {group}: "
                                f"move it under {PARAMS[pname].kind}:")
                continue
            values[pname], groups[pname] = value, group
    return values, groups


def _is_axis(name: str, value) -> bool:
    p = PARAMS[name]
    if p.type is list:
        return isinstance(value, list) and bool(value) and all(isinstance(v, list) for v in value)
    return isinstance(value, list)


def expand(profile: Profile) -> list[Job]:
    """Every job of the profile, each validated, sources first; raises ProfileError naming every bad parameter."""
    return _expanded(profile)[0]


def workload_jobs(profile: Profile) -> dict[str, list[str]]:
    """The job ids each workload of the profile reads (a job two workloads share is run once, listed in both)."""
    return _expanded(profile)[1]


def _expanded(profile: Profile) -> tuple[list[Job], dict[str, list[str]]]:
    jobs: dict[tuple, Job] = {}  # (notebook, parameters) -> job
    members: dict[str, list[str]] = {}  # workload -> its job ids
    problems: list[str] = []
    for workload in profile.workloads or [None]:
        from_grid: set[tuple] = set()  # jobs a grid asked for (a job added as another's source may be asked for again)
        mine: dict[tuple, None] = {}
        where = f"workload {workload.name}: " if workload else ""
        for notebook, values in ((nb, v) for nb in profile.notebooks for v in profile.values_for(nb, workload)):
            takes = JOBS[notebook]
            relevant = {k: v for k, v in values.items() if k in takes}
            axes = [k for k, v in relevant.items() if _is_axis(k, v)]
            for axis in axes:
                if not relevant[axis]:
                    problems.append(f"{axis} = [] is an empty list: give at least one value")
            points = itertools.product(*(relevant[a] for a in axes)) if axes else [()]
            factors, problem = check_value("lr_grid_factors", values.get("lr_grid_factors") or [])
            if problem:  # a profile value, resolved into lr_grid below (no notebook declares it)
                problems.append(where + problem)
                continue
            for point in points:
                params = defaults(notebook)
                params.update({k: v for k, v in relevant.items() if k not in axes})
                params.update(dict(zip(axes, point)))
                if factors and params.get("remedy") == "tuned":  # centred on the pinned rate (the profile's values)
                    params["lr_grid"] = centred_grid(params, factors)
                params, found = check_params(notebook, params)
                problems += [where + f for f in found]
                if found:
                    continue
                if params.get("remedy") == "confirm":
                    problems.append(f"{where}remedy confirm is not given in a profile: give confirm_seeds beside remedy "
                                    "tuned, and the sweep adds the confirmation job after that search")
                    continue
                confirm_seeds = params.get("confirm_seeds") or []
                if confirm_seeds and params.get("remedy") != "tuned":
                    problems.append(f"{where}confirm_seeds = {confirm_seeds} belongs to remedy tuned (the seeds trained at "
                                    f"the rate its search chose), not to remedy {params.get('remedy')}")
                    continue
                if set(confirm_seeds) & set(params["seeds"]):
                    problems.append(f"{where}confirm_seeds = {confirm_seeds} repeats the search's seeds {params['seeds']}: "
                                    "the confirmation needs seeds the search did not choose its rate on")
                    continue
                if confirm_seeds:  # the search's own job does not depend on the seeds that confirm it
                    params = {**params, "confirm_seeds": []}
                source = None
                if notebook in NEEDS or params.get("remedy") in ONE_PASS:
                    needs = NEEDS.get(notebook, COMPARISON)  # a one-pass arm: its budget is the comparison run's epochs
                    reads = params if notebook in NEEDS else {**params, "batch_size": params["reference_batch"]}
                    source = _source_job(needs, reads, tuple(a for a in axes if a in NOTEBOOKS[needs]))
                    source = jobs.setdefault(_key(source), source)  # the grid's own job when it has one
                    mine[_key(source)] = None
                job = Job(notebook, params, tuple(axes), source)
                if _key(job) in from_grid:
                    problems.append(f"{where}two jobs of notebook {notebook} have the same parameters: remove "
                                    "repeated values")
                job = jobs.setdefault(_key(job), job)
                from_grid.add(_key(job))
                mine[_key(job)] = None
                if confirm_seeds:  # C15's confirmation seeds at the rate this search chose, run once it is done
                    confirm = Job(notebook, {**params, "remedy": "confirm", "seeds": list(confirm_seeds)}, tuple(axes),
                                  job)
                    mine[_key(jobs.setdefault(_key(confirm), confirm))] = None
        if workload:
            members[workload.name] = [jobs[k].job_id for k in mine]
    # C15's confirmation seeds are ids no comparison uses (docs/protocol.md): else a comparison seed would confirm
    confirming = {s for j in jobs.values() if j.params.get("remedy") == "confirm" for s in j.params.get("seeds", [])}
    shared = {s: j.job_id for j in jobs.values() if j.params.get("remedy") not in ("tuned", "confirm")
              for s in j.params.get("seeds", []) if s in confirming}
    if shared:
        problems.append(f"confirm_seeds {sorted(shared)} are seeds of comparison jobs too ("
                        f"{', '.join(sorted(set(shared.values()))[:3])}): the confirmation needs seed ids no "
                        "comparison uses")
    findings, found = check_params(FINDINGS, findings_params(profile, store_dir="", report_dir=""))
    problems += found
    if problems:
        raise ProfileError(list(dict.fromkeys(problems)), str(profile.path or profile.name))
    ordered = [j for j in jobs.values() if j.source is None] + [j for j in jobs.values() if j.source is not None]
    return ordered, members


def _key(job: Job) -> tuple:
    return job.notebook, params_digest(job.params)


def _source_job(notebook: str, params: dict, axes: tuple) -> Job:
    """The job of ``notebook`` with the same parameters as a dependent job (its training setting)."""
    source = defaults(notebook)
    source.update({k: v for k, v in params.items() if k in source and PARAMS[k].kind != "system"})
    return Job(notebook, source, axes)


def findings_params(profile: Profile, store_dir: str, report_dir: str) -> dict:
    """Parameters of the findings notebook for a profile."""
    params = defaults(FINDINGS)
    params.update({k: v for k, v in profile.values.items() if k in FINDINGS_PARAMS})
    params.update(store_dir=store_dir, report_dir=report_dir)
    return params
