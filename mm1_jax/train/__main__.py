"""python -m mm1_jax.train --config=configs/X.py[:ARG] --workdir=DIR [--config.a.b=value ...]

The same command on one CPU, on a host with many devices, and on every host of a pod or SLURM job
(multi-host set-up: mm1_jax/runtime/distributed.py).
"""
from __future__ import annotations

import os
import sys

from absl import flags
from ml_collections import config_flags

from mm1_jax import command_line
from mm1_jax.runtime import last_words

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:ARG]).", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and TensorBoard events go here.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 (multi-process without a pod/SLURM).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job (with --coordinator).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator).")
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str) -> None:
    """The one sentence, then exit 1 at once: what must be kept is already on disk (checkpoints, metrics.jsonl), and an
    interpreter shutdown would let orbax's background threads print tracebacks ("Event loop is closed") after it."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    last_words.farewell()  # a refusal, not a lost host
    os._exit(1)


def _check_workdir(workdir: str) -> None:
    """A local workdir must be creatable and writable (checked before anything heavy runs)."""
    if "://" in workdir:
        return
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test_{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        _fail(f"--workdir={workdir} cannot be created or written ({e.strerror or e}).")


def main(argv):
    del argv
    from mm1_jax.runtime import console, distributed  # pylint: disable=import-outside-toplevel

    console.quiet_libraries()
    try:
        config = _CONFIG.value
        config.keys()  # a config file that failed to load raises here
    except (OSError, SyntaxError, ValueError, AttributeError) as e:
        detail = [line.strip() for line in str(e).splitlines() if line.strip()][-1]
        _fail(f"--config={flags.FLAGS['config'].serialize().split('=', 1)[-1]} could not be loaded: {detail}")
    from mm1_jax.train.config import validate_config  # pylint: disable=import-outside-toplevel

    try:
        validate_config(config)  # every field, before the devices, the data or a compilation are touched
    except ValueError as e:
        _fail(str(e))
    _check_workdir(_WORKDIR.value)

    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    console.start_backends()
    import jax  # pylint: disable=import-outside-toplevel

    if jax.process_index() == 0:
        print(f"setting up in {_WORKDIR.value}: the model, its sharded state and the data", flush=True)
    from mm1_jax.data.pipeline import DataError  # pylint: disable=import-outside-toplevel
    from mm1_jax.train import trainer  # pylint: disable=import-outside-toplevel

    try:
        result = trainer.train(config, _WORKDIR.value)
    except (ValueError, FloatingPointError, DataError) as e:  # DataError: a source past its max_error_rate
        _fail(str(e))
    except KeyboardInterrupt:  # a second Ctrl-C
        print("\ninterrupted: exiting without saving.", file=sys.stderr, flush=True)
        sys.exit(130)
    losses = result["losses"]
    if losses:
        first, last = min(losses), max(losses)
        print(f"{result['status']}: step {result['step']}, loss {losses[first]:.4f} (step {first}) -> "
              f"{losses[last]:.4f} (step {last}), {result['wall_s']:.0f} s"
              + (f", held-out caption accuracy {result['caption_accuracy']:.1%}" if "caption_accuracy" in result
                 else ""), flush=True)


if __name__ == "__main__":
    command_line.run(main)
