"""A sweep root: which study it runs, every job's full config and its hash, and every job's state.

  ROOT/manifest.json          study, study file, scale, seeds, the git commit of each `run`, and per job: row, seed,
                              stage, kind, workdir, command, config hash, the jobs it waits for
  ROOT/configs/<job>.json     the job's full config (what `python -m mm1_jax.train` / `.eval` will build)
  ROOT/state/<job>.json       the job's state: running / done / failed (with its last error line), host, pid, times
  ROOT/logs/<job>.log         its output
  ROOT/s<seed>/<study>/<row>/<stage>   the job's workdir (checkpoints, eval_results.json)

Rows configured alike have identical jobs: those run once (the manifest's `same_as` names the job that runs them,
whose workdir and results they share). A second `run` with the same root skips done jobs, reruns the others (a training job resumes from its own
checkpoint), and refuses when a job's config changed, naming the fields that differ.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import socket
import subprocess
import time
from typing import Any

from etils import epath

from mm1_jax.sweep import studies as studies_lib


@dataclasses.dataclass(frozen=True)
class SweepJob:
    """A study job for one seed, with the jobs it waits for."""

    id: str  # s<seed>/<row>/<stage>
    seed: int
    job: studies_lib.Job
    depends: tuple[str, ...]
    same_as: str = ""  # the id of the job that runs this one (an identical configuration of another row)

    @property
    def key(self) -> str:
        """The id as a file name."""
        return self.id.replace("/", "__")


def sweep_jobs(study: studies_lib.Study, root: str, rows: list[str] | None, seeds: list[int]) -> list[SweepJob]:
    """Every runnable job of the chosen rows for every seed, each seed in its own sub-root (training seeds set)."""
    out: list[SweepJob] = []
    for seed in seeds:
        jobs = [j for j in studies_lib.jobs(study, f"{root.rstrip('/')}/s{seed}", rows) if j.runnable]
        if seed:
            jobs = [_seeded(j, seed) for j in jobs]
        by_workdir = {f"{j.workdir}/checkpoints": f"s{seed}/{j.row}/{j.stage}" for j in jobs if not j.same_as}
        for j in jobs:
            if j.same_as:  # run by the identical job: done when it is done
                same = f"s{seed}/{j.same_as}"
                out.append(SweepJob(f"s{seed}/{j.row}/{j.stage}", seed, j, (same,), same))
                continue
            wanted = (j.checkpoint, dict(j.overrides).get("init.checkpoint", ""))
            depends = tuple(by_workdir[w] for w in wanted if w in by_workdir)
            out.append(SweepJob(f"s{seed}/{j.row}/{j.stage}", seed, j, depends))
    return out


def _seeded(job: studies_lib.Job, seed: int) -> studies_lib.Job:
    if job.kind != "train":
        return job
    return dataclasses.replace(job, overrides=job.overrides + (("train.seed", seed), ("data.seed", seed)))


def config_dump(sweep_job: SweepJob) -> dict:
    """The job's full config as plain JSON data (an evaluation of a given model: its config file's)."""
    config = studies_lib.job_config(sweep_job.job)
    return json.loads(config.to_json_best_effort(sort_keys=True))


def config_hash(dump: dict) -> str:
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """'field: old -> new' for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += differences(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=studies_lib.REPO, capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=studies_lib.REPO,
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("+dirty" if dirty.stdout.strip() else "")


class Root:
    """The files of a sweep root (local paths or gs://, through etils.epath)."""

    def __init__(self, path: str):
        self.path = epath.Path(path)

    def _read(self, path: epath.Path) -> dict | None:
        return json.loads(path.read_text()) if path.exists() else None

    def _write(self, path: epath.Path, data: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
        tmp.replace(path)  # readers never see half a file

    @property
    def manifest_path(self) -> epath.Path:
        return self.path / "manifest.json"

    def manifest(self) -> dict | None:
        return self._read(self.manifest_path)

    def write_manifest(self, data: dict) -> None:
        self._write(self.manifest_path, data)

    def write_config(self, job: SweepJob, dump: dict) -> None:
        self._write(self.path / "configs" / f"{job.key}.json", dump)

    def config(self, key: str) -> dict | None:
        return self._read(self.path / "configs" / f"{key}.json")

    def state(self, key: str) -> dict | None:
        return self._read(self.path / "state" / f"{key}.json")

    def set_state(self, key: str, state: str, **fields: Any) -> None:
        old = self.state(key) or {}
        self._write(self.path / "state" / f"{key}.json",
                    {**old, **fields, "state": state, "time": time.time(), "host": socket.gethostname()})

    def log_path(self, key: str) -> epath.Path:
        return self.path / "logs" / f"{key}.log"


def prepare(root: Root, study: studies_lib.Study, jobs: list[SweepJob], seeds: list[int], launcher: str) -> dict:
    """Create or extend the manifest. StudyError when the root holds another study or a job's config changed."""
    manifest = root.manifest()
    where = str(root.path)
    if manifest is not None:
        if manifest["study"] != study.name or manifest.get("scale") != study.scale:
            raise studies_lib.StudyError(f"root {where} belongs to study {manifest['study']} at "
                                         f"{manifest.get('scale')} scale, not {study.name} at {study.scale} scale; "
                                         "use another --root.")
    else:
        manifest = dict(study=study.name, study_file=str(study.path), scale=study.scale, created=time.time(),
                        runs=[], jobs={})
    dumps = {j.id: config_dump(j) for j in jobs}
    for j in jobs:
        entry = manifest["jobs"].get(j.id)
        new_hash = config_hash(dumps[j.id])
        if entry and entry["config_hash"] != new_hash:
            old = root.config(j.key) or {}
            diff = differences(old, dumps[j.id])
            raise studies_lib.StudyError(
                f"row {j.job.row!r} stage {j.job.stage!r} (seed {j.seed}) changed since root {where} ran it: "
                f"{'; '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}; use another --root to keep both.")
    for j in jobs:
        if j.id not in manifest["jobs"]:
            root.write_config(j, dumps[j.id])
        manifest["jobs"][j.id] = dict(row=j.job.row, seed=j.seed, stage=j.job.stage, kind=j.job.kind,
                                      workdir=j.job.workdir, command=j.job.command(), depends=list(j.depends),
                                      config_hash=config_hash(dumps[j.id]), overrides=dict(j.job.overrides),
                                      **({"same_as": j.same_as} if j.same_as else {}))
    manifest["runs"].append(dict(time=time.time(), commit=git_commit(), launcher=launcher, seeds=seeds))
    root.write_manifest(manifest)
    return manifest


def job_status(root: Root, manifest: dict, job_id: str) -> tuple[str, str]:
    """(state, detail): done / running / failed (the last error line) / waiting (for a job) / not run."""
    entry = manifest["jobs"][job_id]
    if entry.get("same_as"):  # run once, as the identical job
        state, detail = job_status(root, manifest, entry["same_as"])
        return state, f"the same run as {entry['same_as']}" + (f"; {detail}" if detail else "")
    key = job_id.replace("/", "__")
    state = root.state(key)
    if state is None:
        blockers = [d for d in entry["depends"] if (root.state(d.replace("/", "__")) or {}).get("state") != "done"]
        return ("waiting", f"for {', '.join(blockers)}") if blockers else ("not run", "")
    if state["state"] == "running" and state.get("host") == socket.gethostname() and state.get("pid"):
        if not _alive(int(state["pid"])):
            return "interrupted", f"pid {state['pid']} is gone"
    return state["state"], state.get("error", "") if state["state"] == "failed" else state.get("detail", "")


def collect_results(root: Root) -> tuple[studies_lib.Study, dict, dict, dict]:
    """What a report is made of: (the study at the root's scale, results, failed, hparams).

    results[row][seed]: the flat eval scores {"task/Nshot/metric": value} of every finished evaluation (its workdir's
    eval_results.json); failed[row]: "stage: last error line" of the row's first failed job; hparams[row]: the row's
    argument and overrides (for TensorBoard). StudyError when the root has no manifest.
    """
    manifest = root.manifest()
    if manifest is None:
        raise studies_lib.StudyError(f"{root.path} is not a sweep root (it has no manifest.json).")
    study_file = pathlib.Path(manifest["study_file"])
    if not study_file.is_absolute() and not study_file.exists():  # a path `run` was given relative to the repository
        study_file = studies_lib.REPO / study_file
    study = studies_lib.at_scale(studies_lib.load_study(study_file), manifest.get("scale", "paper"))
    results: dict[str, dict[int, dict]] = {}
    failed: dict[str, str] = {}
    for job_id, entry in manifest["jobs"].items():
        state, detail = job_status(root, manifest, job_id)
        if state == "failed":
            failed.setdefault(entry["row"], f"{entry['stage']}: {detail}")
        path = epath.Path(entry["workdir"]) / "eval_results.json"
        if entry["kind"] == "eval" and state == "done" and path.exists():
            results.setdefault(entry["row"], {})[int(entry["seed"])] = json.loads(path.read_text())["scores"]
    hparams = {row: {"arg": spec.get("arg", ""), **{k: str(v) if isinstance(v, (tuple, list)) else v
                                                     for k, v in spec.get("overrides", {}).items()}}
               for row, spec in study.rows.items()}
    return study, results, failed, hparams


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
