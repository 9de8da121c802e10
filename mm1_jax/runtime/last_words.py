"""The last line of a process that JAX aborts natively because the coordination service (process 0) is gone.

When process 0 of a multi-process job dies, JAX's coordination client in every other process polls the error and
aborts the process at once (SIGABRT, a native stack dump, no Python code runs): the `HostWatchdog` never gets to
speak. So each process other than 0 starts this file as a small helper process (`python last_words.py PARENT_PID
COORDINATOR`, standard library only, no jax). The parent sends it, on its stdin, the resume information as JSON
lines, and "done" before any exit it chose (a normal end, a refusal, the watchdog's own stop; not an uncaught
exception). If the parent
vanishes without "done" while the coordinator's port refuses connections, the helper prints the parent's last
line (the lost host, the step to resume from) to the parent's stderr and appends it to metrics.jsonl. A parent
killed for any other reason (the coordinator still answers) leaves no line: it is not a lost host.

`newest_complete_step` and `lost_host_message` are shared with `distributed.HostWatchdog`.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import sys
import time

LOST_HOST_EXIT = 75  # the exit status of a survivor that gave up on a lost host (EX_TEMPFAIL: restart to resume)


def newest_complete_step(checkpoint_dir: str | None) -> int | None:
    """The newest complete checkpoint step, or None. orbax renames a step's folder into place when it is complete
    (on a bucket it writes commit_success.txt into it), so a save in flight is never counted."""
    if not checkpoint_dir:
        return None
    try:
        if "://" in checkpoint_dir:
            from etils import epath  # pylint: disable=import-outside-toplevel

            root = epath.Path(checkpoint_dir)
            steps = [int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / "commit_success.txt").exists()]
        else:
            steps = [int(n) for n in os.listdir(checkpoint_dir)
                     if n.isdigit() and os.path.isdir(os.path.join(checkpoint_dir, n))]
    except Exception:  # pylint: disable=broad-except  # an unreadable folder: no step to name
        return None
    return max(steps) if steps else None


def lost_host_message(what: str, process_id: int, num_processes: int, checkpoint_dir: str | None,
                      stops: str) -> tuple[str, int | None]:
    """'lost host: <what>; process <id> <stops>. Restart all N processes with the same workdir: <where>.' and the
    step it names (the newest complete checkpoint, or None)."""
    step = newest_complete_step(checkpoint_dir)
    if checkpoint_dir is None:
        where = "they resume from the newest complete checkpoint, if any (the process was lost during set-up)"
    elif step is None:
        where = f"they start afresh (there is no complete checkpoint in {checkpoint_dir} yet)"
    else:
        where = f"they resume from step {step}, the newest complete checkpoint in {checkpoint_dir}"
    return (f"lost host: {what}; process {process_id} {stops}. Restart all {num_processes} processes with the same "
            f"workdir: {where}.", step)


def append_row(workdir: str | None, row: dict) -> None:
    """One row of metrics.jsonl (local workdirs only)."""
    if workdir and "://" not in workdir:
        with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")


def coordinator_answers(address: str) -> bool:
    """Whether something accepts connections at HOST:PORT (the coordination service of process 0)."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------- the parent's side
_HELPER: subprocess.Popen | None = None
_CRASHED = False  # an uncaught exception is on its way out: not an end of the process's own choosing


def start(coordinator: str) -> None:
    """Start this process's helper (processes other than 0 of a multi-process job; `distributed.watch_hosts`). A
    normal exit says "done" to it; an exit by an uncaught exception does not (a collective that failed because
    process 0 died raises one before JAX aborts the process)."""
    global _HELPER  # pylint: disable=global-statement
    _HELPER = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(os.getpid()), coordinator],
                               stdin=subprocess.PIPE, text=True, start_new_session=True)
    previous = sys.excepthook

    def note_crash(*exc_info):
        global _CRASHED  # pylint: disable=global-statement
        _CRASHED = True
        previous(*exc_info)

    sys.excepthook = note_crash
    atexit.register(lambda: None if _CRASHED else farewell())


def tell(state: dict) -> None:
    """Send the helper what it would need to speak: process_id, num_processes, checkpoint_dir, workdir."""
    try:
        if _HELPER is not None and not _HELPER.stdin.closed:
            _HELPER.stdin.write(json.dumps(state) + "\n")
            _HELPER.stdin.flush()
    except OSError:
        pass


def farewell() -> None:
    """Tell the helper that this process ends on its own (at exit; call it before any os._exit)."""
    try:
        if _HELPER is not None and not _HELPER.stdin.closed:
            _HELPER.stdin.write("done\n")
            _HELPER.stdin.close()
    except OSError:
        pass


# ------------------------------------------------------------------------------------------- the helper's side
def watch(parent: int, coordinator: str) -> None:
    """Read the parent's state from stdin until it says "done" or dies; on a death with the coordinator gone, speak."""
    state: dict = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.1)
        if ready:
            line = sys.stdin.readline()
            if line.strip() == "done":
                return
            if line.strip():
                state.update(json.loads(line))
            elif not line and os.getppid() == parent:  # stdin closed (exec, or an fd shuffle) but the parent lives
                time.sleep(0.1)
        if os.getppid() != parent:  # reparented: the parent is gone without saying "done"
            break
    if coordinator_answers(coordinator):
        return  # killed or crashed for a reason of its own, not a lost coordination service
    pid, n = state.get("process_id", -1), state.get("num_processes", 0)
    text, step = lost_host_message(
        "the coordination service on process 0 is gone", pid, n, state.get("checkpoint_dir"),
        "was aborted by JAX at once (SIGABRT, exit status 134; train.host_timeout_s does not apply to process 0)")
    print(text, file=sys.stderr, flush=True)
    if pid == min((p for p in range(n) if p != 0), default=-1):
        append_row(state.get("workdir"), {"step": step or 0, "time": round(time.time(), 3), "host_lost": [0],
                                          "resume_step": step, "exit_code": 134, "message": text})


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.argv[2])
