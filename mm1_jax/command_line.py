"""`run(main)`: absl's `app.run` for every command of the package, with one more bad input refused in one sentence.

ml_collections applies `--config.a.b=value` overrides while absl parses the flags, and an override naming a field the
config does not have escapes as a bare `AttributeError: "'b'"` with a traceback. Here it becomes
`error: --config.a.b=value: the config has no field a.b.` and exit status 1, before anything else runs. absl's own
flag errors (a value of the wrong type, an unknown flag) keep absl's one-line message.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from absl import app


def unknown_field(argv: list[str], error: Exception) -> str:
    """The sentence for an override of a missing config field (`error` is ml_collections' AttributeError/KeyError)."""
    text = str(error)
    key = re.search(r"[A-Za-z_]\w*", text)
    key = key.group(0) if key else text
    hint = re.search(r'Did you mean "(\w+)"', text)
    hint = f' (did you mean "{hint.group(1)}"?)' if hint else ""
    for arg in argv[1:]:
        parts = arg.split("=", 1)[0].lstrip("-").split(".")
        if len(parts) > 1 and key in parts[1:]:
            return f"{arg}: the config has no field {'.'.join(parts[1:parts.index(key, 1) + 1])}{hint}."
    return f"a --config override names a field the config does not have ({key!r}){hint}."


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing (its own message on its own errors), and one sentence for a missing config field."""
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError) as e:
        print(f"error: {unknown_field(argv, e)}", file=sys.stderr)
        sys.exit(1)


def run(main: Callable[[list[str]], Any]) -> None:
    """`app.run(main)` with `parse_flags`."""
    app.run(main, flags_parser=parse_flags)
