"""python -m mm1_jax.train --config=configs/X.py[:ARG] --workdir=DIR [--config.a.b=value ...]

The same command on one CPU, on a host with many devices, and on every host of a pod or SLURM job
(multi-host set-up: mm1_jax/runtime/distributed.py).
"""
from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:ARG]).", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and TensorBoard events go here.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 (multi-process without a pod/SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job (with --coordinator).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    from mm1_jax.runtime import distributed  # pylint: disable=import-outside-toplevel

    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from mm1_jax.train import trainer  # pylint: disable=import-outside-toplevel

    try:
        result = trainer.train(_CONFIG.value, _WORKDIR.value)
    except (ValueError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    losses = result["losses"]
    if losses:
        first, last = min(losses), max(losses)
        print(f"{result['status']}: step {result['step']}, loss {losses[first]:.4f} (step {first}) -> "
              f"{losses[last]:.4f} (step {last}), {result['wall_s']:.0f} s"
              + (f", held-out caption accuracy {result['caption_accuracy']:.1%}" if "caption_accuracy" in result
                 else ""), flush=True)


if __name__ == "__main__":
    app.run(main)
