"""The results store: one folder per job, every file written atomically, and tidy tables of all jobs.

Words: a *job* is one notebook execution and its folder (:class:`JobStore`); a *seed run* is one
seed's training inside a job (:class:`bsnb.train.SeedRun`, its checkpoints under
``checkpoints/<label>/``); the tables have one row per job (``jobs``), per (job, seed) (``runs``),
per epoch or per sampled step.

Layout of a store (the ``runs/`` folder of a profile's output)::

    <store>/<job_id>/params.json        the notebook's parameters
                    history.csv         one row per (seed, epoch)
                    steps.csv           one row per (seed, sampled step)
                    checkpoints/seed<S>/{initial,best,final}.pt
                    manifest.json       size and SHA-256 of every file above (written just before the summary)
                    summary.json        one record per seed; written last by the notebook
                    notebook.ipynb      the executed notebook (written by the sweep)
                    status.json         ok or failed, with the cache key (written last by the sweep)

A job is complete when its ``summary.json`` exists and every record can be read back; files are
replaced with ``os.replace`` so a reader never sees half a file, and an interrupted job simply
has no summary. A file damaged afterwards (a disk error, a copy cut short, a hand edit) is found
by the manifest: every file the notebook wrote before its summary is listed there with its size
and SHA-256, and a file that is missing or differs makes the job damaged, so the sweep reruns it
and the findings leave it out. This module is the one place that knows where things live on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HISTORY, STEPS, SUMMARY, PARAMS, STATUS, NOTEBOOK, MANIFEST = (
    "history.csv", "steps.csv", "summary.json", "params.json", "status.json", "notebook.ipynb", "manifest.json")
CHECKPOINTS = ("initial", "best", "final")
# the training losses at which training saves a checkpoint (the window from the first epoch at or below each):
# the one home of the levels and of the checkpoints' names
LOSS_LEVELS = (1.0, 0.3, 0.1, 0.03, 0.01)
MATCHED_LEVELS = (1.0, 0.3, 0.1, 0.03)  # docs/protocol.md: the levels C1 and C6 match the compared runs at
TARGET = "target"  # the checkpoint saved where the validation loss first reached the search's target (C11)


# A loss-level or target checkpoint is the first of a window: the weights at the first evaluated epoch at
# or below the loss, and at the next WINDOW - 1 evaluated epochs. Near a minimum |G|^2 follows where SGD's
# iterate happens to be, so the noise scale at a loss is averaged over a window, as McCandlish
# averages |G|^2 and tr(Sigma) over training steps (windowed_b_simple). docs/protocol.md reads windows of
# NOISE_WINDOW epochs, and windows of 1 and 5 in its sensitivity analysis: training saves 5.
WINDOW = 5
NOISE_WINDOW = 3


def level_checkpoint(level: float) -> str:
    """The checkpoint saved when a run's training loss first fell to ``level`` (one of :data:`LOSS_LEVELS`)."""
    return f"loss{level:g}"


def window(first: str) -> list[str]:
    """The names of the window of checkpoints that starts at ``first`` (a loss-level or the target one)."""
    return [first] + [f"{first}+{i}" for i in range(1, WINDOW)]


def window_start(name: str) -> tuple[str, int]:
    """The window a checkpoint belongs to, and its place in it: ``loss0.1+2`` -> (``loss0.1``, 2)."""
    first, _, i = name.partition("+")
    return first, int(i or 0)


def windowed_b_simple(records: pd.DataFrame, size: int = NOISE_WINDOW) -> pd.DataFrame:
    """Notebook 01's exact noise scale per (seed, window) of checkpoints (``bsnb.results.window``), over the first
    ``size`` checkpoints of each window: the sum of tr(Sigma) over the sum of |G|^2, McCandlish's average of
    numerator and denominator (the mean of the B_simple where |G|^2 and tr(Sigma) are not recorded); with the
    window's mean training loss and how many of its checkpoints were measured. The initial, best and final
    checkpoints are windows of one."""
    place = records["checkpoint"].map(lambda c: window_start(c)[1])
    r = records[place < size].assign(window=records["checkpoint"].map(lambda c: window_start(c)[0]))
    rows = []
    for (seed, first), g in r.groupby(["seed", "window"], sort=False):
        has_parts = {"g2", "tr_sigma"} <= set(g) and g[["g2", "tr_sigma"]].notna().all().all()
        b = g["tr_sigma"].sum() / g["g2"].sum() if has_parts else g["b_simple"].mean()
        rows.append({"seed": seed, "checkpoint": first, "b_simple": float(b),
                     "train_loss": float(g["train_loss"].mean()) if "train_loss" in g else math.nan,
                     "measured": len(g)})
    return pd.DataFrame(rows, columns=["seed", "checkpoint", "b_simple", "train_loss", "measured"])


