"""Where a sweep's jobs run: this machine, a SLURM cluster (generated sbatch files) or TPU VM pods (gcloud).

Every job runs through `run_job`, which records its state in the sweep root (running -> done / failed with the last
error line) around the job's ordinary command (`python -m mm1_jax.train ...` / `python -m mm1_jax.eval ...`):

  local   `run_job` here, K jobs at a time (`--parallel`), each as soon as the jobs it waits for are done
  slurm   one sbatch file per job under ROOT/slurm/, submitted with `--dependency=afterok:` on the jobs it waits for
          and `--requeue` (a preempted job restarts and the trainer resumes from its checkpoint); the file runs
          `python -m mm1_jax.sweep job --root=ROOT --id=ID`. Plain sbatch files rather than submitit: each job is a
          shell command already, and a file can be read, edited and resubmitted by hand.
  tpu     every worker of a TPU VM pod runs the same command (`gcloud compute tpus tpu-vm ssh POD --worker=all`);
          rows one after another on a pod, several pods (`--tpu=a,b`) take rows in turn, side by side
A failed job stops only the jobs that wait for it.
"""
from __future__ import annotations

import concurrent.futures
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time

from mm1_jax.sweep import studies as studies_lib
from mm1_jax.sweep.manifest import Root, job_status

LAUNCHERS = ("local", "slurm", "tpu")
TOOLS = {"slurm": "sbatch", "tpu": "gcloud"}


def check_tool(launcher: str) -> None:
    """One sentence when the launcher's command-line tool is not on PATH (before anything starts)."""
    if launcher not in LAUNCHERS:
        raise studies_lib.StudyError(f"--launcher={launcher!r} is not one of {', '.join(LAUNCHERS)}.")
    tool = TOOLS.get(launcher)
    if tool and shutil.which(tool) is None:
        raise studies_lib.StudyError(f"--launcher={launcher} needs `{tool}` on PATH; it is not there (nothing was "
                                     "started).")


def command_argv(command: str) -> list[str]:
    """A job's command line as argv, run with this Python."""
    argv = shlex.split(command)
    return [sys.executable] + argv[1:] if argv and argv[0] == "python" else argv


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "exception" in line.lower() or "stopped" in line.lower():
            return line[:500]
    return lines[-1][:500] if lines else "no output"


