"""Our lines on the console, the libraries' only when asked: the commands call `quiet_libraries()` after their flags
are parsed. Library logging (orbax's save/restore INFO lines, jax's backend probing) goes to WARNING unless the user
passed absl's `--verbosity` (e.g. `--verbosity=0` for INFO); `start_backends()` starts jax's backends with
the native stderr silenced (libtpu, installed by the [test] / [aot] extras, prints its probe's warnings there on a
machine without a TPU)."""
from __future__ import annotations

import logging
import os
import sys

from absl import flags
from absl import logging as absl_logging


def quiet_libraries() -> None:
    """Library logging at WARNING, unless --verbosity was given on the command line."""
    if _verbose():
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("jax", "jax._src.xla_bridge", "orbax", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _verbose() -> bool:
    return "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present


def start_backends() -> None:
    """Initialise jax's backends now, the native stderr sent to /dev/null meanwhile unless --verbosity was given.
    Call it after `jax.distributed.initialize` (multi-host runs) and before anything else touches the devices."""
    import jax  # pylint: disable=import-outside-toplevel

    if _verbose():
        jax.devices()
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        jax.devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