def write_atomic(path: str | Path, content: bytes | str) -> Path:
    """Write ``content`` to a temporary file beside ``path``, flush it to disk, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = content.encode() if isinstance(content, str) else content
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def write_json(path, obj) -> Path:
    return write_atomic(path, json.dumps(_clean(obj), indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


def _clean(obj):
    """JSON has no NaN: store non-finite floats as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


class JobStore:
    """One run's folder."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)

    def __repr__(self):
        return f"JobStore({str(self.dir)!r})"

    @property
    def job_id(self) -> str:
        return self.dir.name

    def path(self, name: str) -> Path:
        return self.dir / name

    def checkpoint_path(self, seed: int | str, which: str) -> Path:
        """``seed``: a seed, or the label of one of several runs of a seed (``lr0.1-seed0``)."""
        label = seed if isinstance(seed, str) else f"seed{seed}"
        return self.dir / "checkpoints" / label / f"{which}.pt"

    # --- written by the notebook -----------------------------------------------------------
    def save(self, notebook: str, params: dict, records: list[dict], tables: dict | None = None,
             extra: dict | None = None) -> None:
        """Save a run: its parameters, tidy tables (name -> rows, one CSV each), then the summary, last."""
        self.forget()
        write_json(self.path(PARAMS), params)
        for name, rows in (tables or {}).items():
            if len(rows):
                write_atomic(self.path(f"{name}.csv"), pd.DataFrame(rows).to_csv(index=False))
            else:
                self.path(f"{name}.csv").unlink(missing_ok=True)
        write_json(self.path(MANIFEST), self.fingerprints())
        write_json(self.path(SUMMARY), {"notebook": notebook, "seeds": records, **(extra or {})})

    def save_training(self, params: dict, runs, extra: dict | None = None,
                      notebook: str = "02_empirical_comparison", tables: dict | None = None) -> None:
        """Save what :func:`bsnb.train.train_seeds` produced: history, sampled steps, checkpoints, summary (and
        ``tables``, name -> rows, that the notebook measured beside the training)."""
        import torch

        self.forget()
        for r in runs:
            for which in r.states:  # initial, best, final, and loss<level> where the training loss fell below it
                buf = io.BytesIO()
                torch.save(r.states[which], buf)
                write_atomic(self.checkpoint_path(r.label, which), buf.getvalue())
        tables = {HISTORY[:-4]: [{**row, "run": r.label} for r in runs for row in r.history],
                  STEPS[:-4]: [{**row, "run": r.label} for r in runs for row in r.steps],
                  "noise": [{**row, "run": r.label} for r in runs for row in r.noise], **(tables or {})}
        self.save(notebook, params, [r.summary for r in runs], tables, extra)

    def load_states(self, which: str = "final") -> dict:
        """Every seed's checkpoint ``which``: seed -> state dict (seeds that never saved it are left out)."""
        return {s["seed"]: self.load_state(s["seed"], which) for s in self.summary()["seeds"]
                if self._saved(s["seed"], which)}

    def load_checkpoints(self, levels=()) -> dict:
        """Every checkpoint of every seed: (seed, initial / best / final) -> state dict; for each of ``levels``
        (training losses, :data:`LOSS_LEVELS`) the window of ``loss<level>`` checkpoints, from where the
        seed's training loss first fell to it; and the window of ``target`` checkpoints, from where its validation
        loss first reached the search's target; those the seed got to and the run saved."""
        names = list(CHECKPOINTS) + [w for x in levels for w in window(level_checkpoint(x))] + window(TARGET)
        return {(s["seed"], which): self.load_state(s["seed"], which) for s in self.summary()["seeds"]
                for which in names if self._saved(s["seed"], which)}

    def _saved(self, seed, which: str) -> bool:
        """Every seed has the initial, best and final checkpoints; a loss-level or target one only where it got
        there."""
        return which in CHECKPOINTS or self.checkpoint_path(seed, which).exists()

    def forget(self) -> None:
        """Mark the run incomplete before (re)writing it: remove its summary, manifest and status."""
        for name in (SUMMARY, STATUS, MANIFEST):
            self.path(name).unlink(missing_ok=True)

    def fingerprints(self) -> dict:
        """Size and SHA-256 of every file the notebook has written (its parameters, tables and checkpoints):
        relative path -> [bytes, sha256]. What :meth:`damaged` checks the files against. Hidden files are the
        sweep's own (its lock, the notebook papermill is still writing) and are left out, as are its status and
        executed notebook."""
        out = {}
        for path in sorted(self.dir.rglob("*")):
            rel = path.relative_to(self.dir).as_posix()
            hidden = any(part.startswith(".") for part in path.relative_to(self.dir).parts)
            if path.is_file() and not hidden and rel not in (SUMMARY, STATUS, MANIFEST, NOTEBOOK) \
                    and ".tmp-" not in path.name:
                out[rel] = [path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()]
        return out

    # --- written by the sweep ----------------------------------------------------------------
    def write_status(self, status: dict) -> None:
        write_json(self.path(STATUS), status)

    # --- reading -----------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """The notebook wrote its summary (last) and every record of the run can be read back."""
        return self.path(SUMMARY).exists() and not self.damaged()

    def damaged(self) -> list[str]:
        """The run's files that are missing or differ from its manifest (size and SHA-256), or cannot be read
        (cut short, overwritten, not JSON or CSV); a run written before manifests is checked by reading.

        Files are written atomically, so this takes damage from outside (a disk error, a hand edit,
        a copy cut short). A damaged run is an incomplete run: the sweep reruns it (and the jobs that read
        it) and the findings leave it out.
        """
        bad = []
        if self.path(SUMMARY).exists() and self.path(MANIFEST).exists():  # written by the notebook before its summary
            try:
                listed = read_json(self.path(MANIFEST))
            except (ValueError, OSError, UnicodeDecodeError):
                listed = None
            if not isinstance(listed, dict):
                bad.append(MANIFEST)
            else:
                for rel, (size, digest) in listed.items():
                    path = self.dir / rel
                    if (not path.is_file() or path.stat().st_size != size
                            or hashlib.sha256(path.read_bytes()).hexdigest() != digest):
                        bad.append(rel)
        for name in (PARAMS, SUMMARY):
            if self.path(name).exists():
                try:
                    if not isinstance(read_json(self.path(name)), dict):
                        bad.append(name)
                except (ValueError, OSError, UnicodeDecodeError):
                    bad.append(name)
        for path in sorted(p for p in self.dir.glob("*.csv") if p.name not in bad):
            try:
                pd.read_csv(path)
            except pd.errors.EmptyDataError:
                continue
            except (ValueError, OSError, UnicodeDecodeError):  # pandas' ParserError is a ValueError
                bad.append(path.name)
        return bad

    def status(self) -> dict | None:
        try:
            status = read_json(self.path(STATUS))
        except (OSError, ValueError, UnicodeDecodeError):  # missing, or damaged: the run is simply not done
            return None
        return status if isinstance(status, dict) else None

    def params(self) -> dict:
        return read_json(self.path(PARAMS))

    def setting(self) -> dict:
        """The full setting: for a run that measured another, that run's training setting under its own values."""
        try:
            params = self.params()
        except (OSError, ValueError, UnicodeDecodeError):  # not written yet, or damaged
            params = (self.status() or {}).get("params", {})
        return {**params.get("source", {}), **{k: v for k, v in params.items() if k != "source"}}

    def summary(self) -> dict:
        return read_json(self.path(SUMMARY))

    def table(self, name: str) -> pd.DataFrame:
        """One of the run's CSV tables (``history``, ``steps``, ``eigenvalues``, ...)."""
        return pd.read_csv(self.path(f"{name}.csv"))

    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.path(HISTORY))

    def steps(self) -> pd.DataFrame:
        return pd.read_csv(self.path(STEPS))

    def load_state(self, seed: int, which: str = "final") -> dict:
        import torch

        return torch.load(self.checkpoint_path(seed, which), map_location="cpu", weights_only=True)

    def state(self, damaged: list | None = None) -> str:
        """ok, diverged, failed, incomplete (or damaged), or manual (complete but not run by the sweep);
        ``damaged``: :meth:`damaged`'s answer when the caller has it (it reads and hashes every file)."""
        status = self.status()
        if status is not None and status.get("status") == "failed":
            return "failed"
        if not self.path(SUMMARY).exists() or (self.damaged() if damaged is None else damaged):
            return "incomplete"
        if status is None:
            return "manual"
        seeds = self.summary()["seeds"]
        return "diverged" if seeds and all(s.get("status") == "diverged" for s in seeds) else "ok"


