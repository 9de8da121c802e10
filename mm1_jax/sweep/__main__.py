"""python -m mm1_jax.sweep list | plan | run | status | report

  list [DIR]                                       every study: rows, how many run today, its tasks
  plan STUDY [--scale=paper|embedded] [--rows=a,b] [--root=ROOT]     one line per (row, stage) job: its command
  run STUDY --root=ROOT [--launcher=local|slurm|tpu] [--rows=a,b] [--scale=...] [--seeds=0,1] [--parallel=K]
      [--slurm=OPTION ...] [--setup='source .venv/bin/activate'] [--tpu=POD[,POD2] --zone=Z --project=P]
  status --root=ROOT                               every job: done / running / failed (last error) / waiting
  report --root=ROOT                               ROOT/report/: table (md, csv), figures, TensorBoard hparams

`list` prints every study with its row count, how many rows have every feature they need, and how many of its
evaluation tasks exist. `plan` checks the chosen
rows' configs (every override names an existing field of its base config; then the trainer's own check,
`mm1_jax.train.config.validate_config`, so a job is refused exactly when its run would be) and prints one line per (row, stage) job: `row/stage: COMMAND` (an evaluation's tasks that do not exist yet
follow as a `#` comment), `row/stage: # task not yet available: ...` (an evaluation none of whose tasks exists), or
`row/stage: # not runnable: WHY`, or `row/stage: # the same run as ROW/STAGE` (rows configured alike: their
identical jobs run once and share results). Lines starting with '#' are headers.
"""
from __future__ import annotations

import argparse
import sys

from mm1_jax.sweep import launchers
from mm1_jax.sweep import manifest as manifest_lib
from mm1_jax.sweep import studies as studies_lib


def list_studies(directory: str) -> list[str]:
    from mm1_jax.eval.datasets import RUNNABLE as TASKS  # only the task names (and groups)

    lines = [f"{'study':22s} {'rows':>4s} {'runnable':>8s} {'tasks':>6s}  source"]
    total = runnable = 0
    for path in studies_lib.study_files(directory):
        study = studies_lib.load_study(path)
        n, ok = len(study.rows), len(study.runnable_rows())
        tasks = study.tasks()
        total, runnable = total + n, runnable + ok
        have = f"{sum(t in TASKS for t in tasks)}/{len(tasks)}"
        lines.append(f"{study.name:22s} {n:4d} {ok:8d} {have:>6s}  {study.info['paper']} {study.info['source']}: "
                     f"{study.info['title']}")
    lines.append(f"{'total':22s} {total:4d} {runnable:8d}")
    lines.append("runnable: rows whose every feature exists; tasks: the study's evaluation tasks that exist today.")
    return lines


def plan(path: str, scale: str, rows: list[str] | None, root: str) -> list[str]:
    study = studies_lib.at_scale(studies_lib.load_study(path), scale)
    jobs = studies_lib.jobs(study, root, rows)
    for job in jobs:
        if job.runnable:
            studies_lib.check_job(job)
    info = study.info
    chosen = rows or list(study.rows)
    ok = sum(1 for r in chosen if not study.row_missing(r))
    lines = [f"# {study.name}: {info['paper']} {info['source']}: {info['title']}",
             f"# {len(chosen)} rows ({ok} runnable), {len(jobs)} jobs, {scale} scale, root {root}"]
    for job in jobs:
        head = f"{job.row}/{job.stage}:"
        if not job.runnable:
            lines.append(f"{head} # not runnable: {job.missing}")
            continue
        if job.same_as:
            lines.append(f"{head} # the same run as {job.same_as} (identical configuration: runs once)")
            continue
        note = f"# task not yet available: {', '.join(job.unavailable)}" if job.unavailable else ""
        lines.append(f"{head} {note}" if job.waiting else f"{head} {job.command()}{'  ' + note if note else ''}")
    return lines


