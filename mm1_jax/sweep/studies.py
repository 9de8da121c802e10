"""Study files -> jobs: what `python -m mm1_jax.sweep list|plan` reads and prints.

A study file (`configs/studies/<name>.py`, plain data) defines:

  STUDY       dict(title, paper (arXiv id), source (table / figure), fixed (what the paper holds fixed), note)
  STAGES      tuple of stages, in order. A training stage: dict(name, config='configs/X.py', overrides={...},
              shared=False, missing=''); its `config` gets the row's `arg` (`configs/X.py:ARG`); every training stage
              after a row's first starts from the previous one's checkpoints (`init.checkpoint`). `shared=True`: one
              job for all the rows that configure the stage identically (row `shared`; a second configuration
              of it, e.g. another architecture, runs once as `shared-<its first row>`). An evaluation stage: dict(name, evaluate=True,
              shots=(0, 4, 8), limit=N, overrides={...}, missing='') scores the row's previous training stage on the
              tasks of BENCHMARKS (with that stage's config), or, with `config` and `checkpoint`, a given model.
  ROWS        row name -> dict(arg='decoder=1b,...' (the config argument of every stage), overrides={dotted field:
              value} (every stage), stage_overrides={stage: {...}}, skip=(stage names the row does not run),
              missing='the feature it needs that does not exist yet' (the row is kept but not runnable), note='').
  BENCHMARKS  benchmark -> dict(task, metric, scale, pending, files) (configs/studies/_common.py).
  METRICS     metric -> dict(mean=(benchmarks or other metrics), shots=k): how a reported number aggregates.
  PAPER       row -> {metric: (value, where, tag)}: the paper's number (or 'not published', a string, or
              dict(delta=x, vs=row)), where it is (table / figure) and how we know it: '[P]' read in the paper, '[S]'
              from secondary summaries, '[S1]' a single unchecked secondary source; 'not found' (a number we could not
              read) and 'not in the paper' (a row the paper does not have) carry no tag: ''.
  FINDINGS    optional: (sentence, where, tag) conclusions to compare against.
  FIGURES     optional: the report's figures in the paper's style, each dict(kind='bars', metrics=(...)) (a group
              of bars per metric, one bar per row) or dict(kind='line', metric=..., x={row: number}, logx=False)
              (our metric against a number each row stands for; series={row: label} draws one line per label), with
              title=, xlabel=, file='name.png'.
  EMBEDDED    optional: the study at embedded scale (`--scale=embedded`, configs/tiny.py, minutes on a CPU):
              dict(stages=STAGES, rows={row: dict(arg=, overrides=, ...)} (names from ROWS, so the paper's numbers
              still apply), benchmarks=BENCHMARKS (embedded tasks), metrics=METRICS, figures=FIGURES (defaults:
              the study's)).

Overrides are checked against the base config's fields before any command is printed: an unknown field or a value
of the wrong type is one sentence naming the study, row, stage and field.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import pathlib
import shlex
import sys
from typing import Any

import ml_collections

REPO = pathlib.Path(__file__).resolve().parents[2]
STUDIES_DIR = REPO / "configs" / "studies"
DEFAULT_ROOT = "gs://YOUR_BUCKET/studies"
TAGS = ("[P]", "[S]", "[S1]")
# PAPER values that are no number: nothing was read, so they carry no tag ("" in place of one)
NO_VALUE = ("not found", "not in the paper")
ROW_KEYS = {"arg", "overrides", "stage_overrides", "skip", "missing", "note"}
TRAIN_STAGE_KEYS = {"name", "config", "overrides", "shared", "missing", "note"}
EVAL_STAGE_KEYS = {"name", "evaluate", "shots", "limit", "overrides", "missing", "config", "checkpoint", "note"}


class StudyError(ValueError):
    """A bad study file, row or override: one sentence naming it."""


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    path: pathlib.Path
    info: dict
    stages: tuple[dict, ...]
    rows: dict[str, dict]
    benchmarks: dict[str, dict]
    metrics: dict[str, dict]
    paper: dict[str, dict]
    findings: tuple = ()
    embedded: Any = None
    figures: tuple = ()
    scale: str = "paper"

    def row_missing(self, row: str) -> str:
        """Why the row cannot run end to end ('' when it can): its own missing feature or a stage's."""
        spec = self.rows[row]
        if spec.get("missing"):
            return spec["missing"]
        for stage in self.stages:
            if stage["name"] not in spec.get("skip", ()) and stage.get("missing"):
                return f"stage {stage['name']}: {stage['missing']}"
        return ""

    def runnable_rows(self) -> list[str]:
        return [r for r in self.rows if not self.row_missing(r)]

    def tasks(self) -> list[str]:
        """Every task the study's benchmarks need, in order, once."""
        return list(dict.fromkeys(b["task"] for b in self.benchmarks.values()))