PLAN = ".plan.json"  # in the store: the jobs of the profile last run into it


def write_plan(store_dir: str | Path, profile: str, job_ids, workloads: dict | None = None) -> Path:
    """Record which run folders make up the profile as last run into ``store_dir``, and which of them each of its
    workloads reads (``workloads``: name -> job ids)."""
    workloads = workloads or {}
    return write_json(Path(store_dir) / PLAN, {"profile": profile, "jobs": sorted(job_ids), "workload_order": list(workloads),
                                               "workloads": {w: sorted(ids) for w, ids in workloads.items()}})


def workloads_of(store_dir: str | Path) -> list[str]:
    """The workloads of the store's current profile, in the profile's order (none for a one-setting profile)."""
    plan = Path(store_dir) / PLAN
    return list(read_json(plan).get("workload_order", [])) if plan.exists() else []


def _folders(store_dir: Path) -> list[Path]:
    return [d for d in sorted(store_dir.iterdir()) if d.is_dir() and not d.name.startswith(".")] \
        if store_dir.is_dir() else []


def jobs_in(store_dir: str | Path, everything: bool = False, workload: str = "") -> list[JobStore]:
    """The runs of the store's current profile (see :func:`write_plan`), or every run folder; with ``workload``,
    the runs that workload reads.

    A folder the last profile did not plan (a job an edited profile no longer has, or had with other
    parameters) stays on disk, where a later run can reuse it, but is no run of this profile: the
    findings and the report leave it out. A store without a plan (written by hand) is read whole.
    """
    store_dir = Path(store_dir)
    folders = _folders(store_dir)
    plan = store_dir / PLAN
    if not everything and plan.exists():
        written = read_json(plan)
        planned = set(written["jobs"])
        if workload:
            listed = written.get("workloads", {})
            if workload not in listed:
                raise ValueError(f"workload = {workload!r} is not a workload of the store {store_dir}; its workloads "
                                 f"are: {', '.join(listed) or 'none'}")
            planned &= set(listed[workload])
        folders = [d for d in folders if d.name in planned]
    elif workload:
        raise ValueError(f"workload = {workload!r}: the store {store_dir} has no plan saying which runs it reads")
    return [JobStore(d) for d in folders]


