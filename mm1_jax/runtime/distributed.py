"""Multi-host start-up: `jax.distributed.initialize` from flags or the environment, before any other jax call.

  TPU pod       nothing to pass: every worker runs the same command and jax finds the pod's coordinator.
  SLURM         detected from SLURM_* variables (jax's own cluster detection); one process per node or per GPU.
  explicit      --coordinator=HOST:PORT --num_processes=N --process_id=I (or MM1_COORDINATOR, MM1_NUM_PROCESSES,
                MM1_PROCESS_ID), e.g. several CPU processes on one machine (launch/local_multiprocess.sh).
CPU processes exchange collectives through gloo.

A lost host (a process killed, a machine gone) is noticed by `HostWatchdog` (started by `initialize`): every process
beats in jax's coordination key-value store; when another process has not beaten for `train.host_timeout_s`, the
survivors print one line naming the lost process and the step to resume from, and exit with `LOST_HOST_EXIT`.
Losing process 0 (the coordination service) makes JAX abort the others natively at once; their last line then comes
from a small helper process (`last_words`).
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Any

import jax
import numpy as np

from mm1_jax.runtime import last_words
from mm1_jax.runtime.last_words import LOST_HOST_EXIT

DEFAULT_HOST_TIMEOUT_S = 120.0  # train.host_timeout_s's default, also the wait during set-up
MAX_HOST_TIMEOUT_S = 600.0  # train.host_timeout_s's largest value: it must stay below jax's own heartbeat limit
JAX_HEARTBEAT_S = 900  # jax's coordination service aborts every process (natively, naming nothing) after this


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None) -> None:
    """Join the job's processes (a no-op for a plain single process)."""
    coordinator = coordinator or os.environ.get("MM1_COORDINATOR")
    num_processes = num_processes or _env_int("MM1_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("MM1_PROCESS_ID")
    on_tpu_pod = "TPU_WORKER_HOSTNAMES" in os.environ or "MEGASCALE_COORDINATOR_ADDRESS" in os.environ
    in_slurm = "SLURM_JOB_ID" in os.environ and _env_int("SLURM_NTASKS") not in (None, 1)
    if coordinator:
        if num_processes is None or process_id is None:
            raise ValueError(f"coordinator={coordinator!r} was given without num_processes and process_id.")
        if num_processes == 1:
            return
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, heartbeat_timeout_seconds=JAX_HEARTBEAT_S)
    elif on_tpu_pod or in_slurm:
        jax.distributed.initialize(heartbeat_timeout_seconds=JAX_HEARTBEAT_S)
    else:
        return
    watch_hosts()  # from now on: set-up, compilation and the loop are all watched


def to_host(tree: Any) -> Any:
    """Numpy values of jax arrays on every host. An array laid out over several hosts' devices (e.g. the output of a
    computation on parameters sharded across hosts) is gathered first, which every host must do together."""
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(fetch, tree)


