"""The one sentence for a key a config section does not have, with the field meant when one is close.

Every section of a config (model, data, train, init, eval, mesh, axis_rules, ...) checks its keys against its owner of
defaults with `check_known`, so a misspelled field in a config file is refused instead of silently doing nothing:
`data.max_error_rte is not a known field (did you mean "max_error_rate"?); the fields are: ...`. It imports nothing
from the package, so every layer may use it.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """' (did you mean "seed"?)' when a name in `known` is close to `key` (difflib's ratio >= 0.6), else ''."""
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def unknown_key(section: str, key: str, known: Iterable[str], what: str = "a known field",
                listed: str = "the fields") -> str:
    """`{section}.{key} is not {what}{hint}; {listed} are: a, b, c.` (`section` '' names the key alone)."""
    known = sorted(str(k) for k in known)
    name = f"{section}.{key}" if section else str(key)
    return f"{name} is not {what}{did_you_mean(key, known)}; {listed} are: {', '.join(known)}."


def check_known(section: str, keys: Iterable[str], known: Iterable[str]) -> None:
    """Raise ValueError (`unknown_key`'s sentence) for the first of `keys` that is not in `known`."""
    known = tuple(known)
    for key in keys:
        if key not in known:
            raise ValueError(unknown_key(section, key, known))