def superseded(store_dir: str | Path) -> list[str]:
    """Run folders in the store that its current plan does not hold."""
    current = {r.job_id for r in jobs_in(store_dir)}
    return [d.name for d in _folders(Path(store_dir)) if d.name not in current]


@dataclass
class Tables:
    """Tidy tables of a store.

    ``jobs``: one row per job folder; ``runs``: one row per seed run (job, seed or run label) from every
    summary; ``epochs`` and ``steps``: the training history and sampled steps; ``extra``: every other CSV
    a notebook wrote (``eigenvalues``, ``slices``, ...), concatenated over jobs. Every row carries
    its job's ``job_id``, ``notebook`` and setting (batch size, learning rate, ...).
    """

    jobs: pd.DataFrame
    runs: pd.DataFrame
    epochs: pd.DataFrame
    steps: pd.DataFrame
    extra: dict

    def table(self, name: str) -> pd.DataFrame:
        return self.extra.get(name, pd.DataFrame())


def _flat(params: dict) -> dict:
    return {k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in params.items()}




# Tables whose rows have a batch of their own: history.csv's batch of each epoch (batch growth changes it),
# variance.csv's and cosines.csv's batch drawn to measure the gradient noise, and accumulation_time.csv's batch of
# the accumulation check. In every table `batch_size` is the run's batch: the job's, the batch a growing run
# started from.
OWN_BATCH = {"history": "epoch_batch", "variance": "drawn_batch", "cosines": "drawn_batch",
             "accumulation_time": "check_batch"}


