"""Two local processes x 4 devices (jax.distributed over localhost, gloo collectives) train to the same losses as
one process x 8 devices: the multi-host path of a pod, exercised on one machine."""
import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import json, sys
sys.path.insert(0, {tests!r}); sys.path.insert(0, {root!r})
from mm1_jax.train import distributed
distributed.initialize({coordinator!r}, {n}, {pid})
import jax
from test_train import small_config
from mm1_jax.train import trainer
config = small_config(steps=3, host_data="global")
config.mesh = dict(data=1, fsdp=-1, tensor=2, expert=1)
out = trainer.train(config, {workdir!r})
assert jax.device_count() == 8 and jax.local_device_count() == 8 // {n}
if jax.process_index() == 0:
    print("LOSSES" + json.dumps(out["losses"]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(n: int, workdir: str) -> list[subprocess.Popen]:
    coordinator = f"localhost:{_free_port()}" if n > 1 else None
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={8 // n}", JAX_PLATFORMS="cpu")
    procs = []
    for pid in range(n):
        code = CHILD.format(tests=os.path.join(ROOT, "tests"), root=ROOT, coordinator=coordinator, n=n, pid=pid,
                            workdir=workdir)
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _losses(procs) -> dict:
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    line = next(line for line in outputs[0].splitlines() if line.startswith("LOSSES"))
    return {int(k): v for k, v in json.loads(line[len("LOSSES"):]).items()}


def test_two_processes_match_one_process(tmp_path):
    single = _launch(1, str(tmp_path / "one"))
    multi = _launch(2, str(tmp_path / "two"))
    one, two = _losses(single), _losses(multi)
    assert sorted(one) == sorted(two) == [1, 2, 3]
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=1e-5), (step, one, two)
    assert one[3] < one[1]
    assert sorted(os.listdir(tmp_path / "two" / "checkpoints")) == ["3"]  # both hosts saved one checkpoint