@dataclasses.dataclass(frozen=True)
class Job:
    """One (row, stage): a training run or an evaluation."""

    study: str
    row: str  # 'shared' (or 'shared-ROW', a second configuration) for a shared stage
    stage: str
    kind: str  # 'train' | 'eval'
    config: str  # configs/X.py
    arg: str
    overrides: tuple[tuple[str, Any], ...]
    workdir: str
    missing: str = ""  # why it cannot run yet ('' when it can)
    checkpoint: str = ""  # eval: the checkpoints scored
    tasks: tuple[str, ...] = ()  # eval: available tasks
    unavailable: tuple[str, ...] = ()  # eval: tasks not in mm1_jax.eval.datasets.RUNNABLE yet
    shots: tuple[int, ...] = ()
    limit: int = 0
    same_as: str = ""  # "row/stage" of an earlier job this one equals: it runs once, in that job's workdir

    @property
    def identity(self) -> tuple:
        """What makes two jobs the same run (everything but the row, the stage name and the workdir)."""
        return (self.kind, self.config, self.arg, self.overrides, self.checkpoint, self.tasks, self.shots, self.limit)

    @property
    def runnable(self) -> bool:
        """Every feature it needs exists (an evaluation may still wait for its tasks: `waiting`)."""
        return not self.missing

    @property
    def waiting(self) -> bool:
        """An evaluation none of whose tasks exists yet (`unavailable` names them)."""
        return self.kind == "eval" and not self.tasks

    @property
    def config_arg(self) -> str:
        return f"{self.config}:{self.arg}" if self.arg else self.config

    def command(self) -> str:
        """The exact command line (run from the repository root)."""
        if self.kind == "train":
            args = ["python", "-m", "mm1_jax.train", f"--config={self.config_arg}", f"--workdir={self.workdir}"]
        else:
            args = ["python", "-m", "mm1_jax.eval", f"--config={self.config_arg}", f"--checkpoint={self.checkpoint}",
                    f"--tasks={','.join(self.tasks)}", f"--shots={','.join(map(str, self.shots))}",
                    f"--limit={self.limit}", f"--workdir={self.workdir}"]
        args += [f"--config.{key}={cli_value(value)}" for key, value in self.overrides]
        return " ".join(shlex.quote(a) for a in args)


def cli_value(value: Any) -> str:
    """A value as `--config.a.b=...` takes it (ml_collections config_flags parses it back to the same value)."""
    if isinstance(value, (tuple, list)):
        items = [json.dumps(v) if isinstance(v, str) else repr(v) for v in value]
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return str(value)


# --- loading


def _load_module(path: pathlib.Path, prefix: str):
    if str(REPO) not in sys.path:  # study and config files import `configs.*`
        sys.path.insert(0, str(REPO))
    name = f"_mm1_jax_{prefix}_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def study_files(directory: pathlib.Path | str = STUDIES_DIR) -> list[pathlib.Path]:
    """The study files of a folder (names starting with '_' hold shared data and are skipped)."""
    return sorted(p for p in pathlib.Path(directory).glob("*.py") if not p.name.startswith("_"))


