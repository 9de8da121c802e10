"""What the tests share with the commands they start: the XLA flags and a user's environment."""
from __future__ import annotations

import os

# XLA:CPU compile options for the tests' tiny programs. A cold run of the suite is mostly XLA compiling small
# programs; LLVM at -O0 and the elemental (not the fusion) emitters compile them about three times faster, and the
# slower code they make costs these programs little. Float32 semantics are unchanged (no fast-math), so every
# comparison keeps its tolerance; a user's commands compile with XLA's defaults.
FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true",
                "--xla_cpu_use_fusion_emitters=false")
DEVICE_COUNT = "--xla_force_host_platform_device_count"


def xla_flags(devices: int | None = None, base: str | None = None) -> str:
    """`base` (default: $XLA_FLAGS) without its device count, plus the fast-compile flags it lacks and, when given,
    `devices` virtual CPU devices."""
    flags = [f for f in (os.environ.get("XLA_FLAGS", "") if base is None else base).split()
             if not f.startswith(DEVICE_COUNT)]
    flags += [f for f in FAST_COMPILE if f.split("=")[0] not in {g.split("=")[0] for g in flags}]
    if devices is not None:
        flags.append(f"{DEVICE_COUNT}={devices}")
    return " ".join(flags)


def user_env(devices: int | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment of a command a user runs (one CPU device unless `devices`), with the tests' compile flags and
    persistent compilation cache; the variables in `drop` removed."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["XLA_FLAGS"] = xla_flags(devices)
    return env


def require_java_ptb(ptb_available: bool) -> None:
    """CIDEr's reference tokenisation (pycocoevalcap's PTB tokenizer) runs Java. Where it cannot run the test is
    skipped, except under CI=true, where that is a failure saying how to install it (never a silent skip)."""
    import pytest  # pylint: disable=import-outside-toplevel

    if ptb_available:
        return
    reason = ("CIDEr's PTB tokenizer (pycocoevalcap) needs Java on the PATH: install a JRE (Debian: apt-get install "
              "default-jre-headless) and the [test] extra")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI=true runs every check, so this fails instead of skipping.", pytrace=False)
    pytest.skip(reason)