def run_job(root: Root, manifest: dict, job_id: str, argv: list[str] | None = None) -> bool:
    """Run one job (its own command, or `argv`), its output appended to its log; True when it succeeded."""
    entry = manifest["jobs"][job_id]
    key = job_id.replace("/", "__")
    argv = argv or command_argv(entry["command"])
    log = root.log_path(key)
    log.parent.mkdir(parents=True, exist_ok=True)
    root.set_state(key, "running", pid=os.getpid(), started=time.time(), error="", detail="")
    with open(log, "a") as out:
        out.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n")
        out.flush()
        code = subprocess.run(argv, cwd=studies_lib.REPO, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if code == 0:
        root.set_state(key, "done", returncode=0, finished=time.time())
        return True
    root.set_state(key, "failed", returncode=code, finished=time.time(), error=_last_error(log.read_text()[-20000:]))
    return False


def _todo(root: Root, manifest: dict, ids: list[str]) -> list[str]:
    return [i for i in ids if job_status(root, manifest, i)[0] != "done"]


def run_local(root: Root, manifest: dict, ids: list[str], parallel: int = 1, echo=print) -> dict[str, str]:
    """Run the jobs here, up to `parallel` at once, each when the jobs it waits for are done; {id: outcome}."""
    todo = _todo(root, manifest, ids)
    outcome = {i: "done" for i in ids if i not in todo}
    outcome.update({i: "done" for i, e in manifest["jobs"].items() if i not in ids and
                    job_status(root, manifest, i)[0] == "done"})
    running: dict[concurrent.futures.Future, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        while todo or running:
            for job_id in list(todo):
                deps = manifest["jobs"][job_id]["depends"]
                if any(outcome.get(d) in ("failed", "blocked") for d in deps):
                    outcome[job_id] = "blocked"
                    todo.remove(job_id)
                    echo(f"{job_id}: not run (a job it waits for failed)")
                elif all(outcome.get(d) == "done" for d in deps) and len(running) < max(1, parallel):
                    todo.remove(job_id)
                    echo(f"{job_id}: running")
                    running[pool.submit(run_job, root, manifest, job_id)] = job_id
            if not running:
                break
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                job_id = running.pop(future)
                outcome[job_id] = "done" if future.result() else "failed"
                detail = "" if outcome[job_id] == "done" else f": {job_status(root, manifest, job_id)[1]}"
                echo(f"{job_id}: {outcome[job_id]}{detail}")
    return outcome


def slurm_script(root: Root, manifest: dict, job_id: str, options: list[str], setup: str) -> str:
    """The sbatch file of one job."""
    key = job_id.replace("/", "__")
    lines = ["#!/bin/bash", f"#SBATCH --job-name={manifest['study']}-{key}",
             f"#SBATCH --output={root.path / 'logs' / key}.slurm-%j.out", "#SBATCH --requeue",
             "#SBATCH --open-mode=append"]
    lines += [f"#SBATCH --{o.lstrip('-')}" for o in options]
    lines += [setup] if setup else []
    lines += [f"cd {shlex.quote(str(studies_lib.REPO))}",
              f"exec python -m mm1_jax.sweep job --root={shlex.quote(str(root.path))} --id={shlex.quote(job_id)}"]
    return "\n".join(lines) + "\n"


def run_slurm(root: Root, manifest: dict, ids: list[str], options: list[str], setup: str = "",
              echo=print) -> dict[str, str]:
    """Submit one sbatch file per job not done, in order, each after the jobs it waits for (afterok)."""
    submitted: dict[str, str] = {}
    outcome: dict[str, str] = {}
    for job_id in ids:
        status, _ = job_status(root, manifest, job_id)
        state = root.state(job_id.replace("/", "__")) or {}
        if status == "done":
            outcome[job_id] = "done"
            continue
        if status in ("submitted", "running") and state.get("slurm_id") and _slurm_alive(state["slurm_id"]):
            submitted[job_id], outcome[job_id] = state["slurm_id"], "submitted before"
            continue
        deps = manifest["jobs"][job_id]["depends"]
        if any(d not in submitted and outcome.get(d) != "done" for d in deps):
            outcome[job_id] = "blocked"
            echo(f"{job_id}: not submitted (a job it waits for is neither done nor submitted)")
            continue
        key = job_id.replace("/", "__")
        path = root.path / "slurm" / f"{key}.sh"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(slurm_script(root, manifest, job_id, options, setup))
        after = [submitted[d] for d in deps if d in submitted]
        argv = ["sbatch", "--parsable"] + ([f"--dependency=afterok:{':'.join(after)}"] if after else []) + [str(path)]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            outcome[job_id] = "failed"
            root.set_state(key, "failed", error=f"sbatch: {_last_error(result.stderr or result.stdout)}")
            echo(f"{job_id}: sbatch failed: {(result.stderr or result.stdout).strip()}")
            continue
        slurm_id = result.stdout.strip().split(";")[0]
        submitted[job_id], outcome[job_id] = slurm_id, "submitted"
        if (root.state(key) or {}).get("state") != "done":  # a scheduler may run it at once (and finish)
            root.set_state(key, "submitted", slurm_id=slurm_id, detail=f"slurm job {slurm_id}")
        echo(f"{job_id}: submitted as slurm job {slurm_id}" + (f" after {', '.join(after)}" if after else ""))
    return outcome


def _slurm_alive(slurm_id: str) -> bool:
    if shutil.which("squeue") is None:
        return False
    out = subprocess.run(["squeue", "-h", "-j", slurm_id], capture_output=True, text=True, check=False)
    return bool(out.stdout.strip())


def tpu_argv(pod: str, zone: str, project: str, remote_dir: str, setup: str, command: str) -> list[str]:
    """gcloud's command running `command` on every worker of `pod`."""
    remote = f"cd {remote_dir} && " + (f"{setup} && " if setup else "") + command
    argv = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", pod, f"--zone={zone}"]
    argv += [f"--project={project}"] if project else []
    return argv + ["--worker=all", f"--command={remote}"]


def run_tpu(root: Root, manifest: dict, ids: list[str], pods: list[str], zone: str, project: str = "",
            remote_dir: str = "~/mm1_jax", setup: str = "", echo=print) -> dict[str, str]:
    """Each (seed, row)'s jobs in order on one pod; pods take rows in turn and run side by side."""
    chains: dict[tuple, list[str]] = {}
    for job_id in ids:
        entry = manifest["jobs"][job_id]
        chains.setdefault((entry["seed"], entry["row"]), []).append(job_id)
    shared = [c for c in chains if c[1] == "shared" or c[1].startswith("shared-")]
    order = shared + [c for c in chains if c not in shared]  # shared stages first, on the first pod
    queues: dict[str, list[str]] = {pod: [] for pod in pods}
    for n, chain in enumerate(order):
        queues[pods[0] if chain in shared else pods[n % len(pods)]] += chains[chain]
    outcome: dict[str, str] = {}
    lock = threading.Lock()

    def work(pod: str) -> None:
        for job_id in queues[pod]:
            deps = manifest["jobs"][job_id]["depends"]
            while any(outcome.get(d) is None and d in ids and job_status(root, manifest, d)[0] != "done"
                      for d in deps):
                time.sleep(1)  # a shared stage running on another pod
            status = job_status(root, manifest, job_id)[0]
            with lock:
                if status == "done":
                    outcome[job_id] = "done"
                    continue
                if any(outcome.get(d) in ("failed", "blocked") for d in deps):
                    outcome[job_id] = "blocked"
                    echo(f"{job_id}: not run (a job it waits for failed)")
                    continue
                echo(f"{job_id}: running on {pod}")
            argv = tpu_argv(pod, zone, project, remote_dir, setup, manifest["jobs"][job_id]["command"])
            ok = run_job(root, manifest, job_id, argv)
            with lock:
                outcome[job_id] = "done" if ok else "failed"
                echo(f"{job_id}: {outcome[job_id]} on {pod}")

    threads = [threading.Thread(target=work, args=(pod,)) for pod in pods]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome
