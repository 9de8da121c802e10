"""Multi-host start-up: `jax.distributed.initialize` from flags or the environment, before any other jax call.

  TPU pod       nothing to pass: every worker runs the same command and jax finds the pod's coordinator.
  SLURM         detected from SLURM_* variables (jax's own cluster detection); one process per node or per GPU.
  explicit      --coordinator=HOST:PORT --num_processes=N --process_id=I (or MM1_COORDINATOR, MM1_NUM_PROCESSES,
                MM1_PROCESS_ID), e.g. several CPU processes on one machine (launch/local_multiprocess.sh).
CPU processes exchange collectives through gloo.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np


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
                                   process_id=process_id)
    elif on_tpu_pod or in_slurm:
        jax.distributed.initialize()


def to_host(tree: Any) -> Any:
    """Numpy values of jax arrays on every host. An array laid out over several hosts' devices (e.g. the output of a
    computation on parameters sharded across hosts) is gathered first, which every host must do together."""
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(fetch, tree)