def load_tables(store_dir: str | Path, workload: str = "") -> Tables:
    """Read every run of a store (or of one of its workloads) into tidy pandas tables (incomplete and failed runs
    appear in ``jobs`` only)."""
    jobs, runs, csvs = [], [], {}
    for run in jobs_in(store_dir, workload=workload):
        if not run.path(PARAMS).exists() and run.status() is None:
            continue
        status = run.status() or {}
        damaged = run.damaged()  # once: it hashes every file the job wrote
        state = run.state(damaged)
        summary = run.summary() if state not in ("failed", "incomplete") else {}
        job = {"job_id": run.job_id, "notebook": status.get("notebook") or summary.get("notebook"), "state": state,
               "error": status.get("error") or (f"cannot read {', '.join(damaged)}" if damaged else None),
               "seconds": status.get("seconds"), **_flat(run.setting())}
        jobs.append(job)
        if not summary:
            continue
        setting = {k: v for k, v in job.items() if k not in ("state", "error", "seconds")}  # the run's whole setting
        runs.extend({**setting, **record} for record in summary["seeds"])
        for path in sorted(run.dir.glob("*.csv")):
            try:
                frame = pd.read_csv(path)
            except pd.errors.EmptyDataError:
                continue
            # `batch_size` means the run's batch in every table: the batch a table varies has its own name
            # (stores written before they had one are read the same way)
            if path.stem in OWN_BATCH and "batch_size" in frame and OWN_BATCH[path.stem] not in frame:
                frame = frame.rename(columns={"batch_size": OWN_BATCH[path.stem]})
            frame = frame.assign(**{k: v for k, v in setting.items() if k not in frame.columns})
            csvs.setdefault(path.stem, []).append(frame)
    tables = {name: pd.concat(frames, ignore_index=True) for name, frames in csvs.items()}
    # a store where no job finished still gives tables with their keys: the findings say so instead of failing
    keys = ["job_id", "notebook", "batch_size", "seed"]
    return Tables(jobs=pd.DataFrame(jobs, columns=None if jobs else ["job_id", "notebook", "state", "error"]),
                  runs=pd.DataFrame(runs, columns=None if runs else keys + ["status"]),
                  epochs=tables.pop(HISTORY[:-4], pd.DataFrame(columns=keys + ["epoch", "step", "train_loss",
                                                                              "val_loss"])),
                  steps=tables.pop(STEPS[:-4], pd.DataFrame(columns=keys + ["step", "distance"])), extra=tables)


# --- the report folder's layout ----------------------------------------------------------------
CLAIMS_CSV = "claims.csv"


def robust_flag(v) -> bool | None:
    """claims.csv's robust flag (True/False, or their text as a CSV gives them back), None where the study has none."""
    if isinstance(v, str):
        return {"true": True, "false": False}.get(v.strip().lower())
    return None if v is None or (isinstance(v, float) and pd.isna(v)) else bool(v)


def figures_dir(report_dir: str | Path) -> Path:
    return Path(report_dir) / "figures"


def claims_path(report_dir: str | Path) -> Path:
    return Path(report_dir) / CLAIMS_CSV


def clear_findings(report_dir: str | Path) -> None:
    """Remove what the findings wrote last time, so a failed findings run leaves no stale verdict behind."""
    import shutil

    claims_path(report_dir).unlink(missing_ok=True)
    shutil.rmtree(figures_dir(report_dir), ignore_errors=True)


def workload_dir(out_dir: str | Path, workload: str) -> Path:
    """Where the findings of one workload of a profile's output folder write their notebook, claims and figures."""
    return Path(out_dir) / "workloads" / workload


def findings_dir(out_dir: str | Path) -> Path:
    """The folder of the findings the report's pages show: the output folder's own, or its first workload's."""
    names = workloads_of(store_dir(out_dir))
    return workload_dir(out_dir, names[0]) if names else Path(out_dir)


def gather_claims(out_dir: str | Path, workloads: list[str]) -> pd.DataFrame:
    """Every workload's verdicts in one ``claims.csv`` of the output folder, a row per claim and workload (a workload
    whose findings failed has no rows)."""
    paths = [claims_path(workload_dir(out_dir, w)) for w in workloads]
    frames = [pd.read_csv(p) for p in paths if p.exists() and p.stat().st_size]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["workload", "claim", "verdict"])
    write_atomic(claims_path(out_dir), table.to_csv(index=False))
    return table


def store_dir(out_dir: str | Path) -> Path:
    """Where the runs of a profile's output folder live."""
    return Path(out_dir) / "runs"


def store_dir_of(path: str | Path) -> Path:
    """The store itself, given either the store or a profile's output folder holding it."""
    path = Path(path)
    return store_dir(path) if (store_dir(path)).is_dir() else path
