"""python -m mm1_jax.sweep list [DIR] | plan STUDY_FILE [--scale=paper|embedded] [--rows=a,b] [--root=ROOT]

`list` prints every study with its row count, how many rows have every feature they need, and how many of its
evaluation tasks exist. `plan` checks the chosen
rows' configs (every override names an existing field of its base config; model, training and data settings are
valid) and prints one line per (row, stage) job: `row/stage: COMMAND` (an evaluation's tasks that do not exist yet
follow as a `#` comment), `row/stage: # task not yet available: ...` (an evaluation none of whose tasks exists), or
`row/stage: # not runnable: WHY`. Lines starting with '#' are headers.
"""
from __future__ import annotations

import argparse
import sys

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
    study = studies_lib.load_study(path)
    if scale == "embedded" and not study.embedded:
        raise studies_lib.StudyError(f"embedded scale not defined for study {study.name} yet.")
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
        note = f"# task not yet available: {', '.join(job.unavailable)}" if job.unavailable else ""
        lines.append(f"{head} {note}" if job.waiting else f"{head} {job.command()}{'  ' + note if note else ''}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mm1_jax.sweep", description=__doc__.split("\n\n")[1])
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="every study, its rows and how many are runnable")
    p_list.add_argument("directory", nargs="?", default=str(studies_lib.STUDIES_DIR))
    p_plan = sub.add_parser("plan", help="one line per (row, stage) job with its exact command")
    p_plan.add_argument("study", help="a study file, e.g. configs/studies/mm1_connector.py")
    p_plan.add_argument("--scale", choices=("paper", "embedded"), default="paper")
    p_plan.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    p_plan.add_argument("--root", default=studies_lib.DEFAULT_ROOT, help="workdirs are ROOT/<study>/<row>/<stage>")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            lines = list_studies(args.directory)
        else:
            rows = [r for r in args.rows.split(",") if r] or None
            lines = plan(args.study, args.scale, rows, args.root)
    except studies_lib.StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