def run(path: str, root: str, launcher: str, scale: str, rows: list[str] | None, seeds: list[int], parallel: int,
        slurm: list[str], setup: str, tpu: list[str], zone: str, project: str, remote_dir: str) -> int:
    """Check everything (study, rows, root, configs, the launcher's tool), record the manifest, launch."""
    study = studies_lib.at_scale(studies_lib.load_study(path), scale)
    launchers.check_tool(launcher)
    if launcher == "tpu" and (not tpu or not zone):
        raise studies_lib.StudyError("--launcher=tpu needs --tpu=POD[,POD2,...] and --zone=ZONE.")
    chosen = rows or study.runnable_rows()
    missing = [r for r in chosen if r in study.rows and study.row_missing(r)]
    if missing:
        raise studies_lib.StudyError(f"rows {', '.join(missing)} cannot run yet: {study.row_missing(missing[0])}.")
    jobs = manifest_lib.sweep_jobs(study, root, chosen, seeds)
    for job in jobs:
        studies_lib.check_job(job.job)
    box = manifest_lib.Root(root)
    manifest = manifest_lib.prepare(box, study, jobs, seeds, launcher)
    ids = [j.id for j in jobs if not j.same_as]  # a job identical to another runs once, as that one
    same = len(jobs) - len(ids)
    print(f"# {study.name} at {study.scale} scale: {len(chosen)} rows x {len(seeds)} seeds, {len(ids)} jobs"
          + (f" ({same} more identical to one of them, run once)" if same else "")
          + f", root {root}, launcher {launcher}", flush=True)
    echo = lambda line: print(line, flush=True)  # noqa: E731
    if launcher == "local":
        outcome = launchers.run_local(box, manifest, ids, parallel, echo)
    elif launcher == "slurm":
        outcome = launchers.run_slurm(box, manifest, ids, slurm, setup, echo)
    else:
        outcome = launchers.run_tpu(box, manifest, ids, tpu, zone, project, remote_dir, setup, echo)
    bad = sorted(i for i, o in outcome.items() if o in ("failed", "blocked"))
    print(f"# {sum(o == 'done' for o in outcome.values())} done, {len(bad)} failed or blocked"
          + (f": {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def status(root: str) -> list[str]:
    box = manifest_lib.Root(root)
    manifest = box.manifest()
    if manifest is None:
        raise studies_lib.StudyError(f"{root} is not a sweep root (it has no manifest.json).")
    lines = [f"# {manifest['study']} at {manifest.get('scale', 'paper')} scale, root {root}"]
    counts: dict[str, int] = {}
    for job_id in manifest["jobs"]:
        state, detail = manifest_lib.job_status(box, manifest, job_id)
        counts[state] = counts.get(state, 0) + 1
        lines.append(f"{job_id:40s} {state}{': ' + detail if detail else ''}")
    lines.append("# " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return lines


def report(root: str) -> list[str]:
    """Every finished evaluation's scores by row and seed -> ROOT/report (sweep.report.write_report)."""
    from mm1_jax.sweep.report import write_report

    box = manifest_lib.Root(root)
    study, results, failed, hparams = manifest_lib.collect_results(box)
    written = write_report(study, results, str(box.path / "report"), failed=failed, hparams=hparams)
    return [f"written: {p}" for p in written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mm1_jax.sweep", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="every study, its rows and how many are runnable")
    p_list.add_argument("directory", nargs="?", default=str(studies_lib.STUDIES_DIR))
    p_plan = sub.add_parser("plan", help="one line per (row, stage) job with its exact command")
    p_plan.add_argument("study", help="a study file, e.g. configs/studies/mm1_connector.py")
    p_plan.add_argument("--scale", choices=("paper", "embedded"), default="paper")
    p_plan.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    p_plan.add_argument("--root", default=studies_lib.DEFAULT_ROOT, help="workdirs are ROOT/<study>/<row>/<stage>")
    p_run = sub.add_parser("run", help="run (or resume) a study's jobs and record them in ROOT")
    p_run.add_argument("study")
    p_run.add_argument("--root", required=True, help="the sweep root: manifest, states, logs, workdirs")
    p_run.add_argument("--launcher", default="local", help="local | slurm | tpu")
    p_run.add_argument("--scale", choices=("paper", "embedded"), default="paper")
    p_run.add_argument("--rows", default="", help="comma-separated row names (default: every runnable row)")
    p_run.add_argument("--seeds", default="0", help="comma-separated training seeds (train.seed and data.seed)")
    p_run.add_argument("--parallel", type=int, default=1, help="local: jobs at once")
    p_run.add_argument("--slurm", action="append", default=[], help="an #SBATCH option, e.g. --slurm=partition=gpu")
    p_run.add_argument("--setup", default="", help="slurm / tpu: a shell line before the command (an environment)")
    p_run.add_argument("--tpu", default="", help="tpu: comma-separated TPU VM names")
    p_run.add_argument("--zone", default="", help="tpu: the pods' zone")
    p_run.add_argument("--project", default="", help="tpu: the GCP project")
    p_run.add_argument("--remote-dir", default="~/mm1_jax", help="tpu: the repository on the workers")
    for name, text in (("status", "every job's state"), ("report", "the study's table and figures")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--root", required=True)
    p_job = sub.add_parser("job", help="(used by the slurm files) run one job of ROOT and record its state")
    p_job.add_argument("--root", required=True)
    p_job.add_argument("--id", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            lines = list_studies(args.directory)
        elif args.command == "plan":
            rows = [r for r in args.rows.split(",") if r] or None
            lines = plan(args.study, args.scale, rows, args.root)
        elif args.command == "run":
            try:
                seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            except ValueError:
                raise studies_lib.StudyError(f"--seeds={args.seeds!r} must be comma-separated integers.") from None
            return run(args.study, args.root, args.launcher, args.scale, [r for r in args.rows.split(",") if r] or None,
                       seeds or [0], args.parallel, args.slurm, args.setup, [p for p in args.tpu.split(",") if p],
                       args.zone, args.project, args.remote_dir)
        elif args.command == "status":
            lines = status(args.root)
        elif args.command == "report":
            lines = report(args.root)
        else:
            box = manifest_lib.Root(args.root)
            manifest = box.manifest()
            if manifest is None or args.id not in manifest["jobs"]:
                raise studies_lib.StudyError(f"{args.root} has no job {args.id!r}.")
            return 0 if launchers.run_job(box, manifest, args.id) else 1
    except studies_lib.StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