def load_study(path: pathlib.Path | str) -> Study:
    """Read and check a study file; StudyError names the first problem."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise StudyError(f"study file {str(path)!r} does not exist (the studies are in {_rel(STUDIES_DIR)}/).")
    module = _load_module(path, "study")
    if not hasattr(module, "ROWS"):
        raise StudyError(f"{str(path)!r} is not a study file: it defines no ROWS.")
    study = Study(
        name=path.stem, path=path, info=dict(getattr(module, "STUDY", {})), stages=tuple(getattr(module, "STAGES", ())),
        rows=dict(module.ROWS), benchmarks=dict(getattr(module, "BENCHMARKS", {})),
        metrics=dict(getattr(module, "METRICS", {})), paper=dict(getattr(module, "PAPER", {})),
        findings=tuple(getattr(module, "FINDINGS", ())), embedded=getattr(module, "EMBEDDED", None),
        figures=tuple(getattr(module, "FIGURES", ())),
    )
    check_structure(study)
    return study


def at_scale(study: Study, scale: str) -> Study:
    """The study as run at `scale`: 'paper' (as written) or 'embedded' (its EMBEDDED stages, rows, benchmarks)."""
    if scale == "paper":
        return study
    if scale != "embedded":
        raise StudyError(f"--scale={scale!r} is not one of paper, embedded.")
    e = study.embedded
    if not e:
        raise StudyError(f"embedded scale not defined for study {study.name} yet (it has no EMBEDDED).")
    unknown = set(e) - {"stages", "rows", "benchmarks", "metrics", "figures"}
    extra = [r for r in e.get("rows", {}) if r not in study.rows]
    if unknown or extra or not e.get("stages") or not e.get("rows"):
        raise StudyError(f"study {study.name}: EMBEDDED needs stages and rows (rows named as in ROWS) and may set "
                         f"benchmarks, metrics and figures; found keys {sorted(e)}{', unknown rows ' + str(extra) if extra else ''}.")
    benchmarks, metrics = dict(e.get("benchmarks", study.benchmarks)), dict(e.get("metrics", study.metrics))
    paper = {r: {m: v for m, v in values.items() if m in metrics or m in benchmarks}  # the paper's direction, to
             for r, values in study.paper.items() if r in e["rows"]}                # compare with ours
    small = dataclasses.replace(study, stages=tuple(e["stages"]), rows=dict(e["rows"]), benchmarks=benchmarks,
                                metrics=metrics, paper=paper, figures=tuple(e.get("figures", study.figures)),
                                scale="embedded")
    check_structure(small)
    return small


def check_structure(study: Study) -> None:
    """Names and keys agree across STAGES, ROWS, BENCHMARKS, METRICS and PAPER (no config is loaded)."""
    where = f"study {study.name}"
    for key in ("title", "paper", "source"):
        if not study.info.get(key):
            raise StudyError(f"{where}: STUDY has no {key!r}.")
    names = [s.get("name") for s in study.stages]
    if not names or len(set(names)) != len(names) or not all(names):
        raise StudyError(f"{where}: STAGES must name each stage once; they are {names}.")
    for stage in study.stages:
        keys = EVAL_STAGE_KEYS if stage.get("evaluate") else TRAIN_STAGE_KEYS
        unknown = set(stage) - keys
        if unknown:
            raise StudyError(f"{where}: stage {stage['name']!r} has unknown keys {sorted(unknown)}; known: "
                             f"{sorted(keys)}.")
        if stage.get("evaluate"):
            if not stage.get("shots"):
                raise StudyError(f"{where}: evaluation stage {stage['name']!r} names no shots.")
            if bool(stage.get("config")) != bool(stage.get("checkpoint")):
                raise StudyError(f"{where}: evaluation stage {stage['name']!r} needs both config and checkpoint "
                                 "(a given model) or neither (the row's previous training stage).")
        elif not stage.get("config"):
            raise StudyError(f"{where}: training stage {stage['name']!r} names no config file.")
    if not study.rows:
        raise StudyError(f"{where}: ROWS is empty.")
    for row, spec in study.rows.items():
        unknown = set(spec) - ROW_KEYS
        if unknown:
            raise StudyError(f"{where}: row {row!r} has unknown keys {sorted(unknown)}; known: {sorted(ROW_KEYS)}.")
        for stage in list(spec.get("skip", ())) + list(spec.get("stage_overrides", {})):
            if stage not in names:
                raise StudyError(f"{where}: row {row!r} names stage {stage!r}; the stages are {', '.join(names)}.")
        trained = False
        for stage in study.stages:
            if stage["name"] in spec.get("skip", ()):
                continue
            if stage.get("evaluate") and not stage.get("config") and not trained:
                raise StudyError(f"{where}: row {row!r} skips every training stage before evaluation stage "
                                 f"{stage['name']!r}.")
            trained = trained or not stage.get("evaluate")
    for name, bench in study.benchmarks.items():
        if not bench.get("task") or not bench.get("metric"):
            raise StudyError(f"{where}: benchmark {name!r} needs a task and a metric.")
    for name, metric in study.metrics.items():
        for part in metric.get("mean", ()):
            if part not in study.benchmarks and part not in study.metrics:
                raise StudyError(f"{where}: metric {name!r} averages {part!r}, which is neither a benchmark nor a "
                                 "metric of the study.")
    for row, values in study.paper.items():
        if row not in study.rows:
            raise StudyError(f"{where}: PAPER names row {row!r}, which is not in ROWS.")
        for metric, entry in values.items():
            if metric not in study.metrics and metric not in study.benchmarks:
                raise StudyError(f"{where}: PAPER[{row!r}] names metric {metric!r}, which the study does not define.")
            if not (isinstance(entry, tuple) and len(entry) == 3 and entry[1]
                    and entry[2] in (("",) if entry[0] in NO_VALUE else TAGS)):
                allowed = "'' (nothing was read)" if isinstance(entry, tuple) and entry and entry[0] in NO_VALUE \
                    else f"one of {', '.join(TAGS)}"
                raise StudyError(f"{where}: PAPER[{row!r}][{metric!r}]={entry!r} is not (value, where, tag) with tag "
                                 f"{allowed}.")
            value = entry[0]
            if isinstance(value, dict) and value.get("vs") not in study.rows:
                raise StudyError(f"{where}: PAPER[{row!r}][{metric!r}] compares with {value.get('vs')!r}, not a row.")


def _rel(path: pathlib.Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --- jobs


def _merge(*dicts: dict | None) -> dict:
    out: dict = {}
    for d in dicts:
        out.update(d or {})
    return out


def jobs(study: Study, root: str = DEFAULT_ROOT, rows: list[str] | None = None) -> list[Job]:
    """Every (row, stage) job of the chosen rows, in order; a shared stage appears once, and a job that is the same
    run as an earlier one (rows configured alike) points at it (`same_as`, its workdir): the sweep runs it once."""
    from mm1_jax.eval.datasets import RUNNABLE as TASKS  # only the task names (and groups)

    chosen = list(study.rows) if rows is None else rows
    for row in chosen:
        if row not in study.rows:
            raise StudyError(f"study {study.name} has no row {row!r}; its rows are: {', '.join(study.rows)}.")
    root = root.rstrip("/")
    tasks = study.tasks()
    available = tuple(t for t in tasks if t in TASKS)
    unavailable = tuple(t for t in tasks if t not in TASKS)
    files = _merge(*(b.get("files") for b in study.benchmarks.values() if b["task"] in TASKS))
    out: list[Job] = []
    shared: dict[tuple, Job] = {}  # (stage, config, arg, overrides) -> the one job of that configuration
    first: dict[tuple, Job] = {}  # Job.identity -> the first job of it: a later identical job is run by that one

    def once(job: Job) -> Job:
        """The job, or, when an earlier job is the same run, the job pointing at that run (its workdir)."""
        if not job.runnable:
            return job
        earlier = first.setdefault(job.identity, job)
        if earlier is job:
            return job
        return dataclasses.replace(job, workdir=earlier.workdir, same_as=earlier.same_as or
                                   f"{earlier.row}/{earlier.stage}")

    for row in chosen:
        spec = study.rows[row]
        previous: Job | None = None
        for stage in study.stages:
            name = stage["name"]
            if name in spec.get("skip", ()):
                continue
            missing = spec.get("missing") or stage.get("missing") or ""
            if stage.get("evaluate"):
                if stage.get("config"):
                    config, arg, base, checkpoint = stage["config"], spec.get("arg", ""), {}, stage["checkpoint"]
                else:
                    config, arg, checkpoint = previous.config, previous.arg, f"{previous.workdir}/checkpoints"
                    base = {k: v for k, v in previous.overrides if not k.startswith("init.")}
                    missing = missing or previous.missing
                overrides = _merge(base, files, stage.get("overrides"), spec.get("overrides") if stage.get("config")
                                   else None, spec.get("stage_overrides", {}).get(name))
                job = once(Job(study.name, row, name, "eval", config, arg, tuple(overrides.items()),
                               f"{root}/{study.name}/{row}/{name}", missing, checkpoint, available, unavailable,
                               tuple(stage["shots"]), int(stage.get("limit", 100))))
                out.append(job)
                continue
            if stage.get("shared"):  # one job for every row: only the stage's own missing feature counts
                missing = stage.get("missing") or ""
            if previous is not None and previous.missing and not missing:
                missing = f"needs stage {previous.stage} ({previous.missing})"
            init = {"init.checkpoint": f"{previous.workdir}/checkpoints"} if previous else {}
            overrides = _merge(stage.get("overrides"), spec.get("overrides"), spec.get("stage_overrides", {}).get(name),
                               init)
            clash = [k for k in ("init.encoder", "init.decoder") if previous and overrides.get(k)]
            if clash:
                raise StudyError(f"study {study.name}, row {row!r}: stage {name!r} starts from stage "
                                 f"{previous.stage!r}'s checkpoints, but also sets {clash[0]}, which would replace "
                                 "what that stage trained; set it on the row's first stage only.")
            key = (name, stage["config"], spec.get("arg", ""), tuple(overrides.items()))
            if stage.get("shared") and key in shared:  # a row configured as an earlier one: that run is its start
                previous = shared[key]
                continue
            who = row
            if stage.get("shared"):  # 'shared', or 'shared-ROW' for the second, third... configuration of the stage
                who = "shared" if not any(k[0] == name for k in shared) else f"shared-{row}"
            job = Job(study.name, who, name, "train", stage["config"], spec.get("arg", ""), tuple(overrides.items()),
                      f"{root}/{study.name}/{who}/{name}", missing)
            job = job if stage.get("shared") else once(job)
            if stage.get("shared"):
                shared[key] = job
            out.append(job)
            previous = job
    return out


# --- configs


_BASE_CACHE: dict[tuple[str, str], ml_collections.ConfigDict] = {}


def base_config(config: str, arg: str) -> ml_collections.ConfigDict:
    """`get_config(arg)` of a config file (a path relative to the repository root), a fresh copy each call."""
    key = (config, arg)
    if key not in _BASE_CACHE:
        path = REPO / config
        if not path.is_file():
            raise StudyError(f"config file {config!r} does not exist.")
        module = _load_module(path, "config")
        _BASE_CACHE[key] = module.get_config(arg) if arg else module.get_config()
    return copy.deepcopy(_BASE_CACHE[key])


def apply_overrides(config: ml_collections.ConfigDict, overrides, where: str) -> ml_collections.ConfigDict:
    """Set dotted fields that already exist, keeping their types (what `--config.a.b=v` can do)."""
    for key, value in dict(overrides).items():
        node, parts = config, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                parent = ".".join(parts[:i]) or "the config"
                fields = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"
                raise StudyError(f"{where}: override {key!r} names no field ({parent} has no {part!r}; its fields are "
                                 f"{fields}).")
            if i < len(parts) - 1:
                node = node[part]
        old = node[parts[-1]]
        if old is None or isinstance(old, (list, dict, ml_collections.ConfigDict)):
            raise StudyError(f"{where}: override {key!r} sets a {type(old).__name__} field, which the command line "
                             "cannot set.")
        value = tuple(value) if isinstance(value, list) else value
        if isinstance(old, tuple) != isinstance(value, tuple) or (isinstance(old, bool) != isinstance(value, bool)):
            raise StudyError(f"{where}: override {key}={value!r} does not fit the field's type "
                             f"({type(old).__name__}, now {old!r}).")
        try:
            node[parts[-1]] = value
        except TypeError:
            raise StudyError(f"{where}: override {key}={value!r} does not fit the field's type "
                             f"({type(old).__name__}, now {old!r}).") from None
    return config


def job_config(job: Job) -> ml_collections.ConfigDict:
    """The job's config: its config file's get_config(arg) with the overrides applied."""
    where = f"study {job.study}, row {job.row!r}, stage {job.stage!r} ({job.config_arg})"
    try:
        config = base_config(job.config, job.arg)
    except StudyError:
        raise
    except ValueError as e:
        raise StudyError(f"{where}: {e}") from None
    return apply_overrides(config, job.overrides, where)


def check_job(job: Job) -> ml_collections.ConfigDict:
    """Build a runnable job's config and validate it with the trainer's own check (`validate_config`: every
    section's fields, the model, the data, model <-> data, the mixture, mesh, train, init, eval), so `plan` refuses
    exactly what the job's run would; returns the config."""
    from mm1_jax.eval.datasets import check_eval_config
    from mm1_jax.train.config import validate_config

    config = job_config(job)
    where = f"study {job.study}, row {job.row!r}, stage {job.stage!r}"
    try:
        if "model" not in config and job.kind == "eval":  # a converted checkpoint's evaluation: it holds the model
            check_eval_config(config.get("eval"))
            return config
        validate_config(config)  # an evaluation's config is its training stage's
    except ValueError as e:
        raise StudyError(f"{where}: {e}") from None
    return config


# --- metrics


def aggregate(study: Study, scores: dict[str, float]) -> dict[str, float | None]:
    """The study's METRICS from eval scores {"task/Nshot/metric": value} (None where a part is missing)."""

    def benchmark(name: str, shots: int) -> float | None:
        b = study.benchmarks[name]
        value = scores.get(f"{b['task']}/{shots}shot/{b['metric']}")
        return None if value is None or b.get("scale") is None else value * b["scale"]

    def metric(name: str) -> float | None:
        m = study.metrics[name]
        parts = [metric(p) if p in study.metrics and p != name else benchmark(p, m.get("shots", 0))
                 for p in m["mean"]]  # a metric averaging the benchmark of its own name reads the benchmark
        return None if any(p is None for p in parts) else sum(parts) / len(parts)

    return {name: metric(name) for name in study.metrics}