class HostWatchdog:
    """Notices a lost process and stops this one with a sentence instead of jax's native abort.

    A daemon thread beats every `interval` seconds (a counter under mm1_jax/beat/<process> in the coordination
    service's key-value store) and reads every process's beat. A process whose counter has not moved for `timeout_s`
    seconds (or the coordination service, on process 0, unreachable for as long) is lost: the thread prints one line
    on stderr naming it and the step to resume from (the newest complete checkpoint in `checkpoint_dir`), appends the
    same as a row to `<workdir>/metrics.jsonl` (from the lowest-numbered survivor), and ends the process with
    `LOST_HOST_EXIT` (os._exit: the main thread may be blocked in a collective that will never complete; an
    asynchronous save in flight stays an orbax temporary folder, which no restart takes for a step). The waiting is
    independent of how long steps, saves or evaluations take: a slow process still beats.
    """

    PREFIX = "mm1_jax/beat/"

    def __init__(self, client, process_id: int, num_processes: int, timeout_s: float = DEFAULT_HOST_TIMEOUT_S):
        self.client, self.process_id, self.num_processes = client, process_id, num_processes
        self.timeout_s, self.checkpoint_dir, self.workdir = float(timeout_s), None, None
        self._ended, self._quiet = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="mm1_jax-host-watchdog", daemon=True)

    def configure(self, timeout_s: float, checkpoint_dir: str | None = None, workdir: str | None = None) -> None:
        self.timeout_s, self.checkpoint_dir, self.workdir = float(timeout_s), checkpoint_dir, workdir

    def start(self) -> "HostWatchdog":
        self._thread.start()
        return self

    def quiet(self) -> None:
        """Stop beating (at exit) but keep watching: a process leaving because a collective failed with a lost peer
        still names it; one that finished waits in jax's shutdown barrier while the others still beat."""
        self._quiet.set()

    def stop(self) -> None:
        self._ended.set()

    def _run(self) -> None:
        beat, now = 0, time.monotonic()
        seen = {p: (None, now) for p in range(self.num_processes) if p != self.process_id}  # last value, when moved
        contact = now  # the last time the coordination service answered
        while not self._ended.wait(min(2.0, max(0.2, self.timeout_s / 5))):
            now, last = time.monotonic(), now
            if now - last > self.timeout_s / 2:  # this thread was not scheduled (process suspended or starved):
                seen, contact = {p: (value, now) for p, (value, _) in seen.items()}, now  # the silence proves nothing
            try:
                if not self._quiet.is_set():
                    self.client.key_value_set(f"{self.PREFIX}{self.process_id}", str(beat), allow_overwrite=True)
                beats = dict(self.client.key_value_dir_get(self.PREFIX))
                contact, beat = now, beat + 1
            except Exception:  # pylint: disable=broad-except  # the service (process 0) gone, or the client shut
                if now - contact > self.timeout_s:  # down at a normal exit (which ends the process long before this)
                    self._give_up([0], now - contact, unreachable=True)
                continue
            for p, (value, moved) in seen.items():
                latest = beats.get(f"{self.PREFIX}{p}")
                if latest != value:
                    seen[p] = (latest, now)
            lost = sorted(p for p, (_, moved) in seen.items() if now - moved > self.timeout_s)
            if lost and not self._ended.is_set():
                self._give_up(lost, max(now - seen[p][1] for p in lost))

    def message(self, lost: list[int], waited_s: float, unreachable: bool = False) -> tuple[str, int | None]:
        """The line a survivor prints (and the step it names: the newest complete checkpoint, or None)."""
        who = ", ".join(map(str, lost))
        what = ("the coordination service on process 0 has not answered" if unreachable
                else f"process{'es' if len(lost) > 1 else ''} {who} of {self.num_processes} sent no heartbeat")
        return last_words.lost_host_message(f"{what} for {waited_s:.0f} s (train.host_timeout_s={self.timeout_s:g})",
                                            self.process_id, self.num_processes, self.checkpoint_dir,
                                            f"stops (exit {LOST_HOST_EXIT})")

    def _give_up(self, lost: list[int], waited_s: float, unreachable: bool = False) -> None:
        text = f"lost host: process(es) {lost} of {self.num_processes} stopped; process {self.process_id} stops."
        try:
            text, step = self.message(lost, waited_s, unreachable)
            sys.stdout.flush()
            if self.process_id == min(p for p in range(self.num_processes) if p not in lost):
                last_words.append_row(self.workdir, {"step": step or 0, "time": round(time.time(), 3),
                                                     "host_lost": lost, "resume_step": step,
                                                     "exit_code": LOST_HOST_EXIT, "message": text})
        except Exception:  # pylint: disable=broad-except  # the line below is what matters
            pass
        finally:
            print(text, file=sys.stderr, flush=True)
            last_words.farewell()
            os._exit(LOST_HOST_EXIT)


_WATCHDOG: HostWatchdog | None = None


def watch_hosts(timeout_s: float = DEFAULT_HOST_TIMEOUT_S, checkpoint_dir: str | None = None,
                workdir: str | None = None) -> HostWatchdog | None:
    """Start (once) or re-configure the lost-host watchdog of a multi-process job; None for a single process.
    `initialize` starts it; the trainer passes its train.host_timeout_s, checkpoint folder and workdir."""
    global _WATCHDOG  # pylint: disable=global-statement
    from jax._src import distributed as jax_distributed  # pylint: disable=import-outside-toplevel

    state = jax_distributed.global_state  # read, not jax.process_count(): that would start the backends
    if state.client is None or state.num_processes == 1:
        return None
    if _WATCHDOG is None:
        _WATCHDOG = HostWatchdog(state.client, state.process_id, state.num_processes, timeout_s)
        atexit.register(_WATCHDOG.quiet)  # runs before jax's own exit hooks (registered earlier) shut the client down
        _WATCHDOG.start()
        if state.process_id != 0 and state.coordinator_address:
            last_words.start(state.coordinator_address)
    _WATCHDOG.configure(timeout_s, checkpoint_dir, workdir)
    last_words.tell({"process_id": state.process_id, "num_processes": state.num_processes,
                      "checkpoint_dir": checkpoint_dir, "workdir": workdir})
    return _WATCHDOG
