"""Our lines on the console, the libraries' only when asked: the commands call `quiet_libraries()` after their flags
are parsed. Library logging (orbax's save/restore INFO lines, jax's backend probing) goes to WARNING unless the user
passed absl's `--verbosity` (e.g. `--verbosity=0` for INFO, as before)."""
from __future__ import annotations

import logging

from absl import flags
from absl import logging as absl_logging


def quiet_libraries() -> None:
    """Library logging at WARNING, unless --verbosity was given on the command line."""
    if "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present:
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("jax", "jax._src.xla_bridge", "orbax", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
